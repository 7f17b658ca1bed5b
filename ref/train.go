package ref

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Learning the hash (HATA.md, "Learning the hash"; the paper's Sec. 3.2).
//
// Training data come from one prompt's prefill trace of one layer: a query
// position m is drawn, each query head of a KV head's group scores the keys
// 0..m by their raw post-RoPE dot products, the best tenth are labelled with
// decreasing positive weights and every other key with -1. A projection W:
// [D][Rbit] is then fitted by full-batch SGD with momentum on a relaxed,
// differentiable version of the codes.

// TrainPairs is the training set of one KV head: the distinct vectors the pairs
// refer to, and the labelled (query, key) pairs as indices into them. Sharing
// vectors is what makes training affordable: one query position of one head
// yields m+1 pairs but only m+2 distinct vectors, and the keys are shared by the
// G query heads of the group, so each step projects every vector once.
type TrainPairs struct {
	D     int
	X     []float32 // X: [U][D], the distinct queries and keys
	Pairs []TrainPair
}

// TrainPair is one labelled pair: X[Q] is a query, X[K] a key, S its label
// (a positive weight for a key among the query's best, -1 otherwise).
type TrainPair struct {
	Q, K int32
	S    float64
}

// Vectors returns U, the number of distinct vectors.
func (p *TrainPairs) Vectors() int { return len(p.X) / p.D }

// Append adds the vectors and pairs of o (of the same D) to p, re-indexing o's
// pairs: the way to pool the samples of several prompts.
func (p *TrainPairs) Append(o *TrainPairs) error {
	if o.D != p.D {
		return fmt.Errorf("train pairs: append D=%d to D=%d", o.D, p.D)
	}
	off := int32(p.Vectors())
	if int64(off)+int64(o.Vectors()) > math.MaxInt32 {
		return fmt.Errorf("train pairs: more than %d vectors", math.MaxInt32)
	}
	p.X = append(p.X, o.X...)
	for _, pr := range o.Pairs {
		p.Pairs = append(p.Pairs, TrainPair{Q: pr.Q + off, K: pr.K + off, S: pr.S})
	}
	return nil
}

// validate checks the indices and labels of p.
func (p *TrainPairs) validate() error {
	if p.D < 1 || len(p.X)%p.D != 0 {
		return fmt.Errorf("train pairs: len(X)=%d is not a multiple of D=%d", len(p.X), p.D)
	}
	if len(p.Pairs) == 0 {
		return fmt.Errorf("train pairs: no pairs")
	}
	positive := false
	for _, pr := range p.Pairs {
		positive = positive || pr.S > 0
	}
	if !positive {
		// Samples labels floor(0.1*m) keys positive: none below m = 10.
		return fmt.Errorf("train pairs: no pair is labelled positive (every key -1), so the loss has nothing to pull together: the query positions are too early (below 10 with Samples' labels; use sequences of 20 tokens or more)")
	}
	u := int32(p.Vectors())
	for i, pr := range p.Pairs {
		if pr.Q < 0 || pr.Q >= u || pr.K < 0 || pr.K >= u {
			return fmt.Errorf("train pairs: pair %d indexes vectors %d, %d of %d", i, pr.Q, pr.K, u)
		}
		if math.IsNaN(pr.S) || math.IsInf(pr.S, 0) {
			return fmt.Errorf("train pairs: pair %d has label %v", i, pr.S)
		}
	}
	for i, x := range p.X {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("train pairs: vector %d, entry %d is %v", i/p.D, i%p.D, x)
		}
	}
	return nil
}

// Labelling constants of Samples (HATA.md): the best floor(TopFraction*m) keys
// are positives, weighted from TopWeight down to 1.
const (
	TopFraction = 0.1
	TopWeight   = 20.0
)

// Samples draws the training pairs of KV head kvHead from one layer's trace of
// one prompt: q: [Hq][N][D] and k: [Hkv][N][D], post-RoPE, positions 0..N-1
// (s.B must be 1). For each of positions query positions, drawn independently
// and uniformly from [N/2, N) as
//
//	m = floor(N/2) + rng.IntN(N - floor(N/2)),
//
// and for each query head h of the group (h/G = kvHead), the keys 0..m are
// ranked by the raw score q[h][m]·k[kvHead][i] (ties to the smaller index) and
// labelled
//
//	s_i = 20 - 19*r/(P-1)  for the key of rank r = 0..P-1, P = floor(0.1*m)
//	                        (torch.linspace(20, 1, P); s = 20 when P = 1)
//	s_i = -1                for every other key,
//
// giving G*(m+1) pairs per position. HATA.md takes P = floor(0.1*m); the
// authors' build_dataset takes int(0.1*(m+1)) over the same m+1 keys and draws
// one position per prompt (positions = 1), with m up to N inclusive.
func Samples(q, k []float32, s Shape, kvHead, positions int, rng *rand.Rand) (*TrainPairs, error) {
	if positions < 1 {
		return nil, fmt.Errorf("samples: %d query positions, want >= 1", positions)
	}
	if s.N < 1 {
		return nil, fmt.Errorf("samples: N=%d, want >= 1", s.N)
	}
	ms := make([]int, positions)
	for i := range ms {
		ms[i] = s.N/2 + rng.IntN(s.N-s.N/2)
	}
	return SamplesAt(q, k, s, kvHead, ms)
}

// SamplesAt is Samples at the given query positions ms (each in [0, N)),
// for example the positions of a prompt that predict an answer found earlier
// in it.
func SamplesAt(q, k []float32, s Shape, kvHead int, ms []int) (*TrainPairs, error) {
	s.B = max(s.B, 1)
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("samples: %w", err)
	}
	if s.B != 1 {
		return nil, fmt.Errorf("samples: batch B=%d, want one prompt", s.B)
	}
	n, d, g := s.N, s.D, s.Group()
	if len(q) != s.Hq*n*d || len(k) != s.Hkv*n*d {
		return nil, fmt.Errorf("samples: len(q)=%d len(k)=%d, want Hq*N*D=%d and Hkv*N*D=%d (%v)", len(q), len(k), s.Hq*n*d, s.Hkv*n*d, s)
	}
	if kvHead < 0 || kvHead >= s.Hkv {
		return nil, fmt.Errorf("samples: KV head %d of %d", kvHead, s.Hkv)
	}
	if len(ms) < 1 {
		return nil, fmt.Errorf("samples: no query positions")
	}
	for _, m := range ms {
		if m < 0 || m >= n {
			return nil, fmt.Errorf("samples: query position %d, want 0 <= m < N=%d", m, n)
		}
	}
	p := &TrainPairs{D: d}
	keyIdx := make([]int32, n) // keyIdx[i]: index of key i in p.X, or -1
	for i := range keyIdx {
		keyIdx[i] = -1
	}
	addVec := func(x []float32) int32 {
		p.X = append(p.X, x...)
		return int32(len(p.X)/d - 1)
	}
	kh := k[kvHead*n*d : (kvHead+1)*n*d] // kh: [N][D]
	score := make([]float64, n)
	order := make([]int32, n)
	label := make([]float64, n)
	for _, m := range ms {
		for i := 0; i <= m; i++ {
			if keyIdx[i] < 0 {
				keyIdx[i] = addVec(kh[i*d : (i+1)*d])
			}
		}
		for h := kvHead * g; h < (kvHead+1)*g; h++ {
			qm := q[(h*n+m)*d : (h*n+m+1)*d]
			qi := addVec(qm)
			for i := 0; i <= m; i++ {
				score[i] = dot64(qm, kh[i*d:(i+1)*d])
				order[i] = int32(i)
				label[i] = -1
			}
			slices.SortFunc(order[:m+1], func(a, b int32) int {
				return cmp.Or(cmp.Compare(score[b], score[a]), cmp.Compare(a, b))
			})
			pos := int(math.Floor(TopFraction * float64(m)))
			for r := range pos {
				w := TopWeight
				if pos > 1 {
					w = TopWeight - (TopWeight-1)*float64(r)/float64(pos-1)
				}
				label[order[r]] = w
			}
			for i := 0; i <= m; i++ {
				p.Pairs = append(p.Pairs, TrainPair{Q: qi, K: keyIdx[i], S: label[i]})
			}
		}
	}
	return p, nil
}

// TrainConfig configures hash training. DefaultTrainConfig gives the values of
// HATA.md (those of the authors' code).
type TrainConfig struct {
	Steps         int     // full-batch SGD steps; default 300
	LR            float64 // learning rate; default 0.1
	Momentum      float64 // heavy-ball momentum; default 0.9
	WeightDecay   float64 // L2 coefficient added to the gradient; default 1e-6
	Sigma         float64 // sigma of the relaxed code h(x) = 2*sigmoid(sigma*x*W) - 1; default 0.1
	Epsilon       float64 // weight of the similarity term; default 0.01
	Balance       float64 // weight of the bit-balance term; default 1.0
	Decorrelation float64 // weight of ||W^T W - I||_F; default 2.0
	Seed          uint64  // seed of the N(0, 1) initialisation of W
	// Stop, if not nil, is polled before every step; when it returns true,
	// training ends with ErrStopped (Ctrl-C of a long run).
	Stop func() bool
}

// ErrStopped is returned by Train and TrainLayer when TrainConfig.Stop asked
// them to end.
var ErrStopped = errors.New("train: stopped")

// DefaultTrainConfig returns the training configuration of HATA.md.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{Steps: 300, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-6, Sigma: 0.1, Epsilon: 0.01, Balance: 1.0, Decorrelation: 2.0}
}

func (c TrainConfig) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"LR", c.LR}, {"Momentum", c.Momentum}, {"WeightDecay", c.WeightDecay}, {"Sigma", c.Sigma},
		{"Epsilon", c.Epsilon}, {"Balance", c.Balance}, {"Decorrelation", c.Decorrelation}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("train config: %s = %v, want finite and >= 0", f.name, f.v)
		}
	}
	if c.Steps < 0 || c.Sigma == 0 || c.Momentum >= 1 {
		return fmt.Errorf("train config: Steps=%d Sigma=%v Momentum=%v: want Steps >= 0, Sigma > 0, Momentum < 1", c.Steps, c.Sigma, c.Momentum)
	}
	return nil
}

// LossTerms are the three terms of the training loss at one W, already
// weighted, and their sum.
type LossTerms struct {
	Similarity, Balance, Decorrelation, Total float64
}

// Train fits one KV head's projection W: [D][Rbit] (returned row-major) to the
// pairs p by cfg.Steps steps of full-batch SGD with momentum, in float64, from
// W_0 with independent N(0, 1) entries drawn from cfg.Seed. The loss, for the
// N pairs (q_i, k_i, s_i) and the relaxed codes h(x) = 2*sigmoid(sigma*x*W) - 1
// = tanh(sigma*x*W/2) in [-1, 1]^Rbit, is
//
//	L(W) = Epsilon       * sum_i s_i ||h(q_i) - h(k_i)||^2 / N            (similarity)
//	     + Balance       * || sum_i (h(q_i) + h(k_i)) / (N*Rbit) ||^2      (bit balance)
//	     + Decorrelation * ||W^T W - I||_F                                 (not squared)
//
// and each step is (torch.optim.SGD with momentum and weight decay)
//
//	g = dL/dW + WeightDecay*W;  b = Momentum*b + g  (b_0 = 0);  W = W - LR*b.
//
// The gradient, by hand (a_i = h(q_i), b_i = h(k_i), c = sum_i (a_i + b_i)/(N*Rbit),
// E = W^T W - I, and h'(z) = (1 - h^2)/2 per bit for z = sigma*x*W):
//
//	dL/da_i =  2*Epsilon*s_i*(a_i - b_i)/N + 2*Balance*c/(N*Rbit)
//	dL/db_i = -2*Epsilon*s_i*(a_i - b_i)/N + 2*Balance*c/(N*Rbit)
//	dL/dW   = sigma * sum_i [ q_i^T (dL/da_i ⊙ (1 - a_i²)/2) + k_i^T (dL/db_i ⊙ (1 - b_i²)/2) ]
//	        + Decorrelation * 2 W E / ||E||_F      (0 when E = 0)
//
// progress, if not nil, is called with the terms at W_t before step t's update
// for t = 0..Steps-1, and once more with t = Steps for the returned W.
//
// The sums run over fixed chunks of vectors and pairs, added in chunk order, so
// W is bit-identical for a seed whatever GOMAXPROCS is.
//
// One difference from the authors' code: they train all KV heads of a layer at
// once, normalise the similarity and balance terms per query head, and take
// one Frobenius norm over the stacked [Hkv][Rbit][Rbit] decorrelation; here each
// KV head is trained alone on the loss above (TrainLayer runs them in turn).
func Train(p *TrainPairs, rbit int, cfg TrainConfig, progress func(step int, t LossTerms)) ([]float32, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	if rbit < 32 || rbit%32 != 0 {
		return nil, fmt.Errorf("train: rbit=%d, want a positive multiple of 32", rbit)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x545241494e484153)) // "TRAINHAS"
	w := make([]float64, p.D*rbit)                             // w: [D][Rbit]
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	t := newTrainer(p, rbit, cfg)
	buf := make([]float64, len(w))
	for step := range cfg.Steps {
		if cfg.Stop != nil && cfg.Stop() {
			return nil, ErrStopped
		}
		terms, grad := t.lossGrad(w)
		if progress != nil {
			progress(step, terms)
		}
		for i := range w {
			g := grad[i] + cfg.WeightDecay*w[i]
			buf[i] = cfg.Momentum*buf[i] + g
			w[i] -= cfg.LR * buf[i]
		}
	}
	if progress != nil {
		terms, _ := t.lossGrad(w)
		progress(cfg.Steps, terms)
	}
	out := make([]float32, len(w))
	for i, v := range w {
		out[i] = float32(v)
		if math.IsNaN(v) || math.IsInf(float64(out[i]), 0) {
			return nil, fmt.Errorf("train: W diverged (entry %d is %v); lower LR", i, v)
		}
	}
	return out, nil
}

// TrainLayer trains the projection of every KV head of a layer, head h on
// sets[h] from seed cfg.Seed+h, one after the other, and returns them as
// HashWeights [Hkv][D][Rbit]. progress, if not nil, receives the head too.
func TrainLayer(sets []*TrainPairs, rbit int, cfg TrainConfig, progress func(head, step int, t LossTerms)) (*HashWeights, error) {
	if len(sets) == 0 {
		return nil, fmt.Errorf("train layer: no KV heads")
	}
	d := sets[0].D
	var all []float32
	for h, p := range sets {
		if p.D != d {
			return nil, fmt.Errorf("train layer: head %d has D=%d, head 0 has D=%d", h, p.D, d)
		}
		c := cfg
		c.Seed = cfg.Seed + uint64(h)
		var f func(int, LossTerms)
		if progress != nil {
			f = func(step int, t LossTerms) { progress(h, step, t) }
		}
		w, err := Train(p, rbit, c, f)
		if err != nil {
			return nil, fmt.Errorf("train layer: KV head %d: %w", h, err)
		}
		all = append(all, w...)
	}
	return NewHashWeights(len(sets), d, rbit, all)
}

// trainer holds the buffers of one training run.
type trainer struct {
	p    *TrainPairs
	r    int
	cfg  TrainConfig
	u    int
	a    []float64 // a: [U][Rbit], h(x_u) of every distinct vector
	ga   []float64 // ga: [U][Rbit], dL/dh(x_u) summed over the pairs using x_u
	refs []float64 // refs[u]: how many pair slots (query or key) use vector u
}

// Chunk sizes of the deterministic parallel sums: they depend on the data
// only, never on the number of goroutines.
const (
	trainVecChunk  = 64
	trainPairChunk = 4096
	trainGradParts = 32 // at most this many partial [D][Rbit] gradients
)

func newTrainer(p *TrainPairs, rbit int, cfg TrainConfig) *trainer {
	u := p.Vectors()
	t := &trainer{p: p, r: rbit, cfg: cfg, u: u, a: make([]float64, u*rbit), ga: make([]float64, u*rbit), refs: make([]float64, u)}
	for _, pr := range p.Pairs {
		t.refs[pr.Q]++
		t.refs[pr.K]++
	}
	return t
}

// lossGrad returns the loss terms at w: [D][Rbit] and dL/dW (without weight
// decay), as documented on Train.
func (t *trainer) lossGrad(w []float64) (LossTerms, []float64) {
	p, r, d, cfg := t.p, t.r, t.p.D, t.cfg
	n := float64(len(p.Pairs))

	// 1. Relaxed codes of every distinct vector: a_u = tanh(sigma*x_u*W/2).
	chunks(t.u, trainVecChunk, func(lo, hi int) {
		z := make([]float64, r)
		for u := lo; u < hi; u++ {
			clear(z)
			x := p.X[u*d : (u+1)*d]
			for i, xi := range x {
				if xi == 0 {
					continue
				}
				row := w[i*r : (i+1)*r]
				for j := range z {
					z[j] += float64(xi) * row[j]
				}
			}
			au := t.a[u*r : (u+1)*r]
			for j := range z {
				au[j] = math.Tanh(cfg.Sigma * z[j] / 2)
			}
		}
	})

	// 2. Similarity sum and balance vector, per chunk of pairs, then in order.
	nPairChunks := (len(p.Pairs) + trainPairChunk - 1) / trainPairChunk
	simPart := make([]float64, nPairChunks)
	balPart := make([]float64, nPairChunks*r)
	chunkIndex(len(p.Pairs), trainPairChunk, func(ci, lo, hi int) {
		bal := balPart[ci*r : (ci+1)*r]
		var sim float64
		for _, pr := range p.Pairs[lo:hi] {
			aq, ak := t.a[int(pr.Q)*r:int(pr.Q+1)*r], t.a[int(pr.K)*r:int(pr.K+1)*r]
			var dist float64
			for j := range bal {
				e := aq[j] - ak[j]
				dist += e * e
				bal[j] += aq[j] + ak[j]
			}
			sim += pr.S * dist
		}
		simPart[ci] = sim
	})
	var sim float64
	c := make([]float64, r) // c = sum_i (a_i + b_i) / (N*Rbit)
	for ci := range nPairChunks {
		sim += simPart[ci]
		for j := range c {
			c[j] += balPart[ci*r+j]
		}
	}
	var bal float64
	for j := range c {
		c[j] /= n * float64(r)
		bal += c[j] * c[j]
	}

	// 3. Decorrelation: E = W^T W - I, ||E||_F.
	e := make([]float64, r*r) // e: [Rbit][Rbit]
	chunks(r, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for j := range r {
				var s float64
				for k := range d {
					s += w[k*r+i] * w[k*r+j]
				}
				if i == j {
					s--
				}
				e[i*r+j] = s
			}
		}
	})
	var fro float64
	for _, v := range e {
		fro += v * v
	}
	fro = math.Sqrt(fro)

	terms := LossTerms{Similarity: cfg.Epsilon * sim / n, Balance: cfg.Balance * bal, Decorrelation: cfg.Decorrelation * fro}
	terms.Total = terms.Similarity + terms.Balance + terms.Decorrelation

	// 4. dL/da_u: the similarity part pair by pair (a scatter, in pair order),
	// the balance part refs[u] times 2*Balance*c/(N*Rbit).
	clear(t.ga)
	coef := 2 * cfg.Epsilon / n
	for _, pr := range p.Pairs {
		if pr.S == 0 {
			continue
		}
		aq, ak := t.a[int(pr.Q)*r:int(pr.Q+1)*r], t.a[int(pr.K)*r:int(pr.K+1)*r]
		gq, gk := t.ga[int(pr.Q)*r:int(pr.Q+1)*r], t.ga[int(pr.K)*r:int(pr.K+1)*r]
		f := coef * pr.S
		for j := range aq {
			g := f * (aq[j] - ak[j])
			gq[j] += g
			gk[j] -= g
		}
	}
	balCoef := 2 * cfg.Balance / (n * float64(r))

	// 5. dL/dW = sigma * sum_u x_u^T (dL/da_u ⊙ (1 - a_u²)/2), over a fixed
	// number of parts of the vectors, added in part order.
	parts := min(trainGradParts, (t.u+trainVecChunk-1)/trainVecChunk)
	per := (t.u + parts - 1) / parts
	partial := make([][]float64, parts)
	chunkIndex(t.u, per, func(pi, lo, hi int) {
		gw := make([]float64, d*r)
		dz := make([]float64, r)
		for u := lo; u < hi; u++ {
			au, gu := t.a[u*r:(u+1)*r], t.ga[u*r:(u+1)*r]
			for j := range dz {
				dz[j] = cfg.Sigma * (gu[j] + t.refs[u]*balCoef*c[j]) * (1 - au[j]*au[j]) / 2
			}
			x := p.X[u*d : (u+1)*d]
			for i, xi := range x {
				if xi == 0 {
					continue
				}
				row := gw[i*r : (i+1)*r]
				for j := range row {
					row[j] += float64(xi) * dz[j]
				}
			}
		}
		partial[pi] = gw
	})
	grad := make([]float64, d*r)
	for _, gw := range partial {
		if gw == nil {
			continue
		}
		for i := range grad {
			grad[i] += gw[i]
		}
	}
	// + Decorrelation * 2 W E / ||E||_F
	if fro > 0 {
		f := cfg.Decorrelation * 2 / fro
		for k := range d {
			wk := w[k*r : (k+1)*r]
			for j := range r {
				var s float64
				for i := range r {
					s += wk[i] * e[i*r+j]
				}
				grad[k*r+j] += f * s
			}
		}
	}
	return terms, grad
}

// chunks calls f(lo, hi) for the consecutive chunks of size of [0, n), on up
// to GOMAXPROCS goroutines. f must write only to its own chunk's outputs.
func chunks(n, size int, f func(lo, hi int)) {
	chunkIndex(n, size, func(_, lo, hi int) { f(lo, hi) })
}

// chunkIndex is chunks with the chunk's index.
func chunkIndex(n, size int, f func(ci, lo, hi int)) {
	if n <= 0 {
		return
	}
	ParallelFor((n+size-1)/size, func(ci int) { f(ci, ci*size, min(n, (ci+1)*size)) })
}
