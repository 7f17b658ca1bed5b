// Package reftest is the acceptance suite that holds any implementation of
// ref.Method to the reference in package ref, in the manner of gonum's testblas:
// each implementation runs it as a one-liner,
//
//	func TestAcceptance(t *testing.T) { reftest.Run(t, vk.NewMethod, reftest.Config{...}) }
//
// and package ref runs it against itself, so the suite is known to pass on the
// specification.
//
// What it checks, per method, shape, budget and decode step:
//   - integer stages exactly: the selected token sets of the integer-scored
//     methods (hata, lsh, streaming), and the hash codes of every ref.Coder;
//   - selections of the float-scored methods (topk, loki, quest, h2o) by
//     invariants: exactly k unique ascending tokens in range, and every token in
//     which the set differs from ref's tied with ref's k-th score within
//     rounding (ref.Scorer gives the scores);
//   - the output against ref's sparse attention over the same selection, within
//     a tolerance derived from a float64 evaluation (see Tolerance).
//
// Inputs are "dyadic": multiples of 1/8 in [-2, 2], and the hash weights too,
// so that every product x·W and q·k is exact in float32 whatever the order of
// summation. Integer stages can then be compared bit for bit across CPU and GPU,
// and projections that are exactly 0 (bit 0 by HATA's strict rule) do occur.
package reftest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
)

// Factory builds the method under test, with ref.New's contract.
type Factory func(name string, hkv, d int, o ref.Options) (ref.Method, error)

// Config selects what Run covers.
type Config struct {
	// Names are the methods to test (default: every ref.MethodNames entry but
	// magicpig, whose selection is random by design).
	Names []string
	// FP16 rounds K and V to float16 before they reach either side, for
	// implementations that store the cache in half precision.
	FP16 bool
	// Dims are the head dimensions to test (default 64 and 128).
	Dims []int
	// Large adds long sequences (N around 4K and 33K), for GPUs.
	Large bool
	// Rbit is the hash width for hata and lsh (default 128).
	Rbit int
}

// Case is one shape of the suite.
type Case struct {
	Shape   ref.Shape
	Budgets []ref.Budget
	Appends int // decode steps with Append after the prefill of Shape.N tokens
}

// Cases returns the shapes Run sweeps for the head dim d: awkward sizes first
// (N=1, k=1, k=N, N=(1<<i)+11, N not a multiple of any workgroup).
func Cases(d int, large bool) []Case {
	all := []ref.Budget{{K: 1}, {K: 7}, {Ratio: 0.0156}, {Ratio: 0.25}, ref.Full}
	cs := []Case{
		{Shape: ref.Shape{B: 1, Hq: 1, Hkv: 1, N: 1, D: d}, Budgets: []ref.Budget{{K: 1}, ref.Full}, Appends: 2},
		{Shape: ref.Shape{B: 1, Hq: 4, Hkv: 4, N: 7, D: d}, Budgets: all},
		{Shape: ref.Shape{B: 2, Hq: 8, Hkv: 2, N: (1 << 6) + 11, D: d}, Budgets: all, Appends: 2},
		{Shape: ref.Shape{B: 1, Hq: 4, Hkv: 1, N: (1 << 9) + 11, D: d}, Budgets: all},
		{Shape: ref.Shape{B: 2, Hq: 6, Hkv: 3, N: 300, D: d}, Budgets: []ref.Budget{{K: 32}, {K: 33}}, Appends: 3},
	}
	if large {
		cs = append(cs,
			Case{Shape: ref.Shape{B: 1, Hq: 8, Hkv: 2, N: (1 << 12) + 11, D: d}, Budgets: []ref.Budget{{Ratio: 0.0156}, {K: 100}}},
			Case{Shape: ref.Shape{B: 2, Hq: 4, Hkv: 1, N: (1 << 15) + 11, D: d}, Budgets: []ref.Budget{{Ratio: 0.0156}}},
		)
	}
	return cs
}

// integerRanked lists the methods whose selection is fixed by integers (or by
// position alone): their selected sets must match ref's exactly.
var integerRanked = map[string]bool{"hata": true, "lsh": true, "streaming": true}

// Run holds newMethod to ref for every method, shape and budget of cfg.
func Run(t *testing.T, newMethod Factory, cfg Config) {
	t.Helper()
	if cfg.Names == nil {
		for _, n := range ref.MethodNames {
			if n != "magicpig" {
				cfg.Names = append(cfg.Names, n)
			}
		}
	}
	if cfg.Dims == nil {
		cfg.Dims = []int{64, 128}
	}
	if cfg.Rbit == 0 {
		cfg.Rbit = ref.DefaultRbit
	}
	for _, name := range cfg.Names {
		for _, d := range cfg.Dims {
			for i, c := range Cases(d, cfg.Large) {
				t.Run(fmt.Sprintf("%s/%v", name, c.Shape), func(t *testing.T) {
					runCase(t, newMethod, name, c, cfg, uint64(i*1000+d))
				})
			}
		}
	}
}

// runCase prefills both sides with the same cache, then decodes every budget,
// appends a token, and decodes again, comparing each step.
func runCase(t *testing.T, newMethod Factory, name string, c Case, cfg Config, seed uint64) {
	s := c.Shape
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	w := DyadicHashWeights(rng, s.Hkv, s.D, cfg.Rbit)
	opts := ref.Options{W: w, Seed: seed, Windows: ref.Windows{}}
	want, err := ref.New(name, s.Hkv, s.D, opts)
	if err != nil {
		t.Fatalf("ref.New(%q): %v", name, err)
	}
	got, err := newMethod(name, s.Hkv, s.D, opts)
	if err != nil {
		t.Fatalf("newMethod(%q, Hkv=%d, D=%d): %v", name, s.Hkv, s.D, err)
	}
	kv := DyadicKV(rng, s, cfg.FP16)
	if err := want.Prefill(kv); err != nil {
		t.Fatalf("ref %s Prefill: %v", name, err)
	}
	if err := got.Prefill(kv); err != nil {
		t.Fatalf("%s Prefill(%v): %v", name, s, err)
	}
	cache := kv.Clone() // the cache both sides hold, for the output check
	for step := 0; step <= c.Appends; step++ {
		q := Dyadic(rng, s.B*s.Hq*s.D)
		for _, b := range c.Budgets {
			where := fmt.Sprintf("%s %v step %d budget %v", name, cache.Shape(s.Hq), step, b)
			rw, err := want.Decode(q, b)
			if err != nil {
				t.Fatalf("%s: ref Decode: %v", where, err)
			}
			rg, err := got.Decode(q, b)
			if err != nil {
				t.Fatalf("%s: Decode: %v", where, err)
			}
			checkStep(t, where, name, q, cache, b, want, got, rw, rg)
		}
		if step == c.Appends {
			break
		}
		k := Dyadic(rng, s.B*s.Hkv*s.D)
		v := Dyadic(rng, s.B*s.Hkv*s.D)
		if cfg.FP16 {
			RoundHalf(k)
			RoundHalf(v)
		}
		for _, m := range []ref.Method{want, got, nil} {
			var err error
			if m == nil {
				err = cache.Append(k, v)
			} else {
				err = m.Append(k, v)
			}
			if err != nil {
				t.Fatalf("%s step %d Append: %v", name, step, err)
			}
		}
	}
}

// checkStep compares one decode step of the implementation (rg) with ref's (rw).
func checkStep(t *testing.T, where, name string, q []float32, kv *ref.KV, b ref.Budget, want, got ref.Method, rw, rg *ref.Result) {
	t.Helper()
	s := kv.Shape(len(q) / (kv.B * kv.D))
	if len(rg.Out) != len(rw.Out) {
		t.Fatalf("%s: len(out) = %d, want B*Hq*D = %d", where, len(rg.Out), len(rw.Out))
	}
	if (rw.Selected == nil) != (rg.Selected == nil) {
		t.Fatalf("%s: Selected nil = %v, ref's nil = %v", where, rg.Selected == nil, rw.Selected == nil)
	}
	if rw.Selected != nil {
		k, _ := b.Tokens(kv.N)
		if err := ref.CheckSelection(rg.Selected, s.B*s.Hkv, kv.N, k); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if integerRanked[name] {
			if d := cmp.Diff(rw.Selected, rg.Selected); d != "" {
				t.Errorf("%s: selected sets differ from ref (-ref +got):\n%s", where, d)
			}
		} else if sc, ok := want.(ref.Scorer); ok {
			scores, err := sc.Scores()
			if err != nil {
				t.Fatalf("%s: ref scores: %v", where, err)
			}
			if err := CheckNearTies(rw.Selected, rg.Selected, scores); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		} else if d := cmp.Diff(rw.Selected, rg.Selected); d != "" {
			t.Errorf("%s: selected sets differ from ref (-ref +got):\n%s", where, d)
		}
	}
	if err := CheckCodes(want, got); err != nil {
		t.Errorf("%s: %s: %v", where, name, err)
	}
	// The output is judged against ref's attention over the implementation's
	// own selection, so a legitimate near-tie swap does not fail it.
	want64, err := ref.Sparse(q, kv, rg.Selected)
	if err != nil {
		t.Fatalf("%s: ref.Sparse over the implementation's selection: %v", where, err)
	}
	want32, err := Sparse32(q, kv, rg.Selected)
	if err != nil {
		t.Fatalf("%s: float32 attention over the implementation's selection: %v", where, err)
	}
	if err := CheckClose(rg.Out, want64, want32, kv.D); err != nil {
		t.Errorf("%s: output: %v", where, err)
	}
}

// CheckCodes reports how got's hash codes of the last step (ref.Coder)
// differ from want's, bit for bit, or nil where they agree or want exposes
// none. got must expose them where want does.
func CheckCodes(want, got ref.Method) error {
	wc, ok := want.(ref.Coder)
	if !ok {
		return nil
	}
	gc, ok := got.(ref.Coder)
	if !ok {
		return fmt.Errorf("ref exposes hash codes (ref.Coder), the implementation does not")
	}
	wq, wk, err := wc.Codes()
	if err != nil {
		return fmt.Errorf("ref's Codes: %v", err)
	}
	gq, gk, err := gc.Codes()
	if err != nil {
		return fmt.Errorf("Codes: %v", err)
	}
	if d := cmp.Diff(wq, gq); d != "" {
		return fmt.Errorf("query codes differ (-ref +got):\n%s", d)
	}
	if d := cmp.Diff(wk, gk); d != "" {
		return fmt.Errorf("key codes differ (-ref +got):\n%s", d)
	}
	return nil
}

// CheckNearTies reports whether every token in which got's selection differs
// from want's has a ref score within rounding of the k-th best score of its
// row: then the difference is a near-tie decided by float rounding, not an
// error. scores are ref's, larger better.
func CheckNearTies(want, got [][]int32, scores [][]float64) error {
	for r := range want {
		if slices.Equal(want[r], got[r]) {
			continue
		}
		kth := math.Inf(1)
		for _, t := range want[r] {
			kth = min(kth, scores[r][t])
		}
		tol := 1e-5*math.Abs(kth) + 1e-12
		in := map[int32]bool{}
		for _, t := range want[r] {
			in[t] = true
		}
		for _, t := range got[r] {
			if !in[t] && scores[r][t] < kth-tol {
				return fmt.Errorf("row %d selects token %d with ref score %.9g, below the k-th score %.9g (beyond a near-tie)", r, t, scores[r][t], kth)
			}
		}
	}
	return nil
}

// DyadicHashWeights returns random hash weights [hkv][d][rbit] on the dyadic grid.
func DyadicHashWeights(rng *rand.Rand, hkv, d, rbit int) *ref.HashWeights {
	w, err := ref.NewHashWeights(hkv, d, rbit, Dyadic(rng, hkv*d*rbit))
	if err != nil {
		panic(err) // the shape is the suite's own
	}
	return w
}

// DyadicKV returns a cache of shape s on the dyadic grid, K and V rounded to
// float16 when fp16 is set (the grid is exact in float16 too).
func DyadicKV(rng *rand.Rand, s ref.Shape, fp16 bool) *ref.KV {
	k := Dyadic(rng, s.B*s.Hkv*s.N*s.D)
	v := Dyadic(rng, s.B*s.Hkv*s.N*s.D)
	if fp16 {
		RoundHalf(k)
		RoundHalf(v)
	}
	kv, err := ref.NewKV(s.B, s.Hkv, s.N, s.D, k, v)
	if err != nil {
		panic(err) // the shape is the suite's own
	}
	return kv
}

// Dyadic returns n values k/8 with k uniform in [-16, 16]: every product of two
// is a multiple of 1/64 of magnitude at most 4, so sums of up to 2^16 of them are
// exact in float32 in any order.
func Dyadic(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.IntN(33)-16) / 8
	}
	return x
}
