package ref

import (
	"fmt"
	"math"
)

// dot64 returns sum_i a[i]*b[i], accumulated in float64.
func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// checkQuery reports whether q: [B][Hq][D] fits the cache kv.
func checkQuery(q []float32, kv *KV, hq int) error {
	if kv == nil {
		return fmt.Errorf("decode before prefill: the method has no cache")
	}
	s := kv.Shape(hq)
	if err := s.Validate(); err != nil {
		return err
	}
	if len(q) != s.B*s.Hq*s.D {
		return fmt.Errorf("q: len %d, want B*Hq*D = %d*%d*%d = %d", len(q), s.B, s.Hq, s.D, s.B*s.Hq*s.D)
	}
	return nil
}

// headCount returns Hq for a query tensor of len(q) elements over kv.
func headCount(q []float32, kv *KV) (int, error) {
	if kv == nil {
		return 0, fmt.Errorf("decode before prefill: the method has no cache")
	}
	if err := kv.Validate(); err != nil {
		return 0, err
	}
	if kv.B*kv.D == 0 || len(q)%(kv.B*kv.D) != 0 {
		return 0, fmt.Errorf("q: len %d is not B*Hq*D for B=%d D=%d", len(q), kv.B, kv.D)
	}
	hq := len(q) / (kv.B * kv.D)
	return hq, checkQuery(q, kv, hq)
}

// attendHead computes the attention of one query head over a set of tokens of
// one (batch, KV head) row and writes it to out: [D].
//
//	s_t   = q·K_t / sqrt(D)                        for t in tokens
//	p_t   = exp(s_t - max_u s_u) / sum_u exp(s_u - max_u s_u)
//	out   = sum_t p_t V_t
//
// tokens nil means every cached token. The max subtraction keeps the softmax
// finite for any input.
func attendHead(q []float32, kv *KV, b, h int, tokens []int32, out []float32) {
	scale := 1 / math.Sqrt(float64(kv.D))
	n := kv.N
	if tokens != nil {
		n = len(tokens)
	}
	token := func(i int) int {
		if tokens == nil {
			return i
		}
		return int(tokens[i])
	}
	s := make([]float64, n) // s: [n] scaled scores
	m := math.Inf(-1)
	for i := range n {
		s[i] = dot64(q, kv.Key(b, h, token(i))) * scale
		m = max(m, s[i])
	}
	var z float64
	acc := make([]float64, kv.D) // acc: [D]
	for i := range n {
		p := math.Exp(s[i] - m)
		z += p
		v := kv.Value(b, h, token(i))
		for c := range acc {
			acc[c] += p * float64(v[c])
		}
	}
	for c := range acc {
		out[c] = float32(acc[c] / z)
	}
}

// Dense computes dense decode attention with GQA: every query head h of q:
// [B][Hq][D] attends over all N tokens of KV head h/G. It returns out: [B][Hq][D].
func Dense(q []float32, kv *KV) ([]float32, error) {
	return Sparse(q, kv, nil)
}

// Sparse computes decode attention in which every query head of the group of KV
// head h attends only to the tokens selected[b*Hkv+h] (nil selected: every token,
// which is Dense). q: [B][Hq][D]; returns out: [B][Hq][D].
//
// Sparse attention over a set S equals dense attention with every token outside
// S masked to -inf: the test of every top-k method against dense rests on this.
func Sparse(q []float32, kv *KV, selected [][]int32) ([]float32, error) {
	hq, err := CheckSparse(q, kv, selected)
	if err != nil {
		return nil, err
	}
	g, d := hq/kv.Hkv, kv.D
	out := make([]float32, kv.B*hq*d) // out: [B][Hq][D]
	ParallelFor(kv.B*hq, func(bh int) {
		b, h := bh/hq, bh%hq
		var tokens []int32
		if selected != nil {
			tokens = selected[b*kv.Hkv+h/g]
		}
		attendHead(q[bh*d:(bh+1)*d], kv, b, h/g, tokens, out[bh*d:(bh+1)*d])
	})
	return out, nil
}

// CheckSparse checks the inputs of Sparse and returns Hq: q is [B][Hq][D]
// with Hq a multiple of Hkv, and selected is nil or B*Hkv non-empty rows of
// tokens in [0, N). q's values are not checked: a NaN or infinite query gives
// a NaN output (hata attend checks its input tensors before any method). Other evaluations of the same attention (the
// acceptance suite's float32 one) check their inputs with it.
func CheckSparse(q []float32, kv *KV, selected [][]int32) (int, error) {
	hq, err := headCount(q, kv)
	if err != nil {
		return 0, err
	}
	if selected != nil && len(selected) != kv.B*kv.Hkv {
		return 0, fmt.Errorf("selected: %d rows, want B*Hkv = %d", len(selected), kv.B*kv.Hkv)
	}
	for r, row := range selected {
		if len(row) == 0 {
			return 0, fmt.Errorf("selected: row %d is empty", r)
		}
		for _, t := range row {
			if t < 0 || int(t) >= kv.N {
				return 0, fmt.Errorf("selected: row %d has token %d outside [0, %d)", r, t, kv.N)
			}
		}
	}
	return hq, nil
}

// Probabilities returns the dense softmax attention weights of every query head:
// p: [B][Hq][N] (float64), p[b][h][t] = softmax_t(q_{b,h}·K_{b,h/G,t} / sqrt(D)).
// The oracle top-k, H2O and the attention-mass metric are built on it.
func Probabilities(q []float32, kv *KV) ([]float64, error) {
	hq, err := headCount(q, kv)
	if err != nil {
		return nil, err
	}
	g, d, n := hq/kv.Hkv, kv.D, kv.N
	scale := 1 / math.Sqrt(float64(d))
	p := make([]float64, kv.B*hq*n) // p: [B][Hq][N]
	ParallelFor(kv.B*hq, func(bh int) {
		b, h := bh/hq, bh%hq
		row := p[bh*n : (bh+1)*n]
		m := math.Inf(-1)
		for t := range n {
			row[t] = dot64(q[bh*d:(bh+1)*d], kv.Key(b, h/g, t)) * scale
			m = max(m, row[t])
		}
		var z float64
		for t := range n {
			row[t] = math.Exp(row[t] - m)
			z += row[t]
		}
		for t := range n {
			row[t] /= z
		}
	})
	return p, nil
}

// GroupProbabilities sums Probabilities over the G query heads of each KV head:
// returns [B][Hkv][N]. The oracle top-k ranks tokens by it.
func GroupProbabilities(q []float32, kv *KV) ([]float64, error) {
	p, err := Probabilities(q, kv)
	if err != nil {
		return nil, err
	}
	hq := len(q) / (kv.B * kv.D)
	g, n := hq/kv.Hkv, kv.N
	s := make([]float64, kv.B*kv.Hkv*n) // s: [B][Hkv][N]
	for b := range kv.B {
		for h := range hq {
			dst := s[(b*kv.Hkv+h/g)*n : (b*kv.Hkv+h/g+1)*n]
			src := p[(b*hq+h)*n : (b*hq+h+1)*n]
			for t := range n {
				dst[t] += src[t]
			}
		}
	}
	return s, nil
}

// Prefill computes dense causal attention over a whole prompt: query position i
// attends to key positions 0..i. q: [B][Hq][N][D], k and v: [B][Hkv][N][D];
// returns out: [B][Hq][N][D].
func Prefill(q []float32, b, hq, hkv, n, d int, k, v []float32) ([]float32, error) {
	s := Shape{B: b, Hq: hq, Hkv: hkv, N: n, D: d}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if len(q) != b*hq*n*d {
		return nil, fmt.Errorf("q: len %d, want B*Hq*N*D = %d", len(q), b*hq*n*d)
	}
	kv, err := NewKV(b, hkv, n, d, k, v)
	if err != nil {
		return nil, err
	}
	g := hq / hkv
	out := make([]float32, b*hq*n*d) // out: [B][Hq][N][D]
	causal := make([]int32, n)       // causal[:i+1] are the keys position i sees
	for i := range causal {
		causal[i] = int32(i)
	}
	ParallelFor(b*hq, func(bh int) {
		bb, h := bh/hq, bh%hq
		for i := range n {
			off := (bh*n + i) * d
			attendHead(q[off:off+d], kv, bb, h/g, causal[:i+1], out[off:off+d])
		}
	})
	return out, nil
}
