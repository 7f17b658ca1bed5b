package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

// hata runs the command in-process and returns its status, stdout and stderr.
func hata(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	st := run(args, &out, &errb)
	return st, out.String(), errb.String()
}

// randn returns n standard normal values drawn from rng.
func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// attendFiles writes a random decode step of shape s into dir and returns the
// paths of q, k, v and a W of rbit bits.
func attendFiles(t *testing.T, dir string, s ref.Shape, rbit int) (q, k, v, w string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(9, 9))
	q, k, v, w = filepath.Join(dir, "q.npy"), filepath.Join(dir, "k.npy"), filepath.Join(dir, "v.npy"), filepath.Join(dir, "W.npy")
	for _, f := range []struct {
		path  string
		shape []int
	}{
		{q, []int{s.B, s.Hq, s.D}}, {k, []int{s.B, s.Hkv, s.N, s.D}}, {v, []int{s.B, s.Hkv, s.N, s.D}}, {w, []int{s.Hkv, s.D, rbit}},
	} {
		n := 1
		for _, x := range f.shape {
			n *= x
		}
		if err := tensorio.WriteNPYFloat32(f.path, f.shape, randn(rng, n)); err != nil {
			t.Fatal(err)
		}
	}
	return q, k, v, w
}

func readF32(t *testing.T, path string) *tensorio.Array {
	t.Helper()
	a, err := tensorio.ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAttendMatchesRef runs the command for HATA and checks every output file
// against the reference called directly.
func TestAttendMatchesRef(t *testing.T) {
	dir := t.TempDir()
	s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 100, D: 32}
	q, k, v, w := attendFiles(t, dir, s, 64)
	out, idx, qc, kc := filepath.Join(dir, "out.npy"), filepath.Join(dir, "idx.npy"), filepath.Join(dir, "qc.npy"), filepath.Join(dir, "kc.npy")
	st, _, stderr := hata("attend", "-method", "hata", "-device", "cpu", "-q", q, "-k", k, "-v", v, "-w", w,
		"-budget", "10", "-o", out, "-indices", idx, "-qcodes", qc, "-kcodes", kc)
	if st != 0 {
		t.Fatalf("hata attend: status %d: %s", st, stderr)
	}
	qa, ka, va, wa := readF32(t, q), readF32(t, k), readF32(t, v), readF32(t, w)
	kv, _ := ref.NewKV(s.B, s.Hkv, s.N, s.D, ka.F32, va.F32)
	hw, _ := ref.NewHashWeights(s.Hkv, s.D, 64, wa.F32)
	m := ref.NewHATA(hw, ref.Windows{}, false)
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	res, err := m.Decode(qa.F32, ref.Budget{K: 10})
	if err != nil {
		t.Fatal(err)
	}
	wantQC, wantKC, _ := m.Codes()
	got := readF32(t, out)
	if d := cmp.Diff([]int{2, 4, 32}, got.Shape); d != "" {
		t.Errorf("out shape (-want +got):\n%s", d)
	}
	if d := cmp.Diff(res.Out, got.F32); d != "" {
		t.Errorf("out differs from ref (-ref +file):\n%s", d)
	}
	gi := readF32(t, idx)
	if d := cmp.Diff([]int{2, 2, 10}, gi.Shape); d != "" {
		t.Errorf("indices shape (-want +got):\n%s", d)
	}
	var flat []int32
	for _, row := range res.Selected {
		flat = append(flat, row...)
	}
	if d := cmp.Diff(flat, gi.I32); d != "" {
		t.Errorf("indices differ from ref (-ref +file):\n%s", d)
	}
	gq, gk := readF32(t, qc), readF32(t, kc)
	if d := cmp.Diff([]int{2, 4, 2}, gq.Shape); d != "" {
		t.Errorf("qcodes shape (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{2, 2, 100, 2}, gk.Shape); d != "" {
		t.Errorf("kcodes shape (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantQC, gq.U32); d != "" {
		t.Errorf("qcodes differ (-ref +file):\n%s", d)
	}
	if d := cmp.Diff(wantKC, gk.U32); d != "" {
		t.Errorf("kcodes differ (-ref +file):\n%s", d)
	}
}

// TestAttendEveryMethod runs each method through the command with k = N and
// checks that it equals dense, as every top-k method must.
func TestAttendEveryMethod(t *testing.T) {
	dir := t.TempDir()
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 40, D: 16}
	q, k, v, w := attendFiles(t, dir, s, 32)
	dense := filepath.Join(dir, "dense.npy")
	if st, _, e := hata("attend", "-method", "dense", "-q", q, "-k", k, "-v", v, "-o", dense); st != 0 {
		t.Fatalf("dense: status %d: %s", st, e)
	}
	want := readF32(t, dense).F32
	for _, name := range ref.MethodNames {
		if name == "dense" || name == "magicpig" || name == "h2o" {
			continue // magicpig estimates; h2o has no history on a single step
		}
		if _, err := ref.New(name, 2, 16, ref.Options{W: &ref.HashWeights{Hkv: 2, D: 16, Rbit: 32}}); err != nil {
			t.Logf("%s: not available yet: %v", name, err)
			continue
		}
		out := filepath.Join(dir, name+".npy")
		args := []string{"attend", "-method", name, "-q", q, "-k", k, "-v", v, "-o", out, "-budget", "40"}
		if name == "hata" {
			args = append(args, "-w", w)
		}
		if st, _, e := hata(args...); st != 0 {
			t.Fatalf("%s: status %d: %s", name, st, e)
		}
		got := readF32(t, out).F32
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Errorf("%s with k=N: out[%d] = %v, dense %v", name, i, got[i], want[i])
				break
			}
		}
	}
}

// TestAttendBadInput checks that each kind of bad input exits non-zero with a
// message naming what is wrong, writes no output, and never panics.
func TestAttendBadInput(t *testing.T) {
	dir := t.TempDir()
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 20, D: 16}
	q, k, v, w := attendFiles(t, dir, s, 32)
	write := func(name string, shape []int, x []float32) string {
		p := filepath.Join(dir, name)
		if err := tensorio.WriteNPYFloat32(p, shape, x); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vShort := write("vshort.npy", []int{1, 2, 19, 16}, make([]float32, 2*19*16))
	q2 := write("q2.npy", []int{4, 16}, make([]float32, 64))
	q3 := write("q3.npy", []int{1, 3, 16}, make([]float32, 48))
	qB := write("qb.npy", []int{2, 4, 16}, make([]float32, 128))
	nan := make([]float32, 64)
	nan[17] = float32(math.NaN())
	qNaN := write("qnan.npy", []int{1, 4, 16}, nan)
	w33 := write("w33.npy", []int{2, 16, 33}, make([]float32, 2*16*33))
	wHead := write("whead.npy", []int{4, 16, 32}, make([]float32, 4*16*32))
	i32 := filepath.Join(dir, "i32.npy")
	if err := tensorio.WriteNPYInt32(i32, []int{1, 4, 16}, make([]int32, 64)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(k)
	trunc := filepath.Join(dir, "trunc.npy")
	os.WriteFile(trunc, raw[:len(raw)-7], 0o644)
	garbage := filepath.Join(dir, "garbage.npy")
	os.WriteFile(garbage, []byte("this is not an npy file at all"), 0o644)

	out := filepath.Join(dir, "out.npy")
	base := func(extra ...string) []string {
		args := []string{"attend", "-method", "hata", "-w", w, "-q", q, "-k", k, "-v", v, "-o", out}
		return append(args, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want []string // substrings of the message
	}{
		{"k and v shapes", base("-v", vShort), []string{"vshort.npy", "[1 2 20 16]", "[1 2 19 16]"}},
		{"q rank", base("-q", q2), []string{"q2.npy", "[4 16]", "rank 3"}},
		{"Hq not a multiple of Hkv", base("-q", q3), []string{"Hq=3", "Hkv=2"}},
		{"batch", base("-q", qB), []string{"qb.npy", "[2 4 16]", "[1 2 20 16]", "batch"}},
		{"dtype", base("-q", i32), []string{"i32.npy", "int32"}},
		{"truncated", base("-k", trunc), []string{"trunc.npy"}},
		{"not npy", base("-k", garbage), []string{"garbage.npy", "magic"}},
		{"non-finite", base("-q", qNaN), []string{"qnan.npy", "17"}},
		{"rbit", base("-w", w33), []string{"w33.npy", "33"}},
		{"W heads", base("-w", wHead), []string{"whead.npy", "[4 16 32]"}},
		{"budget 0", base("-budget", "0"), []string{"budget"}},
		{"lsh rbit past 1024", base("-method", "lsh", "-rbit", "1000000000"), []string{"-rbit 1000000000"}},
		{"magicpig tables", []string{"attend", "-method", "magicpig", "-magicpig-l", "100000000", "-q", q, "-k", k, "-v", v, "-o", out}, []string{"-magicpig-l 100000000"}},
		{"budget negative", base("-budget", "-3"), []string{"budget"}},
		{"missing file", base("-v", filepath.Join(dir, "nope.npy")), []string{"nope.npy"}},
		{"hata without W", []string{"attend", "-method", "hata", "-q", q, "-k", k, "-v", v, "-o", out}, []string{"-w"}},
		{"unknown method", base("-method", "flash"), []string{"flash"}},
		{"output overwrites input", base("-o", q), []string{"overwrite"}},
	} {
		st, _, stderr := hata(c.args...)
		wantFailure(t, c.name, st, stderr, c.want)
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: an output file was written", c.name)
		}
		if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(matches) > 0 {
			t.Fatalf("%s: temporary files left behind: %v", c.name, matches)
		}
	}
}

// TestAttendOutputPaths checks that an output naming an input or another
// output in any spelling (./, .., symlink, hard link), or naming a directory,
// is refused before anything is written: the inputs and an existing output
// keep their bytes and no temporary file is left.
func TestAttendOutputPaths(t *testing.T) {
	dir := t.TempDir()
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 20, D: 16}
	q, k, v, w := attendFiles(t, dir, s, 32)
	out := filepath.Join(dir, "out.npy")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link, hard := filepath.Join(dir, "link.npy"), filepath.Join(dir, "hard.npy")
	if err := os.Symlink(q, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(k, hard); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte("the user's own file"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, p := range []string{q, k, v, w, out} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = b
	}
	base := func(extra ...string) []string {
		return append([]string{"attend", "-method", "hata", "-w", w, "-q", q, "-k", k, "-v", v}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want []string // substrings of the message
	}{
		{"./input", base("-o", dir+"/./q.npy"), []string{"-o", "q.npy", "overwrite"}},
		{"dir/../input", base("-o", sub+"/../k.npy"), []string{"-o", "k.npy", "overwrite"}},
		{"symlink to input", base("-o", link), []string{"-o", "link.npy", "overwrite", "q.npy"}},
		{"hard link to input", base("-o", out, "-indices", hard), []string{"-indices", "hard.npy", "overwrite", "k.npy"}},
		{"codes over input", base("-o", out, "-kcodes", dir+"/./v.npy"), []string{"-kcodes", "v.npy", "overwrite"}},
		{"two outputs", base("-o", out, "-qcodes", dir+"/./out.npy"), []string{"-o", "-qcodes", "same file"}},
		{"indices a directory", base("-o", out, "-indices", sub), []string{"-indices", sub, "is a directory"}},
		{"output the current directory", base("-o", dir+"/."), []string{"-o", "is a directory"}},
		{"no such directory", base("-o", filepath.Join(dir, "nope", "out.npy")), []string{"-o", "nope"}},
	} {
		st, _, stderr := hata(c.args...)
		wantFailure(t, c.name, st, stderr, c.want)
		for p, b := range before {
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: %s was changed (err %v)", c.name, p, err)
			}
		}
		if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(matches) > 0 {
			t.Fatalf("%s: temporary files left behind: %v", c.name, matches)
		}
	}

	// A file of the user's named like a temporary file is not touched.
	mine := out + ".tmp-hata-0"
	if err := os.WriteFile(mine, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _, e := hata(base("-o", out, "-indices", filepath.Join(dir, "idx.npy"))...); st != 0 {
		t.Fatalf("hata attend: status %d: %s", st, e)
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "mine" {
		t.Errorf("%s: %q, %v; want the user's file untouched", mine, b, err)
	}
	if got := readF32(t, out); len(got.F32) != s.B*s.Hq*s.D {
		t.Errorf("out has %d values, want %d", len(got.F32), s.B*s.Hq*s.D)
	}
}

// wantFailure checks that a command named name failed as a user's error
// does (status 1 or 2; 3 is a crash) with a message on stderr that mentions
// every string of want.
func wantFailure(t *testing.T, name string, status int, stderr string, want []string) {
	t.Helper()
	if status == 0 || status == 3 {
		t.Errorf("%s: status %d, want 1 or 2 (stderr %q)", name, status, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: message %q does not mention %q", name, stderr, w)
		}
	}
}

// TestAttendMethodFlags: a flag only some methods read, given for another,
// is a usage error naming the methods that read it, and so are lsh's -rbit
// and -seed beside -w, whose weights lsh takes instead of drawing them;
// -sink sets StreamingLLM's and MagicPIG's sinks (-sink 0: none) and -recent
// MagicPIG's local window.
func TestAttendMethodFlags(t *testing.T) {
	dir := t.TempDir()
	s := ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 40, D: 16}
	q, k, v, w := attendFiles(t, dir, s, 32)
	out, idx := filepath.Join(dir, "out.npy"), filepath.Join(dir, "idx.npy")
	run := func(method string, extra ...string) (int, string) {
		st, _, stderr := hata(append([]string{"attend", "-method", method, "-q", q, "-k", k, "-v", v, "-o", out, "-indices", idx}, extra...)...)
		return st, stderr
	}
	for _, c := range []struct {
		method string
		flag   []string
		want   string
	}{
		{"topk", []string{"-sink", "1"}, "-sink is read by hata, lsh, streaming, magicpig only, not topk"},
		{"streaming", []string{"-recent", "4"}, "-recent is read by hata, lsh, magicpig only, not streaming"},
		{"topk", []string{"-page", "8"}, "-page is read by quest only, not topk"},
		{"quest", []string{"-loki-channels", "8"}, "-loki-channels is read by loki only"},
		{"dense", []string{"-normweighted"}, "-normweighted is read by hata, lsh only"},
		{"loki", []string{"-magicpig-l", "4"}, "-magicpig-l is read by magicpig only"},
		{"topk", []string{"-rbit", "64"}, "-rbit is read by lsh only"},
		{"quest", []string{"-seed", "3"}, "-seed is read by lsh, magicpig only"},
		{"lsh", []string{"-w", w, "-rbit", "64"}, "-rbit is not read with -w"},
		{"lsh", []string{"-w", w, "-seed", "3"}, "-seed is not read with -w"},
	} {
		st, stderr := run(c.method, c.flag...)
		if st != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("-method %s %v: status %d, %q; want 2 and %q", c.method, c.flag, st, stderr, c.want)
		}
	}
	if st, stderr := run("lsh", "-w", w); st != 0 {
		t.Errorf("lsh -w: status %d: %s", st, stderr)
	}
	indices := func() []int32 {
		a, err := tensorio.ReadNPY(idx)
		if err != nil {
			t.Fatal(err)
		}
		return a.I32
	}
	for _, c := range []struct {
		flag []string
		want []int32
	}{
		{nil, []int32{0, 1}},                      // 4 sinks by default fill a budget of 2
		{[]string{"-sink", "1"}, []int32{0, 39}},  // one sink, one recent token
		{[]string{"-sink", "0"}, []int32{38, 39}}, // no sink
	} {
		if st, stderr := run("streaming", append([]string{"-budget", "2"}, c.flag...)...); st != 0 {
			t.Fatalf("streaming %v: status %d: %s", c.flag, st, stderr)
		}
		if got := indices(); !slices.Equal(got, c.want) {
			t.Errorf("streaming -budget 2 %v: selected %v, want %v", c.flag, got, c.want)
		}
	}
}
