package vk

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestSparseSplitCache cuts the K/V cache of every top-k method into buffers
// of 3 rows (as a cache larger than maxStorageBufferRange or
// maxMemoryAllocationSize is cut), 7 rows in all so that the last buffer is
// short, and checks that prefill, appends that grow the capacity (after
// which a buffer holds one row), and decode steps give exactly the output
// and the selection of the same method on one buffer: every kernel that reads
// the cache runs once per buffer with its first row, and nothing else
// changes; Loki's rotated keys are cut too, into buffers of 2 rows (then 1).
// The one-buffer method is held to ref by the acceptance suite.
func TestSparseSplitCache(t *testing.T) {
	ctx := device(t)
	const b, hkv, hq, n, d = 7, 1, 2, 61, 64 // rows = B*Hkv = 7
	rng := rand.New(rand.NewPCG(21, 5))
	s := ref.Shape{B: b, Hq: hq, Hkv: hkv, N: n, D: d}
	kv := reftest.DyadicKV(rng, s, true)
	cases := []struct{ name, variant string }{
		{"hata", VariantFused}, {"hata", VariantNaive}, {"hata", VariantTwoKernel}, {"hata", VariantThreeKernel}, {"hata", VariantOneKernel},
		{"topk", ""}, {"loki", ""}, {"quest", ""}, {"streaming", ""}, {"h2o", ""},
	}
	for _, st := range []Storage{F32, F16} {
		for _, c := range cases {
			o := ref.Options{W: reftest.DyadicHashWeights(rng, hkv, d, 128), Windows: ref.Windows{Sink: 2, Recent: 3}}
			if c.name == "loki" {
				o.LokiBasis = make([]float64, hkv*d*d)
				for j := range d {
					o.LokiBasis[j*d+j] = 1
				}
			}
			name := fmt.Sprintf("%s/%s/%s", c.name, c.variant, st)
			build := func(split bool) ref.Method {
				m, err := ctx.SparseFactory(SparseOptions{Storage: st, Variant: c.variant, Reserve: 3})(c.name, hkv, d, o)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				t.Cleanup(func() { m.(interface{ Close() error }).Close() })
				if split {
					core := coreOf(m)
					core.maxBuf = 3 * uint64(roundUp(n+3, 64)*d*st.bytes()) // 3 rows at the prefill's capacity
					if l, ok := m.(*Loki); ok {
						// its rotated keys in buffers of 2 rows, then 1
						core.maxSideBuf = 2 * uint64(roundUp(n+3, 64)*l.cp*l.keys.bytes())
					}
				}
				if err := m.Prefill(kv); err != nil {
					t.Fatalf("%s: prefill: %v", name, err)
				}
				return m
			}
			one, split := build(false), build(true)
			cache := kv.Clone()
			if g := len(coreOf(split).kv.k); g != 3 {
				t.Fatalf("%s: the split cache has %d buffers, want 3 (rows 0-2, 3-5, 6)", name, g)
			}
			rkRuns := func() int { l := split.(*Loki); return len(l.sideRuns("rotated keys", l.rkRow())) }
			if c.name == "loki" && rkRuns() != 4 {
				t.Fatalf("%s: rotated keys in %d buffers, want 4 (rows 0-1, 2-3, 4-5, 6)", name, rkRuns())
			}
			for step := range 6 {
				if step > 0 { // append a token to both; the third append fills the capacity of 64
					k, v := reftest.Dyadic(rng, b*hkv*d), reftest.Dyadic(rng, b*hkv*d)
					for _, m := range []interface{ Append(k, v []float32) error }{one, split, cache} {
						if err := m.Append(k, v); err != nil {
							t.Fatalf("%s: append %d: %v", name, step, err)
						}
					}
				}
				q := reftest.Dyadic(rng, b*hq*d)
				budget := ref.Budget{K: 9 + step}
				want, err := one.Decode(q, budget)
				if err != nil {
					t.Fatalf("%s: step %d: %v", name, step, err)
				}
				got, err := split.Decode(q, budget)
				if err != nil {
					t.Fatalf("%s: step %d, split cache: %v", name, step, err)
				}
				if c.variant == VariantTwoKernel {
					if diff := cmp.Diff(want.Selected, got.Selected); diff != "" {
						t.Fatalf("%s: step %d (N=%d, %d buffers): split cache selects differently (-one +split):\n%s", name, step, n+step, len(coreOf(split).kv.k), diff)
					}
					want64, err := ref.Sparse(q, cache, got.Selected)
					if err != nil {
						t.Fatal(err)
					}
					if err := reftest.CheckClose(got.Out, want64, sparse32(t, q, cache, got.Selected), d); err != nil {
						t.Fatalf("%s: step %d (N=%d, split cache): output: %v", name, step, n+step, err)
					}
				} else if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("%s: step %d (N=%d, %d buffers): split cache differs (-one +split):\n%s", name, step, n+step, len(coreOf(split).kv.k), diff)
				}
			}
			if g := len(coreOf(split).kv.k); g != 7 {
				t.Errorf("%s: after the capacity doubled the split cache has %d buffers, want 7 (one row each)", name, g)
			}
			if c.name == "loki" && rkRuns() != 7 {
				t.Errorf("%s: after the capacity doubled the rotated keys are in %d buffers, want 7", name, rkRuns())
			}
		}
	}
}

// TestSparseSplitCacheRandom fills a cache cut into buffers of 2 rows with
// PrefillRandom and reads every row back: the values are RandomKV's, as in
// one buffer.
func TestSparseSplitCacheRandom(t *testing.T) {
	ctx := device(t)
	const b, hkv, n, d = 1, 5, 40, 64
	m, err := ctx.SparseFactory(SparseOptions{Storage: F16, Reserve: 1})("streaming", hkv, d, ref.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.(interface{ Close() error }).Close()
	c := coreOf(m)
	cp := roundUp(n+1, 64)
	c.maxBuf = 2 * uint64(cp*d*2)
	if err := m.(benchAPI).PrefillRandom(b, hkv, n, d, 77); err != nil {
		t.Fatal(err)
	}
	if len(c.kv.k) != 3 {
		t.Fatalf("%d buffers, want 3", len(c.kv.k))
	}
	k, v := RandomKV(b, hkv, n, cp, d, 77)
	for r := range b * hkv {
		kb, vb, off := c.kv.rowAt(r)
		for _, x := range []struct {
			buf  *Buffer
			want []float32
		}{{kb, k}, {vb, v}} {
			raw := make([]byte, n*d*2)
			if err := ctx.Read(x.buf, off, raw); err != nil {
				t.Fatal(err)
			}
			for i := range n * d {
				if got, want := halfFloat(uint16(raw[2*i])|uint16(raw[2*i+1])<<8), halfFloat(halfBits(x.want[r*n*d+i])); got != want {
					t.Fatalf("row %d element %d: %v on the device, RandomKV gives %v", r, i, got, want)
				}
			}
		}
	}
}
