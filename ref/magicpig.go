package ref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// MagicPIG is LSH sampling attention (Chen, Sadhukhan, Ye, Zhou, Zhang, Nolte,
// Tian, Douze, Bottou, Jia, Chen, "MagicPIG: LSH Sampling for Efficient LLM
// Generation", ICLR 2025, arXiv:2410.16179). Instead of the k best keys it
// samples keys with a probability that grows with their similarity to the
// query, and corrects for the sampling by importance weights, so that the
// attention output is estimated rather than truncated.
//
// Hashing (SimHash, K bits x L tables). One Gaussian projection R: [D][L*K],
// drawn from Seed and shared by every KV head, as in the authors' code. The
// code of x in table l is the K bits sign(x·R[:, l*K+j]) > 0, j < K. Keys are
// centered before hashing (the authors' code does this): c_t = k_t - mu, with
// mu the mean of the prefill keys of the row that are not in the exact windows
// (all prefill keys when the windows cover them), fixed for the sequence. The
// query is hashed as is.
//
// Sampling. Token t is sampled for query head h when its code equals the
// query's in at least MinHits of the L tables (the authors' code uses 2; 1 is
// the textbook "collides in some table"). For the angle theta_t between q_h
// and c_t, SimHash gives a collision in one table with probability
// p_t = (1 - theta_t/pi)^K, so the probability that t is sampled is the
// binomial tail
//
//	u_t = P[Binomial(L, p_t) >= MinHits]
//	    = 1 - (1-p_t)^L - L p_t (1-p_t)^(L-1)       for MinHits = 2,
//
// which is the sampling probability the authors' code weights by. A zero c_t or q_h has no angle; it is given
// theta = pi/2.
//
// Estimate (the paper's self-normalised importance sampling). With
// s_t = q_h·k_t / sqrt(D) on the original keys, W the exact windows and C_h the
// sampled tokens outside them,
//
//	w_t = exp(s_t)          for t in W    (always read: u = 1)
//	w_t = exp(s_t) / u_t    for t in C_h
//	out_h = sum_t w_t v_t / sum_t w_t
//
// computed in log space (s_t - log u_t) with max subtraction, which is what the
// authors' code computes (they merge the exact part and the sampled part by
// their log-sum-exps). The authors add 1e-4 to u_t; this reference divides by
// u_t itself (floored at the smallest positive float64).
//
// Windows. The authors keep Sink = 4 attention sinks and Local = 64 local
// tokens exactly, on the GPU, and sample only the rest; this reference does
// the same, with the windows recomputed at every step over the current N (the
// authors keep every generated token exactly, a growing local window, and hash
// only the prompt; here appended keys are hashed as they arrive and leave the
// local window as it slides).
//
// Budget. The number of tokens read varies with the query; the budget is
// ignored (it is only validated). The paper tunes K and L (10 and 150) for
// about 2-3% of the cache; Result.Selected, per (batch, KV head) row, is the
// union over the group's heads of W and C_h, ascending, and its size is the
// cost to report. If for some head W and C_h are both empty, that head
// attends to token 0 alone (as if it were a sink), so the output is always
// defined; token 0 is then in the row's Selected.
type MagicPIG struct {
	K, L    int // bits per table, tables
	MinHits int // tables a key must collide in to be sampled
	Sink    int // first tokens kept exactly
	Local   int // last tokens kept exactly

	proj    []float32   // proj: [D][L*K], the SimHash projections
	kv      *KV         // the cache
	mu      [][]float64 // mu: [B*Hkv] rows of [D], the centering mean
	kcodes  [][]uint32  // kcodes: [B*Hkv] rows, each [N][L], the centered keys' codes
	knorm   [][]float64 // knorm: [B*Hkv] rows of [N], ||c_t||
	sampled [][]int32   // sampled: [B*Hq] of the last Decode, each head's C_h
}

var _ Method = (*MagicPIG)(nil)

// MagicPIGConfig are MagicPIG's parameters; the zero value of each field means
// the paper's default.
type MagicPIGConfig struct {
	K       int    // bits per table, 1..32; default 10
	L       int    // tables; default 150
	MinHits int    // tables a key must collide in, 1..L; default 2 (the authors' code)
	Sink    int    // attention sinks kept exactly; default 4, negative: none
	Local   int    // recent tokens kept exactly; default 64, negative: none
	Seed    uint64 // seed of the Gaussian projections
}

// NewMagicPIG returns MagicPIG for a cache of head dimension d.
func NewMagicPIG(d int, c MagicPIGConfig) (*MagicPIG, error) {
	def := func(x, dflt int) int {
		switch {
		case x == 0:
			return dflt
		case x < 0:
			return 0
		}
		return x
	}
	m := &MagicPIG{K: def(c.K, 10), L: def(c.L, 150), MinHits: def(c.MinHits, 2), Sink: def(c.Sink, 4), Local: def(c.Local, 64)}
	switch {
	case d < 1:
		return nil, fmt.Errorf("magicpig: D=%d, want >= 1", d)
	case c.K < 0 || m.K > 32:
		return nil, fmt.Errorf("magicpig: K=%d bits per table, want 1..32", c.K)
	case c.L < 0:
		return nil, fmt.Errorf("magicpig: L=%d tables, want >= 1", c.L)
	case c.MinHits < 0 || m.MinHits > m.L:
		return nil, fmt.Errorf("magicpig: MinHits=%d, want 1..L=%d", c.MinHits, m.L)
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x4d41474943504947)) // "MAGICPIG"
	m.proj = make([]float32, d*m.L*m.K)
	for i := range m.proj {
		m.proj[i] = float32(rng.NormFloat64())
	}
	return m, nil
}

// Name implements Method.
func (m *MagicPIG) Name() string { return "magicpig" }

// hash appends the L table codes of x: [D] (float64, already centered) to
// codes. Column c = l*K+j of the projection gives bit j of table l.
func (m *MagicPIG) hash(x []float64, codes []uint32) []uint32 {
	lk := m.L * m.K          // Prefill checked that proj is [len(x)][L*K]
	p := make([]float64, lk) // p: [L*K], x·R[:, c], summed over i in order
	for i, xi := range x {
		for c, r := range m.proj[i*lk : (i+1)*lk] {
			p[c] += xi * float64(r)
		}
	}
	for l := range m.L {
		var code uint32
		for j := range m.K {
			if p[l*m.K+j] > 0 {
				code |= 1 << j
			}
		}
		codes = append(codes, code)
	}
	return codes
}

// windows returns the exact windows among n tokens, ascending.
func (m *MagicPIG) windows(n int) []int32 {
	return Windows{Sink: m.Sink, Recent: m.Local}.forced(n, n)
}

// Prefill implements Method: it copies kv, fixes each row's centering mean and
// hashes every cached key.
func (m *MagicPIG) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("magicpig: prefill: %w", err)
	}
	if len(m.proj) != kv.D*m.L*m.K {
		return fmt.Errorf("magicpig: projections are for D=%d, the cache has D=%d", len(m.proj)/(m.L*m.K), kv.D)
	}
	m.kv = kv.Clone()
	d, n := kv.D, kv.N
	win := make([]bool, n)
	for _, t := range m.windows(n) {
		win[t] = true
	}
	rows := len(m.kv.K)
	m.mu, m.kcodes, m.knorm = make([][]float64, rows), make([][]uint32, rows), make([][]float64, rows)
	ParallelFor(rows, func(r int) {
		m.mu[r] = make([]float64, d)
		cnt := 0
		for pass := 0; pass < 2 && cnt == 0; pass++ { // pass 1: every key, if the windows hold them all
			for t := range n {
				if pass == 0 && win[t] {
					continue
				}
				for i, x := range m.kv.K[r][t*d : (t+1)*d] {
					m.mu[r][i] += float64(x)
				}
				cnt++
			}
		}
		for i := range m.mu[r] {
			m.mu[r][i] /= float64(max(cnt, 1))
		}
		for t := range n {
			m.addKey(r, m.kv.K[r][t*d:(t+1)*d])
		}
	})
	m.sampled = nil
	return nil
}

// addKey centers key: [D] with row r's mean, and appends its codes and norm.
func (m *MagicPIG) addKey(r int, key []float32) {
	c := make([]float64, len(key))
	var nn float64
	for i, x := range key {
		c[i] = float64(x) - m.mu[r][i]
		nn += c[i] * c[i]
	}
	m.kcodes[r] = m.hash(c, m.kcodes[r])
	m.knorm[r] = append(m.knorm[r], math.Sqrt(nn))
}

// Append implements Method: the new key is centered with the prefill mean and
// hashed as it enters the cache.
func (m *MagicPIG) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("magicpig: append before prefill")
	}
	if err := m.kv.Append(k, v); err != nil {
		return fmt.Errorf("magicpig: %w", err)
	}
	d := m.kv.D
	for r := range m.kcodes {
		m.addKey(r, k[r*d:(r+1)*d])
	}
	return nil
}

// SamplingProbability returns u = P[Binomial(l, p) >= minHits], the
// probability that a key colliding with the query in one table with
// probability p collides in at least minHits of l independent tables. The sum
// is taken over the smaller side of the distribution (the lower tail
// subtracted from 1 when the mean l*p reaches minHits, the upper tail summed
// directly otherwise), so small u keep their relative precision.
func SamplingProbability(p float64, l, minHits int) float64 {
	switch {
	case minHits <= 0:
		return 1
	case minHits > l || p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	term := func(j int) float64 { // C(l, j) p^j (1-p)^(l-j)
		a, _ := math.Lgamma(float64(l + 1))
		b, _ := math.Lgamma(float64(j + 1))
		c, _ := math.Lgamma(float64(l - j + 1))
		return math.Exp(a - b - c + float64(j)*lp + float64(l-j)*lq)
	}
	if float64(l)*p >= float64(minHits) {
		var head float64
		for j := range minHits {
			head += term(j)
		}
		return max(0, 1-head)
	}
	var tail float64
	for j := minHits; j <= l; j++ {
		t := term(j)
		tail += t
		if t < 1e-17*tail { // past the mode the terms only shrink
			break
		}
	}
	return min(1, tail)
}

// Decode implements Method. The budget is validated and otherwise ignored (see
// the type).
func (m *MagicPIG) Decode(q []float32, budget Budget) (*Result, error) {
	hq, err := headCount(q, m.kv)
	if err != nil {
		return nil, fmt.Errorf("magicpig: %w", err)
	}
	if _, err := budget.Tokens(m.kv.N); err != nil {
		return nil, fmt.Errorf("magicpig: %w", err)
	}
	kv := m.kv
	g, n, d := hq/kv.Hkv, kv.N, kv.D
	win := m.windows(n)
	inWin := make([]bool, n)
	for _, t := range win {
		inWin[t] = true
	}
	out := make([]float32, kv.B*hq*d) // out: [B][Hq][D]
	m.sampled = make([][]int32, kv.B*hq)
	ParallelFor(kv.B*hq, func(bh int) {
		b, h := bh/hq, bh%hq
		r := b*kv.Hkv + h/g
		qh := q[bh*d : (bh+1)*d]
		q64 := make([]float64, d)
		for i, x := range qh {
			q64[i] = float64(x)
		}
		qcode := m.hash(q64, make([]uint32, 0, m.L))
		qnorm := norm64(qh)
		// Exact tokens carry log-weight s_t, sampled ones s_t - log u_t.
		tokens := append([]int32(nil), win...)
		var sampled []int32
		for t := range n {
			if inWin[t] {
				continue
			}
			hits := 0
			for l, c := range m.kcodes[r][t*m.L : (t+1)*m.L] {
				if c == qcode[l] {
					hits++
				}
			}
			if hits >= m.MinHits {
				sampled = append(sampled, int32(t))
			}
		}
		m.sampled[bh] = sampled
		tokens = append(tokens, sampled...)
		logw := make([]float64, len(tokens)) // logw: log-weights of tokens
		for i, t := range tokens {
			k := kv.Key(b, h/g, int(t))
			logw[i] = dot64(qh, k) / math.Sqrt(float64(d))
			if !inWin[t] {
				logw[i] -= math.Log(max(m.probability(r, int(t), qh, qnorm), math.SmallestNonzeroFloat64))
			}
		}
		if len(tokens) == 0 { // nothing exact, nothing sampled: token 0 alone
			tokens, logw = []int32{0}, []float64{0}
		}
		weightedAttention(kv, b, h/g, tokens, logw, out[bh*d:(bh+1)*d])
	})
	heads, err := m.HeadSelected()
	if err != nil {
		return nil, err
	}
	selected := make([][]int32, kv.B*kv.Hkv) // each row: the union of its heads' sets
	for r := range selected {
		b, gh := r/kv.Hkv, r%kv.Hkv
		in := make([]bool, n)
		for _, set := range heads[b*hq+gh*g : b*hq+(gh+1)*g] {
			for _, t := range set {
				in[t] = true
			}
		}
		for t := range n {
			if in[t] {
				selected[r] = append(selected[r], int32(t))
			}
		}
	}
	return &Result{Out: out, Selected: selected}, nil
}

// probability returns u_t for key t of row r and the query qh of norm qnorm.
func (m *MagicPIG) probability(r, t int, qh []float32, qnorm float64) float64 {
	d := len(qh)
	key := m.kv.K[r][t*d : (t+1)*d]
	theta := math.Pi / 2
	if kn := m.knorm[r][t]; kn > 0 && qnorm > 0 {
		var dot float64
		for i, x := range qh {
			dot += float64(x) * (float64(key[i]) - m.mu[r][i])
		}
		theta = math.Acos(max(-1, min(1, dot/(qnorm*kn))))
	}
	p := math.Pow(1-theta/math.Pi, float64(m.K))
	return SamplingProbability(p, m.L, m.MinHits)
}

// weightedAttention writes to out: [D] the attention of one head over tokens
// of row (b, h) with log-weights logw:
//
//	out = sum_i exp(logw_i - max) v_i / sum_i exp(logw_i - max)
func weightedAttention(kv *KV, b, h int, tokens []int32, logw []float64, out []float32) {
	mx := slices.Max(logw)
	var z float64
	acc := make([]float64, kv.D) // acc: [D]
	for i, t := range tokens {
		w := math.Exp(logw[i] - mx)
		z += w
		for c, x := range kv.Value(b, h, int(t)) {
			acc[c] += w * float64(x)
		}
	}
	for c := range acc {
		out[c] = float32(acc[c] / z)
	}
}

// HeadSelected implements HeadSelector: each query head's tokens of the last
// Decode, its row's windows and its own samples (token 0 alone where both are
// empty), [B*Hq] rows ascending.
func (m *MagicPIG) HeadSelected() ([][]int32, error) {
	if m.sampled == nil {
		return nil, fmt.Errorf("magicpig: nothing attended before the first Decode")
	}
	win := m.windows(m.kv.N)
	heads := make([][]int32, len(m.sampled))
	for bh, s := range m.sampled {
		if len(win) == 0 && len(s) == 0 {
			heads[bh] = []int32{0} // the head's fallback (Decode)
			continue
		}
		heads[bh] = append(append([]int32(nil), win...), s...) // disjoint: samples exclude the windows
		slices.Sort(heads[bh])
	}
	return heads, nil
}

// Sampled returns each query head's sampled tokens C_h of the last Decode
// (windows excluded), [B*Hq] rows ascending: the per-head detail behind the
// union in Result.Selected.
func (m *MagicPIG) Sampled() ([][]int32, error) {
	if m.sampled == nil {
		return nil, fmt.Errorf("magicpig: nothing sampled before the first Decode")
	}
	return m.sampled, nil
}
