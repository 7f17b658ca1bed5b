package reftest

import (
	"fmt"
	"math"

	"github.com/hata-go/hata/internal/half"
	"github.com/hata-go/hata/ref"
)

// unit32 is float32's unit roundoff, 2^-24.
const unit32 = 1.0 / (1 << 24)

// CheckClose compares an implementation's attention output got: [B][Hq][D]
// with ref's float64 evaluation want64 (ref.Sparse), row by row (one query head
// each), with the flash-attention tests' calibration:
//
//	max_c |got - want64| <= 2 * max_c |want32 - want64| + 64 * u * max_c |want64| + 64 * u
//
// where want32 is the same attention evaluated naively in float32 in token order
// (Sparse32) and u = 2^-24. The first term admits the error any float32
// evaluation makes at this shape; the others keep the bound from collapsing
// where want32 happens to be exact. It returns an error naming the worst row.
func CheckClose(got []float32, want64, want32 []float32, d int) error {
	if len(got) != len(want64) || len(want32) != len(want64) {
		return fmt.Errorf("lengths: got %d, want %d", len(got), len(want64))
	}
	for r := 0; r < len(got)/d; r++ {
		var err32, errGot, mag float64
		bad := -1
		for c := r * d; c < (r+1)*d; c++ {
			g, w, w32 := float64(got[c]), float64(want64[c]), float64(want32[c])
			if math.IsNaN(g) || math.IsInf(g, 0) {
				return fmt.Errorf("row %d (b*Hq+h) channel %d: got %v, want %v", r, c-r*d, g, w)
			}
			err32 = max(err32, math.Abs(w32-w))
			if e := math.Abs(g - w); e > errGot {
				errGot, bad = e, c
			}
			mag = max(mag, math.Abs(w))
		}
		tol := 2*err32 + 64*unit32*mag + 64*unit32
		if errGot > tol {
			return fmt.Errorf("row %d (b*Hq+h) channel %d: got %.9g, want %.9g: error %.3g > tolerance %.3g (float32 re-evaluation error %.3g)",
				r, bad-r*d, got[bad], want64[bad], errGot, tol, err32)
		}
	}
	return nil
}

// Sparse32 evaluates the same attention as ref.Sparse naively in float32, in
// token order: the calibration point of CheckClose. q: [B][Hq][D]; returns
// [B][Hq][D]. Its inputs are checked as ref.Sparse checks them
// (ref.CheckSparse), so that a selection with a token outside the cache (from
// an implementation under test) is an error, not a panic.
func Sparse32(q []float32, kv *ref.KV, selected [][]int32) ([]float32, error) {
	hq, err := ref.CheckSparse(q, kv, selected)
	if err != nil {
		return nil, err
	}
	g, d := hq/kv.Hkv, kv.D
	scale := float32(1 / math.Sqrt(float64(d)))
	out := make([]float32, len(q))
	for b := range kv.B {
		for h := range hq {
			qh := q[(b*hq+h)*d : (b*hq+h+1)*d]
			var tokens []int32
			if selected != nil {
				tokens = selected[b*kv.Hkv+h/g]
			} else {
				for t := range kv.N {
					tokens = append(tokens, int32(t))
				}
			}
			s := make([]float32, len(tokens))
			m := float32(math.Inf(-1))
			for i, t := range tokens {
				var dot float32
				for c, x := range kv.Key(b, h/g, int(t)) {
					dot += qh[c] * x
				}
				s[i] = dot * scale
				m = max(m, s[i])
			}
			var z float32
			acc := make([]float32, d)
			for i, t := range tokens {
				p := float32(math.Exp(float64(s[i] - m)))
				z += p
				for c, x := range kv.Value(b, h/g, int(t)) {
					acc[c] += p * x
				}
			}
			for c := range acc {
				out[(b*hq+h)*d+c] = acc[c] / z
			}
		}
	}
	return out, nil
}

// RoundHalf rounds every element of x to the nearest float16 value (ties to
// even), in place: the inputs of an implementation that stores K/V in fp16.
func RoundHalf(x []float32) {
	for i, v := range x {
		x[i] = half.Round(v)
	}
}
