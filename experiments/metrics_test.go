package experiments

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestScoreHeadSets checks that score takes the attention mass from each
// query head's own tokens where a method attends per head (ref.HeadSelector:
// MagicPIG), and the recall and the fraction read from its row's union.
func TestScoreHeadSets(t *testing.T) {
	// One row of 3 tokens, two query heads in its group. Dense weights:
	// head 0 (0.5, 0.25, 0.25), head 1 (0.1, 0.1, 0.8); summed over the
	// group (0.6, 0.35, 1.05), so the oracle's two tokens are {0, 2}.
	st := &evalStep{
		kv:    &ref.KV{B: 1, Hkv: 1, N: 3, D: 1},
		shape: ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 3, D: 1},
		dense: []float32{1, 1},
		p:     []float64{0.5, 0.25, 0.25, 0.1, 0.1, 0.8},
		gp:    []float64{0.6, 0.35, 1.05},
	}
	res := &ref.Result{Out: []float32{1, 1}, Selected: [][]int32{{0, 2}}}
	budget := ref.Budget{K: 2}
	union, err := score(st, res, nil, budget)
	if err != nil {
		t.Fatal(err)
	}
	perHead, err := score(st, res, [][]int32{{0, 2}, {2}}, budget)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(union.Mass-0.825) > 1e-15 || math.Abs(perHead.Mass-0.775) > 1e-15 {
		t.Errorf("mass: %v of the row's union, %v of each head's own set; want 0.825 and 0.775", union.Mass, perHead.Mass)
	}
	if union.Recall != 1 || perHead.Recall != 1 || perHead.Read != union.Read {
		t.Errorf("recall %v and %v, read %v and %v: want the row's (1, and the same read)", union.Recall, perHead.Recall, union.Read, perHead.Read)
	}
}

// TestEvaluateMagicPIGPerHead checks that evaluate scores MagicPIG's mass
// from each query head's own set (its HeadSelected), not from its rows'
// unions: on a small synthetic layer the two differ.
func TestEvaluateMagicPIGPerHead(t *testing.T) {
	in := defaultInput()
	in.Samples = 2
	in.Synth.Hq, in.Synth.Hkv, in.Synth.D, in.Synth.N, in.Synth.Rank = 8, 2, 32, 1024, 16
	if err := in.validate(); err != nil {
		t.Fatal(err)
	}
	ins := newInputs(in)
	build := func() (ref.Method, error) { return ref.New("magicpig", 2, 32, ref.Options{Seed: 1}) }
	got, err := evaluate(context.Background(), ins, newWorker(CPU{}, 2), "magicpig", "magicpig", build, ref.Budget{Ratio: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	var perHead, union float64
	for i := range in.Samples {
		st, err := ins.step(i)
		if err != nil {
			t.Fatal(err)
		}
		m, err := build()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Prefill(st.kv); err != nil {
			t.Fatal(err)
		}
		res, err := m.Decode(st.q, ref.Budget{Ratio: 0.05})
		if err != nil {
			t.Fatal(err)
		}
		heads, err := m.(ref.HeadSelector).HeadSelected()
		if err != nil {
			t.Fatal(err)
		}
		s := st.shape
		a, err1 := ref.MassRecall(st.p, heads, s.B, s.Hq, s.Hkv, s.N)
		b, err2 := ref.MassRecall(st.p, res.Selected, s.B, s.Hq, s.Hkv, s.N)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		perHead += a / float64(in.Samples)
		union += b / float64(in.Samples)
	}
	if !(union > perHead) {
		t.Fatalf("the rows' unions hold mass %v, each head's own set %v: the test cannot tell them apart", union, perHead)
	}
	if math.Abs(got.Mass-perHead) > 1e-12 {
		t.Errorf("evaluate's mass %v, want each head's own %v (the unions': %v)", got.Mass, perHead, union)
	}
}

func TestBudgetsLabel(t *testing.T) {
	for _, c := range []struct {
		bs   []float64
		want string
	}{
		{[]float64{0.0156}, "1.56% of N"}, {[]float64{1}, "the whole cache"}, {[]float64{2}, "2 tokens"},
		{[]float64{512}, "512 tokens"}, {[]float64{0.01, 0.02}, "see legend"},
	} {
		if got := budgetsLabel(c.bs); got != c.want {
			t.Errorf("budgetsLabel(%v) = %q, want %q", c.bs, got, c.want)
		}
	}
}
