package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hata-go/hata/tensorio"
)

// weightsDir is the committed checkpoint, seen from this package.
var weightsDir = filepath.Join("..", "..", "weights")

// TestGenerateAndTraces runs both model commands on the committed checkpoint:
// generate produces text and reports its speed, greedy decoding is the same
// twice, and traces writes a readable trace of the requested layers.
func TestGenerateAndTraces(t *testing.T) {
	args := []string{"generate", "-model", weightsDir, "-n", "12", "-method", "hata", "-w", filepath.Join(weightsDir, "hash"), "Four score and seven years ago"}
	st, out1, e := hata(args...)
	if st != 0 {
		t.Fatalf("hata generate: status %d: %s", st, e)
	}
	if !strings.Contains(e, "tokens/s") || len(strings.TrimSpace(out1)) == 0 {
		t.Errorf("generate: stdout %q, stderr %q: want text and a speed line", out1, e)
	}
	if _, out2, _ := hata(args...); out2 != out1 {
		t.Errorf("greedy generation differs between runs: %q vs %q", out1, out2)
	}
	if st, _, e := hata("generate", "-model", weightsDir); st != 2 || !strings.Contains(e, "prompt") {
		t.Errorf("generate without a prompt: status %d, %q; want 2 and a message about the prompt", st, e)
	}
	dir := t.TempDir()
	if st, _, e := hata("traces", "-model", weightsDir, "-out", dir, "-layers", "2,3", "In the beginning"); st != 0 {
		t.Fatalf("hata traces: status %d: %s", st, e)
	}
	tr, err := tensorio.ReadTrace(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Layers) != 2 || tr.Layers[0] != 2 || tr.Layers[1] != 3 {
		t.Fatalf("trace layers = %v, want [2 3]", tr.Layers)
	}
	lt, err := tr.Layer(3)
	if err != nil {
		t.Fatal(err)
	}
	if lt.N != len("In the beginning")+1 || lt.D != 128 || lt.KPre == nil {
		t.Errorf("layer 3 trace: N=%d D=%d KPre=%v; want N = prompt bytes + BOS, D=128, pre-RoPE keys", lt.N, lt.D, lt.KPre != nil)
	}
}

// TestGenerateBadFlags checks that flag values generate cannot honour exit
// non-zero with a message naming the flag and the limit, before any text.
func TestGenerateBadFlags(t *testing.T) {
	long := filepath.Join(t.TempDir(), "long.txt")
	if err := os.WriteFile(long, bytes.Repeat([]byte("a"), 4096), 0o644); err != nil { // 4097 tokens with BOS
		t.Fatal(err)
	}
	hash := filepath.Join(weightsDir, "hash")
	for _, c := range []struct {
		name   string
		args   []string
		status int
		want   []string // substrings of the message
	}{
		{"dense layers past the model", []string{"-dense-layers", "100"}, 2, []string{"-dense-layers 100", "6 layers"}},
		{"dense layers negative", []string{"-dense-layers", "-5"}, 2, []string{"-dense-layers -5", "-1"}},
		{"sparse layer without weights", []string{"-method", "hata", "-w", hash, "-dense-layers", "-1"}, 1, []string{"-w", "layer 0", "-dense-layers -1"}},
		{"n zero", []string{"-n", "0"}, 2, []string{"-n 0", "want >= 1"}},
		{"n negative", []string{"-n", "-5"}, 2, []string{"-n -5", "want >= 1"}},
		{"temperature NaN", []string{"-temp", "NaN"}, 2, []string{"-temp NaN"}},
		{"prompt past max_seq_len", []string{"-n", "1", "-prompt-file", long}, 1, []string{"4097 tokens", "max_seq_len of 4096"}},
		{"endless prompt file", []string{"-n", "1", "-prompt-file", "/dev/zero"}, 2, []string{"-prompt-file /dev/zero", "64 MiB"}},
		{"weights for topk", []string{"-method", "topk", "-w", hash}, 2, []string{"-w is read by hata only, not topk"}},
		{"a budget for dense", []string{"-budget", "0.1"}, 2, []string{"-budget is read by the sparse methods, not dense"}},
	} {
		args := append([]string{"generate", "-model", weightsDir}, c.args...)
		if !strings.Contains(c.args[len(c.args)-2], "-prompt-file") {
			args = append(args, "Hello")
		}
		st, out, e := hata(args...)
		if st != c.status || out != "" {
			t.Errorf("%s: status %d, stdout %q; want %d and no text (stderr %q)", c.name, st, out, c.status, e)
		}
		for _, w := range c.want {
			if !strings.Contains(e, w) {
				t.Errorf("%s: message %q does not mention %q", c.name, e, w)
			}
		}
	}
	// -dense-layers equal to the model's layers is every layer dense: no
	// hash weights are read (a directory without them does), and the speed
	// line says there is no sparse layer.
	if st, _, e := hata("generate", "-model", weightsDir, "-method", "hata", "-w", t.TempDir(), "-dense-layers", "6", "-n", "2", "Hello"); st != 0 || !strings.Contains(e, "no sparse layer (-dense-layers 6 keeps all 6 dense)") {
		t.Errorf("-dense-layers 6: status %d: %s", st, e)
	}
}

// TestTracesOutDir checks that hata traces never writes into a directory that
// holds anything: an existing trace is refused and left as it was, an empty
// directory is filled, and a failed run leaves no directory behind.
func TestTracesOutDir(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "trace")
	if st, _, e := hata("traces", "-model", weightsDir, "-out", out, "-layers", "2", "first prompt"); st != 0 {
		t.Fatalf("hata traces: status %d: %s", st, e)
	}
	meta, err := os.ReadFile(filepath.Join(out, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, e := hata("traces", "-model", weightsDir, "-out", out, "-layers", "3", "second prompt")
	if st == 0 || !strings.Contains(e, out) || !strings.Contains(e, "not empty") {
		t.Errorf("traces into an existing trace: status %d, %q; want a failure naming %s as not empty", st, e, out)
	}
	if again, _ := os.ReadFile(filepath.Join(out, "meta.json")); !bytes.Equal(again, meta) {
		t.Errorf("meta.json changed: %s", again)
	}
	if _, err := os.Stat(filepath.Join(out, "layer_03_q.npy")); err == nil {
		t.Errorf("layer 3 was written into the existing trace")
	}

	file := filepath.Join(root, "file")
	os.WriteFile(file, []byte("mine"), 0o644)
	if st, _, e := hata("traces", "-model", weightsDir, "-out", file, "-layers", "2", "x"); st == 0 || !strings.Contains(e, "not a directory") {
		t.Errorf("traces into a file: status %d, %q; want a failure saying it is not a directory", st, e)
	}
	if b, _ := os.ReadFile(file); string(b) != "mine" {
		t.Errorf("%s changed: %q", file, b)
	}

	long := filepath.Join(t.TempDir(), "long.txt")
	if err := os.WriteFile(long, bytes.Repeat([]byte("a"), 4096), 0o644); err != nil { // 4097 tokens with BOS
		t.Fatal(err)
	}
	fresh := filepath.Join(root, "fresh")
	if st, _, e := hata("traces", "-model", weightsDir, "-out", fresh, "-layers", "2", "-prompt-file", long); st == 0 || !strings.Contains(e, "max_seq_len of 4096") {
		t.Errorf("traces of a prompt past max_seq_len: status %d, %q; want a failure naming max_seq_len", st, e)
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Errorf("traces of a prompt past max_seq_len made %s", fresh)
	}

	nested := filepath.Join(root, "a", "b", "trace")
	if st, _, e := hata("traces", "-model", weightsDir, "-out", nested, "-layers", "9", "x"); st != 2 || !strings.Contains(e, "layer 9") || !strings.Contains(e, "has 6 (0..5)") {
		t.Errorf("traces of a missing layer: status %d, %q; want a usage error (2) naming layer 9 and the model's 6 layers", st, e)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); err == nil {
		t.Errorf("a failed run left %s behind", filepath.Join(root, "a"))
	}

	// A failure while writing removes the temporary directory and the
	// parents it made.
	err = writeNewDir("-out", nested, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "layer_00_q.npy"), []byte("part"), 0o644); err != nil {
			return err
		}
		return errors.New("disk full")
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), nested) {
		t.Errorf("writeNewDir with a failing write: %v; want the failure, naming %s", err, nested)
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.Name() != "trace" && e.Name() != "file" {
			t.Errorf("a failed write left %s in %s", e.Name(), root)
		}
	}
}

// TestOutDirChecks: traces and train check their -out before the work (the
// prefill, the training) and not at its end: a directory that cannot be
// written fails at once (here under /proc, where nothing can be made, even
// by root). traces writes through a symlink at -out into where it points,
// keeping the link, and refuses the working directory, which replacing
// would leave the shell in a removed directory.
func TestOutDirChecks(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("no /proc")
	}
	weights, err := filepath.Abs(weightsDir)
	if err != nil {
		t.Fatal(err)
	}
	trace := t.TempDir()
	writeRandomTrace(t, trace, 2)
	for _, args := range [][]string{
		{"traces", "-model", weights, "-out", "/proc/hata-x/t", "-layers", "2", "abc"},
		{"train", "-out", "/proc/hata-x", "-rbit", "32", "-steps", "2", "-positions", "2", trace},
	} {
		st, _, e := hata(args...)
		if st != 1 || !strings.Contains(e, "cannot write in /proc") {
			t.Errorf("hata %s -out under /proc: status %d, %q; want 1 and a refusal naming /proc", args[0], st, e)
		}
	}

	root := t.TempDir()
	real, link := filepath.Join(root, "real"), filepath.Join(root, "link")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if st, _, e := hata("traces", "-model", weights, "-out", link, "-layers", "2", "abc"); st != 0 {
		t.Fatalf("traces -out a symlink: status %d: %s", st, e)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("traces -out a symlink replaced the link (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(real, "layer_02_q.npy")); err != nil {
		t.Errorf("traces -out a symlink: the trace is not where the link points: %v", err)
	}

	wd := filepath.Join(root, "wd")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(wd)
	for _, out := range []string{".", wd, root} {
		st, _, e := hata("traces", "-model", weights, "-out", out, "-layers", "2", "abc")
		if st != 2 || !strings.Contains(e, "is the working directory or holds it") {
			t.Errorf("traces -out %s from %s: status %d, %q; want 2 and a refusal", out, wd, st, e)
		}
	}
}

// TestTracesBytePrompt: a prompt that is not valid UTF-8 (the model reads
// bytes) is kept in meta.json byte for byte (prompt_bytes), where the JSON
// string alone would replace the invalid bytes.
func TestTracesBytePrompt(t *testing.T) {
	dir := t.TempDir()
	prompt := "ab\xff\xfecd\x00e"
	file, out := filepath.Join(dir, "p.txt"), filepath.Join(dir, "trace")
	if err := os.WriteFile(file, []byte(prompt), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _, e := hata("traces", "-model", weightsDir, "-out", out, "-layers", "2", "-prompt-file", file); st != 0 {
		t.Fatalf("traces: status %d: %s", st, e)
	}
	tr, err := tensorio.ReadTrace(out)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Meta == nil || string(tr.Meta.PromptBytes) != prompt {
		t.Errorf("meta.json's prompt_bytes = %+v, want the prompt's bytes %q", tr.Meta, prompt)
	}
}
