package vk

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestSparseAppendGrowthFails makes the Append that doubles the cache fail,
// by lowering maxMemoryAllocationSize for it (as an allocation failing out
// of memory would): after the new cache buffers are allocated (the
// translation prefetch's results buffer over the limit), or at them (a row
// of the doubled cache over it). It then checks that the method still holds
// the cache it had: a decode agrees with ref's over the tokens before the
// failed Append, and a later Append grows the cache. (The first failure
// once left the new, never written buffers as the cache, and the steps
// after it attended over whatever they held; the second, no cache at all.)
func TestSparseAppendGrowthFails(t *testing.T) {
	device(t)
	for _, tc := range []struct {
		what     string
		prefetch PrefetchMode
		limit    uint64
	}{
		// The doubled cache's rows (8 KiB each) still fit one allocation
		// apiece; the prefetch's results for its four buffers (16 KiB) do not.
		{"after the cache", PrefetchOn, 8 << 10},
		// The doubled cache's rows do not fit.
		{"at the cache", PrefetchOff, 4 << 10},
	} {
		for i, name := range sparseMethods {
			appendGrowthFails(t, fmt.Sprintf("%s (failing %s)", name, tc.what), name, i, tc.prefetch, tc.limit)
		}
	}
}

// appendGrowthFails is TestSparseAppendGrowthFails for method name with the
// translation prefetch pf, the Append that grows the cache run under the
// allocation limit limit; where names the case.
func appendGrowthFails(t *testing.T, where, name string, seed int, pf PrefetchMode, limit uint64) {
	t.Helper()
	ctx := testContext(t, Options{})
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 63, D: 16}
	o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 64), Seed: 3, PageSize: 7, SinkTokens: 2}
	want, err := ref.New(name, s.Hkv, s.D, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ctx.SparseFactory(SparseOptions{Reserve: 1, Prefetch: pf, LokiF32Keys: true})(name, s.Hkv, s.D, o)
	if err != nil {
		t.Fatal(err)
	}
	defer got.(io.Closer).Close()
	kv := reftest.DyadicKV(rng, s, false)
	for _, m := range []ref.Method{want, got} {
		if err := m.Prefill(kv); err != nil {
			t.Fatalf("%s: Prefill: %v", where, err)
		}
	}
	cache := kv.Clone()
	appendAll := func(ms ...interface{ Append(k, v []float32) error }) error {
		k, v := reftest.Dyadic(rng, s.B*s.Hkv*s.D), reftest.Dyadic(rng, s.B*s.Hkv*s.D)
		for _, m := range ms {
			if err := m.Append(k, v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := appendAll(want, got, cache); err != nil { // N = 64 = Cap
		t.Fatalf("%s: Append: %v", where, err)
	}
	if c := coreOf(got).cap; c != 64 {
		t.Fatalf("%s: capacity %d, want 64", where, c)
	}
	lim := &ctx.Info.Limits.MaxMemoryAllocationSize
	saved := *lim
	*lim = limit
	err = appendAll(got)
	*lim = saved
	if err == nil {
		t.Fatalf("%s: the Append past the capacity did not fail", where)
	}
	t.Logf("%s: the failed Append: %v", where, err)
	if c, n := coreOf(got), cache.N; !c.hasCache() || c.n != n || c.cap != 64 {
		t.Fatalf("%s: after the failed Append: cache %v N=%d Cap=%d, want the cache of N=%d Cap=64", where, c.hasCache(), c.n, c.cap, n)
	}
	for step := range 2 {
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		decodeStep(t, fmt.Sprintf("%s: step %d after the failed Append (N=%d)", where, step, cache.N), name, q, cache, ref.Budget{K: 9}, want, got, exactSelection[name])
		if err := appendAll(want, got, cache); err != nil {
			t.Fatalf("%s: Append after the failed one: %v", where, err)
		}
	}
	if c := coreOf(got).cap; c != 128 {
		t.Errorf("%s: capacity %d after growing, want 128", where, c)
	}
}
