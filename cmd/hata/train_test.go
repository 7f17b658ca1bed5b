package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hata-go/hata/tensorio"
)

// TestTrainWritesWeights trains on a tiny random trace and checks the W file's
// shape, and that a missing layer is a clear error that writes nothing.
func TestTrainWritesWeights(t *testing.T) {
	dir, out := t.TempDir(), filepath.Join(t.TempDir(), "w")
	rng := rand.New(rand.NewPCG(5, 5))
	lt := &tensorio.LayerTrace{Hq: 2, Hkv: 1, N: 40, D: 16}
	for _, p := range []*[]float32{&lt.Q, &lt.K, &lt.V} {
		n := lt.Hkv * lt.N * lt.D
		if p == &lt.Q {
			n = lt.Hq * lt.N * lt.D
		}
		*p = make([]float32, n)
		for i := range *p {
			(*p)[i] = float32(rng.NormFloat64())
		}
	}
	if err := tensorio.WriteTraceLayer(dir, 3, lt); err != nil {
		t.Fatal(err)
	}
	if st, _, e := hata("train", "-out", out, "-layers", "7", dir); st != 1 || !strings.Contains(e, "no layer 7") {
		t.Errorf("missing layer: status %d, %q; want 1 and a message naming layer 7", st, e)
	}
	if _, err := os.Stat(filepath.Join(out, "hash_weight_layer_07.npy")); err == nil {
		t.Error("a W file was written for a failed run")
	}
	st, stdout, e := hata("train", "-out", out, "-rbit", "32", "-steps", "5", "-positions", "2", dir)
	if st != 0 {
		t.Fatalf("hata train: status %d: %s", st, e)
	}
	w, err := tensorio.ReadHashWeights(filepath.Join(out, "hash_weight_layer_03.npy"))
	if err != nil {
		t.Fatalf("reading the trained W (stdout %q): %v", stdout, err)
	}
	if w.Hkv != 1 || w.D != 16 || w.Rbit != 32 {
		t.Errorf("W is [%d %d %d], want [1 16 32]", w.Hkv, w.D, w.Rbit)
	}
}
