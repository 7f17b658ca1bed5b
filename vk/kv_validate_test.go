package vk

import (
	"io"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestPrefillBadCache checks that every method refuses a cache built by
// hand whose rows do not hold what its shape says (ref.KV.Validate), with an
// error instead of a panic (the package's promise).
func TestPrefillBadCache(t *testing.T) {
	ctx := device(t)
	const b, hkv, n, d = 1, 2, 8, 16
	good, err := ref.NewKV(b, hkv, n, d, make([]float32, b*hkv*n*d), make([]float32, b*hkv*n*d))
	if err != nil {
		t.Fatal(err)
	}
	short := good.Clone()
	short.K[1] = short.K[1][:d]
	bad := map[string]*ref.KV{
		"nil":          nil,
		"N too large":  {B: b, Hkv: hkv, D: d, N: n + 1, K: good.K, V: good.V},
		"a row short":  short,
		"rows missing": {B: b, Hkv: hkv, D: d, N: n, K: good.K[:1], V: good.V[:1]},
	}
	w, err := ref.RandomHashWeights(hkv, d, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Methods {
		m, err := ctx.NewMethod(name, hkv, d, ref.Options{W: w})
		if err != nil {
			t.Fatal(err)
		}
		for what, kv := range bad {
			if err := m.Prefill(kv); err == nil {
				t.Errorf("%s: Prefill of a cache with %s = nil, want an error", name, what)
			}
		}
		if err := m.(io.Closer).Close(); err != nil {
			t.Fatal(err)
		}
	}
}
