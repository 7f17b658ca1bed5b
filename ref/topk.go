package ref

import "fmt"

// TopK is exact top-k attention, the oracle every approximate method is held
// against: each token's score is its softmax attention weight summed over the G
// query heads of the group,
//
//	score[b][g][t] = sum_{h in group g} softmax_t(q_{b,h}·K_{b,g,t} / sqrt(D)),
//
// the k largest are selected (ties to the smaller index), and the heads attend
// to them exactly. It reads every key, so it saves nothing; it shows what a
// perfect selector achieves at a budget.
type TopK struct {
	kv     *KV
	scores [][]float64 // scores: [B*Hkv] rows of [N], of the last Decode
}

var _ Method = (*TopK)(nil)
var _ Scorer = (*TopK)(nil)

// NewTopK returns the exact top-k oracle.
func NewTopK() *TopK { return &TopK{} }

// Name implements Method.
func (m *TopK) Name() string { return "topk" }

// Prefill implements Method.
func (m *TopK) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("topk: prefill: %w", err)
	}
	m.kv = kv.Clone()
	return nil
}

// Append implements Method.
func (m *TopK) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("topk: append before prefill")
	}
	return m.kv.Append(k, v)
}

// Decode implements Method.
func (m *TopK) Decode(q []float32, budget Budget) (*Result, error) {
	selected, scores, err := oracle(q, m.kv, budget)
	if err != nil {
		return nil, fmt.Errorf("topk: %w", err)
	}
	m.scores = make([][]float64, m.kv.B*m.kv.Hkv)
	for r := range m.scores {
		m.scores[r] = scores[r*m.kv.N : (r+1)*m.kv.N]
	}
	out, err := Sparse(q, m.kv, selected)
	if err != nil {
		return nil, fmt.Errorf("topk: %w", err)
	}
	return &Result{Out: out, Selected: selected}, nil
}

// OracleSelection returns the exact top-k token sets of every (batch, KV head)
// row: [B*Hkv] rows of ascending indices. q: [B][Hq][D].
func OracleSelection(q []float32, kv *KV, budget Budget) ([][]int32, error) {
	selected, _, err := oracle(q, kv, budget)
	return selected, err
}

// oracle returns the exact top-k sets and the scores they were chosen by,
// s: [B][Hkv][N].
func oracle(q []float32, kv *KV, budget Budget) (selected [][]int32, s []float64, err error) {
	if kv == nil {
		return nil, nil, fmt.Errorf("decode before prefill: the method has no cache")
	}
	k, err := budget.Tokens(kv.N)
	if err != nil {
		return nil, nil, err
	}
	s, err = GroupProbabilities(q, kv) // s: [B][Hkv][N]
	if err != nil {
		return nil, nil, err
	}
	selected = make([][]int32, kv.B*kv.Hkv)
	for r := range selected {
		selected[r] = SelectLargest(s[r*kv.N:(r+1)*kv.N], k, Windows{})
	}
	return selected, s, nil
}

// Scores implements Scorer.
func (m *TopK) Scores() ([][]float64, error) {
	if m.scores == nil {
		return nil, fmt.Errorf("topk: no scores before the first Decode")
	}
	return m.scores, nil
}
