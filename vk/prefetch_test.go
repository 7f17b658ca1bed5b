package vk

import (
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestKVPrefetch checks the translation prefetch: a step of lsh (HATA's
// kernels), quest, topk and loki loads the words PrefetchStride apart of
// every K and V buffer of a cache cut into several (the XOR of touch.comp's
// subgroup results is theirs) under PrefetchAuto (the cache's buffers are
// too small for dedicated allocations) and PrefetchOn, and PrefetchOff
// leaves it out. (The outputs
// with it are the acceptance suite's, which runs with the default.) Strides
// that are no power of two from 64 bytes to 1 GiB are refused.
func TestKVPrefetch(t *testing.T) {
	ctx := device(t)
	for _, bad := range []uint64{32, 100, 2 << 30} {
		if _, err := ctx.SparseFactory(SparseOptions{PrefetchStride: bad})("topk", 2, 64, ref.Options{}); err == nil || !strings.Contains(err.Error(), "prefetch stride") {
			t.Errorf("PrefetchStride %d: %v, want an error naming the prefetch stride", bad, err)
		}
	}
	const b, hkv, hq, n, d, stride = 1, 4, 8, 100, 64, 512
	q := make([]float32, b*hq*d)
	for i := range q {
		q[i] = RandomValue(9, uint32(i))
	}
	for _, name := range []string{"lsh", "quest", "topk", "loki"} {
		for _, mode := range []PrefetchMode{PrefetchAuto, PrefetchOn, PrefetchOff} {
			off := mode == PrefetchOff
			m, err := ctx.SparseFactory(SparseOptions{Storage: F16, Reserve: 1, PrefetchStride: stride, Prefetch: mode})(name, hkv, d, ref.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.(interface{ Close() error }).Close()
			c := coreOf(m)
			c.maxBuf = 2 * uint64(roundUp(n+1, 64)*d*2) // 2 rows a buffer
			if err := m.(benchAPI).PrefillRandom(b, hkv, n, d, 5); err != nil {
				t.Fatal(err)
			}
			if off {
				if c.pf != nil {
					t.Errorf("%s with PrefetchOff: a prefetch of %d dispatches", name, len(c.pf.runs))
				}
				if _, err := m.(benchAPI).Step(q, ref.Budget{K: 16}); err != nil {
					t.Fatalf("%s with PrefetchOff: %v", name, err)
				}
				continue
			}
			if len(c.kv.k) != 2 || c.pf == nil || len(c.pf.runs) != 4 {
				t.Fatalf("%s: %d K buffers and a prefetch %v, want 2 and 4 dispatches", name, len(c.kv.k), c.pf)
			}
			if err := ctx.Write(Region{Dst: c.pf.dst, Data: make([]byte, c.pf.dst.size)}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.(benchAPI).Step(q, ref.Budget{K: 16}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i, buf := range c.kv.allBuffers() {
				src := make([]byte, buf.size)
				if err := ctx.Read(buf, 0, src); err != nil {
					t.Fatal(err)
				}
				var want [4]uint32
				for at := 0; at < len(src); at += stride {
					w := xorLanes(src[at : at+16])
					for l := range w {
						want[l] ^= w[l]
					}
				}
				r := c.pf.runs[i]
				res := make([]byte, r.dst.Size)
				if err := ctx.Read(r.dst.Buf, r.dst.Off, res); err != nil {
					t.Fatal(err)
				}
				if got := xorLanes(res); got != want {
					t.Errorf("%s, buffer %d of %d bytes: XOR of the prefetch's results %x, want that of its words %d bytes apart %x",
						name, i, buf.size, got, stride, want)
				}
			}
		}
	}
}

// TestPrefetchRule checks PrefetchAuto's rule: a prefetch over a cache with
// any buffer in a plain allocation, none over one all dedicated, whatever
// the buffers for PrefetchOn and PrefetchOff.
func TestPrefetchRule(t *testing.T) {
	plain, ded := &Buffer{}, &Buffer{dedicated: true}
	for _, c := range []struct {
		mode PrefetchMode
		bufs []*Buffer
		want bool
	}{
		{PrefetchAuto, []*Buffer{plain, plain}, true},
		{PrefetchAuto, []*Buffer{ded, plain}, true},
		{PrefetchAuto, []*Buffer{ded, ded}, false},
		{PrefetchOn, []*Buffer{ded, ded}, true},
		{PrefetchOff, []*Buffer{plain}, false},
	} {
		var kinds []bool
		for _, b := range c.bufs {
			kinds = append(kinds, b.dedicated)
		}
		if got := prefetchOn(c.mode, c.bufs); got != c.want {
			t.Errorf("mode %d over buffers dedicated %v: prefetch %v, want %v", c.mode, kinds, got, c.want)
		}
	}
	if _, err := device(t).SparseFactory(SparseOptions{Prefetch: 3})("quest", 2, 64, ref.Options{}); err == nil || !strings.Contains(err.Error(), "Prefetch 3") {
		t.Errorf("Prefetch 3: %v, want an error naming it", err)
	}
}
