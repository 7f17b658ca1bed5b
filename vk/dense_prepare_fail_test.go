package vk

import (
	"math/rand/v2"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestDensePrepareFails makes a Dense's decode with more query heads fail
// while it sizes its buffers (its partial outputs over a lowered
// maxMemoryAllocationSize, as an allocation failing out of memory would),
// after it has chosen the split kernel for the new group size, then decodes
// with the earlier query heads again: the output must be dense attention's.
// (The failed step once left the new group's kernel in place, which the
// next step, finding the heads it had before, kept and ran with them.)
func TestDensePrepareFails(t *testing.T) {
	device(t)
	ctx := testContext(t, Options{})
	rng := rand.New(rand.NewPCG(5, 7))
	const b, hkv, n, d = 1, 2, 100, 16
	kv := randomKV(rng, b, hkv, n, d, F32)
	m, err := ctx.NewDense(DenseOptions{Split: SplitPolicy{Splits: 4}, Merge: MergeFold})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	q2 := normal(rng, b*hkv*2*d, 2) // G = 2
	q4 := normal(rng, b*hkv*4*d, 2) // G = 4
	res, err := m.Decode(q2, ref.Full)
	if err != nil {
		t.Fatalf("Decode (G=2): %v", err)
	}
	checkDense(t, "G=2", res.Out, q2, kv)
	// G=4: q and out take 512 bytes, the 4 splits' partial outputs 2 KiB.
	lim := &ctx.Info.Limits.MaxMemoryAllocationSize
	saved := *lim
	*lim = 1 << 10
	_, err = m.Decode(q4, ref.Full)
	*lim = saved
	if err == nil {
		t.Fatalf("Decode (G=4) under a 1 KiB allocation limit did not fail")
	}
	t.Logf("the failed decode: %v", err)
	for _, q := range [][]float32{q2, q4, q2} {
		res, err := m.Decode(q, ref.Full)
		if err != nil {
			t.Fatalf("Decode (G=%d) after the failed one: %v", len(q)/(b*hkv*d), err)
		}
		checkDense(t, "after the failed decode", res.Out, q, kv)
	}
}
