package ref

import (
	"testing"
)

// badCaches returns caches that KV.Validate refuses, each built by hand
// around good, a valid cache of B=1, Hkv=2 and N >= 1.
func badCaches(good *KV) map[string]*KV {
	short := good.Clone()
	short.V[1] = short.V[1][:len(short.V[1])-1]
	return map[string]*KV{
		"nil":          nil,
		"N too large":  {B: good.B, Hkv: good.Hkv, D: good.D, N: good.N + 1, K: good.K, V: good.V},
		"a row short":  short,
		"rows missing": {B: good.B, Hkv: good.Hkv, D: good.D, N: good.N, K: good.K[:1], V: good.V[:1]},
		"D zero":       {B: good.B, Hkv: good.Hkv, D: 0, N: good.N, K: good.K, V: good.V},
	}
}

// TestPrefillBadCache checks that every method's Prefill, and the functions
// that read a cache, refuse a cache built by hand whose rows do not hold
// what its shape says, with an error, instead of panicking in a worker
// goroutine (which no caller can recover).
func TestPrefillBadCache(t *testing.T) {
	const b, hq, hkv, n, d = 1, 4, 2, 8, 4
	good, err := NewKV(b, hkv, n, d, make([]float32, b*hkv*n*d), make([]float32, b*hkv*n*d))
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate of NewKV's cache: %v", err)
	}
	w, err := RandomHashWeights(hkv, d, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float32, b*hq*d)
	for what, kv := range badCaches(good) {
		if err := kv.Validate(); err == nil {
			t.Errorf("Validate of a cache with %s = nil, want an error", what)
		}
		for _, name := range MethodNames {
			m, err := New(name, hkv, d, Options{W: w})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Prefill(kv); err == nil {
				t.Errorf("%s: Prefill of a cache with %s = nil, want an error", name, what)
			}
		}
		if _, err := Dense(q, kv); err == nil {
			t.Errorf("Dense over a cache with %s: nil error", what)
		}
		if _, err := Probabilities(q, kv); err == nil {
			t.Errorf("Probabilities over a cache with %s: nil error", what)
		}
		if _, err := FitLokiBasis(kv); err == nil {
			t.Errorf("FitLokiBasis of a cache with %s: nil error", what)
		}
	}
}
