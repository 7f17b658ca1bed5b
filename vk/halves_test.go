package vk

import (
	"testing"
	"time"

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

// spanHalf is a halfMethod whose only behaviour is its last step's timings.
type spanHalf struct {
	halfMethod
	t Timings
}

func (s spanHalf) Timings() Timings { return s.t }

// TestHalvesSpanClock checks span's test of one clock without a device: the
// step is the earlier start to the later end of the halves' kernel stages,
// however long it took; a span beyond the host's wall time of the step (as
// two clocks an epoch apart give) is an error.
func TestHalvesSpanClock(t *testing.T) {
	ctx := &Context{}
	ctx.Info.Limits.TimestampPeriod = 1 // a tick is a ns
	ctx.Info.TimestampValidBits = 64
	half := func(start, end uint64) spanHalf {
		return spanHalf{t: Timings{Supported: true, Levels: 3, Stages: []Stage{
			{Name: "upload", Start: 0, End: start}, // a host stage: not in the span
			{Name: "score", Start: start, End: (start + end) / 2},
			{Name: "attend", Start: (start + end) / 2, End: end},
		}}}
	}
	const sec = uint64(time.Second)
	for _, c := range []struct {
		name string
		a, b spanHalf
		wall time.Duration
		ns   float64 // the step's span; 0: an error
	}{
		{name: "overlapping", a: half(100, 1100), b: half(600, 1900), wall: 5 * time.Microsecond, ns: 1800},
		{name: "one after the other", a: half(100, 1100), b: half(1500, 2000), wall: 5 * time.Microsecond, ns: 1900},
		{name: "slow step", a: half(sec, 3*sec), b: half(2*sec, 4*sec), wall: 4 * time.Second, ns: float64(3 * sec)},
		{name: "span beyond the wall time", a: half(100, 1100), b: half(1e9, 1e9+500), wall: time.Millisecond},
		{name: "clocks an epoch apart", a: half(1<<63, 1<<63+1000), b: half(100, 600), wall: time.Hour},
	} {
		h := &Halves{ctx: ctx, name: "hata", ms: [2]halfMethod{c.a, c.b}}
		got, err := h.span(c.wall)
		if c.ns == 0 {
			if err == nil {
				t.Errorf("%s: span %v, want an error", c.name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got.Stages) != 1 || got.Stages[0].Name != "step" || got.Stages[0].Ns != c.ns || got.Levels != 3 {
			t.Errorf("%s: span %+v, want one step of %g ns at 3 levels", c.name, got, c.ns)
		}
	}
}
