package ref

import "fmt"

// DenseMethod is full attention: every query head attends to every cached
// token of its KV head. It ignores the budget. It is the baseline every top-k
// method is measured against, and each of them must equal it at k = N.
type DenseMethod struct {
	kv *KV
}

var _ Method = (*DenseMethod)(nil)

// NewDense returns dense attention as a Method.
func NewDense() *DenseMethod { return &DenseMethod{} }

// Name implements Method.
func (m *DenseMethod) Name() string { return "dense" }

// Prefill implements Method.
func (m *DenseMethod) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("dense: prefill: %w", err)
	}
	m.kv = kv.Clone()
	return nil
}

// Append implements Method.
func (m *DenseMethod) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("dense: append before prefill")
	}
	return m.kv.Append(k, v)
}

// Decode implements Method; the budget is not used.
func (m *DenseMethod) Decode(q []float32, _ Budget) (*Result, error) {
	out, err := Dense(q, m.kv)
	if err != nil {
		return nil, fmt.Errorf("dense: %w", err)
	}
	return &Result{Out: out}, nil
}
