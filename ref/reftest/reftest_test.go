package reftest

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestRefPassesItsOwnSuite runs the suite with ref as the implementation: the
// suite must hold on the specification itself.
func TestRefPassesItsOwnSuite(t *testing.T) {
	Run(t, ref.New, Config{Names: available(t), Dims: []int{64}})
}

// available returns the methods ref.New can build now.
func available(t *testing.T) []string {
	var names []string
	for _, n := range ref.MethodNames {
		if _, err := ref.New(n, 1, 64, ref.Options{W: DyadicHashWeights(rand.New(rand.NewPCG(1, 1)), 1, 64, 32)}); err == nil && n != "magicpig" {
			names = append(names, n)
		}
	}
	return names
}

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

// TestSuiteCatchesErrors runs the suite's checks on deliberately wrong
// results; each must be reported.
func TestSuiteCatchesErrors(t *testing.T) {
	s := ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 40, D: 64}
	rng := rand.New(rand.NewPCG(3, 3))
	kv := DyadicKV(rng, s, false)
	q := Dyadic(rng, s.B*s.Hq*s.D)
	w := DyadicHashWeights(rng, 1, 64, 64)
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
