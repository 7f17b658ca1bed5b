package ref

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// randn returns n N(0,1) float32 values from a seeded generator.
func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// randomStep returns a query q: [B][Hq][D] and a cache for shape s.
func randomStep(t *testing.T, s Shape, seed uint64) ([]float32, *KV) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	q := randn(rng, s.B*s.Hq*s.D)
	kv, err := NewKV(s.B, s.Hkv, s.N, s.D, randn(rng, s.B*s.Hkv*s.N*s.D), randn(rng, s.B*s.Hkv*s.N*s.D))
	if err != nil {
		t.Fatal(err)
	}
	return q, kv
}

func TestBudgetTokens(t *testing.T) {
	for _, c := range []struct {
		x    float64
		n    int
		want int
	}{
		{x: 1, n: 10, want: 1}, {x: 5, n: 10, want: 5}, {x: 20, n: 10, want: 10},
		{x: 0.5, n: 10, want: 5}, {x: 0.0156, n: 32768, want: 511}, {x: 0.01, n: 10, want: 1},
		{x: 0.999, n: 1, want: 1},
	} {
		b, err := ParseBudget(c.x)
		if err != nil {
			t.Fatalf("ParseBudget(%v): %v", c.x, err)
		}
		if got, err := b.Tokens(c.n); err != nil || got != c.want {
			t.Errorf("ParseBudget(%v).Tokens(%d) = %d, %v; want %d", c.x, c.n, got, err, c.want)
		}
	}
	for _, x := range []float64{0, -1, math.NaN(), math.Inf(1), 2.5} {
		if _, err := ParseBudget(x); err == nil {
			t.Errorf("ParseBudget(%v) = nil error, want an error", x)
		}
	}
	// No cached token: no budget can be capped at n.
	for _, b := range []Budget{{K: 3}, {Ratio: 0.5}, Full} {
		if k, err := b.Tokens(0); err == nil {
			t.Errorf("%v.Tokens(0) = %d, nil; want an error", b, k)
		}
	}
	// Past int32, the error says so, not that the budget is fractional.
	for _, x := range []float64{1e10, 1e308} {
		if _, err := ParseBudget(x); err == nil || !strings.Contains(err.Error(), "at most") {
			t.Errorf("ParseBudget(%v) = %v, want an error giving the largest budget", x, err)
		}
	}
}

func TestEncodeByHand(t *testing.T) {
	// D=2, Rbit=32, one head. Column j of W is (1, -1) for even j and (0, 0)
	// for odd j; x = (2, 1) projects to 1 > 0 on even columns and to exactly 0
	// on odd ones, which must give bit 0.
	w := make([]float32, 2*32)
	for j := 0; j < 32; j += 2 {
		w[0*32+j], w[1*32+j] = 1, -1
	}
	hw, err := NewHashWeights(1, 2, 32, w)
	if err != nil {
		t.Fatal(err)
	}
	code := make([]uint32, 1)
	hw.Encode(0, []float32{2, 1}, code)
	if want := uint32(0x55555555); code[0] != want {
		t.Errorf("Encode((2,1)) = %#08x, want %#08x", code[0], want)
	}
	hw.Encode(0, []float32{1, 2}, code)
	if code[0] != 0 {
		t.Errorf("Encode((1,2)) = %#08x, want 0 (projections -1 and 0)", code[0])
	}
}

func TestSelectTies(t *testing.T) {
	scores := []int32{3, 1, 2, 1, 1, 0, 3}
	for _, c := range []struct {
		k    int
		win  Windows
		want []int32
	}{
		{k: 1, want: []int32{5}},
		{k: 3, want: []int32{1, 3, 5}},
		{k: 4, want: []int32{1, 3, 4, 5}},
		{k: 7, want: []int32{0, 1, 2, 3, 4, 5, 6}},
		{k: 99, want: []int32{0, 1, 2, 3, 4, 5, 6}},
		{k: 3, win: Windows{Sink: 1, Recent: 1}, want: []int32{0, 5, 6}},
		{k: 4, win: Windows{Sink: 1, Recent: 1}, want: []int32{0, 1, 5, 6}},
		{k: 2, win: Windows{Sink: 4, Recent: 4}, want: []int32{0, 1}},
		{k: 3, win: Windows{Sink: 2, Recent: 4}, want: []int32{0, 1, 6}},
	} {
		got := SelectSmallest(scores, c.k, c.win)
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("SelectSmallest(%v, k=%d, %+v) mismatch (-want +got):\n%s", scores, c.k, c.win, d)
		}
	}
	f := []float64{0.5, 0.9, 0.9, math.NaN(), 0.1}
	if d := cmp.Diff([]int32{1, 2}, SelectLargest(f, 2, Windows{})); d != "" {
		t.Errorf("SelectLargest(%v, 2) mismatch (-want +got):\n%s", f, d)
	}
	if d := cmp.Diff([]int32{0, 1, 2, 4}, SelectLargest(f, 4, Windows{})); d != "" {
		t.Errorf("SelectLargest(%v, 4): NaN must rank last (-want +got):\n%s", f, d)
	}
	// NaNs ahead of the ties, and k cutting three equal scores: the NaNs
	// still rank last, and the tie goes to the smaller indices.
	g := []float64{math.NaN(), 0.7, math.NaN(), 0.7, 0.7, 0.2}
	for k, want := range map[int][]int32{1: {1}, 2: {1, 3}, 4: {1, 3, 4, 5}, 5: {0, 1, 3, 4, 5}} {
		if d := cmp.Diff(want, SelectLargest(g, k, Windows{})); d != "" {
			t.Errorf("SelectLargest(%v, %d) mismatch (-want +got):\n%s", g, k, d)
		}
	}
}

// largestOrder is the order SelectLargest and Quest's pages rank scores in
// (larger first, NaN last, ties by the smaller index), written as a count of
// the scores ahead of each one instead of as a comparison for a sort:
// order[t] is the number of scores that rank before score t.
func largestOrder(scores []float64) []int {
	ahead := func(u, t int) bool {
		su, st := scores[u], scores[t]
		switch nu, nt := math.IsNaN(su), math.IsNaN(st); {
		case nu != nt:
			return nt
		case nu || su == st:
			return u < t
		}
		return su > st
	}
	order := make([]int, len(scores))
	for t := range scores {
		for u := range scores {
			if u != t && ahead(u, t) {
				order[t]++
			}
		}
	}
	return order
}

// TestLargestOrderRandom holds SelectLargest and byLarger (Quest's page
// order) to largestOrder over rows long enough for the sorts' general paths
// (not only their insertion sort of short runs), with many ties and NaNs.
func TestLargestOrderRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 20 {
		n := 30 + rng.IntN(200)
		scores := make([]float64, n)
		for i := range scores {
			switch r := rng.IntN(10); {
			case r == 0:
				scores[i] = math.NaN()
			default:
				scores[i] = float64(rng.IntN(8)) // ties
			}
		}
		order := largestOrder(scores)
		k := 1 + rng.IntN(n)
		var want []int32
		for i, o := range order {
			if o < k {
				want = append(want, int32(i))
			}
		}
		if d := cmp.Diff(want, SelectLargest(scores, k, Windows{})); d != "" {
			t.Errorf("trial %d: SelectLargest(k=%d) mismatch (-want +got):\n%s", trial, k, d)
		}
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		slices.SortStableFunc(idx, func(a, b int32) int { return byLarger(scores[a], scores[b]) })
		for rank, i := range idx {
			if order[i] != rank {
				t.Errorf("trial %d: byLarger's stable sort puts score %d (%v) at %d, want %d", trial, i, scores[i], rank, order[i])
				break
			}
		}
	}
}

func TestDenseByHand(t *testing.T) {
	// Equal keys give equal weights, so the output is the mean of the values.
	kv, err := NewKV(1, 1, 3, 2, []float32{1, 0, 1, 0, 1, 0}, []float32{3, 0, 0, 3, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Dense([]float32{0.7, -2, 5, 1}, kv) // Hq = 2 (G = 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]float32{1, 1, 1, 1}, out); d != "" {
		t.Errorf("Dense over equal keys mismatch (-want +got):\n%s", d)
	}
}

func TestHATAFullBudgetEqualsDense(t *testing.T) {
	for _, s := range []Shape{
		{B: 1, Hq: 1, Hkv: 1, N: 1, D: 8},
		{B: 2, Hq: 4, Hkv: 2, N: 43, D: 16},
		{B: 1, Hq: 8, Hkv: 2, N: (1 << 7) + 11, D: 32},
	} {
		q, kv := randomStep(t, s, 7)
		want, err := Dense(q, kv)
		if err != nil {
			t.Fatal(err)
		}
		w, err := RandomHashWeights(s.Hkv, s.D, 64, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []Method{NewHATA(w, Windows{}, false), NewHATA(w, Windows{Sink: 2, Recent: 3}, true), NewTopK(), NewDense()} {
			if err := m.Prefill(kv); err != nil {
				t.Fatal(err)
			}
			res, err := m.Decode(q, Full)
			if err != nil {
				t.Fatalf("%s %v: %v", m.Name(), s, err)
			}
			if d := cmp.Diff(want, res.Out); d != "" {
				t.Errorf("%s %v with k=N differs from dense (-dense +got):\n%s", m.Name(), s, d)
			}
		}
	}
}

// maskedDense is dense attention in which tokens outside sel get weight 0,
// written independently of Sparse: exp(-inf) = 0.
func maskedDense(q []float32, kv *KV, hq int, sel [][]int32) []float32 {
	g, d := hq/kv.Hkv, kv.D
	out := make([]float32, kv.B*hq*d)
	for b := range kv.B {
		for h := range hq {
			in := map[int32]bool{}
			for _, t := range sel[b*kv.Hkv+h/g] {
				in[t] = true
			}
			s := make([]float64, kv.N)
			m := math.Inf(-1)
			for t := range kv.N {
				s[t] = math.Inf(-1)
				if in[int32(t)] {
					s[t] = dot64(q[(b*hq+h)*d:(b*hq+h+1)*d], kv.Key(b, h/g, t)) / math.Sqrt(float64(d))
				}
				m = max(m, s[t])
			}
			var z float64
			acc := make([]float64, d)
			for t := range kv.N {
				p := math.Exp(s[t] - m)
				z += p
				for c := range d {
					acc[c] += p * float64(kv.Value(b, h/g, t)[c])
				}
			}
			for c := range d {
				out[(b*hq+h)*d+c] = float32(acc[c] / z)
			}
		}
	}
	return out
}

func TestSparseEqualsMaskedDense(t *testing.T) {
	s := Shape{B: 2, Hq: 6, Hkv: 3, N: 75, D: 16}
	q, kv := randomStep(t, s, 11)
	w, _ := RandomHashWeights(s.Hkv, s.D, 128, 5)
	m := NewHATA(w, Windows{}, false)
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{1, 7, 74} {
		res, err := m.Decode(q, Budget{K: k})
		if err != nil {
			t.Fatal(err)
		}
		for r, row := range res.Selected {
			if len(row) != k {
				t.Fatalf("k=%d: row %d has %d tokens", k, r, len(row))
			}
		}
		want := maskedDense(q, kv, s.Hq, res.Selected)
		if d := cmp.Diff(want, res.Out); d != "" {
			t.Errorf("k=%d: sparse attention differs from masked dense (-masked +sparse):\n%s", k, d)
		}
	}
}

func TestRoPE(t *testing.T) {
	// Llama-3.1 scaling: the highest frequency (i=0) is unchanged, the lowest
	// is divided by the factor.
	r := RoPE{D: 128, Theta: 500000, Llama3: &Llama31}
	f, err := r.Frequencies()
	if err != nil {
		t.Fatal(err)
	}
	if f[0] != 1 {
		t.Errorf("freq[0] = %v, want 1", f[0])
	}
	if want := math.Pow(500000, -126.0/128) / 8; math.Abs(f[63]-want) > 1e-18 {
		t.Errorf("freq[63] = %v, want %v", f[63], want)
	}
	// A rotation keeps the norm, and q(m)·k(n) depends only on m-n.
	rng := rand.New(rand.NewPCG(1, 2))
	q, k := randn(rng, 128), randn(rng, 128)
	dotAt := func(m, n int) float64 {
		qq, kk := append([]float32(nil), q...), append([]float32(nil), k...)
		if err := r.Apply(qq, m); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(kk, n); err != nil {
			t.Fatal(err)
		}
		if math.Abs(norm64(qq)-norm64(q)) > 1e-4 {
			t.Errorf("RoPE changed the norm: %v -> %v", norm64(q), norm64(qq))
		}
		return dot64(qq, kk)
	}
	if a, b := dotAt(10, 3), dotAt(1007, 1000); math.Abs(a-b) > 1e-3 {
		t.Errorf("q(10)·k(3) = %v, q(1007)·k(1000) = %v; want equal", a, b)
	}
	if err := (RoPE{D: 3, Theta: 10000}).Apply(make([]float32, 3), 0); err == nil {
		t.Error("RoPE with odd D: want an error")
	}
}

func TestPrefillLastRowIsDecode(t *testing.T) {
	s := Shape{B: 1, Hq: 4, Hkv: 2, N: 9, D: 8}
	rng := rand.New(rand.NewPCG(4, 4))
	q := randn(rng, s.B*s.Hq*s.N*s.D)
	k, v := randn(rng, s.B*s.Hkv*s.N*s.D), randn(rng, s.B*s.Hkv*s.N*s.D)
	out, err := Prefill(q, s.B, s.Hq, s.Hkv, s.N, s.D, k, v)
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := NewKV(s.B, s.Hkv, s.N, s.D, k, v)
	last := make([]float32, 0, s.Hq*s.D) // q of the last position: [B][Hq][D]
	lastOut := make([]float32, 0, s.Hq*s.D)
	for h := range s.Hq {
		off := (h*s.N + s.N - 1) * s.D
		last = append(last, q[off:off+s.D]...)
		lastOut = append(lastOut, out[off:off+s.D]...)
	}
	want, _ := Dense(last, kv)
	if d := cmp.Diff(want, lastOut); d != "" {
		t.Errorf("prefill's last position differs from a decode step (-decode +prefill):\n%s", d)
	}
	// Position 0 sees only key 0: its output is value 0.
	if d := cmp.Diff(v[:s.D], out[:s.D]); d != "" {
		t.Errorf("prefill position 0 is not value 0 (-want +got):\n%s", d)
	}
}

func TestMetrics(t *testing.T) {
	r, err := Recall([][]int32{{1, 2, 3, 4}, {0}}, [][]int32{{2, 4, 6, 8}, {0}})
	if err != nil || r != 0.75 {
		t.Errorf("Recall = %v, %v; want 0.75", r, err)
	}
	if r, err := Recall([][]int32{{1}, {0}}, [][]int32{{1}, {}}); err == nil || !strings.Contains(err.Error(), "oracle row 1 is empty") {
		t.Errorf("Recall with an empty oracle row = %v, %v; want an error naming row 1", r, err)
	}
	p := []float64{0.5, 0.25, 0.25, 0.1, 0.1, 0.8}
	m, err := MassRecall(p, [][]int32{{0, 2}}, 1, 2, 1, 3)
	if err != nil || math.Abs(m-0.825) > 1e-15 {
		t.Errorf("MassRecall = %v, %v; want 0.825", m, err)
	}
	// A set per head (HeadSelector): head 0 keeps {0, 2} (0.75), head 1 {2} (0.8).
	m, err = MassRecall(p, [][]int32{{0, 2}, {2}}, 1, 2, 1, 3)
	if err != nil || math.Abs(m-0.775) > 1e-15 {
		t.Errorf("MassRecall with a set per head = %v, %v; want 0.775", m, err)
	}
	if _, err := MassRecall(p, [][]int32{{0}, {1}, {2}}, 1, 2, 1, 3); err == nil {
		t.Error("MassRecall of 3 rows for 1 KV head and 2 query heads: no error")
	}
	e, err := RelL2([]float32{3, 4}, []float32{0, 5})
	if err != nil || math.Abs(e-math.Sqrt(10)/5) > 1e-15 {
		t.Errorf("RelL2 = %v, %v; want sqrt(10)/5", e, err)
	}
}

// TestCheckResult holds ref.CheckResult to what it promises: a step of the
// right shape with finite outputs and well-formed selections passes; a NaN
// or an infinity in the output, an output of the wrong length, and
// selections with a row short, a token repeated, out of order or out of
// range each fail with an error that names the row.
func TestCheckResult(t *testing.T) {
	s := Shape{B: 1, Hq: 4, Hkv: 2, N: 10, D: 2}
	good := func() *Result {
		return &Result{Out: make([]float32, s.B*s.Hq*s.D), Selected: [][]int32{{0, 3, 9}, {1, 2, 5}}}
	}
	if err := CheckResult(good(), s, 3); err != nil {
		t.Fatalf("a good step: %v", err)
	}
	dense := good()
	dense.Selected = nil
	if err := CheckResult(dense, s, 3); err != nil {
		t.Errorf("a step without a selection (dense): %v", err)
	}
	for _, c := range []struct {
		name  string
		spoil func(r *Result)
		want  string
	}{
		{"NaN", func(r *Result) { r.Out[5] = float32(math.NaN()) }, "row 2 (b*Hq+h) channel 1"},
		{"Inf", func(r *Result) { r.Out[0] = float32(math.Inf(-1)) }, "row 0 (b*Hq+h) channel 0"},
		{"short output", func(r *Result) { r.Out = r.Out[1:] }, "7 values, want B*Hq*D = 8"},
		{"short row", func(r *Result) { r.Selected[1] = r.Selected[1][:2] }, "selected row 1: 2 tokens"},
		{"repeated", func(r *Result) { r.Selected[0][1] = 0 }, "selected row 0: not strictly ascending"},
		{"out of order", func(r *Result) { r.Selected[1] = []int32{2, 1, 5} }, "selected row 1: not strictly ascending"},
		{"out of range", func(r *Result) { r.Selected[0][2] = 10 }, "selected row 0: token 10 outside [0, 10)"},
		{"rows", func(r *Result) { r.Selected = r.Selected[:1] }, "1 rows, want B*Hkv = 2"},
	} {
		r := good()
		c.spoil(r)
		if err := CheckResult(r, s, 3); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestShapeValidate(t *testing.T) {
	good := Shape{B: 2, Hq: 8, Hkv: 2, N: 5, D: 4}
	if err := good.Validate(); err != nil {
		t.Fatalf("%v: %v", good, err)
	}
	for _, c := range []struct {
		s    Shape
		want string
	}{
		{Shape{B: 0, Hq: 8, Hkv: 2, N: 5, D: 4}, "B=0"},
		{Shape{B: 2, Hq: 0, Hkv: 2, N: 5, D: 4}, "Hq=0"},
		{Shape{B: 2, Hq: 8, Hkv: 0, N: 5, D: 4}, "Hkv=0"},
		{Shape{B: 2, Hq: 8, Hkv: 3, N: 5, D: 4}, "Hq=8 is not a multiple of Hkv=3"},
		{Shape{B: 2, Hq: 8, Hkv: 2, N: 0, D: 4}, "N=0"},
		{Shape{B: 2, Hq: 8, Hkv: 2, N: 5, D: -1}, "D=-1"},
	} {
		if err := c.s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %s", c.s, err, c.want)
		}
	}
}
