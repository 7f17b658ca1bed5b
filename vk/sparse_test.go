package vk

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// exactSelection lists the methods whose selection is fixed by integers or
// positions (and H2O's, whose dot products are exact on dyadic inputs): they
// must select ref's tokens exactly.
var exactSelection = map[string]bool{"hata": true, "lsh": true, "streaming": true, "h2o": true}

// decodeStep decodes q under budget b with ref's method want and the GPU's
// got, and holds got's step to want's (checkStep).
func decodeStep(t *testing.T, where, name string, q []float32, kv *ref.KV, b ref.Budget, want, got ref.Method, exact bool) {
	t.Helper()
	rw, err := want.Decode(q, b)
	if err != nil {
		t.Fatalf("%s: ref: %v", where, err)
	}
	rg, err := got.Decode(q, b)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	checkStep(t, where, name, q, kv, b, want, got, rw, rg, exact)
}

// checkStep compares one decode step of a GPU method with ref's, as the
// acceptance suite does: the selection (exactly, or up to near-ties by ref's
// scores), the GPU's own scores against ref's, and the output against ref's
// attention over the GPU's selection.
func checkStep(t *testing.T, where, name string, q []float32, kv *ref.KV, b ref.Budget, want, got ref.Method, rw, rg *ref.Result, exact bool) {
	t.Helper()
	k, _ := b.Tokens(kv.N)
	if err := ref.CheckSelection(rg.Selected, kv.B*kv.Hkv, kv.N, k); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if exact {
		if d := cmp.Diff(rw.Selected, rg.Selected); d != "" {
			t.Errorf("%s: selection differs from ref (-ref +got):\n%s", where, d)
		}
	} else if sc, ok := want.(ref.Scorer); ok {
		ws, err := sc.Scores()
		if err != nil {
			t.Fatal(err)
		}
		checkScored(t, where, rw.Selected, ws, rg, got)
	}
	checkOutput(t, where, q, kv, rg)
}

// checkScored holds a selection ranked by float scores to the reference's
// (want, by scores ws): it differs only in near-ties (CheckNearTies), and
// got's own scores, if it has them, are within closeScores of ws.
func checkScored(t *testing.T, where string, want [][]int32, ws [][]float64, rg *ref.Result, got ref.Method) {
	t.Helper()
	if err := reftest.CheckNearTies(want, rg.Selected, ws); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	if gsc, ok := got.(ref.Scorer); ok {
		gs, err := gsc.Scores()
		if err != nil {
			t.Fatalf("%s: Scores: %v", where, err)
		}
		if err := closeScores(gs, ws); err != nil {
			t.Errorf("%s: GPU scores vs the reference's: %v", where, err)
		}
	}
}

// checkOutput holds rg's output to ref's attention over rg's own selection.
func checkOutput(t *testing.T, where string, q []float32, kv *ref.KV, rg *ref.Result) {
	t.Helper()
	want64, err := ref.Sparse(q, kv, rg.Selected)
	if err != nil {
		t.Fatal(err)
	}
	if err := reftest.CheckClose(rg.Out, want64, sparse32(t, q, kv, rg.Selected), kv.D); err != nil {
		t.Errorf("%s: output: %v", where, err)
	}
}

// closeScores reports whether got's float32 scores are within 1e-5 of the
// row's largest |score| (plus 1e-9) of ref's float64 ones.
func closeScores(got, want [][]float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d rows, want %d", len(got), len(want))
	}
	for r := range want {
		if len(got[r]) != len(want[r]) {
			return fmt.Errorf("row %d: %d scores, want %d", r, len(got[r]), len(want[r]))
		}
		var mag float64
		for _, w := range want[r] {
			mag = max(mag, math.Abs(w))
		}
		for i, w := range want[r] {
			if g := got[r][i]; !(math.Abs(g-w) <= 1e-5*mag+1e-9) {
				return fmt.Errorf("row %d token %d: score %.9g, ref %.9g", r, i, g, w)
			}
		}
	}
	return nil
}

// TestSparseAppendGrowth appends 70 tokens one at a time to a cache of 60
// with a tight reservation, so the capacity grows twice on the device (and
// every method's side state is rebuilt), decoding every 10 steps, for every
// method and both storage types.
func TestSparseAppendGrowth(t *testing.T) {
	ctx := device(t)
	for _, st := range []Storage{F32, F16} {
		for i, name := range sparseMethods {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(st)))
			s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 60, D: 64}
			o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128), Seed: 3, PageSize: 7, SinkTokens: 2}
			want, err := ref.New(name, s.Hkv, s.D, o)
			if err != nil {
				t.Fatal(err)
			}
			// Loki's float32 rotated keys: its scores are compared with ref's.
			got, err := ctx.SparseFactory(SparseOptions{Storage: st, Reserve: 1, LokiF32Keys: true})(name, s.Hkv, s.D, o)
			if err != nil {
				t.Fatal(err)
			}
			kv := reftest.DyadicKV(rng, s, st == F16)
			for _, m := range []ref.Method{want, got} {
				if err := m.Prefill(kv); err != nil {
					t.Fatalf("%s: Prefill: %v", name, err)
				}
			}
			cache := kv.Clone()
			var caps []int
			for step := 0; step <= 70; step++ {
				if step%10 == 0 {
					q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
					b := ref.Budget{K: 5 + step/10}
					decodeStep(t, fmt.Sprintf("%s %s after %d appends (N=%d)", name, st, step, cache.N), name, q, cache, b, want, got, exactSelection[name])
				}
				k, v := reftest.Dyadic(rng, s.B*s.Hkv*s.D), reftest.Dyadic(rng, s.B*s.Hkv*s.D)
				if st == F16 {
					reftest.RoundHalf(k)
					reftest.RoundHalf(v)
				}
				for _, a := range []interface{ Append(k, v []float32) error }{want, got, cache} {
					if err := a.Append(k, v); err != nil {
						t.Fatalf("%s step %d: Append: %v", name, step, err)
					}
				}
				if c := coreOf(got).cap; len(caps) == 0 || caps[len(caps)-1] != c {
					caps = append(caps, c)
				}
			}
			if len(caps) < 3 {
				t.Errorf("%s: capacities %v, want two growths", name, caps)
			}
			got.(io.Closer).Close()
		}
	}
}

// coreOf returns the sparseCore of a GPU top-k method.
func coreOf(m ref.Method) *sparseCore {
	switch m := m.(type) {
	case *HATA:
		return m.sparseCore
	case *TopK:
		return m.sparseCore
	case *Loki:
		return m.sparseCore
	case *Quest:
		return m.sparseCore
	case *Streaming:
		return m.sparseCore
	case *H2O:
		return m.sparseCore
	}
	panic(fmt.Sprintf("not a top-k method: %T", m))
}

// benchAPI is what the benchmark harness uses (experiments/vulkan.go) plus Step.
type benchAPI interface {
	ref.Method
	PrefillRandom(b, hkv, n, d int, seed uint32) error
	Timings() Timings
	Step(q []float32, budget ref.Budget) (Timings, error)
}

// TestSparsePrefillRandom fills every method's cache on the device and checks
// the cache against RandomKV (rounded to the storage type), HATA's key codes
// against ref's wherever a projection is not within rounding of 0, and a
// decode against ref prefilled with the same cache (Loki with the identity
// basis PrefillRandom uses when none is given), with the fp16 cache in
// score chunks of 64 tokens.
func TestSparsePrefillRandom(t *testing.T) {
	ctx := device(t)
	const b, hkv, g, n, d, seed = 1, 2, 2, 300, 64, 11
	for _, st := range []Storage{F32, F16} {
		k, v := RandomKV(b, hkv, n, roundUp(n+256, 64), d, seed)
		if st == F16 {
			reftest.RoundHalf(k)
			reftest.RoundHalf(v)
		}
		kv, err := ref.NewKV(b, hkv, n, d, k, v)
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range sparseMethods {
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			o := ref.Options{W: reftest.DyadicHashWeights(rng, hkv, d, 128)}
			if name == "loki" {
				o.LokiBasis = make([]float64, hkv*d*d)
				for h := range hkv {
					for j := range d {
						o.LokiBasis[h*d*d+j*d+j] = 1
					}
				}
			}
			// fp16 with score chunks of 64 tokens: several chunks a row, so
			// that the score kernels' per-chunk partials are merged.
			chunk := map[Storage]int{F16: 64}[st]
			got, err := ctx.SparseFactory(SparseOptions{Storage: st, ScoreChunk: chunk, LokiF32Keys: true})(name, hkv, d, o)
			if err != nil {
				t.Fatal(err)
			}
			m := got.(benchAPI)
			if err := m.PrefillRandom(b, hkv, n, d, seed); err != nil {
				t.Fatalf("%s %s: PrefillRandom: %v", name, st, err)
			}
			c := coreOf(got)
			for r := range b * hkv {
				raw := make([]byte, n*d*st.bytes())
				kb, _, off := c.kv.rowAt(r)
				if err := ctx.Read(kb, off, raw); err != nil {
					t.Fatal(err)
				}
				for i := range n * d {
					var x float32
					if st == F16 {
						x = halfFloat(uint16(raw[2*i]) | uint16(raw[2*i+1])<<8)
					} else {
						x = bytesF32(raw[4*i : 4*i+4])[0]
					}
					if x != kv.K[r][i] {
						t.Fatalf("%s %s: K[%d][%d] = %v on the device, RandomKV gives %v", name, st, r, i, x, kv.K[r][i])
					}
				}
			}
			want, err := ref.New(name, hkv, d, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := want.Prefill(kv); err != nil {
				t.Fatal(err)
			}
			q := make([]float32, b*hkv*g*d)
			for i := range q {
				q[i] = RandomValue(5, uint32(i))
			}
			bud := ref.Budget{K: 20}
			rw, err := want.Decode(q, bud)
			if err != nil {
				t.Fatal(err)
			}
			rg, err := got.Decode(q, bud)
			if err != nil {
				t.Fatalf("%s %s: Decode: %v", name, st, err)
			}
			if h, ok := got.(*HATA); ok {
				checkCodesNearZero(t, name, h, o.W, kv)
				// Random (non-dyadic) keys: a code bit may flip where the
				// projection is within float32 rounding of 0, so the
				// selection is checked for shape and the output only.
				if err := ref.CheckSelection(rg.Selected, b*hkv, n, 20); err != nil {
					t.Fatal(err)
				}
				want64, _ := ref.Sparse(q, kv, rg.Selected)
				if err := reftest.CheckClose(rg.Out, want64, sparse32(t, q, kv, rg.Selected), d); err != nil {
					t.Errorf("%s %s: output: %v", name, st, err)
				}
			} else {
				checkStep(t, fmt.Sprintf("%s %s after PrefillRandom", name, st), name, q, kv, bud, want, got, rw, rg, name == "streaming" || name == "h2o")
			}
			if _, err := m.Step(q, bud); err != nil {
				t.Errorf("%s: Step: %v", name, err)
			}
			got.(io.Closer).Close()
		}
	}
}

// checkCodesNearZero compares HATA's key codes with ref's, ignoring bits whose
// float64 projection is within 1e-4 of 0 (where float32 may round either way).
func checkCodesNearZero(t *testing.T, name string, m *HATA, w *ref.HashWeights, kv *ref.KV) {
	t.Helper()
	_, gk, err := m.Codes()
	if err != nil {
		t.Fatal(err)
	}
	nw := w.Words()
	for r := range kv.B * kv.Hkv {
		h := r % kv.Hkv
		for tok := range kv.N {
			key := kv.K[r][tok*kv.D : (tok+1)*kv.D]
			for j := range w.Rbit {
				var p float64
				for i := range kv.D {
					p += float64(key[i]) * float64(w.W[(h*kv.D+i)*w.Rbit+j])
				}
				bit := gk[(r*kv.N+tok)*nw+j/32]>>(j%32)&1 == 1
				if math.Abs(p) > 1e-4 && bit != (p > 0) {
					t.Fatalf("%s: row %d token %d bit %d = %v, projection %g", name, r, tok, j, bit, p)
				}
			}
		}
	}
}

// TestSparseTimings checks the stages Decode and Step report (the bench
// harness maps them to its columns), for every method and every HATA
// variant, and with span timing (one timestamp for all the kernel stages).
func TestSparseTimings(t *testing.T) {
	ctx := device(t)
	if ctx.Info.TimestampValidBits == 0 {
		t.Skipf("%s has no timestamps", ctx.Info.Name)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 100, D: 64}
	kv := reftest.DyadicKV(rng, s, false)
	q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
	poison := []string{}
	if ctx.Poisons() {
		poison = []string{"poison"}
	}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	for _, c := range []struct {
		name, variant string
		stages        []string
	}{
		{"hata", "", []string{"encode", "score", "select", "attend"}},       // attend merges
		{"hata", VariantTwoKernel, []string{"score", "select+attend"}},      // hata_score encodes, select_attend attends
		{"hata", VariantThreeKernel, []string{"score", "select", "attend"}}, // hata_score encodes
		{"hata", VariantOneKernel, []string{"step"}},                        // hata_step does it all
		{"hata", VariantNaive, []string{"encode", "score", "select", "gather", "attend", "merge"}},
		{"lsh", "", []string{"encode", "score", "select", "attend"}},
		{"topk", "", []string{"score", "select", "attend"}},
		{"loki", "", []string{"encode", "score", "select", "attend"}},
		{"quest", "", []string{"score", "select", "attend"}},
		{"streaming", "", []string{"attend"}},
		{"h2o", "", []string{"score", "attend"}},
	} {
		o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)}
		m, err := ctx.SparseFactory(SparseOptions{Variant: c.variant})(c.name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		bm := m.(benchAPI)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Decode(q, ref.Budget{K: 9}); err != nil {
			t.Fatal(err)
		}
		want := cat([]string{"upload"}, poison, c.stages, []string{"readback"})
		if got := stageNames(bm.Timings()); !slices.Equal(got, want) {
			t.Errorf("%s %s Decode: stages %v, want %v", c.name, c.variant, got, want)
		}
		tm, err := bm.Step(q, ref.Budget{K: 9})
		if err != nil {
			t.Fatal(err)
		}
		if c.name == "h2o" { // Step is a Decode: the history needs the logits
			want = cat([]string{"upload"}, poison, c.stages, []string{"readback"})
		} else {
			want = cat([]string{"upload"}, poison, c.stages)
		}
		if got := stageNames(tm); !slices.Equal(got, want) || !tm.Supported || tm.Total() <= 0 {
			t.Errorf("%s %s Step: stages %v (total %v ns), want %v", c.name, c.variant, got, tm.Total(), want)
		}
		// Span timing: the kernel stages are one span under the first's
		// name, between the host stages.
		ctx.SetSpanTiming(true)
		_, err = m.Decode(q, ref.Budget{K: 9})
		ctx.SetSpanTiming(false)
		if err != nil {
			t.Fatal(err)
		}
		want = cat([]string{"upload"}, poison, c.stages[:1], []string{"readback"})
		if got := stageNames(bm.Timings()); !slices.Equal(got, want) || bm.Timings().Get(c.stages[0]) <= 0 {
			t.Errorf("%s %s Decode with span timing: stages %v (%v ns in %s), want %v", c.name, c.variant, got, bm.Timings().Get(c.stages[0]), c.stages[0], want)
		}
		m.(io.Closer).Close()
	}
}

func stageNames(t Timings) []string {
	var s []string
	for _, st := range t.Stages {
		s = append(s, st.Name)
	}
	return s
}

// TestSparseErrors checks the errors of misuse: they name the problem and
// nothing panics.
func TestSparseErrors(t *testing.T) {
	ctx := device(t)
	wantErr := func(what string, err error, sub string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s: error %v, want one containing %q", what, err, sub)
		}
	}
	_, err := ctx.NewMethod("magicpig", 2, 64, ref.Options{})
	wantErr("magicpig", err, "CPU")
	_, err = ctx.NewMethod("nope", 2, 64, ref.Options{})
	wantErr("unknown method", err, "no GPU kernels")
	_, err = ctx.NewMethod("hata", 2, 64, ref.Options{})
	wantErr("hata without weights", err, "needs trained hash weights")
	rng := rand.New(rand.NewPCG(1, 1))
	w := reftest.DyadicHashWeights(rng, 2, 64, 128)
	_, err = ctx.NewMethod("hata", 3, 64, ref.Options{W: w})
	wantErr("hata with misshapen weights", err, "Hkv=3")
	_, err = ctx.SparseFactory(SparseOptions{Variant: "fast"})("hata", 2, 64, ref.Options{W: w})
	wantErr("unknown variant", err, `variant "fast"`)
	for _, o := range []SparseOptions{{Merge: 3}, {RowSelect: -1}, {SelectPlan: 3}} {
		_, err = ctx.SparseFactory(o)("hata", 2, 64, ref.Options{W: w})
		wantErr(fmt.Sprintf("mode out of range %+v", o), err, "mode out of range")
	}
	for _, pw := range []int{-32, 16, 48, 2048} {
		_, err = ctx.SparseFactory(SparseOptions{ProjWorkgroup: pw})("hata", 2, 64, ref.Options{W: w})
		wantErr(fmt.Sprintf("projection workgroup %d", pw), err, fmt.Sprintf("projection workgroup %d", pw))
	}
	_, err = ctx.NewMethod("topk", 2, 6, ref.Options{})
	wantErr("topk with D=6", err, "vk topk: head dim D=6")
	wantErr("topk with D=6", err, "multiple of 4")
	_, err = ctx.NewMethod("quest", 2, 520, ref.Options{})
	wantErr("quest with D=520", err, "vk quest: head dim D=520: the kernels' merge of the attention's splits holds at most D=512")
	_, err = ctx.NewMethod("dense", 2, 520, ref.Options{})
	wantErr("dense with D=520", err, "vk dense: head dim D=520")
	_, err = ctx.NewMethod("quest", 2, 64, ref.Options{PageSize: -1})
	wantErr("quest with page -1", err, "page size")
	for _, name := range sparseMethods {
		m, err := ctx.NewMethod(name, 2, 64, ref.Options{W: w})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Decode(make([]float32, 128), ref.Budget{K: 1})
		wantErr(name+" decode before prefill", err, "before prefill")
		wantErr(name+" append before prefill", m.Append(nil, nil), "before prefill")
		kv := reftest.DyadicKV(rng, ref.Shape{B: 1, Hq: 2, Hkv: 2, N: 5, D: 64}, false)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		_, err = m.Decode(make([]float32, 64), ref.Budget{K: 1})
		wantErr(name+" q of one head", err, "multiple of Hkv=2")
		_, err = m.Decode(make([]float32, 128), ref.Budget{})
		wantErr(name+" empty budget", err, "budget")
		wantErr(name+" append of wrong length", m.Append(make([]float32, 64), make([]float32, 128)), "len(k)=64")
		if c, ok := m.(ref.Coder); ok {
			_, _, err = c.Codes()
			wantErr(name+" codes before decode", err, "before the first Decode")
		}
		if sc, ok := m.(ref.Scorer); ok {
			_, err = sc.Scores()
			wantErr(name+" scores before decode", err, "before the first Decode")
		}
		m.(io.Closer).Close()
	}
	nw, err := ctx.NewMethod("hata", 2, 64, ref.Options{W: w, NormWeighted: true})
	if err != nil {
		t.Fatal(err)
	}
	wantErr("norm-weighted PrefillRandom", nw.(*HATA).PrefillRandom(1, 2, 10, 64, 1), "norm-weighted")
	nw.(io.Closer).Close()
}

// TestBenchMethod checks that BenchMethod builds every top-k method with
// fp16 storage, hata with random weights, and the HATA variants.
func TestBenchMethod(t *testing.T) {
	ctx := device(t)
	for _, c := range []struct{ name, variant string }{{"hata", ""}, {"hata", "naive"}, {"lsh", "fused"}, {"topk", ""}, {"loki", ""}, {"quest", ""}} {
		m, err := ctx.BenchMethod(c.name, c.variant, 2, 64, Tuning{})
		if err != nil {
			t.Fatalf("BenchMethod(%q, %q): %v", c.name, c.variant, err)
		}
		bm, ok := m.(benchAPI)
		if !ok {
			t.Fatalf("%s: %T lacks PrefillRandom, Timings or Step", c.name, m)
		}
		if err := bm.PrefillRandom(1, 2, 50, 64, 3); err != nil {
			t.Fatal(err)
		}
		if _, err := bm.Decode(make([]float32, 4*64), ref.Budget{K: 4}); err != nil {
			t.Fatal(err)
		}
		if coreOf(m).opt.Storage != F16 {
			t.Errorf("%s: storage %v, want f16", c.name, coreOf(m).opt.Storage)
		}
		m.(io.Closer).Close()
	}
	if _, err := ctx.BenchMethod("topk", "naive", 2, 64, Tuning{}); err == nil {
		t.Error("BenchMethod(topk, naive) succeeded; topk has no variants")
	}
	// With hostcache=1 the cache is paired by Tuning.ForMethod's rule,
	// unless pairedkv says otherwise.
	for _, c := range []struct {
		name, variant string
		t             Tuning
		paired        bool
	}{
		{"hata", "", Tuning{HostCache: 1}, true},
		{"loki", "", Tuning{HostCache: 1}, true},
		{"topk", "", Tuning{HostCache: 1}, false},
		{"hata", "naive", Tuning{HostCache: 1}, false},
		{"hata", "", Tuning{HostCache: 1, PairedKV: 2}, false},
		{"topk", "", Tuning{HostCache: 1, PairedKV: 1}, true},
		{"hata", "", Tuning{}, false},
	} {
		m, err := ctx.BenchMethod(c.name, c.variant, 2, 64, c.t)
		if err != nil {
			t.Fatalf("BenchMethod(%q, %q, %s): %v", c.name, c.variant, c.t, err)
		}
		if got := coreOf(m).opt.PairedKV; got != c.paired {
			t.Errorf("BenchMethod(%q, %q, %s): PairedKV %v, want %v", c.name, c.variant, c.t, got, c.paired)
		}
		m.(io.Closer).Close()
	}
}

// TestPairsHostCache holds Tuning.ForMethod's rule: a cache in host memory
// paired by default for every method that reads the cache only in its
// attention, where the method reads a paired cache at all; an explicit
// pairedkv, and a cache in device memory, left as they are; pairedkv=2
// taken by every method.
func TestPairsHostCache(t *testing.T) {
	for method, want := range map[string]bool{
		"dense": true, "hata": true, "hata/fused": true, "lsh": true, "loki": true, "quest": true, "streaming": true,
		"topk": false, "h2o": false, "hata/naive": false, "hata/onekernel": false, "lsh/twokernel": false, "hata/halves": true,
	} {
		if got := PairsHostCache(method); got != want {
			t.Errorf("PairsHostCache(%q) = %v, want %v", method, got, want)
		}
		wantT := Tuning{HostCache: 1}
		if want {
			wantT.PairedKV = 1
		}
		if got := (Tuning{HostCache: 1}).ForMethod(method); got != wantT {
			t.Errorf("Tuning{HostCache: 1}.ForMethod(%q) = %+v, want %+v", method, got, wantT)
		}
		for _, keep := range []Tuning{{}, {Tile: 4}, {HostCache: 1, PairedKV: 2}, {HostCache: 1, PairedKV: 1}} {
			if got := keep.ForMethod(method); got != keep {
				t.Errorf("%+v.ForMethod(%q) = %+v, want it unchanged", keep, method, got)
			}
		}
		// pairedkv=2 (apart) is every method's layout; 1 only theirs that
		// read a paired cache; 3 no one's.
		if err := (Tuning{HostCache: 1, PairedKV: 2}).Check(method); err != nil {
			t.Errorf("Tuning{HostCache: 1, PairedKV: 2}.Check(%q): %v", method, err)
		}
		if err := (Tuning{PairedKV: 3}).Check(method); err == nil {
			t.Errorf("Tuning{PairedKV: 3}.Check(%q): want an error", method)
		}
	}
}

// builtShaders returns the shaders of the kernels c has bound descriptor
// sets for: the kernels its steps have run.
func builtShaders(c *sparseCore) map[string]bool {
	ran := map[string]bool{}
	for k := range c.sets {
		ran[k.k.spec.Shader] = true
	}
	return ran
}
