package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// weightsDir is the committed checkpoint.
const weightsDir = "../weights"

var (
	loadOnce  sync.Once
	loaded    *Model
	loadedErr error
)

// testModel loads ../weights once per test binary.
func testModel(t *testing.T) *Model {
	t.Helper()
	loadOnce.Do(func() { loaded, loadedErr = Load(weightsDir) })
	if loadedErr != nil {
		t.Fatalf("Load(%s): %v", weightsDir, loadedErr)
	}
	return loaded
}

// golden is train/golden.json: logits of the PyTorch model (float32 on the
// CPU, the bf16-rounded weights that weights/ holds) for a fixed prompt.
type golden struct {
	Prompt     string               `json:"prompt"`
	Tokens     []int                `json:"tokens"`
	Logits     map[string][]float64 `json:"logits"` // position -> [Vocab]
	ArgmaxLast int                  `json:"argmax_last"`
}

// TestGoldenLogits holds the Go forward pass to PyTorch's: the logits of
// positions 0, N/2 and N-1 of train/golden.json's prompt.
//
// Tolerance: both sides compute in float32 from the same float32 weights, in
// different summation orders; over the ~25 sums of up to 1536 terms on the
// path to a logit, rounding leaves about 1e-5 relative to the logits' scale.
// The check is |go - torch| <= 1e-3 * max(1, max|torch|) per row.
func TestGoldenLogits(t *testing.T) {
	m := testModel(t)
	var g golden
	b, err := os.ReadFile(filepath.Join("..", "train", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if got := m.Encode(g.Prompt); !equalInts(got, g.Tokens) {
		t.Fatalf("Encode(%q) = %v, golden tokens %v", g.Prompt, got, g.Tokens)
	}
	p, err := m.Prefill(g.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.VocabSize
	if len(g.Logits) == 0 {
		t.Fatal("golden.json has no logits")
	}
	for key, want := range g.Logits {
		pos, err := strconv.Atoi(key)
		if err != nil || pos < 0 || pos >= len(g.Tokens) || len(want) != v {
			t.Fatalf("golden row %q: bad position or %d values (vocab %d)", key, len(want), v)
		}
		got := p.Logits[pos*v : (pos+1)*v]
		scale := 1.0
		for _, w := range want {
			scale = max(scale, math.Abs(w))
		}
		worst, at := 0.0, 0
		for i := range want {
			if e := math.Abs(float64(got[i]) - want[i]); e > worst {
				worst, at = e, i
			}
		}
		if worst > 1e-3*scale {
			t.Errorf("position %d: max |go - torch| = %.3g at token %d (go %v, torch %v), tolerance %.3g",
				pos, worst, at, got[at], want[at], 1e-3*scale)
		}
		t.Logf("position %d: max |go - torch| = %.3g (scale %.3g)", pos, worst, scale)
	}
	last := p.LastLogits()
	if a := argmax(last); a != g.ArgmaxLast {
		t.Errorf("argmax of the last logits = %d, torch %d", a, g.ArgmaxLast)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
