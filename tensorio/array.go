package tensorio

import (
	"encoding/binary"
	"fmt"
	"github.com/hata-go/hata/internal/half"
	"math"
	"math/bits"
	"strings"
)

// Element types of an Array, named after the stored type of the file it came
// from. Floating types are converted to float32 on reading (F32), so Dtype says
// what the file held, not how the values are kept in memory.
const (
	Float32  = "float32"  // npy '<f4', safetensors F32, torch FloatStorage
	Float16  = "float16"  // npy '<f2', safetensors F16, torch HalfStorage; exact in float32
	BFloat16 = "bfloat16" // safetensors BF16, torch BFloat16Storage; exact in float32
	Float64  = "float64"  // npy '<f8', safetensors F64; rounded to float32
	Int32    = "int32"    // npy '<i4', safetensors I32
	Uint32   = "uint32"   // npy '<u4', safetensors U32
	Int64    = "int64"    // npy '<i8', safetensors I64
)

// Array is a dense tensor read from a file, in row-major (C) order. Exactly one
// of the data slices is set, by Dtype:
//
//	float32, float16, bfloat16, float64  ->  F32 (converted; float16/bfloat16 exactly)
//	int32                                ->  I32
//	uint32                               ->  U32
//	int64                                ->  I64
//
// len(data) = product of Shape (1 for a 0-d array).
type Array struct {
	Shape []int
	Dtype string
	F32   []float32
	I32   []int32
	U32   []uint32
	I64   []int64
}

// Len returns the number of elements, the product of Shape.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// IsFloat reports whether a holds floating-point values (in F32).
func (a *Array) IsFloat() bool {
	switch a.Dtype {
	case Float32, Float16, BFloat16, Float64:
		return true
	}
	return false
}

// dtypeInfo describes one supported element type: its size in bytes and how
// one little-endian element is decoded into an Array.
type dtypeInfo struct {
	name  string
	size  int
	descr string // the npy descr, "" when npy has no such type
	st    string // the safetensors dtype
}

var dtypes = []dtypeInfo{
	{Float32, 4, "<f4", "F32"},
	{Float16, 2, "<f2", "F16"},
	{BFloat16, 2, "", "BF16"},
	{Float64, 8, "<f8", "F64"},
	{Int32, 4, "<i4", "I32"},
	{Uint32, 4, "<u4", "U32"},
	{Int64, 8, "<i8", "I64"},
}

// dtypeByName returns the description of a supported element type.
func dtypeByName(name string) (dtypeInfo, bool) {
	for _, d := range dtypes {
		if d.name == name {
			return d, true
		}
	}
	return dtypeInfo{}, false
}

// supported lists the names of a key of every supported type, for error messages.
func supported(key func(dtypeInfo) string) string {
	var s []string
	for _, d := range dtypes {
		if k := key(d); k != "" {
			s = append(s, k)
		}
	}
	return strings.Join(s, " ")
}

// numElements returns the product of shape and that product times esize,
// failing on negative dimensions and on products that overflow int64.
func numElements(shape []int, esize int) (n, nbytes int64, err error) {
	n = 1
	for _, d := range shape {
		if d < 0 {
			return 0, 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, 0, fmt.Errorf("shape %v: element count overflows int64", shape)
		}
		n = int64(lo)
	}
	hi, lo := bits.Mul64(uint64(n), uint64(esize))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, 0, fmt.Errorf("shape %v: %d elements of %d bytes overflow int64", shape, n, esize)
	}
	return n, int64(lo), nil
}

// newArray allocates the data slice of an Array of n elements of dtype dt.
func newArray(shape []int, dt dtypeInfo, n int) *Array {
	a := &Array{Shape: append([]int{}, shape...), Dtype: dt.name}
	switch dt.name {
	case Int32:
		a.I32 = make([]int32, n)
	case Uint32:
		a.U32 = make([]uint32, n)
	case Int64:
		a.I64 = make([]int64, n)
	default:
		a.F32 = make([]float32, n)
	}
	return a
}

// decodeElems decodes little-endian elements from raw into a, starting at
// element index i. len(raw) is a multiple of the element size.
func decodeElems(a *Array, dt dtypeInfo, raw []byte, i int) {
	le := binary.LittleEndian
	switch dt.name {
	case Float32:
		for j := 0; j < len(raw); j, i = j+4, i+1 {
			a.F32[i] = math.Float32frombits(le.Uint32(raw[j:]))
		}
	case Float16:
		for j := 0; j < len(raw); j, i = j+2, i+1 {
			a.F32[i] = half.ToFloat32(le.Uint16(raw[j:]))
		}
	case BFloat16:
		for j := 0; j < len(raw); j, i = j+2, i+1 {
			a.F32[i] = BFloat16ToFloat32(le.Uint16(raw[j:]))
		}
	case Float64:
		for j := 0; j < len(raw); j, i = j+8, i+1 {
			a.F32[i] = float32(math.Float64frombits(le.Uint64(raw[j:])))
		}
	case Int32:
		for j := 0; j < len(raw); j, i = j+4, i+1 {
			a.I32[i] = int32(le.Uint32(raw[j:]))
		}
	case Uint32:
		for j := 0; j < len(raw); j, i = j+4, i+1 {
			a.U32[i] = le.Uint32(raw[j:])
		}
	case Int64:
		for j := 0; j < len(raw); j, i = j+8, i+1 {
			a.I64[i] = int64(le.Uint64(raw[j:]))
		}
	}
}

// BFloat16ToFloat32 converts a bfloat16 value (the top 16 bits of a float32)
// to float32, exactly.
func BFloat16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }
