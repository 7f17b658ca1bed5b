package vk

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestSplitLanes checks the lanes-per-token choice of the split kernels:
// the default, an explicit count read in 16-byte vectors, one that needs
// fp16's 8-byte vectors (the f16h entry points), and the counts refused.
func TestSplitLanes(t *testing.T) {
	info := DeviceInfo{MinSubgroupSize: 32, MaxSubgroupSize: 32}
	for _, c := range []struct {
		d      int
		st     Storage
		want   int
		tpt    int
		shader string // "" for an error
	}{
		{128, F16, 0, 16, "s_f16"},
		{128, F16, 16, 16, "s_f16"},
		{128, F16, 32, 32, "s_f16h"},
		{128, F32, 32, 32, "s_f32"},
		{128, F16, 4, 4, "s_f16"},
		{64, F16, 16, 16, "s_f16h"},
		{64, F32, 32, 0, ""},  // 16 vectors of 16 bytes; no 8-byte reading for fp32
		{128, F16, 64, 0, ""}, // over the subgroup
		{128, F16, 12, 0, ""}, // not a power of two
	} {
		tpt, shader, err := splitLanes(info, "s", c.d, c.st, c.want)
		where := fmt.Sprintf("splitLanes(D=%d, %s, %d)", c.d, c.st, c.want)
		if c.shader == "" {
			if err == nil || !strings.Contains(err.Error(), fmt.Sprint("lanes per token ", c.want)) {
				t.Errorf("%s = %d, %q, %v; want an error naming the count", where, tpt, shader, err)
			}
			continue
		}
		if err != nil || tpt != c.tpt || shader != c.shader {
			t.Errorf("%s = %d, %q, %v; want %d, %q", where, tpt, shader, err, c.tpt, c.shader)
		}
	}
}

// TestHalfVectorLanes holds the f16h split kernels (fp16 rows read in
// 8-byte vectors, twice the lanes per token) to ref: dense against
// ref.Dense, and hata and topk against their ref methods with the exact
// selection, at a head dimension where the device's smallest subgroup
// allows twice the 16-byte vectors of a row as lanes.
func TestHalfVectorLanes(t *testing.T) {
	ctx := device(t)
	d := 128
	for d > 8 && 2*d/8 > int(ctx.Info.MinSubgroupSize) {
		d /= 2
	}
	lanes := 2 * d / 8 // twice the 16-byte vectors of a row
	if d < 32 || lanes > int(ctx.Info.MinSubgroupSize) {
		t.Skipf("smallest subgroup %d: no head dimension to test", ctx.Info.MinSubgroupSize)
	}
	if _, shader, err := splitLanes(ctx.Info, "dense_split", d, F16, lanes); err != nil || !strings.HasSuffix(shader, "f16h") {
		t.Fatalf("D=%d, %d lanes: %q, %v; want the f16h kernel", d, lanes, shader, err)
	}
	runDenseCase(t, ctx, denseCase{b: 2, hkv: 2, g: 4, n: 1<<10 + 11, d: d, storage: F16, opt: DenseOptions{LanesPerToken: lanes}}, 300)
	runDenseCase(t, ctx, denseCase{b: 1, hkv: 1, g: 3, n: 77, d: d, storage: F16, opt: DenseOptions{LanesPerToken: lanes, Tile: 1, Split: SplitPolicy{Splits: 1}}}, 301)

	rng := rand.New(rand.NewPCG(302, 9))
	sh := ref.Shape{B: 1, Hq: 8, Hkv: 2, N: 700, D: d}
	w := reftest.DyadicHashWeights(rng, sh.Hkv, sh.D, 128)
	kv := reftest.DyadicKV(rng, sh, true)
	q := reftest.Dyadic(rng, sh.B*sh.Hq*sh.D)
	for _, name := range []string{"hata", "topk"} {
		o := ref.Options{W: w}
		got, err := ctx.SparseFactory(SparseOptions{Storage: F16, LanesPerToken: lanes})(name, sh.Hkv, sh.D, o)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.New(name, sh.Hkv, sh.D, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if err := want.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		for _, b := range []ref.Budget{{K: 1}, {K: 150}, ref.Full} {
			where := fmt.Sprintf("%s f16h D=%d lanes %d budget %v", name, d, lanes, b)
			decodeStep(t, where, name, q, kv, b, want, got, exactSelection[name])
		}
		got.(interface{ Close() error }).Close()
	}
}
