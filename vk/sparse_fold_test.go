package vk

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestSparseFoldedMerge holds the sparse attention's merge folded into
// sparse_split (the fused variant: the last workgroup of each row merges) and
// the naive variant's separate sparse_merge to ref, over two consecutive
// decode steps of the same method (the second fails if a row's split counter
// were not back at 0): hata in both variants and topk, with the splits forced
// to 1 (the split writes the output), a few, more than the workgroup has
// lanes, and one entry per split, at k = 1, k = 300 and k = N = 1100 (over
// the 1024 entries a split may hold, so never a single split). The counters
// are read back after every step: all 0.
func TestSparseFoldedMerge(t *testing.T) {
	ctx := device(t)
	seed := uint64(40)
	for _, c := range []struct {
		s      Storage
		d      int
		splits []int
	}{{F32, 64, []int{1, 3, 300}}, {F16, 128, []int{1, 150}}} {
		for _, splits := range c.splits {
			seed++
			rng := rand.New(rand.NewPCG(seed, 9))
			sh := ref.Shape{B: 1, Hq: 8, Hkv: 2, N: 1100, D: c.d}
			w := reftest.DyadicHashWeights(rng, sh.Hkv, sh.D, 128)
			kv := reftest.DyadicKV(rng, sh, c.s == F16)
			qs := [][]float32{reftest.Dyadic(rng, sh.B*sh.Hq*sh.D), reftest.Dyadic(rng, sh.B*sh.Hq*sh.D)}
			for _, m := range []struct{ name, variant string }{{"hata", VariantFused}, {"hata", VariantTwoKernel}, {"hata", VariantThreeKernel}, {"hata", VariantOneKernel}, {"hata", VariantNaive}, {"topk", ""}} {
				opt := SparseOptions{Storage: c.s, Variant: m.variant, Split: SplitPolicy{Splits: splits}}
				o := ref.Options{W: w}
				got, err := ctx.SparseFactory(opt)(m.name, sh.Hkv, sh.D, o)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ref.New(m.name, sh.Hkv, sh.D, o)
				if err != nil {
					t.Fatal(err)
				}
				var core *sparseCore
				switch g := got.(type) {
				case *HATA:
					core = g.sparseCore
				case *TopK:
					core = g.sparseCore
				default:
					t.Fatalf("%s: %T", m.name, got)
				}
				if err := got.Prefill(kv); err != nil {
					t.Fatal(err)
				}
				if err := want.Prefill(kv); err != nil {
					t.Fatal(err)
				}
				for _, b := range []ref.Budget{{K: 1}, {K: 300}, ref.Full} {
					for step, q := range qs {
						where := fmt.Sprintf("%s %s %s D=%d Splits=%d budget %v step %d", m.name, m.variant, c.s, c.d, splits, b, step)
						decodeStep(t, where, m.name, q, kv, b, want, got, exactSelection[m.name])
						checkCounters(t, where, ctx, core.scratch["split counters"])
					}
				}
				got.(interface{ Close() error }).Close()
			}
		}
	}
}
