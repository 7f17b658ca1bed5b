package ref

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
)

// HashWeights is the learned (or random) projection of HATA: one matrix per KV
// head, shared by the G query heads of its group and used for queries and keys.
type HashWeights struct {
	Hkv, D, Rbit int
	W            []float32 // W: [Hkv][D][Rbit]
}

// NewHashWeights wraps w: [hkv][d][rbit] and checks its shape: rbit must be a
// positive multiple of 32 and every entry finite.
func NewHashWeights(hkv, d, rbit int, w []float32) (*HashWeights, error) {
	if err := checkHashShape(hkv, d, rbit); err != nil {
		return nil, err
	}
	if len(w) != hkv*d*rbit {
		return nil, fmt.Errorf("hash weights: len %d, want Hkv*D*Rbit = %d*%d*%d = %d", len(w), hkv, d, rbit, hkv*d*rbit)
	}
	for i, x := range w {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("hash weights: entry %d (head %d, row %d, bit %d) is %v", i, i/(d*rbit), i/rbit%d, i%rbit, x)
		}
	}
	return &HashWeights{Hkv: hkv, D: d, Rbit: rbit, W: w}, nil
}

// RandomHashWeights draws W with independent N(0, 1) entries from seed: the
// untrained sign-random-projection LSH baseline, and HATA's initialisation.
func RandomHashWeights(hkv, d, rbit int, seed uint64) (*HashWeights, error) {
	if err := checkHashShape(hkv, d, rbit); err != nil { // before the allocation: a negative size panics
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x4841544148415441)) // "HATAHATA"
	w := make([]float32, hkv*d*rbit)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	return NewHashWeights(hkv, d, rbit, w)
}

// checkHashShape reports whether [hkv][d][rbit] is the shape of hash weights.
func checkHashShape(hkv, d, rbit int) error {
	if hkv < 1 || d < 1 || rbit < 32 || rbit%32 != 0 {
		return fmt.Errorf("hash weights: shape [%d %d %d]: want Hkv, D >= 1 and rbit a positive multiple of 32", hkv, d, rbit)
	}
	return nil
}

// Words returns Rbit/32, the uint32 words of one code.
func (w *HashWeights) Words() int { return w.Rbit / 32 }

// Encode writes the code of x: [D] under KV head h's projection to code:
// [Rbit/32]:
//
//	bit j = 1  iff  sum_i x[i] * W[h][i][j] > 0     (strictly: 0 gives bit 0)
//
// bit j lives in word j/32 at position j%32. The projection accumulates in
// float64; an implementation in float32 may flip only bits whose projection is
// within rounding of 0 (tests use inputs whose projections are exact). It
// panics where h is not a KV head of w or x and code are shorter than D and
// Rbit/32: a caller's bug, as a slice index past its end is.
func (w *HashWeights) Encode(h int, x []float32, code []uint32) {
	m := w.W[h*w.D*w.Rbit : (h+1)*w.D*w.Rbit] // m: [D][Rbit]
	clear(code)
	for j := range w.Rbit {
		var p float64
		for i := range w.D {
			p += float64(x[i]) * float64(m[i*w.Rbit+j])
		}
		if p > 0 {
			code[j/32] |= 1 << (j % 32)
		}
	}
}

// EncodeQueries returns the codes of every query head, [B][Hq][Rbit/32]; query
// head h uses the projection of its KV head h/G. q: [B][Hq][D]; hq must be a
// multiple of w.Hkv (Shape.Validate), and it panics otherwise.
func (w *HashWeights) EncodeQueries(q []float32, b, hq int) []uint32 {
	g, nw := hq/w.Hkv, w.Words()
	codes := make([]uint32, b*hq*nw)
	ParallelFor(b*hq, func(bh int) {
		w.Encode(bh%hq/g, q[bh*w.D:(bh+1)*w.D], codes[bh*nw:(bh+1)*nw])
	})
	return codes
}

// EncodeKeys returns the codes of every cached key of kv, one row per (batch,
// KV head): [B*Hkv] rows, each [N][Rbit/32]. kv must hold w's KV heads and
// dimension and be a valid cache (KV.Validate); it panics otherwise.
func (w *HashWeights) EncodeKeys(kv *KV) [][]uint32 {
	nw := w.Words()
	codes := make([][]uint32, kv.B*kv.Hkv)
	ParallelFor(len(codes), func(r int) {
		codes[r] = make([]uint32, kv.N*nw)
		for t := range kv.N {
			w.Encode(r%kv.Hkv, kv.K[r][t*kv.D:(t+1)*kv.D], codes[r][t*nw:(t+1)*nw])
		}
	})
	return codes
}

// Hamming returns the number of differing bits of two codes of equal length
// (it panics where b is shorter than a).
func Hamming(a, b []uint32) int {
	n := 0
	for i := range a {
		n += bits.OnesCount32(a[i] ^ b[i])
	}
	return n
}

// HammingScores returns HATA's GQA-summed Hamming scores (HATA.md, decode step 2):
//
//	S[b][g][t] = sum over the G query heads h of group g of popcount(qcode[b][h] XOR kcode[b][g][t])
//
// Smaller is better. qcodes: [B][Hq][Rbit/32]; kcodes: [B*Hkv] rows of
// [N][Rbit/32]; returns [B*Hkv] rows of [N] integer scores. The sums are exact
// integers (at most Hq*Rbit).
func HammingScores(qcodes []uint32, kcodes [][]uint32, b, hq, hkv, n, words int) [][]int32 {
	g := hq / hkv
	scores := make([][]int32, b*hkv)
	ParallelFor(b*hkv, func(r int) {
		bb, kh := r/hkv, r%hkv
		scores[r] = make([]int32, n)
		for t := range n {
			kc := kcodes[r][t*words : (t+1)*words]
			var s int32
			for h := kh * g; h < (kh+1)*g; h++ {
				qc := qcodes[(bb*hq+h)*words : (bb*hq+h+1)*words]
				s += int32(Hamming(qc, kc))
			}
			scores[r][t] = s
		}
	})
	return scores
}
