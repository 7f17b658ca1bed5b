package ref

import (
	"fmt"
	"math"
)

// HATA is hash-aware top-k attention (the paper's Algorithm 3). Keys are encoded
// once, when they enter the cache; at each decode step the query heads are
// encoded, every cached key is scored by its GQA-summed Hamming distance to the
// group's query codes, the k best keys are selected, and the query heads attend
// to them exactly.
//
// With random Gaussian weights (RandomHashWeights) the same pipeline is plain
// sign-random-projection LSH, the "lsh" baseline.
type HATA struct {
	W       *HashWeights
	Windows Windows // sink/recent tokens forced in, counted inside k
	// NormWeighted selects the variant of the authors' evaluation scripts:
	// score_t = ||k_t|| * sum_h (1 - 2*Ham(q_h, k_t)/Rbit), largest first.
	// The default (false) is pure Hamming distance, smallest first.
	NormWeighted bool

	name   string
	kv     *KV
	kcodes [][]uint32 // kcodes: [B*Hkv] rows, each [N][Rbit/32]
	qcodes []uint32   // qcodes: [B][Hq][Rbit/32], of the last Decode
	knorm  [][]float64
}

var _ Method = (*HATA)(nil)
var _ Coder = (*HATA)(nil)

// NewHATA returns HATA with the trained weights w.
func NewHATA(w *HashWeights, win Windows, normWeighted bool) *HATA {
	return &HATA{W: w, Windows: win, NormWeighted: normWeighted, name: "hata"}
}

// NewLSH returns the random-projection baseline: HATA's pipeline with untrained
// N(0, 1) weights of rbit bits drawn from seed.
func NewLSH(hkv, d, rbit int, seed uint64, win Windows) (*HATA, error) {
	w, err := RandomHashWeights(hkv, d, rbit, seed)
	if err != nil {
		return nil, err
	}
	return &HATA{W: w, Windows: win, name: "lsh"}, nil
}

// Name implements Method.
func (m *HATA) Name() string { return m.name }

// Prefill implements Method: it copies kv and encodes every cached key.
func (m *HATA) Prefill(kv *KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("%s: prefill: %w", m.name, err)
	}
	if kv.Hkv != m.W.Hkv || kv.D != m.W.D {
		return fmt.Errorf("%s: hash weights are [Hkv=%d D=%d Rbit=%d], cache has Hkv=%d D=%d",
			m.name, m.W.Hkv, m.W.D, m.W.Rbit, kv.Hkv, kv.D)
	}
	m.kv = kv.Clone()
	m.kcodes = m.W.EncodeKeys(m.kv)
	m.knorm = make([][]float64, len(m.kv.K))
	for r := range m.knorm {
		for t := range m.kv.N {
			m.knorm[r] = append(m.knorm[r], norm64(m.kv.K[r][t*kv.D:(t+1)*kv.D]))
		}
	}
	m.qcodes = nil
	return nil
}

// Append implements Method: the new key is encoded as it enters the cache.
func (m *HATA) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("%s: append before prefill", m.name)
	}
	if err := m.kv.Append(k, v); err != nil {
		return err
	}
	nw, d := m.W.Words(), m.kv.D
	code := make([]uint32, nw)
	for r := range m.kcodes {
		key := k[r*d : (r+1)*d]
		m.W.Encode(r%m.kv.Hkv, key, code)
		m.kcodes[r] = append(m.kcodes[r], code...)
		m.knorm[r] = append(m.knorm[r], norm64(key))
	}
	return nil
}

// Decode implements Method.
func (m *HATA) Decode(q []float32, budget Budget) (*Result, error) {
	hq, err := headCount(q, m.kv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	if hq%m.W.Hkv != 0 {
		return nil, fmt.Errorf("%s: Hq=%d is not a multiple of Hkv=%d", m.name, hq, m.W.Hkv)
	}
	k, err := budget.Tokens(m.kv.N)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	kv := m.kv
	m.qcodes = m.W.EncodeQueries(q, kv.B, hq)                                        // 1. encode
	scores := HammingScores(m.qcodes, m.kcodes, kv.B, hq, kv.Hkv, kv.N, m.W.Words()) // 2. score
	selected := make([][]int32, len(scores))                                         // 3. select
	for r, s := range scores {
		if m.NormWeighted {
			selected[r] = SelectLargest(m.normWeighted(s, r, hq/kv.Hkv), k, m.Windows)
		} else {
			selected[r] = SelectSmallest(s, k, m.Windows)
		}
	}
	out, err := Sparse(q, kv, selected) // 4. sparse attention
	if err != nil {
		return nil, err
	}
	return &Result{Out: out, Selected: selected}, nil
}

// normWeighted turns the summed Hamming distances of row r into the
// norm-weighted scores: ||k_t|| * sum_h (1 - 2*Ham_h/Rbit) = ||k_t|| * (G - 2*S_t/Rbit).
func (m *HATA) normWeighted(s []int32, r, g int) []float64 {
	w := make([]float64, len(s))
	for t := range s {
		w[t] = m.knorm[r][t] * (float64(g) - 2*float64(s[t])/float64(m.W.Rbit))
	}
	return w
}

// Codes implements Coder.
func (m *HATA) Codes() (qcodes, kcodes []uint32, err error) {
	if m.qcodes == nil {
		return nil, nil, fmt.Errorf("%s: no codes before the first Decode", m.name)
	}
	for _, row := range m.kcodes {
		kcodes = append(kcodes, row...)
	}
	return m.qcodes, kcodes, nil
}

// norm64 returns the Euclidean norm of x in float64.
func norm64(x []float32) float64 { return math.Sqrt(dot64(x, x)) }
