package ref

import (
	"fmt"
	"slices"
)

// Quest is query-aware page selection (Tang, Zhao, Zhu, Xiao, Kasikci, Han,
// "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference", ICML
// 2024, arXiv:2406.10774). The cache of each (batch, KV head) row is cut into
// pages of P = PageSize consecutive tokens, page j holding tokens
// [jP, min((j+1)P, N)) (the last page may be partial). Each page keeps the
// channel-wise bounds of its keys,
//
//	lo_j[i] = min_{t in page j} k_t[i],    hi_j[i] = max_{t in page j} k_t[i],
//
// and query head h scores it by the largest q·k any key inside the bounds
// could reach:
//
//	U_h(j) = sum_i max(q_h[i] lo_j[i], q_h[i] hi_j[i])  >=  q_h·k_t   for every t in page j.
//
// For GQA the page score of KV head g is the sum over its group,
// S_g(j) = sum_{h in group g} U_h(j), which bounds sum_h q_h·k_t (as the Quest
// baseline in the MagicPIG authors' code does; the Quest paper itself runs
// multi-head models). Pages are taken in decreasing S
// (ties to the smaller page) until k = budget.Tokens(N) tokens are chosen. When
// the next page holds more tokens than are still needed, only its first
// (lowest-index) tokens are taken, so that every row attends to exactly k
// tokens: a choice of this project (Quest counts its budget in whole pages),
// which reads no key to make it. Every head of the group attends exactly to
// the chosen tokens.
//
// The bounds are maintained incrementally: Append widens the last page's bounds
// with the new key, or opens a new page when the last one is full.
type Quest struct {
	PageSize int // P, tokens per page

	kv     *KV
	lo, hi [][]float32 // lo, hi: [B*Hkv] rows, each [pages][D]: the channel-wise key bounds
	scores [][]float64 // scores: [B*Hkv] rows of [N]: each token's page score S, of the last Decode
}

var _ Method = (*Quest)(nil)
var _ Scorer = (*Quest)(nil)

// NewQuest returns Quest with pages of pageSize tokens (0 means the paper's 32).
func NewQuest(pageSize int) (*Quest, error) {
	switch {
	case pageSize < 0:
		return nil, fmt.Errorf("quest: page size %d, want >= 1 (0 for the default 32)", pageSize)
	case pageSize == 0:
		pageSize = 32
	}
	return &Quest{PageSize: pageSize}, nil
}

// Name implements Method.
func (m *Quest) Name() string { return "quest" }

// Prefill implements Method: it copies kv and builds the bounds of every page.
func (m *Quest) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("quest: prefill: %w", err)
	}
	m.kv = kv.Clone()
	m.lo = make([][]float32, len(m.kv.K))
	m.hi = make([][]float32, len(m.kv.K))
	for r := range m.lo {
		for t := range m.kv.N {
			m.widen(r, t, m.kv.K[r][t*kv.D:(t+1)*kv.D])
		}
	}
	m.scores = nil
	return nil
}

// widen adds key t of row r, key: [D], to the bounds of its page.
func (m *Quest) widen(r, t int, key []float32) {
	d := len(key)
	if t%m.PageSize == 0 { // the first token of a new page
		m.lo[r] = append(m.lo[r], key...)
		m.hi[r] = append(m.hi[r], key...)
		return
	}
	j := t / m.PageSize
	lo, hi := m.lo[r][j*d:(j+1)*d], m.hi[r][j*d:(j+1)*d]
	for i, x := range key {
		lo[i] = min(lo[i], x)
		hi[i] = max(hi[i], x)
	}
}

// Append implements Method.
func (m *Quest) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("quest: append before prefill")
	}
	t := m.kv.N
	if err := m.kv.Append(k, v); err != nil {
		return fmt.Errorf("quest: %w", err)
	}
	d := m.kv.D
	for r := range m.lo {
		m.widen(r, t, k[r*d:(r+1)*d])
	}
	return nil
}

// pages returns the number of pages of n tokens: ceil(n / P).
func (m *Quest) pages(n int) int { return (n + m.PageSize - 1) / m.PageSize }

// pageScores returns U: [B][Hq][pages], the bound of every page for every query
// head, q: [B][Hq][D]:
//
//	U[b][h][j] = sum_i max(q[i] lo_j[i], q[i] hi_j[i])   (float64)
func (m *Quest) pageScores(q []float32, hq int) []float64 {
	kv := m.kv
	g, d, np := hq/kv.Hkv, kv.D, m.pages(kv.N)
	u := make([]float64, kv.B*hq*np) // u: [B][Hq][pages]
	ParallelFor(kv.B*hq, func(bh int) {
		r := bh/hq*kv.Hkv + bh%hq/g
		qh := q[bh*d : (bh+1)*d]
		for j := range np {
			lo, hi := m.lo[r][j*d:(j+1)*d], m.hi[r][j*d:(j+1)*d]
			var s float64
			for i := range d {
				s += max(float64(qh[i])*float64(lo[i]), float64(qh[i])*float64(hi[i]))
			}
			u[bh*np+j] = s
		}
	})
	return u
}

// Decode implements Method.
func (m *Quest) Decode(q []float32, budget Budget) (*Result, error) {
	hq, err := headCount(q, m.kv)
	if err != nil {
		return nil, fmt.Errorf("quest: %w", err)
	}
	k, err := budget.Tokens(m.kv.N)
	if err != nil {
		return nil, fmt.Errorf("quest: %w", err)
	}
	kv := m.kv
	g, n, np := hq/kv.Hkv, kv.N, m.pages(kv.N)
	u := m.pageScores(q, hq)
	m.scores = make([][]float64, kv.B*kv.Hkv)
	selected := make([][]int32, kv.B*kv.Hkv)
	for r := range selected {
		b, gh := r/kv.Hkv, r%kv.Hkv
		s := make([]float64, np) // s: [pages], S summed over the group in head order
		for h := gh * g; h < (gh+1)*g; h++ {
			for j, x := range u[(b*hq+h)*np : (b*hq+h+1)*np] {
				s[j] += x
			}
		}
		m.scores[r] = make([]float64, n)
		for t := range n {
			m.scores[r][t] = s[t/m.PageSize]
		}
		order := make([]int32, np) // pages best first: larger S, then the smaller page
		for j := range order {
			order[j] = int32(j)
		}
		slices.SortStableFunc(order, func(a, b int32) int { return byLarger(s[a], s[b]) })
		sel := make([]int32, 0, k)
		for _, j := range order {
			for t := int(j) * m.PageSize; t < min(int(j+1)*m.PageSize, n) && len(sel) < k; t++ {
				sel = append(sel, int32(t))
			}
			if len(sel) == k {
				break
			}
		}
		slices.Sort(sel)
		selected[r] = sel
	}
	out, err := Sparse(q, kv, selected)
	if err != nil {
		return nil, fmt.Errorf("quest: %w", err)
	}
	return &Result{Out: out, Selected: selected}, nil
}

// byLarger orders a before b when a is larger; NaN ranks last, as in
// SelectLargest. Equal values compare 0 (a stable sort then keeps index order).
func byLarger(a, b float64) int {
	switch {
	case a != a && b != b:
		return 0
	case a != a:
		return 1
	case b != b:
		return -1
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// Scores implements Scorer: each token carries its page's score S; tokens of
// the page cut short tie with each other and are taken in index order.
func (m *Quest) Scores() ([][]float64, error) {
	if m.scores == nil {
		return nil, fmt.Errorf("quest: no scores before the first Decode")
	}
	return m.scores, nil
}
