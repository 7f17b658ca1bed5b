package reftest

import (
	"fmt"
	"math"

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
// [B][Hq][D].
func Sparse32(q []float32, kv *ref.KV, selected [][]int32) []float32 {
	hq := len(q) / (kv.B * kv.D)
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
	return out
}

// RoundHalf rounds every element of x to the nearest float16 value (ties to
// even), in place: the inputs of an implementation that stores K/V in fp16.
func RoundHalf(x []float32) {
	for i, v := range x {
		x[i] = HalfToFloat(FloatToHalf(v))
	}
}

// FloatToHalf converts f to IEEE 754 binary16 bits, rounding to nearest even,
// with overflow to infinity and gradual underflow.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127
	man := b & 0x7fffff
	switch {
	case exp == 128: // inf or nan
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp > 15:
		return sign | 0x7c00
	case exp >= -14: // normal half
		h := uint32(exp+15)<<10 | man>>13
		rest := man & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++ // may carry into the exponent, and to inf: both correct
		}
		return sign | uint16(h)
	case exp >= -25: // subnormal half: value = m * 2^-24
		man |= 0x800000
		shift := uint(-exp - 14 + 13)
		h := man >> shift
		rest := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	return sign
}

// HalfToFloat converts IEEE 754 binary16 bits to float32 exactly.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		return math.Float32frombits(sign) + float32(man)*float32(math.Ldexp(1, -24))*sign1(sign)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// sign1 is -1 for a set sign bit, else 1.
func sign1(sign uint32) float32 {
	if sign != 0 {
		return -1
	}
	return 1
}
