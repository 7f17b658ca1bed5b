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
	st, stdout, e := hata("train", "-out", out, "-rbit", "32", "-steps", "5", "-positions", "2", "-layers", "3,3", dir)
	if st != 0 {
		t.Fatalf("hata train: status %d: %s", st, e)
	}
	if n := strings.Count(stdout, "hash_weight_layer_03.npy"); n != 1 {
		t.Errorf("-layers 3,3 trained and wrote layer 3 %d times, want once (stdout %q)", n, stdout)
	}
	w, err := tensorio.ReadHashWeights(filepath.Join(out, "hash_weight_layer_03.npy"))
	if err != nil {
		t.Fatalf("reading the trained W (stdout %q): %v", stdout, err)
	}
	if w.Hkv != 1 || w.D != 16 || w.Rbit != 32 {
		t.Errorf("W is [%d %d %d], want [1 16 32]", w.Hkv, w.D, w.Rbit)
	}
}

// writeRandomTrace writes layers of a small random trace (Hq=2, Hkv=1, N=40,
// D=16) into dir.
func writeRandomTrace(t *testing.T, dir string, layers ...int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	for _, l := range layers {
		lt := &tensorio.LayerTrace{Hq: 2, Hkv: 1, N: 40, D: 16, Q: randn(rng, 2*40*16), K: randn(rng, 40*16), V: randn(rng, 40*16)}
		if err := tensorio.WriteTraceLayer(dir, l, lt); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrainAllOrNothing checks that hata train writes every layer's weights
// or none: bad flags, a bad trace in a later layer or a destination that is a
// directory fail before anything is written, leave an existing -out as it
// was and make no new -out; a successful run replaces only its own layers.
func TestTrainAllOrNothing(t *testing.T) {
	good, bad, wide := t.TempDir(), t.TempDir(), t.TempDir()
	writeRandomTrace(t, good, 3, 4)
	writeRandomTrace(t, bad, 3, 4)
	// A second prompt's trace whose layer 4 has other heads than good's.
	writeRandomTrace(t, wide, 3)
	rng := rand.New(rand.NewPCG(8, 8))
	if err := tensorio.WriteTraceLayer(wide, 4, &tensorio.LayerTrace{Hq: 4, Hkv: 2, N: 40, D: 16,
		Q: randn(rng, 4*40*16), K: randn(rng, 2*40*16), V: randn(rng, 2*40*16)}); err != nil {
		t.Fatal(err)
	}
	k4 := filepath.Join(bad, "layer_04_k.npy")
	raw, err := os.ReadFile(k4)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(k4, raw[:len(raw)-40], 0o644)

	root := t.TempDir()
	out := filepath.Join(root, "w")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	w3, other := filepath.Join(out, "hash_weight_layer_03.npy"), filepath.Join(out, "notes.txt")
	os.WriteFile(w3, []byte("old weights"), 0o644)
	os.WriteFile(other, []byte("mine"), 0o644)
	unchanged := func(name string) {
		t.Helper()
		entries, _ := os.ReadDir(out)
		if len(entries) != 2 {
			t.Errorf("%s: -out holds %d entries, want the 2 it had", name, len(entries))
		}
		if b, _ := os.ReadFile(w3); string(b) != "old weights" {
			t.Errorf("%s: %s was replaced", name, w3)
		}
	}
	fresh := filepath.Join(root, "new", "w")
	for _, c := range []struct {
		name string
		args []string
		want []string // substrings of the message
	}{
		{"truncated later layer", []string{"-out", out, bad}, []string{"layer_04_k.npy"}},
		{"truncated later layer, new -out", []string{"-out", fresh, bad}, []string{"layer_04_k.npy"}},
		{"traces of other heads", []string{"-out", out, good, wide}, []string{"trace " + wide + " layer 4 has Hq=4 Hkv=2 D=16", "the first trace has Hq=2 Hkv=1 D=16"}},
		{"lr NaN", []string{"-out", fresh, "-lr", "NaN", good}, []string{"-lr NaN"}},
		{"lr negative", []string{"-out", fresh, "-lr", "-1", good}, []string{"-lr -1"}},
		{"lr zero", []string{"-out", fresh, "-lr", "0", good}, []string{"-lr 0"}},
		{"rbit past 1024", []string{"-out", fresh, "-rbit", "3200000000", good}, []string{"-rbit 3200000000"}},
		{"positions past the limit", []string{"-out", fresh, "-positions", "100000000", good}, []string{"-positions 100000000"}},
		{"-out a file", []string{"-out", other, good}, []string{other, "not a directory"}},
	} {
		args := append([]string{"train", "-rbit", "32", "-steps", "2", "-positions", "2"}, c.args...)
		st, _, e := hata(args...)
		if st == 0 || st == 3 {
			t.Errorf("%s: status %d, want 1 or 2 (stderr %q)", c.name, st, e)
		}
		for _, w := range c.want {
			if !strings.Contains(e, w) {
				t.Errorf("%s: message %q does not mention %q", c.name, e, w)
			}
		}
		unchanged(c.name)
		if _, err := os.Stat(filepath.Join(root, "new")); err == nil {
			t.Fatalf("%s: a failed run made %s", c.name, filepath.Join(root, "new"))
		}
	}

	w4 := filepath.Join(out, "hash_weight_layer_04.npy")
	os.Mkdir(w4, 0o755)
	if st, _, e := hata("train", "-rbit", "32", "-steps", "2", "-positions", "2", "-out", out, good); st == 0 || !strings.Contains(e, w4) || !strings.Contains(e, "is a directory") {
		t.Errorf("a layer's file is a directory: status %d, %q; want a failure naming %s", st, e, w4)
	}
	os.Remove(w4)
	unchanged("a layer's file is a directory")

	if st, _, e := hata("train", "-rbit", "32", "-steps", "2", "-positions", "2", "-out", out, good); st != 0 {
		t.Fatalf("hata train: status %d: %s", st, e)
	}
	for _, l := range []string{"03", "04"} {
		if _, err := tensorio.ReadHashWeights(filepath.Join(out, "hash_weight_layer_"+l+".npy")); err != nil {
			t.Errorf("layer %s: %v", l, err)
		}
	}
	if b, _ := os.ReadFile(other); string(b) != "mine" {
		t.Errorf("%s changed: %q", other, b)
	}
	if matches, _ := filepath.Glob(filepath.Join(out, "*tmp*")); len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
}
