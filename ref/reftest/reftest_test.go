package reftest

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestRefPassesItsOwnSuite runs the suite with ref as the implementation: the
// suite must hold on the specification itself. It also checks what the suite
// covered: with Names left out, every method but magicpig; with Dims left
// out, 64 and 128; and in every case that appends, a decode after each
// Append (the last one included), so that a method wrong only past an
// Append cannot pass.
func TestRefPassesItsOwnSuite(t *testing.T) {
	rec := &recorder{dims: map[int]bool{}, names: map[string]bool{}}
	Run(t, rec.factory, Config{Dims: []int{64}})
	rec.settle()
	want := slices.DeleteFunc(slices.Clone(ref.MethodNames), func(n string) bool { return n == "magicpig" })
	if got := slices.Sorted(maps.Keys(rec.names)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("Run with Names unset tested %v, want %v", got, want)
	}
	if rec.appended == 0 || rec.undecoded != 0 {
		t.Errorf("Run appended %d times and left %d methods with an Append no decode followed", rec.appended, rec.undecoded)
	}
	dims := &recorder{dims: map[int]bool{}, names: map[string]bool{}}
	Run(t, dims.factory, Config{Names: []string{"dense"}})
	if got := slices.Sorted(maps.Keys(dims.dims)); !slices.Equal(got, []int{64, 128}) {
		t.Errorf("Run with Dims unset tested D = %v, want [64 128]", got)
	}
}

// recorder is a Factory over ref.New that records the methods and head
// dimensions the suite builds, and counts the methods left with an Append
// after their last decode (each method is counted when the next is built,
// the last by settle after Run).
type recorder struct {
	names     map[string]bool
	dims      map[int]bool
	appended  int
	undecoded int
	last      *watched
}

func (r *recorder) factory(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	r.names[name], r.dims[d] = true, true
	m, err := ref.New(name, hkv, d, o)
	if err != nil {
		return nil, err
	}
	r.settle()
	r.last = &watched{Method: m, rec: r}
	return r.last, nil
}

// settle counts the last method built if an Append was its last call.
func (r *recorder) settle() {
	if r.last != nil && r.last.pending {
		r.undecoded++
	}
}

// watched is a method whose Appends and Decodes its recorder sees.
type watched struct {
	ref.Method
	rec     *recorder
	pending bool // appended since the last decode
}

func (w *watched) Append(k, v []float32) error {
	w.rec.appended++
	w.pending = true
	return w.Method.Append(k, v)
}

func (w *watched) Decode(q []float32, b ref.Budget) (*ref.Result, error) {
	w.pending = false
	return w.Method.Decode(q, b)
}

// Codes passes the method's hash codes on; the suite asks only where ref's
// method of the same name is a ref.Coder.
func (w *watched) Codes() (q, k []uint32, err error) { return w.Method.(ref.Coder).Codes() }

// broken wraps a method and damages its results, to prove the suite catches it.
type broken struct {
	ref.Method
	damage func(*ref.Result)
}

func (b broken) Decode(q []float32, bud ref.Budget) (*ref.Result, error) {
	r, err := b.Method.Decode(q, bud)
	if err == nil {
		b.damage(r)
	}
	return r, err
}

// smallStep returns the inputs of one small decode step on the dyadic grid
// (B=1, Hq=2, Hkv=1, N=40, D=64; 64-bit hash weights), drawn from seed.
func smallStep(seed uint64) (ref.Shape, *ref.KV, []float32, *ref.HashWeights) {
	s := ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 40, D: 64}
	rng := rand.New(rand.NewPCG(seed, seed))
	kv := DyadicKV(rng, s, false)
	q := Dyadic(rng, s.B*s.Hq*s.D)
	return s, kv, q, DyadicHashWeights(rng, 1, 64, 64)
}

// TestSuiteCatchesErrors runs the suite's checks on deliberately wrong
// results; each must be reported.
func TestSuiteCatchesErrors(t *testing.T) {
	_, kv, q, w := smallStep(3)
	for name, damage := range map[string]func(*ref.Result){
		"output off by 1e-4": func(r *ref.Result) { r.Out[3] += 1e-4 },
		"output NaN":         func(r *ref.Result) { r.Out[0] = float32(math.NaN()) },
		"a token swapped":    func(r *ref.Result) { r.Selected[0][0] = (r.Selected[0][len(r.Selected[0])-1] + 1) % 40 },
		"a token past N":     func(r *ref.Result) { r.Selected[0][len(r.Selected[0])-1] = 40 },
	} {
		m := ref.NewHATA(w, ref.Windows{}, false)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		want := ref.NewHATA(w, ref.Windows{}, false)
		if err := want.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		b := ref.Budget{K: 5}
		rw, _ := want.Decode(q, b)
		rg, _ := broken{m, damage}.Decode(q, b)
		ok := runsClean(func(t2 *testing.T) { checkStep(t2, name, "hata", q, kv, b, want, m, rw, rg) })
		if ok {
			t.Errorf("%s: the suite accepted a damaged result", name)
		}
	}
}

// runsClean runs f on a fresh testing.T in its own goroutine (so Fatal can
// exit it) and reports whether it passed.
func runsClean(f func(t *testing.T)) bool {
	done := make(chan bool)
	go func() {
		t := &testing.T{}
		defer func() { done <- !t.Failed() }()
		f(t)
	}()
	return <-done
}

// TestSparse32 checks the float32 calibration against ref.Sparse, and that a
// selection no cache holds is an error naming it (an implementation under
// test may return one), not a panic.
func TestSparse32(t *testing.T) {
	s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 30, D: 64}
	rng := rand.New(rand.NewPCG(5, 5))
	kv := DyadicKV(rng, s, false)
	q := Dyadic(rng, s.B*s.Hq*s.D)
	sel := [][]int32{{0, 7, 29}, {3}, {1, 2}, {28, 29}}
	want, err := ref.Sparse(q, kv, sel)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sparse32(q, kv, sel)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if e := math.Abs(float64(got[i] - want[i])); e > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("Sparse32[%d] = %v, ref.Sparse %v", i, got[i], want[i])
		}
	}
	for _, c := range []struct {
		name string
		sel  [][]int32
		want string
	}{
		{"token N", [][]int32{{0}, {30}, {1}, {2}}, "row 1 has token 30 outside [0, 30)"},
		{"negative token", [][]int32{{0}, {1}, {-1}, {2}}, "row 2 has token -1 outside [0, 30)"},
		{"rows", [][]int32{{0}, {1}}, "2 rows, want B*Hkv = 4"},
		{"empty row", [][]int32{{0}, {1}, {}, {2}}, "row 2 is empty"},
	} {
		out, err := Sparse32(q, kv, c.sel)
		if err == nil || !strings.Contains(err.Error(), c.want) || out != nil {
			t.Errorf("%s: Sparse32 = %v, %v; want no output and an error containing %q", c.name, out != nil, err, c.want)
		}
	}
}

// TestSuiteCatchesConsistentSwaps: a selection that differs from ref's
// beyond a near-tie fails the suite even where the output is the attention
// over that selection, so that only the selection check can see it: exactly
// for hata (integer scores) and for a method that exposes no scores,
// through CheckNearTies for topk (float scores).
func TestSuiteCatchesConsistentSwaps(t *testing.T) {
	s, kv, q, w := smallStep(4)
	b := ref.Budget{K: 5}
	for name, build := range map[string]func() ref.Method{
		"hata": func() ref.Method { return ref.NewHATA(w, ref.Windows{}, false) },
		"topk": func() ref.Method { return ref.NewTopK() },
		// A method of another name that exposes no scores (HATA behind
		// ref.Method alone): compared exactly.
		"custom": func() ref.Method { return struct{ ref.Method }{ref.NewHATA(w, ref.Windows{}, false)} },
	} {
		want, got := build(), build()
		for _, m := range []ref.Method{want, got} {
			if err := m.Prefill(kv); err != nil {
				t.Fatal(err)
			}
		}
		rw, err := want.Decode(q, b)
		if err != nil {
			t.Fatal(err)
		}
		rg, err := got.Decode(q, b)
		if err != nil {
			t.Fatal(err)
		}
		if !runsClean(func(t2 *testing.T) { checkStep(t2, name, name, q, kv, b, want, got, rw, rg) }) {
			t.Fatalf("%s: the suite refused ref's own step", name)
		}
		// In place of the selection's first token: the unselected token of
		// ref's lowest score for topk, the first unselected one for hata
		// (whose scores are left 0 here).
		scores := make([]float64, s.N)
		if sc, ok := want.(ref.Scorer); ok {
			all, err := sc.Scores()
			if err != nil {
				t.Fatal(err)
			}
			scores = all[0]
		}
		out := int32(-1)
		for tok := range int32(s.N) {
			if !slices.Contains(rg.Selected[0], tok) && (out < 0 || scores[tok] < scores[out]) {
				out = tok
			}
		}
		rg.Selected[0][0] = out
		slices.Sort(rg.Selected[0])
		if rg.Out, err = ref.Sparse(q, kv, rg.Selected); err != nil {
			t.Fatal(err)
		}
		if runsClean(func(t2 *testing.T) { checkStep(t2, name, name, q, kv, b, want, got, rw, rg) }) {
			t.Errorf("%s: the suite accepted a selection with token %d in place of ref's (the output over it consistent)", name, out)
		}
	}
}

// TestCheckNearTies: a token in place of ref's within the tolerance of the
// k-th score is a near-tie (at the tolerance's edge too); one below it is
// an error.
func TestCheckNearTies(t *testing.T) {
	kth := 2.0
	tol := 1e-5*math.Abs(kth) + 1e-12
	want := [][]int32{{0, 1}}
	for _, c := range []struct {
		score float64
		ok    bool
	}{{kth, true}, {kth - tol/2, true}, {kth - tol, true}, {kth - 2*tol, false}, {-5, false}} {
		scores := [][]float64{{3, kth, c.score}}
		err := CheckNearTies(want, [][]int32{{0, 2}}, scores)
		if (err == nil) != c.ok {
			t.Errorf("token 2 of score %.12g in place of the k-th (%v): err = %v, want ok %v", c.score, kth, err, c.ok)
		}
	}
}

// TestCheckCloseEdges: got, want64 and want32 of different lengths, each
// alone, are an error; an error exactly at the tolerance passes.
func TestCheckCloseEdges(t *testing.T) {
	z := make([]float32, 4)
	for _, c := range [][3][]float32{{z[:3], z, z}, {z, z[:3], z}, {z, z, z[:3]}} {
		if err := CheckClose(c[0], c[1], c[2], 1); err == nil {
			t.Errorf("CheckClose of lengths %d, %d, %d: want an error", len(c[0]), len(c[1]), len(c[2]))
		}
	}
	// want64 = want32 = 0: the tolerance is 64 u = 2^-18, exact in float32.
	edge := []float32{0, float32(64 * unit32), 0, 0}
	if err := CheckClose(edge, z, z, 4); err != nil {
		t.Errorf("an error of exactly the tolerance: %v", err)
	}
	edge[1] = math.Nextafter32(edge[1], 1)
	if err := CheckClose(edge, z, z, 4); err == nil {
		t.Error("an error one ulp past the tolerance: want an error")
	}
}
