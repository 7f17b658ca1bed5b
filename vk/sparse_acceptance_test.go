package vk

import (
	"os"
	"testing"

	"github.com/hata-go/hata/ref/reftest"
)

// sparseMethods are the top-k methods with GPU kernels (every vk method but
// dense, whose acceptance run is TestAcceptance).
var sparseMethods = []string{"topk", "hata", "lsh", "loki", "quest", "streaming", "h2o"}

// envLarge = 1 adds the acceptance suite's long sequences (N around 4K and
// 33K): for GPUs, too slow on lavapipe for CI.
const envLarge = "HATA_VK_LARGE"

// TestSparseAcceptance runs the project's acceptance suite (ref/reftest) on
// every GPU top-k method, with float32 and float16 caches, the three HATA
// kernel variants, both selects of the float-score methods (a workgroup
// per row, the default where it fits, and the radix select over chunks),
// on the shared test context (validation on, outputs poisoned). Loki runs
// with float32 rotated keys (LokiF32Keys), whose scores are ref.Loki's;
// its default float16 keys are TestLokiHalfKeys'.
//
// f32-rowselect forces select_rows, whose workgroup holds at most 32768 keys
// (RowSelectOn is an error past that, TestRowsKeysPerLane), so it runs
// the small shapes only: the large shape's rows have 32779 tokens. Quest's
// pages of that shape go through select_rows in f32 and f16 (RowSelectAuto).
//
// The proj cases run the query projection (HATA's encode, Loki's rotation)
// with every form of its sum over slices of D (proj.glsl): one slice (32
// lanes), two added in the last step (64), and the pairwise rounds down to
// two (1024, or as many as the device allows; the other cases run the
// default, 512). One-byte keys (SparseOptions.KeyBytes) run only where the
// select's chunks exceed 2048 tokens (the large shapes on a GPU; on
// lavapipe TestHATAOneByteKeys holds them): by default until a step of a
// cache falls short, on every step in f16-keybytes1, and never in
// f16-keybytes2 (uint16 keys, the default until session 23). f16-hostcache
// runs dense and every top-k method with its K/V cache in host memory
// (HostCache).
func TestSparseAcceptance(t *testing.T) {
	ctx := device(t)
	large := os.Getenv(envLarge) == "1"
	for _, c := range []struct {
		name  string
		opt   SparseOptions
		names []string
		dims  []int
	}{
		{"f32", SparseOptions{}, sparseMethods, []int{64, 128}},
		{"f16", SparseOptions{Storage: F16}, sparseMethods, []int{64, 128}},
		{"f16-chunkselect", SparseOptions{Storage: F16, RowSelect: RowSelectOff}, []string{"topk", "loki", "quest"}, []int{64, 128}},
		{"f32-rowselect", SparseOptions{RowSelect: RowSelectOn}, []string{"topk", "loki", "quest"}, []int{64}},
		{"f16-naive", SparseOptions{Storage: F16, Variant: VariantNaive}, []string{"hata", "lsh"}, []int{128}},
		{"f16-twokernel", SparseOptions{Storage: F16, Variant: VariantTwoKernel}, []string{"hata", "lsh"}, []int{64, 128}},
		{"f16-threekernel", SparseOptions{Storage: F16, Variant: VariantThreeKernel}, []string{"hata", "lsh"}, []int{64, 128}},
		{"f16-plan", SparseOptions{Storage: F16, SelectPlan: PlanOn}, []string{"hata", "lsh"}, []int{64, 128}},
		{"f16-onekernel", SparseOptions{Storage: F16, Variant: VariantOneKernel}, []string{"hata", "lsh"}, []int{64, 128}},
		{"f32-onekernel", SparseOptions{Variant: VariantOneKernel}, []string{"hata"}, []int{64}},
		{"f32-naive", SparseOptions{Variant: VariantNaive}, []string{"hata"}, []int{64}},
		{"f32-proj32", SparseOptions{ProjWorkgroup: 32}, []string{"hata", "loki"}, []int{64}},
		{"f16-proj64", SparseOptions{Storage: F16, ProjWorkgroup: 64}, []string{"hata", "loki"}, []int{128}},
		{"f32-proj1024", SparseOptions{ProjWorkgroup: 1024}, []string{"hata", "loki"}, []int{64, 128}},
		{"f16-keybytes1", SparseOptions{Storage: F16, KeyBytes: 1}, []string{"hata", "lsh"}, []int{64, 128}},
		{"f16-keybytes2", SparseOptions{Storage: F16, KeyBytes: 2}, []string{"hata"}, []int{128}},
		{"f16-hostcache", SparseOptions{Storage: F16, HostCache: true}, append([]string{"dense"}, sparseMethods...), []int{128}},
	} {
		c.opt.LokiF32Keys = true
		t.Run(c.name, func(t *testing.T) {
			reftest.Run(t, ctx.SparseFactory(c.opt), reftest.Config{Names: c.names, Dims: c.dims, FP16: c.opt.Storage == F16, Large: large && c.opt.RowSelect != RowSelectOn})
		})
	}
}
