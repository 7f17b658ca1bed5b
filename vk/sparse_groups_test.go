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
// changes. A third instance also attends in windows of 2 rows
// (SparseOptions.AttendWindow; within the 3-row buffers, windows of 2 and
// 1), one after another, with the same result. The one-buffer method is
// held to ref by the acceptance suite.
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
			build := func(split, window bool) ref.Method {
				m, err := ctx.SparseFactory(SparseOptions{Storage: st, Variant: c.variant, Reserve: 3})(c.name, hkv, d, o)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				t.Cleanup(func() { m.(interface{ Close() error }).Close() })
				if split {
					core := coreOf(m)
					core.maxBuf = 3 * uint64(roundUp(n+3, 64)*d*st.bytes()) // 3 rows at the prefill's capacity
				}
				if window {
					// K and V of 2 rows at the prefill's capacity; 1 row once it doubles.
					coreOf(m).windowBytes = 2 * 2 * uint64(roundUp(n+3, 64)*d*st.bytes())
				}
				if err := m.Prefill(kv); err != nil {
					t.Fatalf("%s: prefill: %v", name, err)
				}
				return m
			}
			one, split, windowed := build(false, false), build(true, false), build(true, true)
			if wc := coreOf(windowed); len(wc.kv.windows(wc.groups(), wc.attendWindow())) != 5 {
				t.Fatalf("%s: %d attention windows, want 5 (rows 0-1, 2, 3-4, 5, 6)", name, len(wc.kv.windows(wc.groups(), wc.attendWindow())))
			}
			cache := kv.Clone()
			if g := len(coreOf(split).kv.k); g != 3 {
				t.Fatalf("%s: the split cache has %d buffers, want 3 (rows 0-2, 3-5, 6)", name, g)
			}
			for step := range 6 {
				if step > 0 { // append a token to both; the third append fills the capacity of 64
					k, v := reftest.Dyadic(rng, b*hkv*d), reftest.Dyadic(rng, b*hkv*d)
					for _, m := range []interface{ Append(k, v []float32) error }{one, split, windowed, cache} {
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
				gotw, err := windowed.Decode(q, budget)
				if err != nil {
					t.Fatalf("%s: step %d, attention windows: %v", name, step, err)
				}
				if diff := cmp.Diff(got, gotw); diff != "" {
					t.Fatalf("%s: step %d (N=%d): attention windows of 2 rows differ from one launch (-one launch +windows):\n%s", name, step, n+step, diff)
				}
				if c.variant == VariantTwoKernel {
					if diff := cmp.Diff(want.Selected, got.Selected); diff != "" {
						t.Fatalf("%s: step %d (N=%d, %d buffers): split cache selects differently (-one +split):\n%s", name, step, n+step, len(coreOf(split).kv.k), diff)
					}
					want64, err := ref.Sparse(q, cache, got.Selected)
					if err != nil {
						t.Fatal(err)
					}
					if err := reftest.CheckClose(got.Out, want64, reftest.Sparse32(q, cache, got.Selected), d); err != nil {
						t.Fatalf("%s: step %d (N=%d, split cache): output: %v", name, step, n+step, err)
					}
				} else if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("%s: step %d (N=%d, %d buffers): split cache differs (-one +split):\n%s", name, step, n+step, len(coreOf(split).kv.k), diff)
				}
			}
			if g := len(coreOf(split).kv.k); g != 7 {
				t.Errorf("%s: after the capacity doubled the split cache has %d buffers, want 7 (one row each)", name, g)
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

// TestAttendWindow checks attendWindow's rule: one launch up to 8 GiB of K
// and V, windows of 4 GiB beyond, SparseOptions.AttendWindow (MiB) in its
// place, and no windows where the window holds the whole cache.
func TestAttendWindow(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		rows   int
		row    uint64 // bytes of one row of K (and of V)
		window int    // SparseOptions.AttendWindow
		want   uint64
	}{
		{64, 64 * mib, 0, 0},           // 8 GiB of K and V: one launch
		{65, 64 * mib, 0, 4 << 30},     // past 8 GiB: windows of 4 GiB
		{256, 33 * mib, 0, 4 << 30},    // Llama-2-7B's B8/128K
		{256, 33 * mib, 1024, 1 << 30}, // a window set
		{4, 64 * mib, 256, 256 * mib},  // smaller than the cache: windows
		{4, 64 * mib, 1024, 0},         // the whole cache: one launch
		{65, 64 * mib, 1 << 20, 0},     // a window past the cache: one launch
	} {
		core := &sparseCore{kv: &kvStore{rows: c.rows, rowBytes: c.row}, opt: SparseOptions{AttendWindow: c.window}}
		if got := core.attendWindow(); got != c.want {
			t.Errorf("%d rows of %d MiB, AttendWindow %d: window %d bytes, want %d", c.rows, c.row/mib, c.window, got, c.want)
		}
	}
}
