package tensorio

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pickleBuilder emits the opcodes torch.save uses for one tensor.
type pickleBuilder struct{ b []byte }

func (p *pickleBuilder) op(b ...byte) *pickleBuilder { p.b = append(p.b, b...); return p }
func (p *pickleBuilder) global(mod, name string) *pickleBuilder {
	return p.op('c').op([]byte(mod + "\n" + name + "\n")...)
}
func (p *pickleBuilder) str(s string) *pickleBuilder {
	p.op('X')
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	return p.op([]byte(s)...)
}
func (p *pickleBuilder) int(v int64) *pickleBuilder {
	switch {
	case v >= 0 && v < 256:
		return p.op('K', byte(v))
	case v >= 0 && v < 65536:
		return p.op('M', byte(v), byte(v>>8))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.op('J')
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(v))
		return p
	}
	p.op(0x8a, 8)
	p.b = binary.LittleEndian.AppendUint64(p.b, uint64(v))
	return p
}
func (p *pickleBuilder) tuple(vs []int64) *pickleBuilder {
	p.op('(')
	for _, v := range vs {
		p.int(v)
	}
	return p.op('t')
}

// tensorPickle returns the data.pkl torch.save writes for one tensor, with the
// same opcodes as the authors' files (memo puts included).
func tensorPickle(storage string, numel, offset int64, size, stride []int64) []byte {
	p := &pickleBuilder{}
	p.op(0x80, 2).global("torch._utils", "_rebuild_tensor_v2").op('q', 0)
	p.op('(', '(').str("storage").op('q', 1).global("torch", storage).op('q', 2).str("0").op('q', 3).str("cpu").op('q', 4).int(numel).op('t', 'q', 5, 'Q')
	p.int(offset).tuple(size).op('q', 6).tuple(stride).op('q', 7).op(0x88)
	p.global("collections", "OrderedDict").op('q', 8, ')', 'R', 'q', 9, 't', 'q', 10, 'R', 'q', 11, '.')
	return p.b
}

// torchZip returns a PyTorch zip file of the given entries, under archive/.
func torchZip(t testing.TB, archive string, entries map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range []string{"data.pkl", "byteorder", "data/0", "version"} {
		data, ok := entries[name]
		if !ok {
			continue
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: archive + "/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bf16bytes returns the bfloat16 encodings (truncations) of xs.
func bf16bytes(xs []float32) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint16(b, uint16(math.Float32bits(x)>>16))
	}
	return b
}

// validTorch returns a torch file of a bf16 tensor [2][3][32] with values that
// bfloat16 holds exactly, and those values.
func validTorch(t testing.TB) ([]byte, []float32) {
	vals := make([]float32, 2*3*32)
	for i := range vals {
		vals[i] = float32(i%17-8) / 8
	}
	file := torchZip(t, "hash_weight_layer_05", map[string][]byte{
		"data.pkl":  tensorPickle("BFloat16Storage", int64(len(vals)), 0, []int64{2, 3, 32}, []int64{96, 32, 1}),
		"byteorder": []byte("little"),
		"data/0":    bf16bytes(vals),
		"version":   []byte("3\n"),
	})
	return file, vals
}

func decodeTorch(b []byte) (*Array, error) {
	return DecodeTorchTensor(bytes.NewReader(b), int64(len(b)), "w.pt")
}

func TestTorchTensor(t *testing.T) {
	file, vals := validTorch(t)
	a, err := decodeTorch(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Array{Shape: []int{2, 3, 32}, Dtype: BFloat16, F32: vals}); !cmp.Equal(a, want) {
		t.Errorf("DecodeTorchTensor: (-want +got)\n%s", cmp.Diff(want, a))
	}
	// Float and Half storages; a contiguous view at an offset into a larger
	// storage; a size-1 dim with an arbitrary stride.
	f32 := f32bytes(9, 9, 1, 2, 3, 4)
	a, err = decodeTorch(torchZip(t, "archive", map[string][]byte{
		"data.pkl": tensorPickle("FloatStorage", 6, 2, []int64{2, 1, 2}, []int64{2, 7, 1}),
		"data/0":   f32,
	}))
	if err != nil || !cmp.Equal(a.F32, []float32{1, 2, 3, 4}) || a.Dtype != Float32 || !cmp.Equal(a.Shape, []int{2, 1, 2}) {
		t.Errorf("FloatStorage view at offset 2 = %+v, %v; want [1 2 3 4] of shape [2 1 2]", a, err)
	}
	a, err = decodeTorch(torchZip(t, "archive", map[string][]byte{
		"data.pkl": tensorPickle("HalfStorage", 2, 0, []int64{2}, []int64{1}),
		"data/0":   {0x00, 0x3c, 0x01, 0x00}, // 1, 2^-24
	}))
	if err != nil || !cmp.Equal(a.F32, []float32{1, float32(math.Ldexp(1, -24))}) || a.Dtype != Float16 {
		t.Errorf("HalfStorage = %+v, %v; want [1 2^-24]", a, err)
	}
	// The weights loader: .pt through ReadHashWeights.
	path := filepath.Join(t.TempDir(), "hash_weight_layer_05.pt")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := ReadHashWeights(path)
	if err != nil || w.Hkv != 2 || w.D != 3 || w.Rbit != 32 || !cmp.Equal(w.W, vals) {
		t.Errorf("ReadHashWeights(.pt) = %+v, %v; want [2 3 32] weights", w, err)
	}
}

// dictPickle returns a data.pkl of a dict from each key to a tensor of
// tensorPickle's form (torch.save of a state dict), all of one storage.
func dictPickle(keys []string, storage string, numel int64, size, stride []int64) []byte {
	body := tensorPickle(storage, numel, 0, size, stride)
	body = body[2 : len(body)-1] // without the protocol and STOP
	p := &pickleBuilder{}
	p.op(0x80, 2, '}', '(')
	for _, k := range keys {
		p.str(k).op(body...)
	}
	return p.op('u', '.').b
}

// TestTorchStateDict: a file torch.save wrote from a dict of one tensor
// ({"weight": W}) reads as that tensor; a dict of two is an error that
// says how many tensors it holds.
func TestTorchStateDict(t *testing.T) {
	_, vals := validTorch(t)
	size, stride := []int64{2, 3, 32}, []int64{96, 32, 1}
	a, err := decodeTorch(torchZip(t, "sd", map[string][]byte{
		"data.pkl": dictPickle([]string{"weight"}, "BFloat16Storage", 192, size, stride),
		"data/0":   bf16bytes(vals),
	}))
	if want := (&Array{Shape: []int{2, 3, 32}, Dtype: BFloat16, F32: vals}); err != nil || !cmp.Equal(a, want) {
		t.Errorf("a dict of one tensor: %v, (-want +got)\n%s", err, cmp.Diff(want, a))
	}
	_, err = decodeTorch(torchZip(t, "sd", map[string][]byte{
		"data.pkl": dictPickle([]string{"a", "b"}, "BFloat16Storage", 192, size, stride),
		"data/0":   bf16bytes(vals),
	}))
	if err == nil || !strings.Contains(err.Error(), "a dict with 2 tensors among 2 entries") {
		t.Errorf("a dict of two tensors: err = %v, want one saying it holds 2", err)
	}
}

func TestTorchErrors(t *testing.T) {
	_, vals := validTorch(t)
	data := bf16bytes(vals)
	pk := func(storage string, numel, off int64, size, stride []int64) []byte {
		return tensorPickle(storage, numel, off, size, stride)
	}
	good := pk("BFloat16Storage", 192, 0, []int64{2, 3, 32}, []int64{96, 32, 1})
	for _, c := range []struct {
		name    string
		entries map[string][]byte
		want    string
	}{
		{"no pickle", map[string][]byte{"data/0": data}, "no <archive>/data.pkl"},
		{"big-endian", map[string][]byte{"data.pkl": good, "byteorder": []byte("big"), "data/0": data}, "little-endian"},
		{"missing storage", map[string][]byte{"data.pkl": good}, "data/0 is missing"},
		{"short storage", map[string][]byte{"data.pkl": good, "data/0": data[:100]}, "holds 100 bytes"},
		{"strided", map[string][]byte{"data.pkl": pk("BFloat16Storage", 192, 0, []int64{2, 3, 32}, []int64{1, 2, 6}), "data/0": data}, "not contiguous"},
		{"overrun", map[string][]byte{"data.pkl": pk("BFloat16Storage", 192, 1, []int64{2, 3, 32}, []int64{96, 32, 1}), "data/0": data}, "overruns its storage"},
		{"storage type", map[string][]byte{"data.pkl": pk("ComplexFloatStorage", 96, 0, []int64{96}, []int64{1}), "data/0": data}, "torch.ComplexFloatStorage is not supported"},
		{"huge", map[string][]byte{"data.pkl": pk("FloatStorage", 1<<40, 0, []int64{1 << 40}, []int64{1}), "data/0": data}, "holds 384 bytes"},
		{"overflow", map[string][]byte{"data.pkl": pk("FloatStorage", 1<<40, 0, []int64{1 << 40, 1 << 40}, []int64{1 << 40, 1}), "data/0": data}, "overflows"},
		{"no stop", map[string][]byte{"data.pkl": good[:len(good)-1], "data/0": data}, "without STOP"},
		{"truncated pickle", map[string][]byte{"data.pkl": good[:50], "data/0": data}, "pickle byte 39: string of 7 bytes, 6 remain"},
		{"bad opcode", map[string][]byte{"data.pkl": []byte{0x80, 2, 'i', 'o', 's', '\n', 's', 'y', 's', 't', 'e', 'm', '\n', '.'}, "data/0": data}, "opcode 0x69 is not supported"},
		{"not a tensor", map[string][]byte{"data.pkl": []byte{0x80, 2, 'K', 7, '.'}, "data/0": data}, "holds 7, not a tensor"},
	} {
		_, err := decodeTorch(torchZip(t, "w", c.entries))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "w.pt: ") {
			t.Errorf("%s: DecodeTorchTensor error = %v, want one starting with w.pt: and containing %q", c.name, err, c.want)
		}
	}
	if _, err := decodeTorch([]byte("PK\x03\x04 not really")); err == nil || !strings.Contains(err.Error(), "not a PyTorch zip") {
		t.Errorf("garbage: DecodeTorchTensor error = %v, want 'not a PyTorch zip'", err)
	}
}

// TestPickleOpcodes runs the interpreter over hand-written programs using the
// opcodes torch.save and Python's pickle emit around tensors.
func TestPickleOpcodes(t *testing.T) {
	for _, c := range []struct {
		name string
		prog []byte
		want string // describe() of the result, or the error substring
		err  bool
	}{
		{"ints", []byte{0x80, 2, '(', 'K', 1, 'M', 0x34, 0x12, 'J', 0xff, 0xff, 0xff, 0xff, 0x8a, 2, 0x00, 0x80, 't', '.'}, "(1, 4660, -1, -32768)", false},
		{"bools none", []byte{0x88, 0x89, 'N', 0x87, '.'}, "(true, false, None)", false},
		{"memo", []byte{'K', 5, 'q', 3, '0', 'h', 3, 'j', 3, 0, 0, 0, 0x86, '.'}, "(5, 5)", false},
		{"short strings", []byte{0x8c, 2, 'h', 'i', 'U', 1, 'x', 0x86, '.'}, `("hi", "x")`, false},
		{"dict", []byte{'}', 'X', 1, 0, 0, 0, 'a', 'K', 1, 's', '(', 'X', 1, 0, 0, 0, 'b', 'K', 2, 'u', '.'}, "a dict of 2", false},
		{"list", []byte{']', 'K', 1, 'a', '(', 'K', 2, 'K', 3, 'e', '.'}, "a list of 3", false},
		{"stack global", []byte{0x8c, 1, 'a', 0x8c, 1, 'b', 0x93, ')', 'R', '.'}, "a a.b object", false},
		{"build", []byte{'c', 'x', '\n', 'y', '\n', ')', 0x81, '}', 'b', '.'}, "a x.y object", false},
		{"empty stack", []byte{'0', '.'}, "pops an empty stack", true},
		{"pop across mark", []byte{'K', 1, '(', '0', '.'}, "pops an empty stack", true},
		{"tuple without mark", []byte{'t', '.'}, "without a MARK", true},
		{"unknown memo", []byte{'h', 9, '.'}, "never stored", true},
		{"long string", []byte{'X', 0xff, 0xff, 0xff, 0x7f, 'a', '.'}, "remain", true},
		{"leftover", []byte{'K', 1, 'K', 2, '.'}, "leaves 1 values", true},
		{"append to int", []byte{'K', 1, 'K', 2, 'a', '.'}, "not a list", true},
		{"long1 too long", []byte{0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '.'}, "does not fit", true},
		{"global no newline", []byte{'c', 'a', 'b'}, "no newline", true},
	} {
		v, err := unpickle(c.prog)
		switch {
		case c.err && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: unpickle = %s, %v; want an error containing %q", c.name, describe(v), err, c.want)
		case !c.err && err != nil:
			t.Errorf("%s: unpickle error %v", c.name, err)
		case !c.err && describe(v) != c.want:
			t.Errorf("%s: unpickle = %s, want %s", c.name, describe(v), c.want)
		}
	}
	// A large dict built by SETITEMS (linear, not quadratic, in its keys), with
	// a key set twice keeping its last value.
	big := []byte{'}', '('}
	for i := range 30000 {
		big = append(big, 'J')
		big = binary.LittleEndian.AppendUint32(big, uint32(i))
		big = append(big, 'K', byte(i))
	}
	big = append(big, 'J', 5, 0, 0, 0, 'K', 99, 'u', '.')
	if v, err := unpickle(big); err != nil {
		t.Errorf("30000-key dict: %v", err)
	} else if d := v.(*pkDict); len(d.keys) != 30000 || d.vals[5] != int64(99) {
		t.Errorf("30000-key dict: %d keys, value of key 5 = %v; want 30000 keys and 99", len(d.keys), d.vals[5])
	}
	// A deep nest of marks and a stack overflow are refused, not followed.
	if _, err := unpickle(bytes.Repeat([]byte{'('}, 5000)); err == nil || !strings.Contains(err.Error(), "nested marks") {
		t.Errorf("5000 marks: err = %v, want a nesting limit", err)
	}
	if _, err := unpickle(bytes.Repeat([]byte{'N'}, maxPickleStack+1)); err == nil || !strings.Contains(err.Error(), "stack deeper") {
		t.Errorf("%d pushes: err = %v, want a stack limit", maxPickleStack+1, err)
	}
}

// sharedWeights returns the directory of the authors' released weights beside
// the project, skipping the test when it is absent.
func sharedWeights(t *testing.T) string {
	dir := filepath.Join("..", "..", "shared", "data", "hata-weights")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("the authors' weights are not available (%v); they live in ../shared/data/hata-weights beside the project", err)
	}
	return dir
}

// TestAuthorsWeights loads the hash weights released with the paper and checks
// the properties HATA.md states for trained W: finite, columns near
// orthonormal, entries' std about 0.09.
func TestAuthorsWeights(t *testing.T) {
	dir := sharedWeights(t)
	for _, c := range []struct {
		file string
		rbit int
	}{
		{"Meta-Llama-3.1-8B-Instruct-128/hash_weight_layer_02.pt", 128},
		{"Meta-Llama-3.1-8B-Instruct-128/hash_weight_layer_16.pt", 128},
		{"Meta-Llama-3.1-8B-Instruct-128/hash_weight_layer_31.pt", 128},
		{"Meta-Llama-3.1-8B-Instruct-256/hash_weight_layer_02.pt", 256},
	} {
		path := filepath.Join(dir, c.file)
		a, err := ReadTorchTensor(path)
		if err != nil {
			t.Errorf("ReadTorchTensor: %v", err)
			continue
		}
		if want := []int{8, 128, c.rbit}; !cmp.Equal(a.Shape, want) || a.Dtype != BFloat16 {
			t.Errorf("%s: shape %v dtype %s, want %v bfloat16", c.file, a.Shape, a.Dtype, want)
			continue
		}
		if err := CheckFinite(c.file, a.F32); err != nil {
			t.Error(err)
			continue
		}
		w, err := ReadHashWeights(path)
		if err != nil {
			t.Errorf("ReadHashWeights: %v", err)
			continue
		}
		std := stdev(w.W)
		var line strings.Builder
		worst := 0.0
		for h := range w.Hkv {
			e := orthoError(w.W[h*w.D*w.Rbit:(h+1)*w.D*w.Rbit], w.D, w.Rbit)
			worst = max(worst, e)
			fmt.Fprintf(&line, " %.3f", e)
		}
		gram := "W^T W - I_Rbit"
		if w.Rbit > w.D {
			gram = "W W^T - I_D"
		}
		// At the decorrelation loss's minimum every singular value of W is 1,
		// so ||W||_F^2 = min(D, Rbit) and the entries' std is
		// 1/sqrt(max(D, Rbit)): 0.088 for 128 bits, 0.0625 for 256, far from
		// the N(0, 1) initialisation.
		want := 1 / math.Sqrt(float64(max(w.D, w.Rbit)))
		t.Logf("%s: std %.4f (orthonormal: %.4f); max |%s| per head:%s", c.file, std, want, gram, line.String())
		if math.Abs(std-want) > 0.1*want {
			t.Errorf("%s: entries' std %.4f, want %.4f within 10%% (singular values near 1)", c.file, std, want)
		}
		// Measured: 0.023-0.036 for the 128-bit files, 0.06-0.33 for the
		// 256-bit one (its 256 directions only form a loose frame of R^128).
		limit := 0.1
		if w.Rbit > w.D {
			limit = 0.5
		}
		if worst > limit {
			t.Errorf("%s: max |%s| = %.3f over heads, want < %g (near-orthonormal)", c.file, gram, worst, limit)
		}
	}
}

// stdev returns the standard deviation of x's entries.
func stdev(x []float32) float64 {
	var s, s2 float64
	for _, v := range x {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	m := s / float64(len(x))
	return math.Sqrt(s2/float64(len(x)) - m*m)
}

// orthoError returns how far w: [d][r] is from having orthonormal columns
// (the hash directions): max_{i,j} |(W^T W - I_r)[i][j]|. When r > d the r
// columns cannot be orthonormal in d dimensions; the loss's minimum
// ||W^T W - I||_F then has all d singular values 1, i.e. orthonormal rows, and
// the error is max |(W W^T - I_d)[i][j]|. Either way it measures whether every
// nonzero singular value of W is 1.
func orthoError(w []float32, d, r int) float64 {
	at := func(k, i int) float64 { return float64(w[k*r+i]) } // W[k][i]
	n, inner := r, d
	if r > d {
		n, inner = d, r
		at = func(k, i int) float64 { return float64(w[i*r+k]) } // W^T[k][i]
	}
	worst := 0.0
	for i := range n {
		for j := range n {
			var s float64
			for k := range inner {
				s += at(k, i) * at(k, j)
			}
			if i == j {
				s--
			}
			worst = max(worst, math.Abs(s))
		}
	}
	return worst
}

// TestReadHashWeightsErrors: every way a weights file can be wrong is an
// error naming the file and what is wrong.
func TestReadHashWeightsErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	nan := make([]float32, 2*4*32)
	nan[7] = float32(math.NaN())
	for _, err := range []error{
		WriteNPYFloat32(p("w2d.npy"), []int{4, 32}, make([]float32, 4*32)),
		WriteNPYFloat32(p("w48.npy"), []int{1, 4, 48}, make([]float32, 4*48)),
		WriteNPYFloat32(p("wnan.npy"), []int{2, 4, 32}, nan),
		WriteNPYInt32(p("wint.npy"), []int{1, 4, 32}, make([]int32, 4*32)),
		os.WriteFile(p("w.bin"), []byte("weights"), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ file, want string }{
		{"w2d.npy", "shape [4 32], want [Hkv, D, Rbit]"},
		{"w48.npy", "48"},
		{"wnan.npy", "NaN"},
		{"wint.npy", "dtype int32, want a floating type"},
		{"w.bin", `must be .npy or .pt`},
		{"missing.npy", "no such file"},
	} {
		_, err := ReadHashWeights(p(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("ReadHashWeights(%s): %v, want an error naming the file and %q", c.file, err, c.want)
		}
	}
}
