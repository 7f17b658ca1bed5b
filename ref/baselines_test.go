package ref

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// labeled is a method under test with a name that tells its configuration.
type labeled struct {
	label string
	m     Method
}

// topkBaselines returns fresh instances of every baseline that selects exactly
// k tokens, in several configurations, for caches of hkv heads of dim d.
func topkBaselines(t *testing.T, hkv, d int) []labeled {
	t.Helper()
	loki, err := NewLoki(hkv, d, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	lokiFull, err := NewLoki(hkv, d, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	lokiOne, err := NewLoki(hkv, d, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ls []labeled
	ls = append(ls, labeled{"loki", loki}, labeled{"loki c=D", lokiFull}, labeled{"loki c=1", lokiOne})
	for _, p := range []int{0, 1, 5} {
		m, err := NewQuest(p)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, labeled{fmt.Sprintf("quest P=%d", m.PageSize), m})
	}
	return append(ls,
		labeled{"streaming", NewStreaming(0)},
		labeled{"streaming sink=0", NewStreaming(-1)},
		labeled{"h2o", NewH2O()})
}

// checkRows reports whether sel has rows rows of exactly k unique ascending
// tokens in [0, n).
func checkRows(sel [][]int32, rows, n, k int) error {
	if len(sel) != rows {
		return fmt.Errorf("%d selected rows, want B*Hkv = %d", len(sel), rows)
	}
	for r, row := range sel {
		if len(row) != k {
			return fmt.Errorf("row %d has %d tokens, want k = %d: %v", r, len(row), k, row)
		}
		for i, t := range row {
			if t < 0 || int(t) >= n || (i > 0 && t <= row[i-1]) {
				return fmt.Errorf("row %d is not strictly ascending in [0, %d): %v", r, n, row)
			}
		}
	}
	return nil
}

// allTokens returns rows rows of 0..n-1.
func allTokens(rows, n int) [][]int32 {
	sel := make([][]int32, rows)
	for r := range sel {
		for t := range n {
			sel[r] = append(sel[r], int32(t))
		}
	}
	return sel
}

func TestBaselinesFullBudgetEqualsDense(t *testing.T) {
	for _, s := range []Shape{
		{B: 1, Hq: 1, Hkv: 1, N: 1, D: 8},
		{B: 2, Hq: 4, Hkv: 2, N: 43, D: 16},
		{B: 1, Hq: 8, Hkv: 2, N: (1 << 7) + 11, D: 32},
	} {
		for _, lm := range topkBaselines(t, s.Hkv, s.D) {
			_, kv := randomStep(t, s, 7)
			rng := rand.New(rand.NewPCG(8, 8))
			if err := lm.m.Prefill(kv); err != nil {
				t.Fatalf("%s %v: Prefill: %v", lm.label, s, err)
			}
			for step := range 3 {
				q := randn(rng, s.B*s.Hq*s.D)
				want, err := Dense(q, kv)
				if err != nil {
					t.Fatal(err)
				}
				res, err := lm.m.Decode(q, Full)
				if err != nil {
					t.Fatalf("%s %v step %d: Decode: %v", lm.label, kv.Shape(s.Hq), step, err)
				}
				if d := cmp.Diff(want, res.Out); d != "" {
					t.Errorf("%s %v step %d with k=N differs from dense (-dense +got):\n%s", lm.label, kv.Shape(s.Hq), step, d)
				}
				if d := cmp.Diff(allTokens(s.B*s.Hkv, kv.N), res.Selected); d != "" {
					t.Errorf("%s %v step %d with k=N does not select every token (-want +got):\n%s", lm.label, kv.Shape(s.Hq), step, d)
				}
				k, v := randn(rng, s.B*s.Hkv*s.D), randn(rng, s.B*s.Hkv*s.D)
				if err := lm.m.Append(k, v); err != nil {
					t.Fatalf("%s: Append: %v", lm.label, err)
				}
				if err := kv.Append(k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestBaselinesSelectExactlyK sweeps awkward shapes and budgets over several
// decode steps with appends: every row holds exactly k unique ascending tokens,
// the output is attention over them (dense with the rest masked), and the
// tokens a Scorer selected outrank the ones it left out.
func TestBaselinesSelectExactlyK(t *testing.T) {
	approx := cmpopts.EquateApprox(1e-6, 1e-6)
	for _, s := range []Shape{
		{B: 1, Hq: 1, Hkv: 1, N: 1, D: 8},
		{B: 1, Hq: 3, Hkv: 1, N: (1 << 5) + 11, D: 8},
		{B: 2, Hq: 6, Hkv: 2, N: (1 << 8) + 11, D: 16},
		{B: 1, Hq: 4, Hkv: 4, N: 70, D: 16},
	} {
		budgets := []Budget{{K: 1}, {K: 2}, {K: 5}, {K: max(1, s.N-1)}, Full, {Ratio: 0.1}, {K: s.N + 5}}
		for _, lm := range topkBaselines(t, s.Hkv, s.D) {
			_, kv := randomStep(t, s, 21)
			rng := rand.New(rand.NewPCG(22, 22))
			if err := lm.m.Prefill(kv); err != nil {
				t.Fatalf("%s %v: Prefill: %v", lm.label, s, err)
			}
			for step := range 3 {
				q := randn(rng, s.B*s.Hq*s.D)
				for _, b := range budgets {
					where := fmt.Sprintf("%s %v step %d budget %v", lm.label, kv.Shape(s.Hq), step, b)
					k, _ := b.Tokens(kv.N)
					res, err := lm.m.Decode(q, b)
					if err != nil {
						t.Fatalf("%s: Decode: %v", where, err)
					}
					if err := checkRows(res.Selected, s.B*s.Hkv, kv.N, k); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					if d := cmp.Diff(maskedDense(q, kv, s.Hq, res.Selected), res.Out, approx); d != "" {
						t.Errorf("%s: output is not attention over the selection (-masked dense +got):\n%s", where, d)
					}
					if sc, ok := lm.m.(Scorer); ok {
						checkOutranks(t, where, sc, res.Selected, kv.N, lm.m.Name() == "h2o", k-k/2)
					}
				}
				k, v := randn(rng, s.B*s.Hkv*s.D), randn(rng, s.B*s.Hkv*s.D)
				if err := lm.m.Append(k, v); err != nil {
					t.Fatalf("%s: Append: %v", lm.label, err)
				}
				if err := kv.Append(k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// checkOutranks checks that every selected token scores at least as high as
// every unselected one (recent tokens of h2o, forced by position, excepted).
func checkOutranks(t *testing.T, where string, sc Scorer, sel [][]int32, n int, h2o bool, recent int) {
	t.Helper()
	scores, err := sc.Scores()
	if err != nil {
		t.Fatalf("%s: Scores: %v", where, err)
	}
	for r, row := range sel {
		if len(scores[r]) != n {
			t.Fatalf("%s: Scores row %d has %d entries, want N = %d", where, r, len(scores[r]), n)
		}
		in := make([]bool, n)
		for _, tk := range row {
			in[tk] = true
		}
		worst := math.Inf(1)
		for _, tk := range row {
			if !h2o || int(tk) < n-recent {
				worst = min(worst, scores[r][tk])
			}
		}
		for tk := range n {
			if !in[tk] && scores[r][tk] > worst {
				t.Fatalf("%s: row %d leaves out token %d scoring %v above a selected %v", where, r, tk, scores[r][tk], worst)
			}
		}
	}
}

func TestBaselinesErrors(t *testing.T) {
	for _, lm := range append(topkBaselines(t, 1, 4), labeled{"magicpig", mustMagicPIG(t, 4, MagicPIGConfig{})}) {
		if _, err := lm.m.Decode(make([]float32, 4), Full); err == nil {
			t.Errorf("%s: Decode before Prefill: want an error", lm.label)
		}
		if err := lm.m.Append(make([]float32, 4), make([]float32, 4)); err == nil {
			t.Errorf("%s: Append before Prefill: want an error", lm.label)
		}
		_, kv := randomStep(t, Shape{B: 1, Hq: 1, Hkv: 1, N: 5, D: 4}, 1)
		if err := lm.m.Prefill(kv); err != nil {
			t.Fatalf("%s: Prefill: %v", lm.label, err)
		}
		if _, err := lm.m.Decode(make([]float32, 5), Full); err == nil {
			t.Errorf("%s: Decode with len(q)=5 for D=4: want an error", lm.label)
		}
		if _, err := lm.m.Decode(make([]float32, 4), Budget{}); err == nil {
			t.Errorf("%s: Decode with an empty budget: want an error", lm.label)
		}
		if err := lm.m.Append(make([]float32, 3), make([]float32, 4)); err == nil {
			t.Errorf("%s: Append of a 3-float key for D=4: want an error", lm.label)
		}
	}
	bad := []struct {
		name string
		o    Options
	}{
		{"quest", Options{PageSize: -1}},
		{"loki", Options{LokiChannels: -3}},
		{"loki", Options{LokiBasis: make([]float64, 5)}},
		{"loki", Options{LokiBasis: make([]float64, 2*4*4)}}, // zero columns: not orthonormal
		{"magicpig", Options{MagicPIGK: 33}},
		{"magicpig", Options{MagicPIGL: 3, MagicPIGMinHits: 4}},
		{"nonesuch", Options{}},
	}
	for _, c := range bad {
		m, err := New(c.name, 2, 4, c.o)
		if err == nil || m != nil {
			t.Errorf("New(%q, %+v) = %v, %v; want nil and an error", c.name, c.o, m, err)
		}
	}
}

func TestRegistryBuildsEveryMethod(t *testing.T) {
	w, err := RandomHashWeights(2, 16, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range MethodNames {
		m, err := New(name, 2, 16, Options{W: w})
		if err != nil {
			t.Errorf("New(%q): %v", name, err)
			continue
		}
		if m.Name() != name {
			t.Errorf("New(%q).Name() = %q", name, m.Name())
		}
	}
}

// ---- Loki ----

func TestFitPCAByHand(t *testing.T) {
	// Zero mean, covariance diag(8, 0.5, 50)/6: the principal directions are
	// the axes in the order z, x, y, each with its nonzero entry made positive.
	keys := [][]float32{{0, 0, 5}, {0, 0, -5}, {2, 0, 0}, {-2, 0, 0}, {0, 0.5, 0}, {0, -0.5, 0}}
	p, err := FitPCA(keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{ // rows i, columns j
		0, 1, 0,
		0, 0, 1,
		1, 0, 0,
	}
	if d := cmp.Diff(want, p, cmpopts.EquateApprox(0, 1e-12)); d != "" {
		t.Errorf("FitPCA(axes) mismatch (-want +got):\n%s", d)
	}
	if _, err := FitPCA(nil); err == nil {
		t.Error("FitPCA(no keys): want an error")
	}
	if _, err := FitPCA([][]float32{{1, 2}, {1}}); err == nil {
		t.Error("FitPCA(ragged keys): want an error")
	}
}

func TestFitPCAOrthonormalOrderedSigned(t *testing.T) {
	const d, n = 16, 200
	rng := rand.New(rand.NewPCG(5, 5))
	mix := randn(rng, d*d) // correlated keys: x = A z + offset
	keys := make([][]float32, n)
	for i := range keys {
		z := randn(rng, d)
		keys[i] = make([]float32, d)
		for a := range d {
			for b := range d {
				keys[i][a] += mix[a*d+b] * z[b] * float32(b+1) / d
			}
			keys[i][a] += 3
		}
	}
	p, err := FitPCA(keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkOrthonormal(p, d, 1e-12); err != nil {
		t.Errorf("PCA basis: %v", err)
	}
	// Variance along column j must not increase with j.
	prev := math.Inf(1)
	for j := range d {
		var s, s2 float64
		for _, x := range keys {
			var y float64
			for i := range d {
				y += float64(x[i]) * p[i*d+j]
			}
			s += y
			s2 += y * y
		}
		v := s2/n - (s/n)*(s/n)
		if v > prev*(1+1e-9) {
			t.Errorf("variance along column %d is %v, above column %d's %v", j, v, j-1, prev)
		}
		prev = v
		big := 0
		for i := range d {
			if math.Abs(p[i*d+j]) > math.Abs(p[big*d+j]) {
				big = i
			}
		}
		if p[big*d+j] <= 0 {
			t.Errorf("column %d: largest entry p[%d] = %v, want positive (sign convention)", j, big, p[big*d+j])
		}
	}
	again, _ := FitPCA(keys)
	if d := cmp.Diff(p, again); d != "" {
		t.Errorf("FitPCA is not reproducible (-first +second):\n%s", d)
	}
}

// TestLokiAllChannelsIsOracle: with c = D the rotation is exact, so Loki's
// scores are the oracle's up to rounding and it selects the oracle's set, with
// the basis fitted at Prefill or supplied.
func TestLokiAllChannelsIsOracle(t *testing.T) {
	for _, s := range []Shape{
		{B: 2, Hq: 4, Hkv: 2, N: 45, D: 16},
		{B: 1, Hq: 6, Hkv: 3, N: (1 << 7) + 11, D: 32},
	} {
		_, kv := randomStep(t, s, 31)
		given, err := FitLokiBasis(kv) // any orthonormal basis will do: one fitted on other keys
		if err != nil {
			t.Fatal(err)
		}
		for _, basis := range [][]float64{nil, reversedColumns(given, s.Hkv, s.D)} {
			m, err := NewLoki(s.Hkv, s.D, s.D, basis)
			if err != nil {
				t.Fatal(err)
			}
			_, kv := randomStep(t, s, 32)
			rng := rand.New(rand.NewPCG(33, 33))
			if err := m.Prefill(kv); err != nil {
				t.Fatal(err)
			}
			for step := range 3 {
				q := randn(rng, s.B*s.Hq*s.D)
				for _, b := range []Budget{{K: 1}, {K: 5}, {Ratio: 0.3}} {
					want, err := OracleSelection(q, kv, b)
					if err != nil {
						t.Fatal(err)
					}
					res, err := m.Decode(q, b)
					if err != nil {
						t.Fatal(err)
					}
					if d := cmp.Diff(want, res.Selected); d != "" {
						t.Errorf("loki c=D %v step %d budget %v given basis %v: selection differs from the oracle (-oracle +loki):\n%s",
							kv.Shape(s.Hq), step, b, basis != nil, d)
					}
				}
				k, v := randn(rng, s.B*s.Hkv*s.D), randn(rng, s.B*s.Hkv*s.D)
				if err := m.Append(k, v); err != nil {
					t.Fatal(err)
				}
				if err := kv.Append(k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// reversedColumns returns the basis with each head's columns in reverse order.
func reversedColumns(p []float64, hkv, d int) []float64 {
	r := make([]float64, len(p))
	for h := range hkv {
		for i := range d {
			for j := range d {
				r[h*d*d+i*d+j] = p[h*d*d+i*d+(d-1-j)]
			}
		}
	}
	return r
}

// TestLokiTruncation: keys that lie in a 4-dimensional subspace are scored
// exactly by the first 4 channels of the basis fitted on them, so c = 4 selects
// the oracle's set; on isotropic keys c = 1 must lose some of it.
func TestLokiTruncation(t *testing.T) {
	s := Shape{B: 1, Hq: 4, Hkv: 2, N: 60, D: 16}
	rng := rand.New(rand.NewPCG(41, 41))
	basis, err := FitPCA(func() [][]float32 { // a random orthonormal basis Q of R^16
		var x [][]float32
		for range 40 {
			x = append(x, randn(rng, s.D))
		}
		return x
	}())
	if err != nil {
		t.Fatal(err)
	}
	inSpan := func() []float32 { // a key sum_{j<4} z_j Q[:, j]
		z := randn(rng, 4)
		k := make([]float32, s.D)
		for i := range s.D {
			for j := range 4 {
				k[i] += z[j] * float32(basis[i*s.D+j])
			}
		}
		return k
	}
	keys := func(n int) []float32 {
		var k []float32
		for range n {
			k = append(k, inSpan()...)
		}
		return k
	}
	kv, err := NewKV(s.B, s.Hkv, s.N, s.D, keys(s.B*s.Hkv*s.N), randn(rng, s.B*s.Hkv*s.N*s.D))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewLoki(s.Hkv, s.D, 4, nil)
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	for step := range 3 {
		q := randn(rng, s.B*s.Hq*s.D)
		b := Budget{K: 6}
		want, _ := OracleSelection(q, kv, b)
		res, err := m.Decode(q, b)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, res.Selected); d != "" {
			t.Errorf("loki c=4 on rank-4 keys, step %d: selection differs from the oracle (-oracle +loki):\n%s", step, d)
		}
		k, v := keys(s.B*s.Hkv), randn(rng, s.B*s.Hkv*s.D)
		if err := m.Append(k, v); err != nil {
			t.Fatal(err)
		}
		if err := kv.Append(k, v); err != nil {
			t.Fatal(err)
		}
	}
	// Isotropic keys: one channel cannot rank them like all sixteen.
	q, iso := randomStep(t, s, 43)
	one, _ := NewLoki(s.Hkv, s.D, 1, nil)
	if err := one.Prefill(iso); err != nil {
		t.Fatal(err)
	}
	res, err := one.Decode(q, Budget{K: 6})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := OracleSelection(q, iso, Budget{K: 6})
	if rec, _ := Recall(res.Selected, want); rec == 1 {
		t.Errorf("loki c=1 on isotropic keys has recall 1 against the oracle: the truncation does nothing")
	}
}

// ---- Quest ----

// TestQuestPageBounds checks the bounds kept incrementally against bounds
// built from scratch, and that a page's score bounds every q·k inside it. The
// bound holds exactly in floating point: each product of two float32 is exact
// in float64, so U's terms are each >= the dot product's terms, and rounded
// sums in the same order are monotone in every term.
func TestQuestPageBounds(t *testing.T) {
	s := Shape{B: 2, Hq: 4, Hkv: 2, N: 37, D: 8}
	_, kv := randomStep(t, s, 51)
	rng := rand.New(rand.NewPCG(52, 52))
	m, _ := NewQuest(5)
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	for step := range 6 {
		fresh, _ := NewQuest(5)
		if err := fresh.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(fresh.lo, m.lo); d != "" {
			t.Errorf("step %d N=%d: incremental minima differ from a fresh build (-fresh +incremental):\n%s", step, kv.N, d)
		}
		if d := cmp.Diff(fresh.hi, m.hi); d != "" {
			t.Errorf("step %d N=%d: incremental maxima differ from a fresh build (-fresh +incremental):\n%s", step, kv.N, d)
		}
		q := randn(rng, s.B*s.Hq*s.D)
		np := m.pages(kv.N)
		u := m.pageScores(q, s.Hq)
		g := s.Hq / s.Hkv
		for b := range s.B {
			for gh := range s.Hkv {
				for tk := range kv.N {
					var sum, bound float64
					for h := gh * g; h < (gh+1)*g; h++ {
						qh := q[(b*s.Hq+h)*s.D : (b*s.Hq+h+1)*s.D]
						x := dot64(qh, kv.Key(b, gh, tk))
						ub := u[(b*s.Hq+h)*np+tk/5]
						if x > ub {
							t.Errorf("step %d b=%d head %d token %d: q·k = %v above its page's bound %v", step, b, h, tk, x, ub)
						}
						sum += x
						bound += ub
					}
					if sum > bound {
						t.Errorf("step %d b=%d KV head %d token %d: group sum q·k = %v above the page score %v", step, b, gh, tk, sum, bound)
					}
				}
			}
		}
		if _, err := m.Decode(q, Budget{K: 7}); err != nil {
			t.Fatal(err)
		}
		k, v := randn(rng, s.B*s.Hkv*s.D), randn(rng, s.B*s.Hkv*s.D)
		if err := m.Append(k, v); err != nil {
			t.Fatal(err)
		}
		if err := kv.Append(k, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQuestPageSize1IsTopKByDot: a page of one token has lo = hi = k_t, so its
// bound is q·k_t itself (the same float64 terms in the same order) and Quest
// selects exactly the k largest group sums sum_h q_h·k_t.
func TestQuestPageSize1IsTopKByDot(t *testing.T) {
	s := Shape{B: 2, Hq: 6, Hkv: 2, N: (1 << 6) + 11, D: 16}
	q, kv := randomStep(t, s, 61)
	m, _ := NewQuest(1)
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	g := s.Hq / s.Hkv
	for _, k := range []int{1, 9, s.N} {
		res, err := m.Decode(q, Budget{K: k})
		if err != nil {
			t.Fatal(err)
		}
		for r := range s.B * s.Hkv {
			b, gh := r/s.Hkv, r%s.Hkv
			sum := make([]float64, s.N)
			for h := gh * g; h < (gh+1)*g; h++ {
				for tk := range s.N {
					sum[tk] += dot64(q[(b*s.Hq+h)*s.D:(b*s.Hq+h+1)*s.D], kv.Key(b, gh, tk))
				}
			}
			if d := cmp.Diff(SelectLargest(sum, k, Windows{}), res.Selected[r]); d != "" {
				t.Errorf("quest P=1 k=%d row %d: differs from the top-k of sum_h q·k (-want +got):\n%s", k, r, d)
			}
		}
	}
}

func TestQuestByHand(t *testing.T) {
	// D=1, pages of 4: page 0 = keys 1 (x4), page 1 = 5 (x4), page 2 = 0.5 (x2).
	keys := []float32{1, 1, 1, 1, 5, 5, 5, 5, 0.5, 0.5}
	kv, err := NewKV(1, 1, 10, 1, keys, keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    float32
		k    int
		want []int32
	}{
		{q: 1, k: 4, want: []int32{4, 5, 6, 7}},
		{q: 1, k: 6, want: []int32{0, 1, 4, 5, 6, 7}},          // page 1, then the first 2 of page 0
		{q: 1, k: 9, want: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8}}, // pages 1, 0, then 1 token of page 2
		{q: -1, k: 3, want: []int32{0, 8, 9}},                  // bounds -0.5, -1, -5: pages 2, then 0
		{q: 0, k: 5, want: []int32{0, 1, 2, 3, 4}},             // all pages tie at 0: in page order
	} {
		m, _ := NewQuest(4)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		res, err := m.Decode([]float32{c.q}, Budget{K: c.k})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([][]int32{c.want}, res.Selected); d != "" {
			t.Errorf("quest q=%v k=%d (-want +got):\n%s", c.q, c.k, d)
		}
	}
}

// TestQuestNaNPage: a page whose keys hold a NaN has a NaN score, which
// ranks after every other page wherever it stands (here first), as NaN
// ranks in SelectLargest.
func TestQuestNaNPage(t *testing.T) {
	nan := float32(math.NaN())
	// D=1, pages of 2: page 0 holds a NaN, pages 1-3 keys 1, 5 and 0.5.
	keys := []float32{nan, 1, 1, 1, 5, 5, 0.5, 0.5}
	kv, err := NewKV(1, 1, 8, 1, keys, make([]float32, 8))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[int][]int32{2: {4, 5}, 4: {2, 3, 4, 5}, 6: {2, 3, 4, 5, 6, 7}, 7: {0, 2, 3, 4, 5, 6, 7}} {
		m, _ := NewQuest(2)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		res, err := m.Decode([]float32{1}, Budget{K: k})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([][]int32{want}, res.Selected); d != "" {
			t.Errorf("quest k=%d with a NaN page first (-want +got):\n%s", k, d)
		}
	}
}

// ---- StreamingLLM ----

func TestStreamingByHand(t *testing.T) {
	span := func(a, b int) []int32 { // a..b-1
		var s []int32
		for t := a; t < b; t++ {
			s = append(s, int32(t))
		}
		return s
	}
	for _, c := range []struct {
		sink, n, k int
		want       []int32
	}{
		{sink: 0, n: 50, k: 10, want: append(span(0, 4), span(44, 50)...)},
		{sink: 0, n: 50, k: 4, want: span(0, 4)},
		{sink: 0, n: 50, k: 3, want: span(0, 3)},
		{sink: 0, n: 50, k: 5, want: append(span(0, 4), 49)},
		{sink: 0, n: 1, k: 1, want: span(0, 1)},
		{sink: 0, n: 6, k: 6, want: span(0, 6)},
		{sink: -1, n: 50, k: 7, want: span(43, 50)},
		{sink: 2, n: 50, k: 7, want: append(span(0, 2), span(45, 50)...)},
	} {
		s := Shape{B: 2, Hq: 4, Hkv: 2, N: c.n, D: 4}
		q, kv := randomStep(t, s, 71)
		m := NewStreaming(c.sink)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		res, err := m.Decode(q, Budget{K: c.k})
		if err != nil {
			t.Fatal(err)
		}
		want := [][]int32{c.want, c.want, c.want, c.want}
		if d := cmp.Diff(want, res.Selected); d != "" {
			t.Errorf("streaming sink=%d N=%d k=%d (-want +got):\n%s", c.sink, c.n, c.k, d)
		}
	}
}

// ---- H2O ----

// h2oStep is one call of the hand-checked H2O histories.
type h2oStep struct {
	appendKeys []float32 // keys appended before the decode (D = 1, one KV head)
	k          int
	want       []int32
	acc        []float64 // A after the step
}

func runH2O(t *testing.T, name string, q []float32, prefill []float32, steps []h2oStep) *H2O {
	t.Helper()
	kv, err := NewKV(1, 1, len(prefill), 1, prefill, prefill)
	if err != nil {
		t.Fatal(err)
	}
	m := NewH2O()
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		for _, k := range st.appendKeys {
			if err := m.Append([]float32{k}, []float32{k}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := m.Decode(q, Budget{K: st.k})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([][]int32{st.want}, res.Selected); d != "" {
			t.Errorf("%s step %d (k=%d): selection (-want +got):\n%s", name, i+1, st.k, d)
		}
		if d := cmp.Diff(st.acc, m.hist.acc[0], cmpopts.EquateApprox(0, 1e-6)); d != "" {
			t.Errorf("%s step %d (k=%d): accumulated attention (-want +got):\n%s", name, i+1, st.k, d)
		}
	}
	return m
}

// oneHeadHistory is a hand-checked H2O history: one head, q = 1, D = 1, so
// token t gets weight exp(k_t); keys 0 weigh 1, keys -20 weigh eps.
func oneHeadHistory() []h2oStep {
	eps := math.Exp(-20)
	a3 := 0.75 + 1/(1+eps) // token 0 after step 3
	a4 := eps / (1 + eps)  // token 4 after step 3
	e3 := eps / (1 + 3*eps)
	return []h2oStep{
		// Full budget: every token, A = 1/4 each.
		{k: 4, want: []int32{0, 1, 2, 3}, acc: []float64{.25, .25, .25, .25}},
		// k=2: recent {3}; heavy among {0,1,2}, all 1/4: the smallest index.
		// 1 and 2 are evicted.
		{k: 2, want: []int32{0, 3}, acc: []float64{.75, .25, .25, .75}},
		// Token 4 (weight eps) arrives. Recent {4}; heavy among the survivors
		// {0, 3} (tied at .75): 0. Token 3 is evicted.
		{appendKeys: []float32{-20}, k: 2, want: []int32{0, 4}, acc: []float64{a3, .25, .25, .75, a4}},
		// Tokens 5, 6 arrive. Recent {5, 6}; two heavy hitters among the
		// survivors {0, 4}: both, although the evicted 3 (A = .75) has far
		// more than 4 (A ~ 2e-9): evicted tokens never come back.
		{appendKeys: []float32{-20, -20}, k: 4, want: []int32{0, 4, 5, 6},
			acc: []float64{a3 + 1/(1+3*eps), .25, .25, .75, a4 + e3, e3, e3}},
	}
}

func TestH2OByHand(t *testing.T) {
	runH2O(t, "one head", []float32{1}, []float32{0, 0, 0, 0}, oneHeadHistory())
	// Two query heads share the KV head: A sums both heads' probabilities.
	// Head 0 (q=1) weighs the keys 1, 3, 1; head 1 (q=0) weighs them evenly.
	l3 := float32(math.Log(3))
	runH2O(t, "group", []float32{1, 0}, []float32{0, l3, 0}, []h2oStep{
		{k: 3, want: []int32{0, 1, 2}, acc: []float64{.2 + 1./3, .6 + 1./3, .2 + 1./3}},
		// Recent {2, 3}; heavy among {0, 1}: 1 (14/15 > 8/15).
		{appendKeys: []float32{0}, k: 3, want: []int32{1, 2, 3}, acc: []float64{8. / 15, 28. / 15, 16. / 15, 8. / 15}},
		// Recent {3, 4}; heavy among the survivors {1, 2}: 1.
		{appendKeys: []float32{l3}, k: 3, want: []int32{1, 3, 4},
			acc: []float64{8. / 15, 28./15 + 3./7 + 1./3, 16. / 15, 8./15 + 1./7 + 1./3, 3./7 + 1./3}},
		// The budget grows to 4: recent {3, 4}; heavy 2, only 1 survives; the
		// shortfall is the evicted token with the larger A: 2 (16/15 > 8/15).
		{k: 4, want: []int32{1, 2, 3, 4}, acc: []float64{8. / 15, 28./15 + 3./7 + 1./3 + 3./8 + 1./4, 16./15 + 1./8 + 1./4,
			8./15 + 1./7 + 1./3 + 1./8 + 1./4, 3./7 + 1./3 + 3./8 + 1./4}},
	})
}

func TestH2OBudgetGrowthRefillsByScore(t *testing.T) {
	m := runH2O(t, "growth", []float32{1}, []float32{0, 0, 0, 0}, oneHeadHistory())
	// The budget grows to 6 with no append: recent {4, 5, 6}, heavy 3, and
	// only token 0 survives outside the window; the shortfall comes from the
	// evicted tokens by A: 3 (.75), then 1 (.25, tied with 2, smaller index).
	res, err := m.Decode([]float32{1}, Budget{K: 6})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([][]int32{{0, 1, 3, 4, 5, 6}}, res.Selected); d != "" {
		t.Errorf("h2o after the budget grows to 6 (-want +got):\n%s", d)
	}
	if m.hist.evicted[0][1] || m.hist.evicted[0][3] || !m.hist.evicted[0][2] {
		t.Errorf("h2o evicted flags after the refill = %v, want 1 and 3 back, 2 still out", m.hist.evicted[0])
	}
}

// TestH2OEvictionInvisibleAtConstantBudget checks the claim of H2O's doc: with
// a constant budget, forgetting the evictions changes no selection.
func TestH2OEvictionInvisibleAtConstantBudget(t *testing.T) {
	s := Shape{B: 2, Hq: 4, Hkv: 2, N: 20, D: 8}
	_, kv := randomStep(t, s, 81)
	rng := rand.New(rand.NewPCG(82, 82))
	strict, forgetful := NewH2O(), NewH2O()
	for _, m := range []*H2O{strict, forgetful} {
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
	}
	for step := range 30 {
		q := randn(rng, s.B*s.Hq*s.D)
		for _, row := range forgetful.hist.evicted {
			clear(row)
		}
		a, err := strict.Decode(q, Budget{K: 9})
		if err != nil {
			t.Fatal(err)
		}
		b, err := forgetful.Decode(q, Budget{K: 9})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(a.Selected, b.Selected); d != "" {
			t.Fatalf("step %d: eviction changed the selection (-with +without):\n%s", step, d)
		}
		k, v := randn(rng, s.B*s.Hkv*s.D), randn(rng, s.B*s.Hkv*s.D)
		for _, m := range []*H2O{strict, forgetful} {
			if err := m.Append(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestH2OAccumulatePrompt(t *testing.T) {
	// q = 0: position i spreads 1/(i+1) over tokens 0..i.
	kv, err := NewKV(1, 1, 3, 2, []float32{1, 2, -1, 0, 3, 3}, make([]float32, 6))
	if err != nil {
		t.Fatal(err)
	}
	m := NewH2O()
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	if err := m.AccumulatePrompt(make([]float32, 2*3*2)); err != nil { // Hq = 2
		t.Fatal(err)
	}
	want := []float64{2 * (1 + 1./2 + 1./3), 2 * (1./2 + 1./3), 2 * (1. / 3)}
	if d := cmp.Diff(want, m.hist.acc[0], cmpopts.EquateApprox(1e-14, 0)); d != "" {
		t.Errorf("accumulated prompt attention (-want +got):\n%s", d)
	}
	if err := m.AccumulatePrompt(make([]float32, 5)); err == nil {
		t.Error("AccumulatePrompt with len(q)=5: want an error")
	}
}

// ---- MagicPIG ----

func mustMagicPIG(t *testing.T, d int, c MagicPIGConfig) *MagicPIG {
	t.Helper()
	m, err := NewMagicPIG(d, c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSamplingProbability(t *testing.T) {
	for _, c := range []struct {
		p    float64
		l, m int
		want float64
	}{
		{p: 0.3, l: 10, m: 1, want: 1 - math.Pow(0.7, 10)},
		{p: 0.3, l: 10, m: 2, want: 1 - math.Pow(0.7, 10) - 10*0.3*math.Pow(0.7, 9)},
		{p: 0.01, l: 150, m: 2, want: 1 - math.Pow(0.99, 150) - 150*0.01*math.Pow(0.99, 149)},
		{p: 0.5, l: 3, m: 3, want: 0.125},
		{p: 1e-6, l: 150, m: 2, want: atLeastTwoBig(1e-6, 150)}, // float64's closed form cancels here
		{p: 1e-3, l: 150, m: 2, want: atLeastTwoBig(1e-3, 150)},
		{p: 0.2, l: 7, m: 2, want: atLeastTwoBig(0.2, 7)},
		{p: 0, l: 150, m: 2, want: 0},
		{p: 1, l: 150, m: 2, want: 1},
		{p: 0.5, l: 3, m: 4, want: 0},
		{p: 0.5, l: 3, m: 0, want: 1},
		{p: 0, l: 3, m: 0, want: 1}, // no hits needed: sampled even where no table can collide
	} {
		got := SamplingProbability(c.p, c.l, c.m)
		if math.Abs(got-c.want) > 1e-9*c.want || (c.want == 0 && got != 0) {
			t.Errorf("SamplingProbability(p=%v, L=%d, MinHits=%d) = %.15g, want %.15g", c.p, c.l, c.m, got, c.want)
		}
	}
}

// atLeastTwoBig evaluates 1 - (1-p)^l - l p (1-p)^(l-1) in 256-bit floats,
// where float64 would lose u to cancellation for small p.
func atLeastTwoBig(p float64, l int) float64 {
	const prec = 256
	one := new(big.Float).SetPrec(prec).SetInt64(1)
	bp := new(big.Float).SetPrec(prec).SetFloat64(p)
	q := new(big.Float).SetPrec(prec).Sub(one, bp)
	pow := new(big.Float).SetPrec(prec).SetInt64(1) // (1-p)^(l-1)
	for range l - 1 {
		pow.Mul(pow, q)
	}
	none := new(big.Float).SetPrec(prec).Mul(pow, q)
	once := new(big.Float).SetPrec(prec).Mul(pow, bp)
	once.Mul(once, new(big.Float).SetPrec(prec).SetInt64(int64(l)))
	u := new(big.Float).SetPrec(prec).Sub(one, none)
	u.Sub(u, once)
	f, _ := u.Float64()
	return f
}

// TestMagicPIGCollisionFrequency draws the projections from many seeds and
// checks that a key at angle theta from the query is sampled as often as u
// predicts: SimHash's (1 - theta/pi)^K per table and the binomial tail over L.
func TestMagicPIGCollisionFrequency(t *testing.T) {
	const d, seeds = 8, 3000
	cfg := MagicPIGConfig{K: 3, L: 4, MinHits: 2, Sink: -1, Local: -1}
	theta := 1.0
	q := make([]float32, d)
	q[0] = 1
	key := make([]float32, d) // at angle theta from q; its negation is the other key,
	key[0], key[1] = float32(math.Cos(theta)), float32(math.Sin(theta))
	keys := append(append([]float32(nil), key...), make([]float32, d)...)
	for i := range key { // so the mean is 0 and centering changes nothing
		keys[d+i] = -key[i]
	}
	kv, err := NewKV(1, 1, 2, d, keys, keys)
	if err != nil {
		t.Fatal(err)
	}
	var hits [2]int
	for seed := range uint64(seeds) {
		cfg.Seed = seed
		m := mustMagicPIG(t, d, cfg)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Decode(q, Full); err != nil {
			t.Fatal(err)
		}
		sampled, _ := m.Sampled()
		for _, tk := range sampled[0] {
			hits[tk]++
		}
	}
	ang := math.Acos(float64(key[0]) / norm64(key)) // theta as the float32 key has it
	for i, th := range []float64{ang, math.Pi - ang} {
		u := SamplingProbability(math.Pow(1-th/math.Pi, float64(cfg.K)), cfg.L, cfg.MinHits)
		f := float64(hits[i]) / seeds
		if sigma := math.Sqrt(u * (1 - u) / seeds); math.Abs(f-u) > 4.5*sigma {
			t.Errorf("key at angle %.3f: sampled in %.4f of %d seeds, u = %.4f (4.5 sigma = %.4f)", th, f, seeds, u, 4.5*sigma)
		}
	}
}

// TestMagicPIGSameDirection: a key pointing like the query collides in every
// table, whatever the projections; one pointing against it in none.
func TestMagicPIGSameDirection(t *testing.T) {
	const d = 16
	rng := rand.New(rand.NewPCG(91, 91))
	q := randn(rng, 2*d) // Hq = 2 over one KV head
	var keys []float32
	for h, a := range []float32{2, 3} {
		for _, sign := range []float32{1, -1} {
			for i := range d {
				keys = append(keys, sign*a*q[h*d+i])
			}
		}
	}
	for range 6 { // pairs ±r: the mean stays 0
		r := randn(rng, d)
		keys = append(keys, r...)
		for _, x := range r {
			keys = append(keys, -x)
		}
	}
	n := len(keys) / d
	kv, err := NewKV(1, 1, n, d, keys, randn(rng, n*d))
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(10) {
		m := mustMagicPIG(t, d, MagicPIGConfig{Seed: seed, Sink: -1, Local: -1})
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Decode(q, Full); err != nil {
			t.Fatal(err)
		}
		sampled, _ := m.Sampled()
		for h, pair := range [][2]int32{{0, 1}, {2, 3}} {
			if !slices.Contains(sampled[h], pair[0]) {
				t.Errorf("seed %d head %d: token %d (parallel to q) not sampled: %v", seed, h, pair[0], sampled[h])
			}
			if slices.Contains(sampled[h], pair[1]) {
				t.Errorf("seed %d head %d: token %d (opposite to q) sampled: %v", seed, h, pair[1], sampled[h])
			}
		}
	}
}

// TestMagicPIGApproachesDense: with 1 bit per table and many tables every key
// collides at least twice and u = 1 to within float64, so the estimate is
// dense attention.
func TestMagicPIGApproachesDense(t *testing.T) {
	s := Shape{B: 2, Hq: 4, Hkv: 2, N: (1 << 5) + 11, D: 16}
	q, kv := randomStep(t, s, 93)
	m := mustMagicPIG(t, s.D, MagicPIGConfig{K: 1, L: 400, Sink: -1, Local: -1, Seed: 1})
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	res, err := m.Decode(q, Budget{K: 1})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Dense(q, kv)
	if e, _ := RelL2(res.Out, want); e > 1e-6 {
		t.Errorf("magicpig K=1 L=400: relative L2 error %g against dense, want <= 1e-6", e)
	}
	if d := cmp.Diff(allTokens(s.B*s.Hkv, s.N), res.Selected); d != "" {
		t.Errorf("magicpig K=1 L=400: not every token sampled (-all +got):\n%s", d)
	}
}

// TestMagicPIGEstimator recomputes the estimate of the default configuration
// from its sampled sets: exact windows with weight exp(s), sampled tokens with
// exp(s)/u, self-normalised.
func TestMagicPIGEstimator(t *testing.T) {
	s := Shape{B: 1, Hq: 4, Hkv: 2, N: 300, D: 16}
	rng := rand.New(rand.NewPCG(95, 95))
	q, kv := randomStep(t, s, 95)
	for i := range q {
		q[i] *= 2 // a sharper attention, so that some keys collide
	}
	m := mustMagicPIG(t, s.D, MagicPIGConfig{Seed: 3})
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	k, v := randn(rng, s.B*s.Hkv*s.D), randn(rng, s.B*s.Hkv*s.D)
	if err := m.Append(k, v); err != nil {
		t.Fatal(err)
	}
	if err := kv.Append(k, v); err != nil {
		t.Fatal(err)
	}
	res, err := m.Decode(q, Budget{K: 10})
	if err != nil {
		t.Fatal(err)
	}
	sampled, _ := m.Sampled()
	n, g, total := kv.N, s.Hq/s.Hkv, 0
	for h := range s.Hq {
		gh := h / g
		qh := q[h*s.D : (h+1)*s.D]
		mu := make([]float64, s.D) // the mean of the prefill keys outside the windows
		for tk := 4; tk < 300-64; tk++ {
			for i, x := range kv.Key(0, gh, tk) {
				mu[i] += float64(x) / (300 - 68)
			}
		}
		var z float64
		acc := make([]float64, s.D)
		add := func(tk int32, sampledTok bool) {
			key := kv.Key(0, gh, int(tk))
			w := math.Exp(dot64(qh, key) / 4)
			if sampledTok {
				var dot, kn float64
				for i, x := range key {
					c := float64(x) - mu[i]
					dot += float64(qh[i]) * c
					kn += c * c
				}
				theta := math.Acos(dot / (norm64(qh) * math.Sqrt(kn)))
				w /= SamplingProbability(math.Pow(1-theta/math.Pi, 10), 150, 2)
			}
			z += w
			for i, x := range kv.Value(0, gh, int(tk)) {
				acc[i] += w * float64(x)
			}
		}
		for tk := range int32(4) {
			add(tk, false)
		}
		for tk := int32(n - 64); tk < int32(n); tk++ {
			add(tk, false)
		}
		for _, tk := range sampled[h] {
			if tk < 4 || tk >= int32(n-64) {
				t.Fatalf("head %d: sampled token %d lies in a window", h, tk)
			}
			add(tk, true)
		}
		total += len(sampled[h])
		want := make([]float32, s.D)
		for i := range want {
			want[i] = float32(acc[i] / z)
		}
		if d := cmp.Diff(want, res.Out[h*s.D:(h+1)*s.D], cmpopts.EquateApprox(1e-5, 1e-6)); d != "" {
			t.Errorf("head %d: estimate (-recomputed +got):\n%s", h, d)
		}
	}
	if total == 0 {
		t.Fatalf("no head sampled any token: the estimator went untested")
	}
	for r, row := range res.Selected {
		if !slices.IsSorted(row) || len(slices.Compact(slices.Clone(row))) != len(row) {
			t.Errorf("row %d: not strictly ascending: %v", r, row)
		}
		want := map[int32]bool{}
		for tk := range int32(4) {
			want[tk] = true
		}
		for tk := int32(n - 64); tk < int32(n); tk++ {
			want[tk] = true
		}
		for h := r * g; h < (r+1)*g; h++ {
			for _, tk := range sampled[h] {
				want[tk] = true
			}
		}
		if len(row) != len(want) {
			t.Errorf("row %d: %d tokens, want the %d of windows ∪ sampled sets", r, len(row), len(want))
		}
		for _, tk := range row {
			if !want[tk] {
				t.Errorf("row %d: token %d is neither in a window nor sampled", r, tk)
			}
		}
	}
	// Each head's own set: the windows and its samples, ascending; the
	// union of a group's is its row.
	heads, err := m.HeadSelected()
	if err != nil {
		t.Fatal(err)
	}
	for h, set := range heads {
		want := slices.Concat([]int32{0, 1, 2, 3}, sampled[h])
		for tk := int32(n - 64); tk < int32(n); tk++ {
			want = append(want, tk)
		}
		slices.Sort(want)
		if d := cmp.Diff(want, set); d != "" {
			t.Errorf("head %d: HeadSelected (-windows and samples +got):\n%s", h, d)
		}
	}
	for r, row := range res.Selected {
		union := slices.Concat(heads[r*g : (r+1)*g]...)
		slices.Sort(union)
		if d := cmp.Diff(row, slices.Compact(union)); d != "" {
			t.Errorf("row %d: the union of its heads' sets is not Selected (-Selected +union):\n%s", r, d)
		}
	}
}

// TestMagicPIGFallback: 32-bit tables and 2 hits needed out of 2 tables make
// a collision practically impossible; without windows every head falls back
// to token 0.
func TestMagicPIGFallback(t *testing.T) {
	s := Shape{B: 2, Hq: 4, Hkv: 2, N: 30, D: 16}
	q, kv := randomStep(t, s, 97)
	m := mustMagicPIG(t, s.D, MagicPIGConfig{K: 32, L: 2, MinHits: 2, Sink: -1, Local: -1})
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	res, err := m.Decode(q, Full)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([][]int32{{0}, {0}, {0}, {0}}, res.Selected); d != "" {
		t.Errorf("fallback selection (-want +got):\n%s", d)
	}
	if heads, err := m.HeadSelected(); err != nil || len(heads) != s.B*s.Hq || slices.ContainsFunc(heads, func(h []int32) bool { return !slices.Equal(h, []int32{0}) }) {
		t.Errorf("fallback HeadSelected = %v, %v; want token 0 for each of %d heads", heads, err, s.B*s.Hq)
	}
	for b := range s.B {
		for h := range s.Hq {
			got := res.Out[(b*s.Hq+h)*s.D : (b*s.Hq+h+1)*s.D]
			if d := cmp.Diff(kv.Value(b, h/2, 0), got); d != "" {
				t.Errorf("b=%d head %d: fallback output is not value 0 (-want +got):\n%s", b, h, d)
			}
		}
	}
}

// TestMagicPIGDegenerateAngles: a key equal to its row's mean (norm 0 once
// centred) or a zero query has no angle to the query; MagicPIG takes the
// angle as pi/2 there, so the sampling probability, and the output, stay
// finite. One bit a table makes the zero-bit codes collide often enough
// that such keys are sampled.
func TestMagicPIGDegenerateAngles(t *testing.T) {
	// Keys (1,0), (-1,0), (0,0), (0,2), (0,-2): their mean is (0,0), key 2's.
	keys := []float32{1, 0, -1, 0, 0, 0, 0, 2, 0, -2}
	kv, err := NewKV(1, 1, 5, 2, keys, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range [][]float32{{0.3, 0.7}, {0, 0}} {
		m := mustMagicPIG(t, 2, MagicPIGConfig{K: 1, Sink: -1, Local: -1, Seed: 3})
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		res, err := m.Decode(q, Full)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(res.Selected[0], 2) && q[0] != 0 {
			t.Errorf("q=%v: key 2 (the mean) not sampled, so its angle is not tested: selected %v", q, res.Selected[0])
		}
		for i, x := range res.Out {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Errorf("q=%v: output %d is %v, want finite (selected %v)", q, i, x, res.Selected[0])
			}
		}
	}
}
