package model

import (
	"context"
	"testing"

	"github.com/hata-go/hata/ref"
)

// positionsMethod is dense attention that records the cache size of every
// Decode: the position of the token decoded.
type positionsMethod struct {
	ref.Method
	n    int
	seen *[]int
}

func (p *positionsMethod) Prefill(kv *ref.KV) error { p.n = kv.N; return p.Method.Prefill(kv) }

func (p *positionsMethod) Append(k, v []float32) error { p.n++; return p.Method.Append(k, v) }

func (p *positionsMethod) Decode(q []float32, b ref.Budget) (*ref.Result, error) {
	*p.seen = append(*p.seen, p.n-1)
	return p.Method.Decode(q, b)
}

// TestAgreementPositions checks that Agreement decodes the method at the
// positions of dense's greedy continuation: the last prompt token, then
// each generated token once, and for an empty prompt (BOS alone, which the
// prefill reads) no second BOS: the sequence the method sees must be the one
// dense generated.
func TestAgreementPositions(t *testing.T) {
	m := testModel(t)
	const tokens = 4
	for _, c := range []struct {
		prompt string
		want   []int // positions decoded in layer 0
	}{
		{"", []int{1, 2, 3}},
		{"ab", []int{2, 3, 4, 5}},
	} {
		var seen []int
		spec := MethodSpec{Name: "dense-recorded", Factory: func(l int) (ref.Method, error) {
			if l != 0 {
				return ref.NewDense(), nil
			}
			return &positionsMethod{Method: ref.NewDense(), seen: &seen}, nil
		}}
		rows, err := m.Agreement(context.Background(), AgreementConfig{Prompts: []string{c.prompt}, Tokens: tokens,
			Methods: []MethodSpec{spec}, Budgets: []ref.Budget{ref.Full}, DenseLayers: -1})
		if err != nil {
			t.Fatal(err)
		}
		if !equalInts(seen, c.want) {
			t.Errorf("prompt %q: the method decoded positions %v, want %v", c.prompt, seen, c.want)
		}
		if rows[0].Agreement != 1 || rows[0].FirstDivergence != tokens {
			t.Errorf("prompt %q: dense against dense: %+v, want agreement 1", c.prompt, rows[0])
		}
	}
}
