package vk

import (
	"math"
	"unsafe"
)

// halfBits converts f to IEEE 754 binary16 bits, rounding to nearest with
// ties to even; values from 65520 up become infinity, NaN stays NaN.
func halfBits(f float32) uint16 {
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

// halfFloat converts binary16 bits to float32 exactly.
func halfFloat(h uint16) float32 {
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

// halfBytes returns x converted to binary16, as little-endian bytes.
func halfBytes(x []float32) []byte {
	h := make([]uint16, len(x))
	for i, f := range x {
		h[i] = halfBits(f)
	}
	return u16Bytes(h)
}

// f32Bytes views x as bytes (the host is little-endian, as Vulkan's is).
func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// u16Bytes views x as bytes.
func u16Bytes(x []uint16) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 2*len(x))
}

// bytesF32 views b (a multiple of 4 bytes, 4-byte aligned) as float32s.
func bytesF32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}
