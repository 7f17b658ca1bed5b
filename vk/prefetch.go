package vk

import (
	"cmp"
	"fmt"
)

// The translation prefetch (session 26). A sparse attention gathers its
// selected K/V rows from everywhere in the cache, so it needs the address
// translation of nearly every page of it, and where a model's other layers
// have run since the layer's last step (their caches and weights: what the
// benchmarks' flush emulates, vk.L2Flush.AddPages) the GPU's TLBs hold none
// of them. The H200 then walks the page tables about once a MiB of cache at
// about 35 ns a walk, one after another: at B8/128K (4 GiB of K/V) 143 us
// that the attention waits for. Loads of 16 bytes a MiB of every K and V
// buffer (touch.comp), dispatched beside the score kernel with no barrier
// between them, do those walks while the score streams its codes instead:
// HATA's step at B8/128K 190 us instead of 237, at B1/128K 49.3 instead of
// 51.5 (BENCHMARKS.md, session 26, run 304). A load every 2 MiB warmed half
// the translations (so the H200's TLBs cover about 1 MiB an entry), one
// every 512 KiB all of them at a higher cost, more than it saved at batch 1
// (runs 302 and 304). Since session 27 a cache's buffers are dedicated
// allocations, whose walks are about ten times cheaper (prefetchOn), and
// the prefetch runs only over a cache in plain ones.

// prefetchStride is SparseOptions.PrefetchStride's default: the bytes
// between two loads of the translation prefetch.
const prefetchStride = 1 << 20

// newKVPrefetch returns the translation prefetch of kv's buffers (touches
// a load every SparseOptions.PrefetchStride), or nil where off.
func (c *sparseCore) newKVPrefetch(kv *kvStore) (*touches, error) {
	bufs := kv.allBuffers()
	if !prefetchOn(c.opt.Prefetch, bufs) {
		return nil, nil
	}
	return c.ctx.newTouches("vk "+c.name+" prefetch results", bufs, cmp.Or(c.opt.PrefetchStride, prefetchStride))
}

// prefetchOn is SparseOptions.Prefetch's rule over a cache held in bufs:
// PrefetchAuto prefetches unless every buffer is a dedicated allocation or
// lies in host memory (SparseOptions.HostCache: a load of the prefetch's
// there is a round trip over the bus, unmeasured against the walks it
// would hide).
// Over dedicated buffers, whose translations the H200 walks about ten
// times faster (session 27, run 308: 17 us for a load every MiB of 4 GiB
// after the TLB flush, against 106 in plain allocations), the prefetch
// beside the score kernel made HATA's steps 0.2-2.4 us longer (B8/128K
// 97.1-97.4 us against 94.7-95.0, B1/256K 48.5-48.6 against 46.0-46.2) and
// Quest's 0.3-0.7 us shorter (two alternations each).
func prefetchOn(m PrefetchMode, bufs []*Buffer) bool {
	switch m {
	case PrefetchOn:
		return true
	case PrefetchOff:
		return false
	}
	for _, b := range bufs {
		if !b.dedicated && b.kind != Host {
			return true
		}
	}
	return false
}

// recordPrefetch records the cache's translation prefetch with no barrier
// after it, so that it runs beside the kernel recorded with it: HATA's,
// Quest's, the exact top-k's and Loki's score kernels. Its time is that
// stage's.
func (c *sparseCore) recordPrefetch(b *Batch) {
	if c.pf != nil {
		c.pf.record(b)
	}
}

// maxPrefetchStride bounds SparseOptions.PrefetchStride, so that
// touch.comp's step in uvec4 elements fits its uint.
const maxPrefetchStride = 1 << 30

// checkPrefetchStride returns an error unless stride is 0 (the default) or
// a power of two from 64 bytes to 1 GiB.
func checkPrefetchStride(stride uint64) error {
	if stride != 0 && (stride < 64 || stride > maxPrefetchStride || stride&(stride-1) != 0) {
		return fmt.Errorf("prefetch stride %d: want a power of two from 64 bytes to 1 GiB, or 0 for the default (%d)", stride, prefetchStride)
	}
	return nil
}
