package synth

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/hata-go/hata/ref"
)

// RNG streams: each part of the generator draws from its own PCG stream, so
// changing one knob (say Needles) does not reshuffle the others.
const (
	streamStructure = 1 + iota
	streamKeys
	streamValues
	streamQueries
	streamTrace
	streamCalibration
)

// Model is one synthetic attention layer: the structure shared by every
// sequence it generates. Build it with New; it is read-only afterwards and safe
// for concurrent use.
type Model struct {
	cfg   Config
	rope  ref.RoPE
	freqs []float64 // freqs: [D/2], RoPE frequency of pair i (channels i, i+D/2)

	sigma  []float64 // sigma: [Rank], content scale of component j: RankDecay^j
	basis  []float64 // basis: [Hkv][D][Rank], orthonormal columns U
	kbias  []float64 // kbias: [Hkv][D], key bias on the outlier channels
	qbias  []float64 // qbias: [Hkv][D], query bias on the outlier channels
	bias   []float64 // bias: [Hkv][D], qbias normalised to unit length (the sink direction)
	rec    []float64 // rec: [Hkv][D], unit recency direction on the recency pairs (zero if off)
	recAmp []float64 // recAmp: [Hkv], query scale of rec giving RecencyBoost at distance 1
	qscale []float64 // qscale: [Hq], trace-query scale giving logits of std about LogitStd
	kscale float64   // factor on every key, giving a mean norm of about KeyNorm

	outlier  []int // outlier channels, ascending
	recency  []int // recency channels, ascending
	needlePo []int // needle positions
}

// New builds the layer described by c (after c.Validate) and calibrates the
// per-head query scales on a calibration sequence drawn from c.Seed.
func New(c Config) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	m := &Model{cfg: c, rope: ref.RoPE{D: c.D, Theta: c.Theta}}
	if c.Llama3 {
		s := ref.Llama31
		m.rope.Llama3 = &s
	}
	var err error
	if m.freqs, err = m.rope.Frequencies(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	m.needlePo, _ = c.needlePositions()
	half := c.D / 2
	for p := half - c.OutlierPairs; p < half; p++ {
		m.outlier = append(m.outlier, p)
	}
	for p := half - c.OutlierPairs; p < half; p++ {
		m.outlier = append(m.outlier, p+half)
	}
	if c.RecencyWindow > 0 {
		for p := 0; p < half-c.OutlierPairs; p++ {
			if 2*math.Pi/m.freqs[p] <= float64(c.RecencyWindow) {
				m.recency = append(m.recency, p)
			}
		}
		n := len(m.recency)
		for i := range n {
			m.recency = append(m.recency, m.recency[i]+half)
		}
	}

	rng := rand.New(rand.NewPCG(c.Seed, streamStructure))
	d, hkv, rank := c.D, c.Hkv, c.Rank
	m.sigma = make([]float64, rank)
	var content2 float64 // expected squared norm of the content
	for j := range m.sigma {
		m.sigma[j] = math.Pow(c.RankDecay, float64(j))
		content2 += m.sigma[j] * m.sigma[j]
	}
	content2 += float64(d) * c.Noise * c.Noise
	m.basis = make([]float64, hkv*d*rank)
	m.kbias = make([]float64, hkv*d)
	m.qbias = make([]float64, hkv*d)
	m.bias = make([]float64, hkv*d)
	m.rec = make([]float64, hkv*d)
	m.recAmp = make([]float64, hkv)
	for g := range hkv {
		orthonormalColumns(rng, m.basis[g*d*rank:(g+1)*d*rank], d, rank, m.channelWeights())
		kb, qb, bd, rc := m.kbias[g*d:(g+1)*d], m.qbias[g*d:(g+1)*d], m.bias[g*d:(g+1)*d], m.rec[g*d:(g+1)*d]
		var qn float64
		for _, ch := range m.outlier {
			sign := 1.0
			if rng.IntN(2) == 0 {
				sign = -1
			}
			kb[ch] = sign * c.OutlierScale * (0.8 + 0.4*rng.Float64())
			qb[ch] = rng.NormFloat64()
			qn += qb[ch] * qb[ch]
		}
		for _, ch := range m.outlier {
			if qn > 0 {
				bd[ch] = qb[ch] / math.Sqrt(qn)
				qb[ch] = bd[ch] * c.QueryBias * math.Sqrt(content2)
			}
		}
		var rn float64
		for _, ch := range m.recency {
			rc[ch] = rng.NormFloat64()
			rn += rc[ch] * rc[ch]
		}
		// With the same vector rec in query and key, the rotated dot product is
		// sum over pairs p of |rec_p|^2 cos(f_p (m - t)): no sine terms.
		var k1 float64
		for _, p := range m.recency[:len(m.recency)/2] {
			rc[p] /= math.Sqrt(rn)
			rc[p+half] /= math.Sqrt(rn)
			k1 += (rc[p]*rc[p] + rc[p+half]*rc[p+half]) * math.Cos(m.freqs[p])
		}
		if len(m.recency) > 0 && k1 > 0 {
			m.recAmp[g] = c.RecencyBoost * math.Sqrt(float64(d)) / k1
		}
	}
	// Key scale: E|k|^2 = |kbias|^2 + content + |rec|^2 (mean over heads).
	m.kscale = 1
	if c.KeyNorm > 0 {
		var k2 float64
		for g := range hkv {
			for i := range d {
				k2 += (m.kbias[g*d+i]*m.kbias[g*d+i] + m.rec[g*d+i]*m.rec[g*d+i]) / float64(hkv)
			}
		}
		m.kscale = c.KeyNorm / math.Sqrt(k2+content2)
		for g := range m.recAmp {
			m.recAmp[g] /= m.kscale // the query side of recency keeps its logits
		}
	}
	m.calibrate()
	return m, nil
}

// channelWeights returns the standard deviation of channel i in the Gaussian
// draws of the key subspace: ((p+1)/(D/2))^LowFreqTilt for the channel's RoPE
// pair p, so a positive tilt puts the content in the slowly rotating pairs.
func (m *Model) channelWeights() []float64 {
	d := m.cfg.D
	w := make([]float64, d)
	for i := range w {
		p := i % (d / 2)
		w[i] = math.Pow(float64(p+1)/float64(d/2), m.cfg.LowFreqTilt)
	}
	return w
}

// orthonormalColumns fills u: [d][r] with r orthonormal columns, by
// Gram-Schmidt on Gaussian vectors whose channel i has standard deviation
// w[i].
func orthonormalColumns(rng *rand.Rand, u []float64, d, r int, w []float64) {
	col := make([]float64, d)
	for j := range r {
		for {
			for i := range col {
				col[i] = w[i] * rng.NormFloat64()
			}
			for jj := range j {
				var p float64
				for i := range d {
					p += col[i] * u[i*r+jj]
				}
				for i := range d {
					col[i] -= p * u[i*r+jj]
				}
			}
			var n float64
			for _, x := range col {
				n += x * x
			}
			if n > 1e-6 {
				for i := range d {
					u[i*r+j] = col[i] / math.Sqrt(n)
				}
				break
			}
		}
	}
}

// Config returns the configuration the model was built with.
func (m *Model) Config() Config { return m.cfg }

// RoPE returns the rotary embedding the model applies.
func (m *Model) RoPE() ref.RoPE { return m.rope }

// OutlierChannels returns the channels that carry the key bias, ascending.
func (m *Model) OutlierChannels() []int { return append([]int(nil), m.outlier...) }

// RecencyChannels returns the channels of the recency component, ascending
// within each half.
func (m *Model) RecencyChannels() []int { return append([]int(nil), m.recency...) }

// NeedlePositions returns the token positions of the needles.
func (m *Model) NeedlePositions() []int { return append([]int(nil), m.needlePo...) }

// Basis returns the orthonormal key subspace of KV head g: [D][Rank].
func (m *Model) Basis(g int) []float64 {
	d, r := m.cfg.D, m.cfg.Rank
	return append([]float64(nil), m.basis[g*d*r:(g+1)*d*r]...)
}

// content writes U·(sigma∘z) + Noise·n for KV head g to x: [D], drawing z and n
// from rng.
func (m *Model) content(rng *rand.Rand, g int, x []float64) {
	d, r := m.cfg.D, m.cfg.Rank
	u := m.basis[g*d*r : (g+1)*d*r]
	for i := range x {
		x[i] = m.cfg.Noise * rng.NormFloat64()
	}
	for j := range r {
		z := m.sigma[j] * rng.NormFloat64()
		for i := range d {
			x[i] += z * u[i*r+j]
		}
	}
}

// baseKey writes the pre-RoPE key of an ordinary token of KV head g:
// kscale·(content + key bias + recency component).
func (m *Model) baseKey(rng *rand.Rand, g int, x []float64) {
	d := m.cfg.D
	m.content(rng, g, x)
	for i := range x {
		x[i] = m.kscale * (x[i] + m.kbias[g*d+i] + m.rec[g*d+i])
	}
}

// rawQueries writes the unscaled pre-RoPE queries of the G heads of group g
// at one position to q: [G][D]: content + query bias, with content =
// sqrt(c)·shared + sqrt(1-c)·own.
func (m *Model) rawQueries(rng *rand.Rand, g int, q []float64) {
	d, grp := m.cfg.D, m.cfg.Hq/m.cfg.Hkv
	shared := make([]float64, d)
	own := make([]float64, d)
	m.content(rng, g, shared)
	a, b := math.Sqrt(m.cfg.GroupCorr), math.Sqrt(1-m.cfg.GroupCorr)
	for j := range grp {
		m.content(rng, g, own)
		for i := range d {
			q[j*d+i] = a*shared[i] + b*own[i] + m.qbias[g*d+i]
		}
	}
}

// finish turns the raw query x of a head of group g into scale·x + recAmp·rec.
func (m *Model) finish(x []float64, g int, scale float64) {
	d := m.cfg.D
	for i := range x {
		x[i] = scale*x[i] + m.recAmp[g]*m.rec[g*d+i]
	}
}

// rotate returns x rotated by RoPE at position pos, as float32.
func (m *Model) rotate(x []float64, pos int) []float32 {
	y := make([]float32, len(x))
	for i := range x {
		y[i] = float32(x[i])
	}
	m.rope.Apply(y, pos) // the shape was validated in New: no error
	return y
}

// calibrationDraws is the number of query draws per head that calibrate
// averages over.
const calibrationDraws = 16

// calibrate sets qscale, the scale of trace queries: the one that gives a query
// head's logits over a calibration sequence of ordinary tokens a standard
// deviation of LogitStd, in root mean square over calibrationDraws draws.
// (Decode queries are scaled exactly, per sample, in Sample.)
func (m *Model) calibrate() {
	c := m.cfg
	d, grp, n := c.D, c.Hq/c.Hkv, c.N
	rng := rand.New(rand.NewPCG(c.Seed, streamCalibration))
	x := make([]float64, d)
	q := make([]float64, grp*d)
	m.qscale = make([]float64, c.Hq)
	for g := range c.Hkv {
		keys := make([]float32, n*d)
		for t := range n {
			m.baseKey(rng, g, x)
			copy(keys[t*d:], m.rotate(x, t))
		}
		variance := make([]float64, grp)
		for range calibrationDraws {
			m.rawQueries(rng, g, q)
			for j := range grp {
				v := logitStd(m.rotate(q[j*d:(j+1)*d], n), keys, d, nil)
				variance[j] += v * v / calibrationDraws
			}
		}
		for j := range grp {
			m.qscale[g*grp+j] = 1
			if variance[j] > 0 {
				m.qscale[g*grp+j] = c.LogitStd / math.Sqrt(variance[j])
			}
		}
	}
}

// logitStd returns the standard deviation over the tokens of keys: [n][D] not
// in skip of the logits q·k/sqrt(D).
func logitStd(q, keys []float32, d int, skip map[int]bool) float64 {
	_, std := logitStats(q, keys, d, skip)
	return std
}

// logitStats returns the mean and standard deviation over the tokens of keys:
// [n][D] not in skip of the logits q·k/sqrt(D).
func logitStats(q, keys []float32, d int, skip map[int]bool) (mean, std float64) {
	var s, s2, cnt float64
	for t := range len(keys) / d {
		if skip[t] {
			continue
		}
		l := dot(q, keys[t*d:(t+1)*d]) / math.Sqrt(float64(d))
		s += l
		s2 += l * l
		cnt++
	}
	if cnt == 0 {
		return 0, 0
	}
	mean = s / cnt
	return mean, math.Sqrt(max(s2/cnt-mean*mean, 0))
}

// dot returns a·b in float64.
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// Sample is one synthetic decode step: B sequences of N cached tokens and the
// decode queries at position N.
type Sample struct {
	Seed  uint64    // the sample seed it was drawn from
	Shape ref.Shape // B, Hq, Hkv, N, D
	// Q holds the decode queries after RoPE at position N: [B][Hq][D].
	Q []float32
	// K holds the cached keys after RoPE (key t at position t): [B][Hkv][N][D].
	K []float32
	// V holds the cached values: [B][Hkv][N][D].
	V []float32
	// Kpre holds the keys before RoPE: [B][Hkv][N][D]; K = RoPE_t(Kpre).
	Kpre []float32
	// Sinks and Needles are the token positions of the sinks and needles (the
	// same in every row).
	Sinks, Needles []int
}

// KV returns the cache of s as a ref.KV.
func (s *Sample) KV() (*ref.KV, error) {
	return ref.NewKV(s.Shape.B, s.Shape.Hkv, s.Shape.N, s.Shape.D, s.K, s.V)
}

// Sample draws the sequence of sample seed seed. Different seeds give
// independent sequences under the same layer structure.
func (m *Model) Sample(seed uint64) *Sample {
	c := m.cfg
	d, grp, n, hkv := c.D, c.Hq/c.Hkv, c.N, c.Hkv
	s := &Sample{
		Seed:  seed,
		Shape: ref.Shape{B: c.B, Hq: c.Hq, Hkv: hkv, N: n, D: d},
		Q:     make([]float32, c.B*c.Hq*d),
		K:     make([]float32, c.B*hkv*n*d),
		V:     make([]float32, c.B*hkv*n*d),
		Kpre:  make([]float32, c.B*hkv*n*d),
	}
	for t := range c.Sinks {
		s.Sinks = append(s.Sinks, t)
	}
	s.Needles = m.NeedlePositions()
	vrng := rand.New(rand.NewPCG(seed, streamValues))
	for i := range s.V {
		s.V[i] = float32(vrng.NormFloat64())
	}
	x := make([]float64, d)
	q := make([]float64, grp*d)
	sqd := math.Sqrt(float64(d))
	special := map[int]bool{}
	for _, t := range s.Sinks {
		special[t] = true
	}
	for _, t := range s.Needles {
		special[t] = true
	}
	for b := range c.B {
		for g := range hkv {
			row := b*hkv + g
			krng := rand.New(rand.NewPCG(seed, streamKeys<<32|uint64(row)))
			kpre := s.Kpre[row*n*d : (row+1)*n*d]
			kpost := s.K[row*n*d : (row+1)*n*d]
			for t := range n {
				m.baseKey(krng, g, x)
				for i := range d {
					kpre[t*d+i] = float32(x[i])
				}
				copy(kpost[t*d:(t+1)*d], m.rotate(x, t))
			}
			// Decode queries: each head's content and bias are scaled so that its
			// logits over the ordinary tokens have standard deviation LogitStd.
			qrng := rand.New(rand.NewPCG(seed, streamQueries<<32|uint64(row)))
			m.rawQueries(qrng, g, q)
			qpost := s.Q[(b*c.Hq+g*grp)*d : (b*c.Hq+(g+1)*grp)*d]
			for j := range grp {
				scale := 1.0
				if std := logitStd(m.rotate(q[j*d:(j+1)*d], n), kpost, d, special); std > 0 {
					scale = c.LogitStd / std
				}
				m.finish(q[j*d:(j+1)*d], g, scale)
				copy(qpost[j*d:(j+1)*d], m.rotate(q[j*d:(j+1)*d], n))
			}
			var base float64 // mean group logit over the ordinary tokens
			for j := range grp {
				mean, _ := logitStats(qpost[j*d:(j+1)*d], kpost, d, special)
				base += mean / float64(grp)
			}
			// Sinks: add beta·bias before RoPE, with beta chosen so that the
			// group-mean logit of the sink is base + SinkBoost:
			// beta = (base + SinkBoost - logit of the base key) / mean_h q_h·RoPE_t(bias)/sqrt(D).
			for _, t := range s.Sinks {
				dir := m.rotate(m.bias[g*d:(g+1)*d], t)
				if a := groupMean(qpost, dir, grp, d) / sqd; a > 0 {
					rest := groupMean(qpost, kpost[t*d:(t+1)*d], grp, d) / sqd
					beta := (base + c.SinkBoost - rest) / a
					for i := range d {
						kpre[t*d+i] += float32(beta * m.bias[g*d+i])
					}
				}
			}
			// Needles: built after RoPE along the group's mean query direction q̂.
			// The base key's own component along q̂ is replaced by alpha·q̂, with
			// alpha chosen so that the group-mean logit of the needle is base +
			// NeedleBoost; the result is rotated back to give the pre-RoPE key.
			qhat := make([]float32, d)
			for j := range grp {
				for i := range d {
					qhat[i] += qpost[j*d+i]
				}
			}
			qn := math.Sqrt(dot(qhat, qhat))
			for i := range qhat {
				qhat[i] = float32(float64(qhat[i]) / qn)
			}
			along := groupMean(qpost, qhat, grp, d) / sqd // logit per unit of q̂
			for _, t := range s.Needles {
				post := kpost[t*d : (t+1)*d]
				proj := dot(post, qhat)
				rest := groupMean(qpost, post, grp, d)/sqd - proj*along
				alpha := (base + c.NeedleBoost - rest) / along
				for i := range d {
					post[i] += float32((alpha - proj) * float64(qhat[i]))
				}
				m.rope.Apply(post, -t)
				copy(kpre[t*d:(t+1)*d], post)
			}
			copy(kpost, kpre)
			for t := range n {
				m.rope.Apply(kpost[t*d:(t+1)*d], t)
			}
		}
	}
	return s
}

// groupMean returns the mean over the grp heads of q: [grp][D] of q_h·dir.
func groupMean(q, dir []float32, grp, d int) float64 {
	var s float64
	for j := range grp {
		s += dot(q[j*d:(j+1)*d], dir)
	}
	return s / float64(grp)
}

// TraceQueries returns a query for every position 0..N-1 of the sequences of
// s, after RoPE at its position: [B][Hq][N][D]. Query m attends causally to
// keys 0..m. Together with s.K (or s.Kpre) this is the training trace that
// learned hashing is fitted on; its query content is drawn fresh at every
// position, with the same layer structure as the decode queries.
func (m *Model) TraceQueries(s *Sample) []float32 {
	c := m.cfg
	d, grp, n, hkv := c.D, c.Hq/c.Hkv, c.N, c.Hkv
	out := make([]float32, c.B*c.Hq*n*d) // out: [B][Hq][N][D]
	q := make([]float64, grp*d)
	for b := range c.B {
		for g := range hkv {
			rng := rand.New(rand.NewPCG(s.Seed, streamTrace<<32|uint64(b*hkv+g)))
			for t := range n {
				m.rawQueries(rng, g, q)
				for j := range grp {
					h := g*grp + j
					m.finish(q[j*d:(j+1)*d], g, m.qscale[h])
					copy(out[((b*c.Hq+h)*n+t)*d:], m.rotate(q[j*d:(j+1)*d], t))
				}
			}
		}
	}
	return out
}
