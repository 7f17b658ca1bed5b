package tensorio

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// maxSafetensorsHeader bounds the JSON header, as the format's specification
// does (100 MB).
const maxSafetensorsHeader = 100 << 20

// SafeTensors is the index of a .safetensors file: an 8-byte little-endian
// header length, a JSON header mapping each tensor's name to its dtype, shape
// and byte range, then the raw little-endian data. Opening reads and checks
// only the header; Read loads one tensor.
type SafeTensors struct {
	Name     string            // the file, for errors
	Names    []string          // the tensors, sorted
	Metadata map[string]string // the header's __metadata__, if any

	r         io.ReaderAt // nil: reopen Name on every Read
	dataStart int64
	entries   map[string]stEntry
}

type stEntry struct {
	dt         dtypeInfo
	shape      []int
	begin, end int64 // byte range within the data section
}

// OpenSafetensors reads and checks the header of a .safetensors file.
func OpenSafetensors(path string) (*SafeTensors, error) {
	return decodeFile(path, func(f *os.File, size int64) (*SafeTensors, error) {
		s, err := DecodeSafetensors(f, size, path)
		if err != nil {
			return nil, err
		}
		s.r = nil // the file is closed: Read reopens it
		return s, nil
	})
}

// DecodeSafetensors reads and checks the header of size bytes of safetensors
// data in r; name prefixes every error. Every tensor's byte range must lie in
// the data section, match its dtype and shape exactly, and not overlap another.
func DecodeSafetensors(r io.ReaderAt, size int64, name string) (*SafeTensors, error) {
	var pre [8]byte
	if size < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file: %d bytes, too short for the header length", name, size)
	}
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	hlen := binary.LittleEndian.Uint64(pre[:])
	if hlen > maxSafetensorsHeader || hlen > uint64(size-8) {
		return nil, fmt.Errorf("%s: not a safetensors file: header length %d, the file has %d bytes after the length (limit %d)", name, hlen, size-8, maxSafetensorsHeader)
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("%s: reading the header: %w", name, err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: safetensors header is not a JSON object: %w", name, err)
	}
	if rest := bytes.TrimRight(hdr[dec.InputOffset():], " \t\r\n\x00"); len(rest) > 0 {
		return nil, fmt.Errorf("%s: safetensors header has %d bytes after its JSON object", name, len(rest))
	}
	s := &SafeTensors{Name: name, r: r, dataStart: 8 + int64(hlen), entries: map[string]stEntry{}}
	dataSize := size - s.dataStart
	for key, msg := range raw {
		if key == "__metadata__" {
			if err := json.Unmarshal(msg, &s.Metadata); err != nil {
				return nil, fmt.Errorf("%s: safetensors __metadata__ is not a map of strings: %w", name, err)
			}
			continue
		}
		var e struct {
			Dtype       string  `json:"dtype"`
			Shape       []int64 `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		d := json.NewDecoder(bytes.NewReader(msg))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad header entry: %w", name, key, err)
		}
		var dt dtypeInfo
		for _, c := range dtypes {
			if c.st == e.Dtype {
				dt = c
			}
		}
		if dt.name == "" {
			return nil, fmt.Errorf("%s: tensor %q: dtype %q is not supported: want one of %s", name, key, e.Dtype, supported(func(d dtypeInfo) string { return d.st }))
		}
		if e.Shape == nil {
			return nil, fmt.Errorf("%s: tensor %q: no shape", name, key)
		}
		shape := make([]int, len(e.Shape))
		for i, v := range e.Shape {
			if v < 0 || v > math.MaxInt {
				return nil, fmt.Errorf("%s: tensor %q: shape %v has a negative dimension", name, key, e.Shape)
			}
			shape[i] = int(v)
		}
		_, nbytes, err := numElements(shape, dt.size)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", name, key, err)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fmt.Errorf("%s: tensor %q: data_offsets %v, want [begin, end]", name, key, e.DataOffsets)
		}
		b, en := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || en < b || en > dataSize {
			return nil, fmt.Errorf("%s: tensor %q: data_offsets [%d, %d] outside the %d data bytes (truncated file?)", name, key, b, en, dataSize)
		}
		if en-b != nbytes {
			return nil, fmt.Errorf("%s: tensor %q: data_offsets [%d, %d] hold %d bytes, shape %v of %s needs %d", name, key, b, en, en-b, shape, dt.name, nbytes)
		}
		s.entries[key] = stEntry{dt: dt, shape: shape, begin: b, end: en}
		s.Names = append(s.Names, key)
	}
	slices.Sort(s.Names)
	byStart := slices.Clone(s.Names)
	slices.SortFunc(byStart, func(a, b string) int {
		ea, eb := s.entries[a], s.entries[b]
		return cmp.Or(cmp.Compare(ea.begin, eb.begin), cmp.Compare(ea.end, eb.end), strings.Compare(a, b))
	})
	for i := 1; i < len(byStart); i++ {
		p, q := s.entries[byStart[i-1]], s.entries[byStart[i]]
		if q.begin < p.end {
			return nil, fmt.Errorf("%s: tensors %q [%d, %d] and %q [%d, %d] overlap", name, byStart[i-1], p.begin, p.end, byStart[i], q.begin, q.end)
		}
	}
	return s, nil
}

// Shape returns the shape and dtype of tensor key, or ok = false when the file
// has no such tensor.
func (s *SafeTensors) Shape(key string) (shape []int, dtype string, ok bool) {
	e, ok := s.entries[key]
	return slices.Clone(e.shape), e.dt.name, ok
}

// Read loads tensor key (floating types converted to float32).
func (s *SafeTensors) Read(key string) (*Array, error) {
	e, ok := s.entries[key]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q (have %s)", s.Name, key, strings.Join(s.Names, ", "))
	}
	r := s.r
	if r == nil {
		f, err := os.Open(s.Name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	n := (e.end - e.begin) / int64(e.dt.size)
	sec := io.NewSectionReader(r, s.dataStart+e.begin, e.end-e.begin)
	a, got, err := readArray(sec, e.shape, e.dt, n, true)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: truncated data: needs %d bytes from byte %d, data ends at byte %d",
			s.Name, key, e.end-e.begin, s.dataStart+e.begin, s.dataStart+e.begin+got)
	}
	return a, nil
}

// WriteSafetensors writes tensors to path as a .safetensors file, atomically,
// in name order. Floating arrays are written as F32 (their float32 values),
// integer arrays as I32, U32 or I64.
func WriteSafetensors(path string, tensors map[string]*Array) error {
	type entry struct {
		Dtype       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	names := make([]string, 0, len(tensors))
	for k := range tensors {
		names = append(names, k)
	}
	slices.Sort(names)
	hdr := map[string]any{}
	var off int64
	for _, k := range names {
		a := tensors[k]
		if k == "__metadata__" {
			return fmt.Errorf("%s: a tensor may not be called __metadata__", path)
		}
		n, _, err := numElements(a.Shape, 1)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %w", path, k, err)
		}
		var st string
		var esize int64 = 4
		switch {
		case a.IsFloat():
			st = "F32"
		case a.Dtype == Int32:
			st = "I32"
		case a.Dtype == Uint32:
			st = "U32"
		case a.Dtype == Int64:
			st, esize = "I64", 8
		default:
			return fmt.Errorf("%s: tensor %q: dtype %q is not supported", path, k, a.Dtype)
		}
		if int64(a.dataLen()) != n {
			return fmt.Errorf("%s: tensor %q: shape %v holds %d elements, the %s data has %d", path, k, a.Shape, n, a.Dtype, a.dataLen())
		}
		shape := a.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[k] = entry{Dtype: st, Shape: shape, DataOffsets: [2]int64{off, off + n*esize}}
		off += n * esize
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for len(js)%8 != 0 { // align the data to 8 bytes
		js = append(js, ' ')
	}
	return writeFileAtomic(path, func(w io.Writer) error {
		if err := binary.Write(w, binary.LittleEndian, uint64(len(js))); err != nil {
			return err
		}
		if _, err := w.Write(js); err != nil {
			return err
		}
		le := binary.LittleEndian
		for _, k := range names {
			a := tensors[k]
			var err error
			switch {
			case a.IsFloat():
				err = writeLE(w, len(a.F32), 4, func(b []byte, i int) { le.PutUint32(b, math.Float32bits(a.F32[i])) })
			case a.Dtype == Int32:
				err = writeLE(w, len(a.I32), 4, func(b []byte, i int) { le.PutUint32(b, uint32(a.I32[i])) })
			case a.Dtype == Uint32:
				err = writeLE(w, len(a.U32), 4, func(b []byte, i int) { le.PutUint32(b, a.U32[i]) })
			case a.Dtype == Int64:
				err = writeLE(w, len(a.I64), 8, func(b []byte, i int) { le.PutUint64(b, uint64(a.I64[i])) })
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}
