package tensorio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func randLayer(rng *rand.Rand, hq, hkv, n, d int, kpre bool) *LayerTrace {
	r := func(m int) []float32 {
		x := make([]float32, m)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	lt := &LayerTrace{Hq: hq, Hkv: hkv, N: n, D: d, Q: r(hq * n * d), K: r(hkv * n * d), V: r(hkv * n * d)}
	if kpre {
		lt.KPre = r(hkv * n * d)
	}
	return lt
}

func TestTraceRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := filepath.Join(t.TempDir(), "trace")
	layers := map[int]*LayerTrace{2: randLayer(rng, 4, 2, 5, 3, true), 15: randLayer(rng, 4, 2, 5, 3, false)}
	meta := &TraceMeta{Model: "tiny", Prompt: "hello", RopeTheta: 500000}
	if err := WriteTrace(dir, meta, layers); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTrace(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(tr.Layers, []int{2, 15}) || !cmp.Equal(tr.Meta, meta) {
		t.Errorf("ReadTrace: layers %v meta %+v, want [2 15] %+v", tr.Layers, tr.Meta, meta)
	}
	for l, want := range layers {
		got, err := tr.Layer(l)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(got, want) {
			t.Errorf("layer %d: (-want +got)\n%s", l, cmp.Diff(want, got))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "layer_02_kpre.npy")); err != nil {
		t.Errorf("layer 2's kpre file: %v", err)
	}
	if _, err := tr.Layer(3); err == nil || !strings.Contains(err.Error(), "no layer 3") {
		t.Errorf("Layer(3) error = %v, want 'no layer 3'", err)
	}

	// The same layers as one safetensors file, read as a directory and as a file.
	st := map[string]*Array{}
	for l, lt := range layers {
		for _, p := range []struct {
			part string
			x    []float32
			h    int
		}{{"q", lt.Q, lt.Hq}, {"k", lt.K, lt.Hkv}, {"v", lt.V, lt.Hkv}, {"kpre", lt.KPre, lt.Hkv}} {
			if p.x != nil {
				st[traceTensorName(l, p.part)] = &Array{Shape: []int{p.h, lt.N, lt.D}, Dtype: Float32, F32: p.x}
			}
		}
	}
	sdir := filepath.Join(t.TempDir(), "st")
	os.Mkdir(sdir, 0o755)
	spath := filepath.Join(sdir, "trace.safetensors")
	if err := WriteSafetensors(spath, st); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sdir, spath} {
		tr, err := ReadTrace(p)
		if err != nil {
			t.Fatal(err)
		}
		for l, want := range layers {
			got, err := tr.Layer(l)
			if err != nil {
				t.Fatal(err)
			}
			if !cmp.Equal(got, want) {
				t.Errorf("%s layer %d: (-want +got)\n%s", p, l, cmp.Diff(want, got))
			}
		}
	}
	// A tensor in both an .npy file and a safetensors file is ambiguous.
	if err := WriteNPYFloat32(filepath.Join(sdir, "layer_02_q.npy"), []int{4, 5, 3}, layers[2].Q); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTrace(sdir); err == nil || !strings.Contains(err.Error(), "layer_02_q is in both") {
		t.Errorf("duplicate tensor: ReadTrace error = %v, want 'layer_02_q is in both'", err)
	}
}

func traceTensorName(l int, part string) string { return fmt.Sprintf("layer_%02d_%s", l, part) }

func TestTraceFloat16(t *testing.T) {
	// A float16 trace, as a PyTorch exporter would save to halve the size.
	dir := t.TempDir()
	h := func(xs ...uint16) []byte {
		var b []byte
		for _, x := range xs {
			b = binary.LittleEndian.AppendUint16(b, x)
		}
		return b
	}
	one, two := uint16(0x3c00), uint16(0x4000)
	files := map[string][]byte{
		"layer_00_q.npy": rawNPY("<f2", []int{2, 1, 2}, h(one, two, two, one)),
		"layer_00_k.npy": rawNPY("<f2", []int{1, 1, 2}, h(one, one)),
		"layer_00_v.npy": rawNPY("<f2", []int{1, 1, 2}, h(two, two)),
	}
	for n, b := range files {
		os.WriteFile(filepath.Join(dir, n), b, 0o644)
	}
	tr, err := ReadTrace(dir)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := tr.Layer(0)
	want := &LayerTrace{Hq: 2, Hkv: 1, N: 1, D: 2, Q: []float32{1, 2, 2, 1}, K: []float32{1, 1}, V: []float32{2, 2}}
	if err != nil || !cmp.Equal(lt, want) {
		t.Errorf("float16 trace: %+v, %v; want %+v", lt, err, want)
	}
}

func TestTraceErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	write := func(t *testing.T, files map[string][]int) string {
		dir := t.TempDir()
		for name, shape := range files {
			n := 1
			for _, d := range shape {
				n *= d
			}
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			if name == "layer_01_v.npy" && len(shape) == 3 && shape[0] == 9 {
				x[5] = float32(math.NaN())
				shape = []int{2, 3, 4}
				x = x[:24]
			}
			if err := WriteNPYFloat32(filepath.Join(dir, name), shape, x); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	qkv := func(q, k, v []int) map[string][]int {
		return map[string][]int{"layer_01_q.npy": q, "layer_01_k.npy": k, "layer_01_v.npy": v}
	}
	for _, c := range []struct {
		name    string
		files   map[string][]int
		openErr bool
		want    []string
	}{
		{"empty", map[string][]int{"other.npy": {1}}, true, []string{"no layer_LL_q/k/v"}},
		{"missing v", map[string][]int{"layer_01_q.npy": {4, 3, 4}, "layer_01_k.npy": {2, 3, 4}}, true, []string{"layer 1", "no layer_01_v"}},
		{"N differs", qkv([]int{4, 3, 4}, []int{2, 5, 4}, []int{2, 5, 4}), false, []string{"layer_01_q.npy has shape [4 3 4]", "layer_01_k.npy has [2 5 4]", "same N and D"}},
		{"groups", qkv([]int{3, 3, 4}, []int{2, 3, 4}, []int{2, 3, 4}), false, []string{"multiple of Hkv"}},
		{"v differs", qkv([]int{4, 3, 4}, []int{2, 3, 4}, []int{2, 3, 5}), false, []string{"layer_01_v.npy has shape [2 3 5]", "layer_01_k.npy has [2 3 4]"}},
		{"kpre differs", map[string][]int{"layer_01_q.npy": {4, 3, 4}, "layer_01_k.npy": {2, 3, 4}, "layer_01_v.npy": {2, 3, 4}, "layer_01_kpre.npy": {1, 3, 4}}, false, []string{"layer_01_kpre.npy has shape [1 3 4]"}},
		{"rank", qkv([]int{4, 12}, []int{2, 3, 4}, []int{2, 3, 4}), false, []string{"layer_01_q.npy: shape [4 12], want 3 dimensions"}},
		{"nan", qkv([]int{4, 3, 4}, []int{2, 3, 4}, []int{9, 3, 4}), false, []string{"layer_01_v.npy: entry 5 of 24 is NaN"}},
	} {
		dir := write(t, c.files)
		tr, err := ReadTrace(dir)
		if err == nil && !c.openErr {
			_, err = tr.Layer(1)
		}
		if err == nil {
			t.Errorf("%s: no error, want one containing %q", c.name, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q, want it to contain %q", c.name, err, w)
			}
		}
	}
	if err := WriteTraceLayer(t.TempDir(), 0, &LayerTrace{Hq: 2, Hkv: 1, N: 1, D: 2, Q: make([]float32, 4), K: make([]float32, 2), V: make([]float32, 3)}); err == nil || !strings.Contains(err.Error(), "len(V) = 3, want 2") {
		t.Errorf("WriteTraceLayer(short V) error = %v, want len(V) = 3, want 2", err)
	}
}

func TestSafetensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	in := map[string]*Array{
		"a": {Shape: []int{2, 2}, Dtype: Float32, F32: []float32{1, 2, 3, 4}},
		"b": {Shape: []int{3}, Dtype: Int32, I32: []int32{-1, 0, 1}},
		"c": {Shape: []int{}, Dtype: Int64, I64: []int64{1 << 40}},
		"d": {Shape: []int{1}, Dtype: Uint32, U32: []uint32{7}},
	}
	if err := WriteSafetensors(path, in); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(s.Names, []string{"a", "b", "c", "d"}) {
		t.Errorf("Names = %v, want [a b c d]", s.Names)
	}
	for k, want := range in {
		got, err := s.Read(k)
		if err != nil || !cmp.Equal(got, want) {
			t.Errorf("Read(%s) = %+v, %v; want %+v", k, got, err, want)
		}
	}
	if _, err := s.Read("z"); err == nil || !strings.Contains(err.Error(), `no tensor "z"`) {
		t.Errorf("Read(z) error = %v", err)
	}
	// Hand-made files: BF16 and F16 read exactly; errors name the file and tensor.
	mk := func(hdr string, data []byte) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
		return append(append(b, hdr...), data...)
	}
	b := mk(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[1],"data_offsets":[4,6]},"__metadata__":{"format":"pt"}}`,
		[]byte{0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3c})
	st, err := DecodeSafetensors(bytes.NewReader(b), int64(len(b)), "m.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	w, err1 := st.Read("w")
	h, err2 := st.Read("h")
	if err1 != nil || err2 != nil || !cmp.Equal(w.F32, []float32{1, -2}) || !cmp.Equal(h.F32, []float32{1}) || st.Metadata["format"] != "pt" {
		t.Errorf("BF16/F16 safetensors: %+v %+v %v %v %v", w, h, err1, err2, st.Metadata)
	}
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"short", []byte{1, 2}, "too short"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "header length"},
		{"not json", mk(`[1,2]`, nil), "not a JSON object"},
		{"dtype", mk(`{"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), `tensor "x": dtype "C64" is not supported`},
		{"size", mk(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), "hold 8 bytes, shape [3] of float32 needs 12"},
		{"truncated", mk(`{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 8)), "outside the 8 data bytes"},
		{"negative", mk(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil), "negative"},
		{"overflow", mk(`{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil), "overflow"},
		{"overlap", mk(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), "overlap"},
		{"unknown field", mk(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"q":1}}`, make([]byte, 4)), "bad header entry"},
		{"trailing", mk(`{} x`, nil), "after its JSON object"},
	} {
		_, err := DecodeSafetensors(bytes.NewReader(c.file), int64(len(c.file)), "m.safetensors")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "m.safetensors: ") {
			t.Errorf("%s: DecodeSafetensors error = %v, want one naming m.safetensors containing %q", c.name, err, c.want)
		}
	}
}
