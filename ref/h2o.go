package ref

import (
	"cmp"
	"fmt"
	"math"
)

// H2O is the heavy-hitter oracle (Zhang, Sheng, Zhou, Chen, Zheng, Cai, Song,
// Tian, Ré, Barrett, Wang, Chen, "H2O: Heavy-Hitter Oracle for Efficient
// Generative Inference of Large Language Models", NeurIPS 2023,
// arXiv:2306.14048): a few tokens collect most of the attention over a whole
// generation, so the cache keeps those heavy hitters plus a window of recent
// tokens and evicts the rest for good.
//
// State per (batch, KV head) row: an accumulated attention score A[t] for every
// cached token and an evicted flag. One Decode is one step of the history:
//
//  1. Budget. k = budget.Tokens(N) splits into heavy = floor(k/2) heavy
//     hitters and recent = k - heavy recent tokens (the recent window gets the
//     odd token; k = 1 keeps only the newest token).
//  2. Select, with the scores accumulated by the earlier steps only: the last
//     `recent` tokens, then the `heavy` tokens outside that window with the
//     largest A among the tokens not evicted (ties to the smaller index).
//  3. Attend: every head of the group attends exactly over the selection S.
//  4. Accumulate what this step computed: for every query head h of the group
//     and every t in S,
//     A[t] += p_h(t) = softmax over S of q_h·k_t / sqrt(D),
//     i.e. the probabilities over the kept set only (H2O never sees the keys it
//     evicted), summed over the G heads of the group.
//  5. Evict: every cached token not in S is marked evicted.
//
// Tokens appended later start with A = 0 and not evicted. Eviction is
// permanent, as in the paper: an evicted token never competes again. (With a
// constant budget this changes nothing by itself: an evicted token's A is
// frozen at or below the A of every heavy hitter that beat it, and theirs only
// grow; TestH2OEvictionInvisibleAtConstantBudget checks it. It matters when the
// budget changes between calls.) The one exception is
// a budget that grows between calls so that fewer than `heavy` tokens outside
// the recent window survive: the shortfall is filled from the evicted tokens in
// the same order (largest A first), which un-evicts them, so that every row
// still attends to exactly k tokens. The recent window is positional and is
// always kept.
//
// Prefill: the paper accumulates the attention of the prompt's own queries
// during prefill. Prefill here receives only the cache, so A starts at zero for
// every prompt token, and the first Decode's heavy hitters are the first
// `heavy` tokens (ties to the smaller index): the first step behaves like
// StreamingLLM with k/2 sinks, and the heavy hitters only emerge over the
// following steps. AccumulatePrompt adds the prompt queries' causal attention
// to A, as the paper does, when the caller has them.
type H2O struct {
	kv     *KV
	hist   *H2OHistory // A and the evicted flags, steps 2, 4 and 5
	scores [][]float64 // scores: [B*Hkv] rows of [N], the ranking of the last Decode
}

var _ Method = (*H2O)(nil)
var _ Scorer = (*H2O)(nil)

// NewH2O returns the heavy-hitter oracle.
func NewH2O() *H2O { return &H2O{} }

// Name implements Method.
func (m *H2O) Name() string { return "h2o" }

// Prefill implements Method: it copies kv; every token starts with A = 0.
func (m *H2O) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("h2o: prefill: %w", err)
	}
	m.kv = kv.Clone()
	m.hist = NewH2OHistory(len(m.kv.K), m.kv.N)
	m.scores = nil
	return nil
}

// AccumulatePrompt adds to A the causal attention of the prompt's queries,
// q: [B][Hq][N][D] (post-RoPE, the positions of the prefilled cache): for every
// position i and query head h,
//
//	A[t] += softmax_{t <= i}(q_{h,i}·k_t / sqrt(D))   for t <= i,
//
// summed over the group's heads. Call it after Prefill and before any Decode
// or Append.
func (m *H2O) AccumulatePrompt(q []float32) error {
	kv := m.kv
	if kv == nil {
		return fmt.Errorf("h2o: accumulate before prefill")
	}
	if kv.N == 0 || len(q)%(kv.B*kv.N*kv.D) != 0 {
		return fmt.Errorf("h2o: prompt queries: len %d is not B*Hq*N*D for B=%d N=%d D=%d", len(q), kv.B, kv.N, kv.D)
	}
	hq := len(q) / (kv.B * kv.N * kv.D)
	if err := kv.Shape(hq).Validate(); err != nil {
		return fmt.Errorf("h2o: prompt queries: %w", err)
	}
	g, n, d := hq/kv.Hkv, kv.N, kv.D
	scale := 1 / math.Sqrt(float64(d))
	ParallelFor(kv.B*kv.Hkv, func(r int) {
		b, gh := r/kv.Hkv, r%kv.Hkv
		s := make([]float64, n)
		for h := gh * g; h < (gh+1)*g; h++ {
			for i := range n {
				off := ((b*hq+h)*n + i) * d
				mx := math.Inf(-1)
				for t := 0; t <= i; t++ {
					s[t] = dot64(q[off:off+d], kv.Key(b, gh, t)) * scale
					mx = max(mx, s[t])
				}
				var z float64
				for t := 0; t <= i; t++ {
					s[t] = math.Exp(s[t] - mx)
					z += s[t]
				}
				for t := 0; t <= i; t++ {
					m.hist.acc[r][t] += s[t] / z
				}
			}
		}
	})
	return nil
}

// Append implements Method: the new token starts with A = 0, not evicted.
func (m *H2O) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("h2o: append before prefill")
	}
	if err := m.kv.Append(k, v); err != nil {
		return fmt.Errorf("h2o: %w", err)
	}
	m.hist.Append()
	return nil
}

// Decode implements Method: one step of H2O's history (see the type).
func (m *H2O) Decode(q []float32, budget Budget) (*Result, error) {
	hq, err := headCount(q, m.kv)
	if err != nil {
		return nil, fmt.Errorf("h2o: %w", err)
	}
	k, err := budget.Tokens(m.kv.N)
	if err != nil {
		return nil, fmt.Errorf("h2o: %w", err)
	}
	kv := m.kv
	g, d := hq/kv.Hkv, kv.D
	var selected [][]int32
	selected, m.scores = m.hist.Select(k) // 1. budget, 2. select
	out, err := Sparse(q, kv, selected)   // 3. attend
	if err != nil {
		return nil, fmt.Errorf("h2o: %w", err)
	}
	scale := 1 / math.Sqrt(float64(d))
	ParallelFor(kv.B*kv.Hkv, func(r int) { // 4. accumulate, 5. evict
		b, gh := r/kv.Hkv, r%kv.Hkv
		sel := selected[r]
		x := make([]float64, g*len(sel)) // x: [G][k], the logits of the kept tokens
		for h := range g {
			qh := q[(b*hq+gh*g+h)*d : (b*hq+gh*g+h+1)*d]
			for i, t := range sel {
				x[h*len(sel)+i] = dot64(qh, kv.Key(b, gh, int(t))) * scale
			}
		}
		m.hist.Accumulate(r, sel, x)
	})
	return &Result{Out: out, Selected: selected}, nil
}

// Scores implements Scorer: A of the tokens not evicted, and A/(1+A) - 1 (in
// [-1, 0), below every survivor but in the same order) for the evicted ones,
// as they stood when the last Decode selected.
func (m *H2O) Scores() ([][]float64, error) {
	if m.scores == nil {
		return nil, fmt.Errorf("h2o: no scores before the first Decode")
	}
	return m.scores, nil
}

// H2OHistory is H2O's history of one cache (see H2O): per (batch, KV head)
// row, the accumulated attention A[t] of every cached token and its evicted
// flag. H2O keeps one next to its cache; package vk's H2O keeps one on the
// host and feeds it the logits its GPU computes, so that the selection and
// the bookkeeping rules live here only.
type H2OHistory struct {
	acc     [][]float64 // acc: [rows] of [N], A
	evicted [][]bool    // evicted: [rows] of [N]
}

// NewH2OHistory returns the history of rows rows of n cached tokens: A = 0
// and nothing evicted.
func NewH2OHistory(rows, n int) *H2OHistory {
	h := &H2OHistory{acc: make([][]float64, rows), evicted: make([][]bool, rows)}
	for r := range h.acc {
		h.acc[r] = make([]float64, n)
		h.evicted[r] = make([]bool, n)
	}
	return h
}

// Append adds one token to every row: A = 0, not evicted.
func (h *H2OHistory) Append() {
	for r := range h.acc {
		h.acc[r] = append(h.acc[r], 0)
		h.evicted[r] = append(h.evicted[r], false)
	}
}

// Select is steps 1 and 2 of H2O with budget k (1 <= k <= N): per row, the
// last recent = k - floor(k/2) tokens, then the others in the order
// (survivors first, larger A, smaller index) until k, ascending. scores is
// the ranking it used, as H2O.Scores reports it: A for the survivors and
// A/(1+A) - 1 for the evicted tokens. It does not change the history.
func (h *H2OHistory) Select(k int) (selected [][]int32, scores [][]float64) {
	heavy := k / 2
	recent := k - heavy
	selected = make([][]int32, len(h.acc))
	scores = make([][]float64, len(h.acc))
	for r := range selected {
		acc, ev := h.acc[r], h.evicted[r]
		n := len(acc)
		selected[r] = selectBy(n, k, Windows{Recent: recent}, func(a, b int32) int {
			return cmp.Or(
				cmp.Compare(b2i(ev[a]), b2i(ev[b])), // survivors first
				cmp.Compare(acc[b], acc[a]),         // then larger A
				cmp.Compare(a, b))                   // then the smaller index
		})
		scores[r] = make([]float64, n)
		for t := range n {
			scores[r][t] = acc[t]
			if ev[t] { // below every survivor (A >= 0), still increasing in A
				scores[r][t] = acc[t]/(1+acc[t]) - 1
			}
		}
	}
	return selected, scores
}

// Accumulate is steps 4 and 5 of H2O for row r, which attended over the
// ascending tokens sel: given the logits x: [G][len(sel)] of the row's G
// query heads, x[g][i] = q_g·k_{sel[i]} / sqrt(D),
//
//	A[sel[i]] += sum_g softmax_i(x[g])[i]
//
// (in float64), then every token of the row not in sel is evicted and every
// token in sel is not. It touches row r only, so that rows may be
// accumulated concurrently.
func (h *H2OHistory) Accumulate(r int, sel []int32, x []float64) {
	k := len(sel)
	p := make([]float64, k) // p: [k]
	for g := range len(x) / max(k, 1) {
		copy(p, x[g*k:(g+1)*k])
		mx := math.Inf(-1)
		for _, v := range p {
			mx = max(mx, v)
		}
		var z float64
		for i := range p {
			p[i] = math.Exp(p[i] - mx)
			z += p[i]
		}
		for i, t := range sel {
			h.acc[r][t] += p[i] / z
		}
	}
	for t := range h.evicted[r] {
		h.evicted[r][t] = true
	}
	for _, t := range sel {
		h.evicted[r][t] = false
	}
}

// b2i is 1 for true, 0 for false.
func b2i(x bool) int {
	if x {
		return 1
	}
	return 0
}
