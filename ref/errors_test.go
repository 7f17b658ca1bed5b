package ref

// The tests of ref's refusals: a cache, budget or hash shape that cannot be
// used is an error naming what is wrong, never a panic (in a worker
// goroutine, none a caller could recover).

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// badCaches returns caches that KV.Validate refuses, each built by hand
// around good, a valid cache of B=1, Hkv=2 and N >= 1.
func badCaches(good *KV) map[string]*KV {
	short := good.Clone()
	short.V[1] = short.V[1][:len(short.V[1])-1]
	return map[string]*KV{
		"nil":          nil,
		"N too large":  {B: good.B, Hkv: good.Hkv, D: good.D, N: good.N + 1, K: good.K, V: good.V},
		"a row short":  short,
		"rows missing": {B: good.B, Hkv: good.Hkv, D: good.D, N: good.N, K: good.K[:1], V: good.V[:1]},
		"D zero":       {B: good.B, Hkv: good.Hkv, D: 0, N: good.N, K: good.K, V: good.V},
	}
}

// TestPrefillBadCache checks that every method's Prefill, and the functions
// that read a cache, refuse a cache built by hand whose rows do not hold
// what its shape says, with an error, instead of panicking in a worker
// goroutine (which no caller can recover).
func TestPrefillBadCache(t *testing.T) {
	const b, hq, hkv, n, d = 1, 4, 2, 8, 4
	good, err := NewKV(b, hkv, n, d, make([]float32, b*hkv*n*d), make([]float32, b*hkv*n*d))
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate of NewKV's cache: %v", err)
	}
	w, err := RandomHashWeights(hkv, d, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float32, b*hq*d)
	for what, kv := range badCaches(good) {
		if err := kv.Validate(); err == nil {
			t.Errorf("Validate of a cache with %s = nil, want an error", what)
		}
		for _, name := range MethodNames {
			m, err := New(name, hkv, d, Options{W: w})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Prefill(kv); err == nil {
				t.Errorf("%s: Prefill of a cache with %s = nil, want an error", name, what)
			}
		}
		if _, err := Dense(q, kv); err == nil {
			t.Errorf("Dense over a cache with %s: nil error", what)
		}
		if _, err := Probabilities(q, kv); err == nil {
			t.Errorf("Probabilities over a cache with %s: nil error", what)
		}
		if _, err := FitLokiBasis(kv); err == nil {
			t.Errorf("FitLokiBasis of a cache with %s: nil error", what)
		}
	}
}

// TestBudgetTokensError checks that Tokens' error for a budget it refuses
// names both fields as set, not String's rendering of one of them (a ratio
// of -0.5 read "budget 0", K=3 with a ratio of 0.5 "budget 0.5").
func TestBudgetTokensError(t *testing.T) {
	for _, c := range []struct {
		b    Budget
		want string
	}{
		{Budget{}, "K=0 Ratio=0"},
		{Budget{K: -1}, "K=-1 Ratio=0"},
		{Budget{Ratio: -0.5}, "K=0 Ratio=-0.5"},
		{Budget{Ratio: 1.5}, "K=0 Ratio=1.5"},
		{Budget{Ratio: math.NaN()}, "K=0 Ratio=NaN"},
		{Budget{K: 3, Ratio: 0.5}, "K=3 Ratio=0.5"},
	} {
		_, err := c.b.Tokens(10)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Budget{K: %d, Ratio: %g}.Tokens(10) = %v, want an error naming %q", c.b.K, c.b.Ratio, err, c.want)
		}
	}
}

// TestRandomHashWeightsBadShape checks that RandomHashWeights (and NewLSH
// through it) refuses every shape NewHashWeights refuses with its error,
// before allocating: a negative rbit panicked in make.
func TestRandomHashWeightsBadShape(t *testing.T) {
	for _, s := range [][3]int{{1, 4, -32}, {1, -4, 32}, {-1, -4, 32}, {0, 4, 32}, {1, 4, 0}, {1, 4, 48}} {
		if w, err := RandomHashWeights(s[0], s[1], s[2], 1); err == nil {
			t.Errorf("RandomHashWeights(hkv=%d, d=%d, rbit=%d) = [%d][%d][%d] weights, want an error", s[0], s[1], s[2], w.Hkv, w.D, w.Rbit)
		}
		if _, err := NewLSH(s[0], s[1], s[2], 1, Windows{}); err == nil {
			t.Errorf("NewLSH(hkv=%d, d=%d, rbit=%d): nil error", s[0], s[1], s[2])
		}
	}
}

// TestBudgetRatioExact checks that a ratio's k is floor(n*r) of the decimal
// written, not of float64's product, which falls just below an integer for
// some ratios (0.29*100 = 28.999999999999996), and that the paper's ratios
// keep the k they had.
func TestBudgetRatioExact(t *testing.T) {
	for _, c := range []struct {
		r    float64
		n, k int
	}{
		{0.29, 100, 29},
		{0.57, 100, 57},
		{0.07, 100, 7},
		{0.0156, 131072, 2044},
		{0.0156, 32768, 511},
		{1e-5, 300000, 3},
		{0.5, 3, 1},
		{0.001, 10, 1}, // raised to 1
		{1, 7, 7},
	} {
		if k, err := (Budget{Ratio: c.r}).Tokens(c.n); err != nil || k != c.k {
			t.Errorf("Budget{Ratio: %v}.Tokens(%d) = %d, %v; want %d", c.r, c.n, k, err, c.k)
		}
	}
}

// TestRefusalsEachCondition reaches each condition of refusals that test
// two things at once (a shape's two dimensions, NaN or Inf) one at a time,
// and the boundary of a range check from both sides.
func TestRefusalsEachCondition(t *testing.T) {
	refuse := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: want an error", what)
		}
	}
	accept := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	const hkv, n, d = 2, 6, 4
	kv, err := NewKV(1, hkv, n, d, make([]float32, hkv*n*d), make([]float32, hkv*n*d))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ hkv, d int }{{hkv + 1, d}, {hkv, d + 4}} {
		hw, err := RandomHashWeights(w.hkv, w.d, 32, 1)
		if err != nil {
			t.Fatal(err)
		}
		refuse(fmt.Sprintf("HATA prefill with weights of Hkv=%d D=%d over a cache of Hkv=%d D=%d", w.hkv, w.d, hkv, d),
			NewHATA(hw, Windows{}, false).Prefill(kv))
	}
	for _, x := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		w := make([]float32, 1*2*32)
		w[5] = x
		_, err := NewHashWeights(1, 2, 32, w)
		refuse(fmt.Sprintf("NewHashWeights with an entry %v", x), err)
	}
	_, err = NewHashWeights(1, 1, 32, make([]float32, 32))
	accept("NewHashWeights of D=1", err)
	_, err = NewLoki(0, 4, 0, nil)
	refuse("NewLoki with Hkv=0", err)
	_, err = NewLoki(1, 1, 0, nil)
	accept("NewLoki of D=1", err)
	for _, x := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		_, err := FitPCA([][]float32{{1, 2}, {3, x}, {0, 1}})
		refuse(fmt.Sprintf("FitPCA with a sample holding %v", x), err)
	}
	h := NewH2O()
	if err := h.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	refuse("H2O AccumulatePrompt with q one value longer than B*Hq*N*D", h.AccumulatePrompt(make([]float32, 2*hkv*n*d+1)))
	q := make([]float32, hkv*d)
	for _, tok := range []int32{-1, n} {
		_, err := CheckSparse(q, kv, [][]int32{{0}, {tok}})
		refuse(fmt.Sprintf("CheckSparse with token %d of N=%d", tok, n), err)
	}
	_, err = CheckSparse(q, kv, [][]int32{{0}, {n - 1}})
	accept("CheckSparse with token N-1", err)
	for _, s := range [][4]int{{0, 1, 1, 1}, {1, 0, 1, 1}, {1, 1, -1, 1}, {1, 1, 1, 0}} {
		_, err := NewKV(s[0], s[1], s[2], s[3], nil, nil)
		refuse(fmt.Sprintf("NewKV(B=%d, Hkv=%d, N=%d, D=%d)", s[0], s[1], s[2], s[3]), err)
	}
	_, err = NewKV(1, 1, 0, 1, nil, nil)
	accept("NewKV of N=0 (an empty cache)", err)
	_, err = NewKV(1, 1, 1, 1, []float32{1}, nil)
	refuse("NewKV with V short", err)
	_, err = NewKV(1, 1, 1, 1, nil, []float32{1})
	refuse("NewKV with K short", err)
	row := [][]float32{{1}}
	for _, c := range []*KV{
		{B: 0, Hkv: 1, N: 1, D: 1}, {B: 1, Hkv: 0, N: 1, D: 1}, {B: 1, Hkv: 1, N: -1, D: 1}, {B: 1, Hkv: 1, N: 1, D: 0, K: [][]float32{{}}, V: [][]float32{{}}},
		{B: 1, Hkv: 1, N: 1, D: 1, K: row}, {B: 1, Hkv: 1, N: 1, D: 1, V: row},
	} {
		refuse(fmt.Sprintf("Validate of B=%d Hkv=%d N=%d D=%d with %d rows of K and %d of V", c.B, c.Hkv, c.N, c.D, len(c.K), len(c.V)), c.Validate())
	}
	accept("Validate of N=0", (&KV{B: 1, Hkv: 1, N: 0, D: 1, K: [][]float32{{}}, V: [][]float32{{}}}).Validate())
	_, err = Recall([][]int32{{0}}, [][]int32{{0}, {1}})
	refuse("Recall of 1 selected row against 2 oracle rows", err)
	_, err = Recall(nil, nil)
	refuse("Recall of no rows", err)
	_, err = NewTopK().Scores()
	refuse("TopK.Scores before any Decode", err)
	for _, w := range []struct{ hkv, d int }{{hkv + 1, d}, {hkv, d + 4}} {
		hw, err := RandomHashWeights(w.hkv, w.d, 32, 1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = New("hata", hkv, d, Options{W: hw})
		refuse(fmt.Sprintf("New(hata) with weights of Hkv=%d D=%d for Hkv=%d D=%d", w.hkv, w.d, hkv, d), err)
	}
	_, err = RoPE{D: 2, Theta: 10000}.Frequencies()
	accept("RoPE of D=2", err)
	_, err = RoPE{D: 4, Theta: 1}.Frequencies()
	refuse("RoPE of theta 1", err)
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := ParseBudget(x); err == nil || !strings.Contains(err.Error(), "want k >= 1 or a ratio") {
			t.Errorf("ParseBudget(%v) = %v, want the error that names the two forms", x, err)
		}
	}
	b, err := ParseBudget(math.MaxInt32)
	accept("ParseBudget(MaxInt32)", err)
	if b.K != math.MaxInt32 || b.String() != "2147483647" {
		t.Errorf("ParseBudget(MaxInt32) = %+v (%q), want K = MaxInt32 printed as such", b, b.String())
	}
}
