// Package half converts between float32 and IEEE 754 binary16 ("half",
// float16), the storage type of fp16 KV caches and of float16 .npy files. It
// is the one implementation the reference's tests, the file readers and the
// Vulkan uploads share.
package half

import "math"

// FromFloat32 converts f to binary16 bits, rounding to nearest with ties to
// even; values of magnitude 65520 and above become infinity, NaN stays NaN,
// and values below 2^-14 become subnormal halves (or zero).
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	abs := b & 0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN
		return sign | 0x7e00
	case abs >= 0x477ff000: // >= 65520: rounds to infinity
		return sign | 0x7c00
	case abs >= 0x38800000: // >= 2^-14: a normal half
		v := abs - 0x38000000 // rebias the exponent from 127 to 15
		return sign | uint16((v+0xfff+(v>>13)&1)>>13)
	}
	// A subnormal half (or zero): a multiple of 2^-24. Scaling by 2^24 is
	// exact in float64, and so is RoundToEven of the result.
	return sign | uint16(math.RoundToEven(float64(math.Float32frombits(abs))*(1<<24)))
}

// ToFloat32 converts binary16 bits to float32 exactly (every half, subnormals
// included, is a float32); infinities keep their sign, NaNs stay NaN.
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch exp {
	case 0: // zero or subnormal: man * 2^-24
		return math.Float32frombits(sign | math.Float32bits(float32(man)/(1<<24)))
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// Round returns f rounded to the nearest half, as a float32.
func Round(f float32) float32 { return ToFloat32(FromFloat32(f)) }
