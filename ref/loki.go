package ref

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// Loki is low-rank-key top-k attention (Singhania, Singh, He, Feizi, Bhatele,
// "Loki: Low-rank Keys for Efficient Sparse Attention", NeurIPS 2024,
// arXiv:2406.02542). Keys of a head live close to a low-dimensional subspace,
// so their inner products with a query are well approximated in the leading
// principal components. Per KV head g, P_g: [D][D] is the PCA basis of the
// keys, principal directions as columns in decreasing variance. Then
//
//	q' = q P_g,  k'_t = k_t P_g                      (a rotation: q'·k'_t = q·k_t)
//	a[h][t]  = q'_h[:c] · k'_t[:c] / sqrt(D)         (c = Channels leading channels)
//	s[g][t]  = sum_{h in group g} softmax_t(a[h][t]) (HATA.md's Loki baseline)
//
// the k = budget.Tokens(N) largest s are selected (ties to the smaller index)
// and every head of the group attends exactly, with its original q, K and V,
// over them. The scale stays 1/sqrt(D), not 1/sqrt(c) (HATA.md).
// The paper runs multi-head models, one head per score; for GQA the softmax is
// taken per query head and summed over the group, like the exact top-k oracle.
//
// The basis. Loki fits P offline, on keys of a calibration set, per layer and
// head, and finds pre-rotary keys give the better basis; it then rotates the
// post-rotary q and K of the cache. Basis supplies such a basis ([Hkv][D][D],
// see FitPCA and FitLokiBasis to make one from traces). When Basis is nil,
// Prefill fits it on the cache it is given — post-RoPE keys in normal use —
// pooling the keys of every batch row of a KV head (FitLokiBasis); the basis is
// then fixed for the rest of the sequence (appended keys are rotated, not
// refitted). Exactness does not depend on the basis: with c = D the scores are
// the exact q·k up to rounding, and attention always reads the original K, V.
//
// Stored state per (batch, KV head): the first c rotated channels of every
// cached key, [N][c] in float64, extended on Append.
type Loki struct {
	Channels int       // c, leading PCA channels scored (1 <= c <= D)
	Basis    []float64 // [Hkv][D][D], columns the principal directions; nil: fit at Prefill

	basis  []float64   // basis: [Hkv][D][D], the one in use
	kv     *KV         // the cache
	rk     [][]float64 // rk: [B*Hkv] rows, each [N][c]: the rotated keys' leading channels
	scores [][]float64 // scores: [B*Hkv] rows of [N], s of the last Decode
}

var _ Method = (*Loki)(nil)
var _ Scorer = (*Loki)(nil)

// NewLoki returns Loki for a cache of hkv KV heads of dimension d, scoring the
// first channels PCA channels (0 means the paper's 32; capped at d). basis is
// nil (fit at Prefill) or [hkv][d][d] with orthonormal columns.
func NewLoki(hkv, d, channels int, basis []float64) (*Loki, error) {
	if hkv < 1 || d < 1 {
		return nil, fmt.Errorf("loki: Hkv=%d D=%d, want >= 1", hkv, d)
	}
	switch {
	case channels < 0:
		return nil, fmt.Errorf("loki: %d channels, want >= 1 (0 for the default 32)", channels)
	case channels == 0:
		channels = 32
	}
	channels = min(channels, d)
	if basis != nil {
		if len(basis) != hkv*d*d {
			return nil, fmt.Errorf("loki: basis has len %d, want Hkv*D*D = %d*%d*%d = %d", len(basis), hkv, d, d, hkv*d*d)
		}
		for h := range hkv {
			if err := checkOrthonormal(basis[h*d*d:(h+1)*d*d], d, 1e-4); err != nil {
				return nil, fmt.Errorf("loki: basis of KV head %d: %w", h, err)
			}
		}
	}
	return &Loki{Channels: channels, Basis: basis}, nil
}

// Name implements Method.
func (m *Loki) Name() string { return "loki" }

// Prefill implements Method: it copies kv, fits the basis if none was given, and
// rotates every cached key.
func (m *Loki) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("loki: prefill: %w", err)
	}
	m.basis = m.Basis
	if m.basis == nil {
		b, err := FitLokiBasis(kv)
		if err != nil {
			return fmt.Errorf("loki: %w", err)
		}
		m.basis = b
	} else if len(m.basis) != kv.Hkv*kv.D*kv.D {
		return fmt.Errorf("loki: basis has len %d, the cache needs Hkv*D*D = %d*%d*%d", len(m.basis), kv.Hkv, kv.D, kv.D)
	}
	m.kv = kv.Clone()
	m.rk = make([][]float64, len(m.kv.K))
	ParallelFor(len(m.rk), func(r int) {
		m.rk[r] = make([]float64, 0, m.kv.N*m.Channels)
		for t := range m.kv.N {
			m.rk[r] = rotate(m.basis, r%m.kv.Hkv, m.Channels, m.kv.K[r][t*kv.D:(t+1)*kv.D], m.rk[r])
		}
	})
	m.scores = nil
	return nil
}

// rotate appends the first c channels of x P_h to dst: x'_j = sum_i x_i
// P_h[i][j], basis: [Hkv][D][D].
func rotate(basis []float64, h, c int, x []float32, dst []float64) []float64 {
	d := len(x)
	p := basis[h*d*d : (h+1)*d*d] // p: [D][D]
	for j := range c {
		var s float64
		for i := range d {
			s += float64(x[i]) * p[i*d+j]
		}
		dst = append(dst, s)
	}
	return dst
}

// Append implements Method: the new key is rotated as it enters the cache.
func (m *Loki) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("loki: append before prefill")
	}
	if err := m.kv.Append(k, v); err != nil {
		return fmt.Errorf("loki: %w", err)
	}
	d := m.kv.D
	for r := range m.rk {
		m.rk[r] = rotate(m.basis, r%m.kv.Hkv, m.Channels, k[r*d:(r+1)*d], m.rk[r])
	}
	return nil
}

// Decode implements Method.
func (m *Loki) Decode(q []float32, budget Budget) (*Result, error) {
	if _, err := headCount(q, m.kv); err != nil {
		return nil, fmt.Errorf("loki: %w", err)
	}
	k, err := budget.Tokens(m.kv.N)
	if err != nil {
		return nil, fmt.Errorf("loki: %w", err)
	}
	kv := m.kv
	m.scores = LokiScores(q, kv, m.basis, m.Channels, m.rk)
	selected := make([][]int32, kv.B*kv.Hkv)
	for r := range selected {
		selected[r] = SelectLargest(m.scores[r], k, Windows{})
	}
	out, err := Sparse(q, kv, selected)
	if err != nil {
		return nil, fmt.Errorf("loki: %w", err)
	}
	return &Result{Out: out, Selected: selected}, nil
}

// LokiScores returns Loki's scores s: [B*Hkv][N] (the type comment's) of the
// query heads q: [B][Hq][D] against rotated keys rk: [B*Hkv] rows of [N][c],
// the first c channels of each cached key of kv rotated by basis: [Hkv][D][D]
// (q is rotated here by the same basis). Loki.Decode scores its own rotated
// keys with it; a GPU that stores them in lower precision can be held to the
// same arithmetic over its own.
func LokiScores(q []float32, kv *KV, basis []float64, c int, rk [][]float64) [][]float64 {
	hq := len(q) / (kv.B * kv.D)
	g, n, d := hq/kv.Hkv, kv.N, kv.D
	scale := 1 / math.Sqrt(float64(d))
	p := make([]float64, kv.B*hq*n) // p: [B][Hq][N], per-head softmax of the approximate scores
	ParallelFor(kv.B*hq, func(bh int) {
		b, h := bh/hq, bh%hq
		r := b*kv.Hkv + h/g
		qr := rotate(basis, h/g, c, q[bh*d:(bh+1)*d], make([]float64, 0, c)) // qr: [c]
		row := p[bh*n : (bh+1)*n]
		mx := math.Inf(-1)
		for t := range n {
			kr := rk[r][t*c : (t+1)*c]
			var s float64
			for j := range c {
				s += qr[j] * kr[j]
			}
			row[t] = s * scale
			mx = max(mx, row[t])
		}
		var z float64
		for t := range n {
			row[t] = math.Exp(row[t] - mx)
			z += row[t]
		}
		for t := range n {
			row[t] /= z
		}
	})
	scores := make([][]float64, kv.B*kv.Hkv)
	for r := range scores {
		b, gh := r/kv.Hkv, r%kv.Hkv
		s := make([]float64, n) // s: [N], summed over the group's heads in head order
		for h := gh * g; h < (gh+1)*g; h++ {
			for t, x := range p[(b*hq+h)*n : (b*hq+h+1)*n] {
				s[t] += x
			}
		}
		scores[r] = s
	}
	return scores
}

// Scores implements Scorer: the group-summed approximate probabilities s.
func (m *Loki) Scores() ([][]float64, error) {
	if m.scores == nil {
		return nil, fmt.Errorf("loki: no scores before the first Decode")
	}
	return m.scores, nil
}

// FitLokiBasis fits one PCA basis per KV head on the keys of kv, pooling the N
// keys of all B batch rows of the head (B*N samples): [Hkv][D][D], columns the
// principal directions (see FitPCA). A cache without keys (N = 0) gives the
// identity basis. Pass a cache of pre-RoPE keys to fit the basis the Loki paper
// prefers.
func FitLokiBasis(kv *KV) ([]float64, error) {
	if err := kv.Validate(); err != nil {
		return nil, err
	}
	d := kv.D
	basis := make([]float64, kv.Hkv*d*d) // basis: [Hkv][D][D]
	for h := range kv.Hkv {
		var keys [][]float32
		for b := range kv.B {
			for t := range kv.N {
				keys = append(keys, kv.Key(b, h, t))
			}
		}
		if len(keys) == 0 {
			for i := range d {
				basis[h*d*d+i*d+i] = 1
			}
			continue
		}
		p, err := FitPCA(keys)
		if err != nil {
			return nil, fmt.Errorf("PCA of KV head %d: %w", h, err)
		}
		copy(basis[h*d*d:], p)
	}
	return basis, nil
}

// FitPCA returns the principal component basis of n samples keys, each [D]:
// P: [D][D] row-major whose column j is the j-th eigenvector of the sample
// covariance
//
//	C = 1/n sum_t (x_t - mu)(x_t - mu)^T,   mu = 1/n sum_t x_t
//
// in decreasing order of eigenvalue (the variance along it). The mean is
// removed only to fit; Loki rotates the raw vectors, x' = x P, so that
// q'·k' = q·k. To make the basis reproducible the sign of each column is fixed
// so that its entry of largest magnitude (the first such, on a tie) is
// positive, and equal eigenvalues keep the order gonum's EigenSym returns them
// in (ascending before the reversal), which is deterministic; within a
// repeated eigenvalue any orthonormal basis is a valid PCA, and gonum's is the
// one used. The covariance is accumulated in float64.
func FitPCA(keys [][]float32) ([]float64, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("fit PCA: no samples")
	}
	d := len(keys[0])
	if d == 0 {
		return nil, fmt.Errorf("fit PCA: samples of dimension 0")
	}
	mu := make([]float64, d) // mu: [D]
	for t, x := range keys {
		if len(x) != d {
			return nil, fmt.Errorf("fit PCA: sample %d has dimension %d, sample 0 has %d", t, len(x), d)
		}
		for i, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("fit PCA: sample %d channel %d is %v", t, i, v)
			}
			mu[i] += float64(v)
		}
	}
	n := float64(len(keys))
	for i := range mu {
		mu[i] /= n
	}
	cov := make([]float64, d*d) // cov: [D][D], upper triangle filled
	xc := make([]float64, d)
	for _, x := range keys {
		for i := range d {
			xc[i] = float64(x[i]) - mu[i]
		}
		for i := range d {
			for j := i; j < d; j++ {
				cov[i*d+j] += xc[i] * xc[j]
			}
		}
	}
	for i := range cov {
		cov[i] /= n
	}
	var eig mat.EigenSym
	if !eig.Factorize(mat.NewSymDense(d, cov), true) {
		return nil, fmt.Errorf("fit PCA: the eigendecomposition of the %dx%d covariance did not converge", d, d)
	}
	values := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, d) // columns of vecs in decreasing eigenvalue
	for j := range order {
		order[j] = j
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(values[b], values[a]) })
	p := make([]float64, d*d) // p: [D][D], column j the j-th principal direction
	for j, src := range order {
		big, sign := 0.0, 1.0
		for i := range d {
			if v := vecs.At(i, src); math.Abs(v) > big {
				big, sign = math.Abs(v), math.Copysign(1, v)
			}
		}
		for i := range d {
			p[i*d+j] = sign * vecs.At(i, src)
		}
	}
	return p, nil
}

// checkOrthonormal reports whether the columns of p: [D][D] are orthonormal
// within tol: |P^T P - I| <= tol entrywise.
func checkOrthonormal(p []float64, d int, tol float64) error {
	for a := range d {
		for b := a; b < d; b++ {
			var s float64
			for i := range d {
				s += p[i*d+a] * p[i*d+b]
			}
			want := 0.0
			if a == b {
				want = 1
			}
			if !(math.Abs(s-want) <= tol) {
				return fmt.Errorf("columns %d and %d have inner product %g, want %g (orthonormal within %g)", a, b, s, want, tol)
			}
		}
	}
	return nil
}
