package main

import (
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
