package tensorio

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"testing"
)

// checkArray holds a successfully decoded array to its invariants.
func checkArray(t *testing.T, a *Array) {
	n := 1
	for _, d := range a.Shape {
		if d < 0 {
			t.Fatalf("decoded shape %v has a negative dimension", a.Shape)
		}
		n *= d
	}
	if a.dataLen() != n {
		t.Fatalf("decoded shape %v holds %d elements, data has %d", a.Shape, n, a.dataLen())
	}
}

func FuzzReadNPY(f *testing.F) {
	good := rawNPY("<f4", []int{2, 3}, f32bytes(1, 2, 3, 4, 5, 6))
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:20])
	f.Add(rawNPY("<f2", []int{3}, []byte{0, 0x3c, 1, 0, 0, 0x7c}))
	f.Add(rawNPY("<f8", []int{1}, make([]byte, 8)))
	f.Add(rawNPY("<i4", []int{1, 1}, le32(7)))
	f.Add(rawNPY("<u4", []int{}, le32(7)))
	f.Add(rawNPY("<i8", []int{0}, nil))
	f.Add(rawNPY(">f4", []int{1}, le32(7)))
	f.Add(rawNPYHeader(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n", nil))
	f.Add(rawNPYHeader(3, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n", le32(1)))
	f.Add(rawNPYHeader(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ((1,),), }\n", le32(1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeNPY(bytes.NewReader(b), int64(len(b)), "fuzz.npy")
		a2, err2 := DecodeNPY(bytes.NewReader(b), -1, "fuzz.npy")
		if (err == nil) != (err2 == nil) {
			t.Fatalf("known size: %v; unknown size: %v", err, err2)
		}
		if err == nil {
			checkArray(t, a)
			checkArray(t, a2)
		}
	})
}

// storedZip builds a PyTorch-like zip of the entries (names, data) alternating.
func storedZip(entries ...any) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(entries); i += 2 {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: entries[i].(string), Method: zip.Store})
		w.Write(entries[i+1].([]byte))
	}
	zw.Close()
	return buf.Bytes()
}

// FuzzReadTorch mutates the pickle and the storage bytes of a PyTorch file
// (inside a well-formed zip, since the zip's CRCs would reject most mutations
// of a whole file), and also decodes the storage bytes as a whole file.
func FuzzReadTorch(f *testing.F) {
	file, vals := validTorch(f)
	f.Add(tensorPickle("BFloat16Storage", 192, 0, []int64{2, 3, 32}, []int64{96, 32, 1}), bf16bytes(vals))
	f.Add(tensorPickle("FloatStorage", 6, 2, []int64{2, 1, 2}, []int64{2, 7, 1}), f32bytes(1, 2, 3, 4, 5, 6))
	f.Add(tensorPickle("HalfStorage", 1<<40, 0, []int64{1 << 40}, []int64{1}), []byte{1, 2})
	f.Add(tensorPickle("FloatStorage", 4, 0, []int64{2, 2}, []int64{1, 2}), f32bytes(1, 2, 3, 4))
	f.Add([]byte{0x80, 2, '(', '(', '(', 'K', 1, 't', 'q', 0, 'h', 0, 'h', 0, 0x86, '.'}, file)
	f.Add([]byte{0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'}, file[:len(file)/2])
	f.Fuzz(func(t *testing.T, pkl, data []byte) {
		z := storedZip("archive/data.pkl", pkl, "archive/byteorder", []byte("little"), "archive/data/0", data)
		if a, err := DecodeTorchTensor(bytes.NewReader(z), int64(len(z)), "fuzz.pt"); err == nil {
			checkArray(t, a)
		}
		if a, err := DecodeTorchTensor(bytes.NewReader(data), int64(len(data)), "fuzz.pt"); err == nil {
			checkArray(t, a)
		}
		if len(pkl) <= maxPickleSize {
			unpickle(pkl) // must not panic
		}
	})
}

func FuzzReadSafetensors(f *testing.F) {
	mk := func(hdr string, data []byte) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
		return append(append(b, hdr...), data...)
	}
	f.Add(mk(`{"layer_02_q":{"dtype":"F32","shape":[1,1,2],"data_offsets":[0,8]},"__metadata__":{"a":"b"}}`, make([]byte, 8)))
	f.Add(mk(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[1],"data_offsets":[4,6]}}`, make([]byte, 6)))
	f.Add(mk(`{"x":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"y":{"dtype":"U32","shape":[0],"data_offsets":[8,8]}}`, make([]byte, 8)))
	f.Add(mk(`{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil))
	f.Add(mk(`{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}`, make([]byte, 8)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSafetensors(bytes.NewReader(b), int64(len(b)), "fuzz.safetensors")
		if err != nil {
			return
		}
		for _, k := range s.Names {
			a, err := s.Read(k)
			if err != nil {
				t.Fatalf("tensor %q listed by a valid header fails to read: %v", k, err)
			}
			checkArray(t, a)
		}
	})
}
