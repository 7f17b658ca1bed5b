package ref

import "fmt"

// Streaming is StreamingLLM (Xiao, Tian, Chen, Han, Lewis, "Efficient Streaming
// Language Models with Attention Sinks", ICLR 2024, arXiv:2309.17453): every
// head attends to the first Sink tokens — the attention sinks, which soak up
// the softmax mass a head has nowhere else to put — and to the most recent
// tokens, which fill the rest of the budget:
//
//	S = {0, ..., s-1} ∪ {N-(k-s), ..., N-1},   k = budget.Tokens(N), s = min(Sink, k)
//
// The selection depends on positions only (no key is read to make it), so it
// is the same for every (batch, KV head) row and every query. When k <= Sink
// the sinks alone fill the budget. The paper evicts the middle of the cache
// for good; since the window only slides forward, recomputing S at every step
// gives the same kept set.
type Streaming struct {
	Sink int // attention sinks kept, s >= 0

	kv *KV
}

var _ Method = (*Streaming)(nil)

// NewStreaming returns StreamingLLM with sink attention sinks: 0 means the
// paper's 4, a negative value means none (a pure sliding window).
func NewStreaming(sink int) *Streaming {
	switch {
	case sink == 0:
		sink = 4
	case sink < 0:
		sink = 0
	}
	return &Streaming{Sink: sink}
}

// Name implements Method.
func (m *Streaming) Name() string { return "streaming" }

// Prefill implements Method.
func (m *Streaming) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("streaming: prefill: %w", err)
	}
	m.kv = kv.Clone()
	return nil
}

// Append implements Method.
func (m *Streaming) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("streaming: append before prefill")
	}
	return m.kv.Append(k, v)
}

// Decode implements Method.
func (m *Streaming) Decode(q []float32, budget Budget) (*Result, error) {
	if _, err := headCount(q, m.kv); err != nil {
		return nil, fmt.Errorf("streaming: %w", err)
	}
	k, err := budget.Tokens(m.kv.N)
	if err != nil {
		return nil, fmt.Errorf("streaming: %w", err)
	}
	// The windows' own rule: sinks first, then the most recent tokens up to k.
	keep := Windows{Sink: m.Sink, Recent: k}.forced(m.kv.N, k)
	selected := make([][]int32, m.kv.B*m.kv.Hkv)
	for r := range selected {
		selected[r] = append([]int32(nil), keep...)
	}
	out, err := Sparse(q, m.kv, selected)
	if err != nil {
		return nil, fmt.Errorf("streaming: %w", err)
	}
	return &Result{Out: out, Selected: selected}, nil
}
