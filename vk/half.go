package vk

import (
	"unsafe"

	"github.com/hata-go/hata/internal/half"
)

// halfBits converts f to binary16 bits (internal/half.FromFloat32).
func halfBits(f float32) uint16 { return half.FromFloat32(f) }

// halfFloat converts binary16 bits to float32 exactly (internal/half.ToFloat32).
func halfFloat(h uint16) float32 { return half.ToFloat32(h) }

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
