package tensorio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hata-go/hata/internal/atomicfile"
)

// npyMagic opens every .npy file; the format version's major and minor bytes
// follow it.
const npyMagic = "\x93NUMPY"

// maxNPYHeader bounds the header length that a reader accepts (numpy's own
// default limit is 10000 bytes; version 1.0 cannot exceed 65535).
const maxNPYHeader = 1 << 20

// ReadNPY reads a .npy file (format version 1.0, 2.0 or 3.0, C order, a
// little-endian dtype of the Dtype constants but bfloat16). Float16 and float64
// data are converted to float32.
func ReadNPY(path string) (*Array, error) {
	return decodeFile(path, func(f *os.File, size int64) (*Array, error) {
		return DecodeNPY(bufio.NewReaderSize(f, 1<<16), size, path)
	})
}

// decodeFile opens path and hands it, with its size, to decode: the bound
// every reader checks claimed sizes against. The file is closed afterwards.
func decodeFile[T any](path string, decode func(f *os.File, size int64) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return zero, err
	}
	return decode(f, st.Size())
}

// DecodeNPY decodes an .npy stream of size bytes read from r; name (a file
// name) prefixes every error. With size >= 0 the data size claimed by the
// header is checked against size before anything is allocated for it; with
// size < 0 (unknown) the data are read in bounded chunks, so memory grows only
// with the bytes actually present. Bytes after the data are an error.
func DecodeNPY(r io.Reader, size int64, name string) (*Array, error) {
	var pre [10]byte
	if n, err := io.ReadFull(r, pre[:8]); err != nil {
		return nil, fmt.Errorf("%s: not an npy file: %d bytes, too short for the magic and version", name, n)
	}
	if string(pre[:6]) != npyMagic {
		return nil, fmt.Errorf("%s: not an npy file: bad magic %q, want %q", name, pre[:6], npyMagic)
	}
	major, minor := pre[6], pre[7]
	var hlen, off int64
	switch major {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, fmt.Errorf("%s: truncated npy preamble: file ends before byte 10", name)
		}
		hlen, off = int64(binary.LittleEndian.Uint16(pre[8:10])), 10
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%s: truncated npy preamble: file ends before byte 12", name)
		}
		hlen, off = int64(binary.LittleEndian.Uint32(b[:])), 12
	default:
		return nil, fmt.Errorf("%s: npy format version %d.%d is not supported (want 1.0, 2.0 or 3.0)", name, major, minor)
	}
	if minor != 0 {
		return nil, fmt.Errorf("%s: npy format version %d.%d is not supported (want 1.0, 2.0 or 3.0)", name, major, minor)
	}
	if hlen > maxNPYHeader {
		return nil, fmt.Errorf("%s: npy header of %d bytes exceeds the limit of %d", name, hlen, maxNPYHeader)
	}
	if size >= 0 && off+hlen > size {
		return nil, fmt.Errorf("%s: truncated npy header: it claims %d bytes from byte %d, the file has %d bytes", name, hlen, off, size)
	}
	hdr := make([]byte, hlen) // bounded by maxNPYHeader
	if n, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("%s: truncated npy header: it claims %d bytes from byte %d, data ends at byte %d", name, hlen, off, off+int64(n))
	}
	off += hlen
	shape, dt, err := parseNPYHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("%s: npy header %q: %w", name, shortQuote(hdr), err)
	}
	n, nbytes, err := numElements(shape, dt.size)
	if err != nil {
		return nil, fmt.Errorf("%s: npy header: %w", name, err)
	}
	if size >= 0 && size-off < nbytes {
		return nil, fmt.Errorf("%s: truncated data: shape %v of %s needs %d bytes from byte %d, the file ends at byte %d",
			name, shape, dt.name, nbytes, off, size)
	}
	if size >= 0 && size-off > nbytes {
		return nil, fmt.Errorf("%s: %d unexpected bytes after the data (shape %v of %s ends at byte %d of %d)",
			name, size-off-nbytes, shape, dt.name, off+nbytes, size)
	}
	a, got, err := readArray(r, shape, dt, n, size >= 0)
	if err != nil {
		return nil, fmt.Errorf("%s: truncated data: shape %v of %s needs %d bytes from byte %d, data ends at byte %d",
			name, shape, dt.name, nbytes, off, off+got)
	}
	if size < 0 {
		var b [1]byte
		if k, _ := io.ReadFull(r, b[:]); k > 0 {
			return nil, fmt.Errorf("%s: unexpected bytes after the data (shape %v of %s ends at byte %d)", name, shape, dt.name, off+nbytes)
		}
	}
	return a, nil
}

// readArray reads n elements of dt from r. When prealloc is false the element
// count has not been checked against the input, so the array grows chunk by
// chunk as the bytes arrive. It returns the bytes read.
func readArray(r io.Reader, shape []int, dt dtypeInfo, n int64, prealloc bool) (*Array, int64, error) {
	const chunk = 1 << 20 // bytes per read, a multiple of every element size
	var a *Array
	if prealloc {
		a = newArray(shape, dt, int(n))
	} else {
		a = newArray(shape, dt, int(min(n, chunk/int64(dt.size))))
	}
	buf := make([]byte, min(n*int64(dt.size), chunk))
	var got, done int64 // bytes read, elements decoded
	for done < n {
		want := min(int64(len(buf)), (n-done)*int64(dt.size))
		k, err := io.ReadFull(r, buf[:want])
		got += int64(k)
		if err != nil {
			return nil, got, err
		}
		m := want / int64(dt.size)
		if !prealloc && done+m > int64(a.dataLen()) {
			a.grow(int(min(n, 2*(done+m))))
		}
		decodeElems(a, dt, buf[:want], int(done))
		done += m
	}
	return a, got, nil
}

// dataLen returns the length of the data slice that is set (its room in
// elements while an array grows).
func (a *Array) dataLen() int {
	return len(a.F32) + len(a.I32) + len(a.U32) + len(a.I64)
}

// grow extends the data slice to n elements.
func (a *Array) grow(n int) {
	switch {
	case a.I32 != nil:
		a.I32 = append(a.I32, make([]int32, n-len(a.I32))...)
	case a.U32 != nil:
		a.U32 = append(a.U32, make([]uint32, n-len(a.U32))...)
	case a.I64 != nil:
		a.I64 = append(a.I64, make([]int64, n-len(a.I64))...)
	default:
		a.F32 = append(a.F32, make([]float32, n-len(a.F32))...)
	}
}

// parseNPYHeader interprets the header dict: exactly the keys 'descr',
// 'fortran_order' and 'shape'.
func parseNPYHeader(hdr []byte) ([]int, dtypeInfo, error) {
	v, err := parsePyLiteral(string(hdr))
	if err != nil {
		return nil, dtypeInfo{}, fmt.Errorf("not a valid Python dict literal: %w", err)
	}
	d, ok := v.(*pyDict)
	if !ok {
		return nil, dtypeInfo{}, fmt.Errorf("not a Python dict literal")
	}
	for _, k := range d.keys {
		if k != "descr" && k != "fortran_order" && k != "shape" {
			return nil, dtypeInfo{}, fmt.Errorf("unexpected key %q (want exactly 'descr', 'fortran_order', 'shape')", k)
		}
	}
	if len(d.keys) != 3 {
		return nil, dtypeInfo{}, fmt.Errorf("keys %q, want exactly 'descr', 'fortran_order', 'shape'", d.keys)
	}
	descr, ok := d.vals["descr"].(string)
	if !ok {
		return nil, dtypeInfo{}, fmt.Errorf("descr %s is not a plain dtype string (structured dtypes are not supported)", pyString(d.vals["descr"]))
	}
	var dt dtypeInfo
	for _, c := range dtypes {
		if c.descr != "" && c.descr == descr {
			dt = c
		}
	}
	if dt.name == "" {
		why := "not supported"
		if strings.HasPrefix(descr, ">") {
			why = "big-endian, not supported"
		}
		return nil, dtypeInfo{}, fmt.Errorf("dtype %q is %s: want one of %s", descr, why, supported(func(d dtypeInfo) string { return d.descr }))
	}
	fortran, ok := d.vals["fortran_order"].(bool)
	if !ok {
		return nil, dtypeInfo{}, fmt.Errorf("fortran_order %s is not True or False", pyString(d.vals["fortran_order"]))
	}
	if fortran {
		return nil, dtypeInfo{}, fmt.Errorf("Fortran-order arrays are not supported: save with numpy.ascontiguousarray")
	}
	tup, ok := d.vals["shape"].(pyTuple)
	if !ok {
		return nil, dtypeInfo{}, fmt.Errorf("shape %s is not a tuple", pyString(d.vals["shape"]))
	}
	shape := make([]int, len(tup))
	for i, x := range tup {
		v, ok := x.(int64)
		if !ok {
			return nil, dtypeInfo{}, fmt.Errorf("shape %s: dimension %d is not an integer", pyString(tup), i)
		}
		if v < 0 {
			return nil, dtypeInfo{}, fmt.Errorf("shape %s: dimension %d is negative", pyString(tup), i)
		}
		if v > math.MaxInt {
			return nil, dtypeInfo{}, fmt.Errorf("shape %s: dimension %d overflows int", pyString(tup), i)
		}
		shape[i] = int(v)
	}
	return shape, dt, nil
}

// pyString formats a parsed literal back as Python would print it.
func pyString(v pyValue) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return "'" + v + "'"
	case pyTuple:
		if len(v) == 1 {
			return "(" + pyString(v[0]) + ",)"
		}
		return "(" + joinPy(v) + ")"
	case pyList:
		return "[" + joinPy(v) + "]"
	case *pyDict:
		var s []string
		for _, k := range v.keys {
			s = append(s, "'"+k+"': "+pyString(v.vals[k]))
		}
		return "{" + strings.Join(s, ", ") + "}"
	}
	return fmt.Sprint(v)
}

func joinPy(vs []pyValue) string {
	var s []string
	for _, x := range vs {
		s = append(s, pyString(x))
	}
	return strings.Join(s, ", ")
}

// shortQuote trims a header for an error message.
func shortQuote(b []byte) string {
	b = bytes.TrimRight(b, " \n")
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// npyHeader returns the preamble and header of an .npy file of the given
// descr and shape: version 1.0 when the header fits in 65535 bytes, else 2.0,
// padded with spaces and a newline so that the data start at a multiple of 64
// bytes, as numpy (1.24 and later) writes them.
func npyHeader(descr string, shape []int) []byte {
	var sh strings.Builder
	sh.WriteByte('(')
	for i, d := range shape {
		if i > 0 {
			sh.WriteString(", ")
		}
		sh.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		sh.WriteByte(',')
	}
	sh.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, sh.String())
	if len(shape) > 0 { // numpy's spare room to grow axis 0 in place
		dict += strings.Repeat(" ", max(0, 21-len(strconv.Itoa(shape[0]))))
	}
	for _, v := range []struct {
		major byte
		pre   int
	}{{1, 10}, {2, 12}} {
		total := (v.pre + len(dict) + 1 + 63) / 64 * 64
		hlen := total - v.pre
		if v.major == 1 && hlen > math.MaxUint16 {
			continue
		}
		out := make([]byte, 0, total)
		out = append(out, npyMagic...)
		out = append(out, v.major, 0)
		if v.major == 1 {
			out = binary.LittleEndian.AppendUint16(out, uint16(hlen))
		} else {
			out = binary.LittleEndian.AppendUint32(out, uint32(hlen))
		}
		out = append(out, dict...)
		for len(out) < total-1 {
			out = append(out, ' ')
		}
		return append(out, '\n')
	}
	panic("unreachable")
}

// writeNPY writes an .npy file atomically: shape must hold exactly n elements,
// and data writes their little-endian bytes.
func writeNPY(path string, dt dtypeInfo, shape []int, n int, data func(w io.Writer) error) error {
	want, _, err := numElements(shape, dt.size)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if want != int64(n) {
		return fmt.Errorf("%s: shape %v holds %d elements, the %s data has %d", path, shape, want, dt.name, n)
	}
	return writeFileAtomic(path, func(w io.Writer) error {
		if _, err := w.Write(npyHeader(dt.descr, shape)); err != nil {
			return err
		}
		return data(w)
	})
}

// WriteNPYFloat32 writes data: shape (row-major) to path as an '<f4' .npy
// file, atomically: the file appears complete or not at all.
func WriteNPYFloat32(path string, shape []int, data []float32) error {
	dt, _ := dtypeByName(Float32)
	return writeNPY(path, dt, shape, len(data), func(w io.Writer) error {
		return writeLE(w, len(data), 4, func(b []byte, i int) {
			binary.LittleEndian.PutUint32(b, math.Float32bits(data[i]))
		})
	})
}

// WriteNPYInt32 writes data: shape (row-major) to path as an '<i4' .npy file,
// atomically.
func WriteNPYInt32(path string, shape []int, data []int32) error {
	dt, _ := dtypeByName(Int32)
	return writeNPY(path, dt, shape, len(data), func(w io.Writer) error {
		return writeLE(w, len(data), 4, func(b []byte, i int) { binary.LittleEndian.PutUint32(b, uint32(data[i])) })
	})
}

// WriteNPYUint32 writes data: shape (row-major) to path as a '<u4' .npy file,
// atomically.
func WriteNPYUint32(path string, shape []int, data []uint32) error {
	dt, _ := dtypeByName(Uint32)
	return writeNPY(path, dt, shape, len(data), func(w io.Writer) error {
		return writeLE(w, len(data), 4, func(b []byte, i int) { binary.LittleEndian.PutUint32(b, data[i]) })
	})
}

// writeLE writes n elements of esize bytes, put(b, i) encoding element i into b.
func writeLE(w io.Writer, n, esize int, put func(b []byte, i int)) error {
	buf := make([]byte, 0, 1<<16)
	for i := range n {
		buf = buf[:len(buf)+esize]
		put(buf[len(buf)-esize:], i)
		if len(buf)+esize > cap(buf) {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

// writeFileAtomic writes path through a temporary file in the same directory
// (atomicfile.Write): on any error path is left as it was.
func writeFileAtomic(path string, write func(w io.Writer) error) error {
	return atomicfile.Write(path, "."+filepath.Base(path)+".tmp-*", write)
}
