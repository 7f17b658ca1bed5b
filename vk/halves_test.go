package vk

import (
	"math/rand/v2"
	"strings"
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

// TestHalvesAfterClose checks that Halves refuses a step after Close as one
// before any prefill (its instances were nil, and the step panicked), and
// that a prefill after Close makes them again.
func TestHalvesAfterClose(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(3, 5))
	s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 40, D: 16}
	o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 32)}
	h, err := ctx.NewHalves("hata", s.Hkv, s.D, o, SparseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want := ref.NewHATA(o.W, ref.Windows{}, false)
	kv := reftest.DyadicKV(rng, s, false)
	q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
	if err := h.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := h.Decode(q, ref.Budget{K: 5}); err == nil || !strings.Contains(err.Error(), "before prefill") {
		t.Errorf("Decode after Close: %v; want an error saying before prefill", err)
	}
	one := make([]float32, s.B*s.Hkv*s.D)
	if err := h.Append(one, one); err == nil || !strings.Contains(err.Error(), "before prefill") {
		t.Errorf("Append after Close: %v; want an error saying before prefill", err)
	}
	for _, m := range []ref.Method{want, h} {
		if err := m.Prefill(kv); err != nil {
			t.Fatalf("%T: Prefill after Close: %v", m, err)
		}
	}
	decodeStep(t, "hata halves after Close", "hata", q, kv, ref.Budget{K: 5}, want, h, true)
}

// TestHalvesAppendOneHalfFails makes one half's Append fail while the other
// succeeds (the Append that doubles both caches under a lowered
// maxMemoryAllocationSize, which the larger half's key codes pass: 1024-bit
// codes of 4 rows of 128 tokens take 64 KiB, the smaller half's 32): both
// caches are dropped, with an error saying so, rather than decoding over
// halves of different lengths.
func TestHalvesAppendOneHalfFails(t *testing.T) {
	device(t)
	ctx := testContext(t, Options{})
	rng := rand.New(rand.NewPCG(4, 6))
	s := ref.Shape{B: 3, Hq: 4, Hkv: 2, N: 63, D: 16} // halves of 2 and 1 batches
	o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 1024)}
	h, err := ctx.NewHalves("hata", s.Hkv, s.D, o, SparseOptions{Reserve: 1, Prefetch: PrefetchOff})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Prefill(reftest.DyadicKV(rng, s, false)); err != nil {
		t.Fatal(err)
	}
	one := reftest.Dyadic(rng, s.B*s.Hkv*s.D)
	if err := h.Append(one, one); err != nil { // N = 64 = Cap
		t.Fatal(err)
	}
	lim := &ctx.Info.Limits.MaxMemoryAllocationSize
	saved := *lim
	*lim = halvesFailLimit
	err = h.Append(one, one)
	*lim = saved
	if err == nil || !strings.Contains(err.Error(), "both halves' caches are dropped") {
		t.Fatalf("Append with one half failing: %v; want an error saying both caches are dropped", err)
	}
	q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
	if _, err := h.Decode(q, ref.Budget{K: 5}); err == nil || !strings.Contains(err.Error(), "before prefill") {
		t.Errorf("Decode after the failed Append: %v; want an error saying before prefill", err)
	}
}

// halvesFailLimit is the allocation limit under which the doubling Append of
// TestHalvesAppendOneHalfFails fails in one half only.
const halvesFailLimit = 48 << 10
