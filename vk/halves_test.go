package vk

import (
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestHalvesAcceptance runs the acceptance suite on Halves: two instances
// over the halves of the batch, at once (on two queues where the device has
// them): the same selections and outputs as one instance, and HATA's codes.
func TestHalvesAcceptance(t *testing.T) {
	ctx := device(t)
	factory := func(name string, hkv, d int, o ref.Options) (ref.Method, error) {
		return ctx.NewHalves(name, hkv, d, o, SparseOptions{Storage: F16, LokiF32Keys: true})
	}
	reftest.Run(t, factory, reftest.Config{Names: []string{"hata", "topk", "loki", "quest", "streaming"}, Dims: []int{64}, FP16: true})
}

// TestHalvesBench times hata/halves as the benchmarks do: a cache filled on
// the device, a step whose Timings is one "step" stage no shorter than
// either half's own kernels, and no traces.
func TestHalvesBench(t *testing.T) {
	ctx := device(t)
	m, err := ctx.BenchMethod("hata", VariantHalves, 2, 64, Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	h := m.(*Halves)
	defer h.Close()
	const b, hq, n, d = 3, 8, 300, 64 // halves of 2 and 1 batches
	if err := h.PrefillRandom(b, 2, n, d, 5); err != nil {
		t.Fatal(err)
	}
	q := make([]float32, b*hq*d)
	for i := range q {
		q[i] = RandomValue(9, uint32(i))
	}
	res, err := h.Decode(q, ref.Budget{K: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Out) != len(q) || len(res.Selected) != b*2 {
		t.Fatalf("decode: %d outputs and %d selections, want %d and %d", len(res.Out), len(res.Selected), len(q), b*2)
	}
	st := h.Timings()
	if !st.Supported {
		t.Skip("no timestamps")
	}
	if len(st.Stages) != 1 || st.Stages[0].Name != "step" {
		t.Fatalf("Timings = %v, want one stage, step", st)
	}
	own := max(oneSpan(h.a.Timings()).Total(), oneSpan(h.b.Timings()).Total())
	if st.Stages[0].Ns < own {
		t.Errorf("step %.0f ns, shorter than one half's kernels (%.0f ns)", st.Stages[0].Ns, own)
	}
	if _, err := ctx.BenchMethod("hata", VariantHalves, 2, 64, Tuning{Trace: 1}); err == nil {
		t.Error("hata/halves with trace=1: no error")
	}
}
