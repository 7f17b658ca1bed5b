package tensorio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// rawNPY returns an .npy file of the given descr and shape holding data bytes,
// with a header as numpy writes it.
func rawNPY(descr string, shape []int, data []byte) []byte {
	return append(npyHeader(descr, shape), data...)
}

// rawNPYHeader returns an .npy file with a hand-written header dict and data,
// in format version major.
func rawNPYHeader(major byte, dict string, data []byte) []byte {
	b := []byte(npyMagic)
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(dict)))
	}
	b = append(b, dict...)
	return append(b, data...)
}

func le32(xs ...uint32) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func f32bytes(xs ...float32) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func decode(t *testing.T, b []byte) (*Array, error) {
	t.Helper()
	a, err := DecodeNPY(bytes.NewReader(b), int64(len(b)), "x.npy")
	// The unknown-size path must agree with the known-size one.
	a2, err2 := DecodeNPY(bytes.NewReader(b), -1, "x.npy")
	if (err == nil) != (err2 == nil) {
		t.Errorf("DecodeNPY with size %d: err %v; with size -1: err %v", len(b), err, err2)
	} else if err == nil && !cmp.Equal(a, a2, cmpopts.EquateNaNs()) {
		t.Errorf("DecodeNPY with known and unknown size differ:\n%v", cmp.Diff(a, a2, cmpopts.EquateNaNs()))
	}
	return a, err
}

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, shape := range [][]int{{}, {0}, {1}, {5}, {2, 3, 4}, {3, 0, 2}, {1, 1, 1, 1, 7}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		f := make([]float32, n)
		i := make([]int32, n)
		u := make([]uint32, n)
		for k := range n {
			f[k] = float32(k)*0.25 - 3
			i[k] = int32(k*7919) - 1<<20
			u[k] = uint32(k) * 2654435761
		}
		pf, pi, pu := filepath.Join(dir, "f.npy"), filepath.Join(dir, "i.npy"), filepath.Join(dir, "u.npy")
		if err := WriteNPYFloat32(pf, shape, f); err != nil {
			t.Fatal(err)
		}
		if err := WriteNPYInt32(pi, shape, i); err != nil {
			t.Fatal(err)
		}
		if err := WriteNPYUint32(pu, shape, u); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			path string
			want *Array
		}{
			{pf, &Array{Shape: shape, Dtype: Float32, F32: f}},
			{pi, &Array{Shape: shape, Dtype: Int32, I32: i}},
			{pu, &Array{Shape: shape, Dtype: Uint32, U32: u}},
		} {
			got, err := ReadNPY(c.path)
			if err != nil {
				t.Fatalf("shape %v: ReadNPY(%s): %v", shape, c.path, err)
			}
			if diff := cmp.Diff(c.want, got, cmp.Comparer(func(a, b []int) bool { return len(a) == len(b) && (len(a) == 0 || cmp.Equal(a, b)) })); diff != "" {
				t.Errorf("shape %v: ReadNPY(%s) after write: (-want +got)\n%s", shape, filepath.Base(c.path), diff)
			}
			raw, _ := os.ReadFile(c.path)
			hlen := len(raw) - n*4
			if hlen%64 != 0 || raw[hlen-1] != '\n' {
				t.Errorf("shape %v: header of %d bytes: want a multiple of 64 ending in a newline", shape, hlen)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("dir holds %d entries after writes, want 3 (no temporaries left)", len(entries))
	}
}

// TestNPYHeaderAsNumpy pins the exact bytes numpy 1.x/2.x writes for a small
// array, so files written here load in numpy and numpy's load here.
func TestNPYHeaderAsNumpy(t *testing.T) {
	// numpy: np.save(f, np.zeros((2, 3), np.float32)) writes this 128-byte file
	// head: magic, version 1.0, header length 118, the dict, spaces (20 of them
	// spare room to grow axis 0, then padding), newline.
	want := "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
		strings.Repeat(" ", 128-10-len("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")-1) + "\n"
	if got := string(npyHeader("<f4", []int{2, 3})); got != want {
		t.Errorf("npyHeader(<f4, [2 3]) =\n%q\nwant\n%q", got, want)
	}
	if got := string(npyHeader("<u4", []int{7})); !strings.Contains(got, "'shape': (7,), }") {
		t.Errorf("npyHeader(<u4, [7]) = %q, want a one-element tuple (7,)", got)
	}
	if got := string(npyHeader("<i4", nil)); !strings.Contains(got, "'shape': (), }") {
		t.Errorf("npyHeader(<i4, []) = %q, want the empty tuple ()", got)
	}
}

func TestNPYVersion2And3(t *testing.T) {
	// A header longer than 65535 bytes forces version 2.0 on writing.
	shape := make([]int, 25000)
	for i := range shape {
		shape[i] = 1
	}
	shape[3] = 2
	path := filepath.Join(t.TempDir(), "long.npy")
	if err := WriteNPYFloat32(path, shape, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if raw[6] != 2 {
		t.Errorf("a %d-dimensional array was written as version %d.%d, want 2.0", len(shape), raw[6], raw[7])
	}
	a, err := ReadNPY(path)
	if err != nil || !cmp.Equal(a.F32, []float32{1, 2}) || len(a.Shape) != len(shape) {
		t.Errorf("ReadNPY(version 2.0) = %v, %v", a, err)
	}
	// Version 3.0 (a UTF-8 header) and 1.0 by hand, with double quotes, extra
	// spaces and Python 2 longs.
	for _, c := range []struct {
		major byte
		dict  string
	}{
		{3, `{"descr": "<f4", "fortran_order": False, "shape": (2,)}` + "\n"},
		{1, "{ 'shape' : (2L,) , 'fortran_order':False,'descr':'<f4' }   \n"},
	} {
		a, err := decode(t, rawNPYHeader(c.major, c.dict, f32bytes(1.5, -2)))
		if err != nil {
			t.Errorf("version %d.0 header %q: %v", c.major, c.dict, err)
			continue
		}
		if !cmp.Equal(a.Shape, []int{2}) || !cmp.Equal(a.F32, []float32{1.5, -2}) {
			t.Errorf("version %d.0 header %q: got %v %v", c.major, c.dict, a.Shape, a.F32)
		}
	}
}

func TestNPYReadConverted(t *testing.T) {
	// float16: 1, -2, the smallest subnormal 2^-24, the largest 65504, -0, inf, -inf, NaN.
	var f16 []byte
	for _, h := range []uint16{0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000, 0x7c00, 0xfc00, 0x7e00} {
		f16 = binary.LittleEndian.AppendUint16(f16, h)
	}
	a, err := decode(t, rawNPY("<f2", []int{2, 4}, f16))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1, -2, float32(math.Ldexp(1, -24)), 65504, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1))}
	if a.Dtype != Float16 || !cmp.Equal(a.F32[:7], want) || !math.IsNaN(float64(a.F32[7])) || !math.Signbit(float64(a.F32[4])) {
		t.Errorf("float16 npy = %v %v, want %v then NaN", a.Dtype, a.F32, want)
	}
	var f64 []byte
	for _, x := range []float64{0.1, -3, 1e300} {
		f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(x))
	}
	a, err = decode(t, rawNPY("<f8", []int{3}, f64))
	if err != nil || !cmp.Equal(a.F32, []float32{0.1, -3, float32(math.Inf(1))}) {
		t.Errorf("float64 npy = %v, %v; want [0.1 -3 +Inf]", a, err)
	}
	var i64 []byte
	for _, x := range []int64{-1, 1 << 40} {
		i64 = binary.LittleEndian.AppendUint64(i64, uint64(x))
	}
	a, err = decode(t, rawNPY("<i8", []int{2}, i64))
	if err != nil || !cmp.Equal(a.I64, []int64{-1, 1 << 40}) || a.Dtype != Int64 {
		t.Errorf("int64 npy = %v, %v; want [-1 1<<40]", a, err)
	}
}

func TestNPYErrors(t *testing.T) {
	good := rawNPY("<f4", []int{2, 2}, f32bytes(1, 2, 3, 4))
	for _, c := range []struct {
		name string
		file []byte
		want []string // substrings of the error
	}{
		{"empty", nil, []string{"x.npy", "not an npy file"}},
		{"bad magic", append([]byte("\x93NUMPX"), good[6:]...), []string{"x.npy", "bad magic"}},
		{"version 4", append(append([]byte{}, good[:6]...), append([]byte{4, 0}, good[8:]...)...), []string{"version 4.0"}},
		{"truncated data", good[:len(good)-3], []string{"x.npy", "truncated data", fmt.Sprintf("needs 16 bytes from byte %d", len(good)-16), fmt.Sprintf("ends at byte %d", len(good)-3)}},
		{"trailing bytes", append(append([]byte{}, good...), 0), []string{"x.npy", "unexpected bytes after the data"}},
		{"truncated header", good[:30], []string{"x.npy", "truncated npy header"}},
		{"fortran", rawNPYHeader(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n", f32bytes(1)), []string{"x.npy", "Fortran"}},
		{"big-endian", rawNPY(">f4", []int{1}, f32bytes(1)), []string{"x.npy", `">f4"`, "big-endian"}},
		{"complex", rawNPY("<c8", []int{1}, make([]byte, 8)), []string{"x.npy", `"<c8"`, "not supported"}},
		{"bfloat16 is not an npy type", rawNPY("<V2", []int{1}, make([]byte, 2)), []string{`"<V2"`}},
		{"structured", rawNPYHeader(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", f32bytes(1)), []string{"structured"}},
		{"not a dict", rawNPYHeader(1, "[1, 2]\n", nil), []string{"x.npy", "not a Python dict"}},
		{"not a literal", rawNPYHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), \n", f32bytes(1)), []string{"x.npy", "not a valid Python dict literal"}},
		{"garbage", rawNPYHeader(1, "import os\n", nil), []string{"x.npy", "not a valid Python dict literal"}},
		{"extra key", rawNPYHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", f32bytes(1)), []string{"unexpected key \"x\""}},
		{"missing key", rawNPYHeader(1, "{'descr': '<f4', 'shape': (1,)}\n", f32bytes(1)), []string{"want exactly"}},
		{"negative dim", rawNPYHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }\n", nil), []string{"x.npy", "negative"}},
		{"overflow", rawNPYHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", nil), []string{"x.npy", "overflow"}},
		{"overflow bytes", rawNPYHeader(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }\n", nil), []string{"x.npy", "overflow"}},
		{"huge int", rawNPYHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", nil), []string{"bad integer"}},
		{"shape not tuple", rawNPYHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': 3, }\n", nil), []string{"not a tuple"}},
		{"deep", rawNPYHeader(1, "{'descr': "+strings.Repeat("(", 100)+"\n", nil), []string{"nested deeper"}},
	} {
		_, err := decode(t, c.file)
		if err == nil {
			t.Errorf("%s: DecodeNPY = nil error, want one containing %q", c.name, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: DecodeNPY error %q, want it to contain %q", c.name, err, w)
			}
		}
	}
}

// TestNPYBoundedAllocation checks that a small file claiming a huge shape fails
// without allocating for the claim, with the size known and unknown.
func TestNPYBoundedAllocation(t *testing.T) {
	file := rawNPYHeader(1, "{'descr':'<f4','fortran_order':False,'shape':(1099511627776,)}\n", make([]byte, 27)) // 100 bytes claiming 4 TiB
	if len(file) != 100 {
		t.Fatalf("test file is %d bytes, want 100", len(file))
	}
	for _, size := range []int64{100, -1} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := DecodeNPY(bytes.NewReader(file), size, "huge.npy")
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "truncated data") || !strings.Contains(err.Error(), "huge.npy") {
			t.Errorf("size %d: DecodeNPY(shape (1<<40,) in 100 bytes) error = %v, want truncated data naming huge.npy", size, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("size %d: DecodeNPY allocated %d bytes for a 100-byte file, want < 8 MiB", size, alloc)
		}
	}
	// A header length claim beyond the file fails before the header is read.
	file = rawNPYHeader(2, "{}", nil)
	binary.LittleEndian.PutUint32(file[8:], 1<<31)
	if _, err := decode(t, file); err == nil || !strings.Contains(err.Error(), "header") {
		t.Errorf("header length 2 GiB: err = %v, want a header error", err)
	}
}

func TestWriteNPYAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.npy")
	if err := WriteNPYFloat32(path, []int{2}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	// A shape that does not match the data is an error naming both, and it
	// leaves the existing file untouched and no temporary behind.
	err := WriteNPYFloat32(path, []int{2, 3}, []float32{1, 2})
	if err == nil || !strings.Contains(err.Error(), "w.npy") || !strings.Contains(err.Error(), "[2 3] holds 6 elements") || !strings.Contains(err.Error(), "has 2") {
		t.Errorf("WriteNPYFloat32(shape [2 3], 2 values) error = %v, want one naming w.npy, the shape and both lengths", err)
	}
	if err := WriteNPYInt32(path, []int{-1}, nil); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("WriteNPYInt32(shape [-1]) error = %v, want a negative-dimension error", err)
	}
	a, err := ReadNPY(path)
	if err != nil || !cmp.Equal(a.F32, []float32{1, 2}) {
		t.Errorf("after failed writes, ReadNPY = %v, %v; want the first file [1 2]", a, err)
	}
	// A failure inside the write (here: the target is a directory, so the
	// rename fails) removes the temporary.
	sub := filepath.Join(dir, "sub.npy")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteNPYUint32(sub, []int{1}, []uint32{1}); err == nil {
		t.Errorf("WriteNPYUint32 onto a non-empty directory = nil error")
	}
	if err := WriteNPYUint32(filepath.Join(dir, "missing", "x.npy"), []int{1}, []uint32{1}); err == nil {
		t.Errorf("WriteNPYUint32 into a missing directory = nil error")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !cmp.Equal(names, []string{"sub.npy", "w.npy"}) {
		t.Errorf("dir after failed writes holds %q, want [sub.npy w.npy]", names)
	}
}

func TestCheckFinite(t *testing.T) {
	if err := CheckFinite("q", []float32{1, -2, 0}); err != nil {
		t.Errorf("CheckFinite(finite) = %v", err)
	}
	nan := float32(math.NaN())
	err := CheckFinite("layer_02_q", []float32{1, float32(math.Inf(-1)), nan})
	if err == nil || !strings.Contains(err.Error(), "layer_02_q") || !strings.Contains(err.Error(), "entry 1 ") || !strings.Contains(err.Error(), "-Inf") {
		t.Errorf("CheckFinite([1 -Inf NaN]) = %v, want an error naming layer_02_q and entry 1 (-Inf)", err)
	}
}
