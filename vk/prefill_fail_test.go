package vk

import (
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestPrefillFails makes a prefill fail after its cache buffers are
// allocated, by lowering maxMemoryAllocationSize below what it allocates
// next (a top-k method's translation prefetch results; dense's upload
// through the context's staging buffer, which a fresh context has yet to
// allocate), as an allocation failing out of memory would. A decode after
// it must fail as one before any prefill does, and a prefill after it must
// work. (The failed prefill once left the unwritten buffers as the cache,
// which the next decode attended over.)
func TestPrefillFails(t *testing.T) {
	device(t)
	for i, name := range append([]string{"dense"}, sparseMethods...) {
		ctx := testContext(t, Options{})
		rng := rand.New(rand.NewPCG(uint64(i), 13))
		s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 63, D: 16}
		o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 64), Seed: 3, PageSize: 7}
		var got ref.Method
		var err error
		if name == "dense" {
			got, err = ctx.NewDense(DenseOptions{Reserve: 1})
		} else {
			got, err = ctx.SparseFactory(SparseOptions{Reserve: 1, Prefetch: PrefetchOn, LokiF32Keys: true})(name, s.Hkv, s.D, o)
		}
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.New(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		kv := reftest.DyadicKV(rng, s, false)
		// A cache row (64 tokens of 16 float32) takes 4 KiB: the cache's
		// buffers fit, the four buffers' prefetch results (16 KiB) do not.
		lim := &ctx.Info.Limits.MaxMemoryAllocationSize
		saved := *lim
		*lim = 4 << 10
		err = got.Prefill(kv)
		*lim = saved
		if err == nil {
			t.Fatalf("%s: Prefill under a 4 KiB allocation limit did not fail", name)
		}
		t.Logf("%s: the failed prefill: %v", name, err)
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		if _, err := got.Decode(q, ref.Budget{K: 9}); err == nil || !strings.Contains(err.Error(), "before prefill") {
			t.Errorf("%s: Decode after the failed Prefill: error %v, want one saying there was no prefill", name, err)
		}
		for _, m := range []ref.Method{want, got} {
			if err := m.Prefill(kv); err != nil {
				t.Fatalf("%s: Prefill after the failed one: %v", name, err)
			}
		}
		if name == "dense" {
			res, err := got.Decode(q, ref.Full)
			if err != nil {
				t.Fatal(err)
			}
			checkDense(t, "dense after the failed prefill", res.Out, q, kv)
		} else {
			decodeStep(t, name+" after the failed prefill", name, q, kv, ref.Budget{K: 9}, want, got, exactSelection[name])
		}
		got.(io.Closer).Close()
	}
}
