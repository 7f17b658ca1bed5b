package vk

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestCloseConcurrent closes a context from several goroutines at once, as
// its methods' promise of concurrent use allows: exactly one of them frees
// its objects and device (two doing it crashed the process in the driver).
func TestCloseConcurrent(t *testing.T) {
	const b, hq, hkv, n, d = 1, 4, 2, 40, 16
	rng := rand.New(rand.NewPCG(1, 2))
	kv, q := randomKV(rng, b, hkv, n, d, F32), normal(rng, b*hq*d, 1)
	for range 8 {
		ctx := testContext(t, Options{})
		m, err := ctx.NewMethod("hata", hkv, d, ref.Options{W: mustRandomWeights(t, hkv, d)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Decode(q, ref.Budget{K: 4}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := ctx.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
		wg.Wait()
	}
}

// mustRandomWeights returns random hash weights of 32 bits for hkv heads of
// dimension d.
func mustRandomWeights(t *testing.T, hkv, d int) *ref.HashWeights {
	t.Helper()
	w, err := ref.RandomHashWeights(hkv, d, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
