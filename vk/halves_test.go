package vk

import (
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestHalvesAcceptance runs the acceptance suite on Halves: two instances
// over the halves of the batch (B >= 2) or of the KV heads (B = 1), at once
// (on two queues where the device has them): the same selections and
// outputs as one instance, and HATA's codes; lsh runs on one instance at B =
// 1 (its random projections depend on the head count).
func TestHalvesAcceptance(t *testing.T) {
	ctx := device(t)
	factory := func(name string, hkv, d int, o ref.Options) (ref.Method, error) {
		return ctx.NewHalves(name, hkv, d, o, SparseOptions{Storage: F16, LokiF32Keys: true})
	}
	reftest.Run(t, factory, reftest.Config{Names: []string{"hata", "lsh", "topk", "loki", "quest", "streaming", "h2o"}, Dims: []int{64}, FP16: true})
}

// TestHalvesBench times hata/halves as the benchmarks do, by batch (B = 3:
// halves of 2 and 1 batches) and by heads (B = 1, Hkv = 3: 2 and 1): a cache
// filled on the device, whole outputs and selections, a step whose Timings
// is one "step" stage no shorter than either half's own kernels, and no
// traces.
func TestHalvesBench(t *testing.T) {
	ctx := device(t)
	for _, c := range []struct{ b, hkv, rowsA int }{{3, 2, 4}, {1, 3, 2}} {
		m, err := ctx.BenchMethod("hata", VariantHalves, c.hkv, 64, Tuning{})
		if err != nil {
			t.Fatal(err)
		}
		h := m.(*Halves)
		defer h.Close()
		const g, n, d = 4, 300, 64
		if err := h.PrefillRandom(c.b, c.hkv, n, d, 5); err != nil {
			t.Fatal(err)
		}
		split := splitBatch
		if c.b == 1 {
			split = splitHeads
		}
		if h.rowsA() != c.rowsA || h.ms[1] == nil || h.split != split {
			t.Fatalf("B=%d Hkv=%d: first half %d rows (split %d, two instances %v), want %d rows split %d", c.b, c.hkv, h.rowsA(), h.split, h.ms[1] != nil, c.rowsA, split)
		}
		q := make([]float32, c.b*c.hkv*g*d)
		for i := range q {
			q[i] = RandomValue(9, uint32(i))
		}
		res, err := h.Decode(q, ref.Budget{K: 16})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Out) != len(q) || len(res.Selected) != c.b*c.hkv {
			t.Fatalf("decode: %d outputs and %d selections, want %d and %d", len(res.Out), len(res.Selected), len(q), c.b*c.hkv)
		}
		st := h.Timings()
		if !st.Supported {
			t.Skip("no timestamps")
		}
		if len(st.Stages) != 1 || st.Stages[0].Name != "step" {
			t.Fatalf("Timings = %v, want one stage, step", st)
		}
		var own float64
		for _, m := range h.ms {
			s, e, _ := kernelSpan(m.Timings())
			own = max(own, ctx.ticksNs(s, e))
		}
		if st.Stages[0].Ns < own {
			t.Errorf("step %.0f ns, shorter than one half's kernels (%.0f ns)", st.Stages[0].Ns, own)
		}
	}
	if _, err := ctx.BenchMethod("hata", VariantHalves, 2, 64, Tuning{Trace: 1}); err == nil {
		t.Error("hata/halves with trace=1: no error")
	}
}
