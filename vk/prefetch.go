package vk

import (
	"cmp"
	"fmt"
	"slices"
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
// the translations and one every 512 KiB cost more than it saved (run 302,
// run 304), so the H200's TLBs cover about 1 MiB an entry.

// prefetchStride is SparseOptions.PrefetchStride's default: the bytes
// between two loads of the translation prefetch.
const prefetchStride = 1 << 20

// kvPrefetch is a cache's translation prefetch: one touch.comp dispatch
// over each K and V buffer, each writing its subgroups' XORs (which keep
// the loads alive) to its own range of dst.
type kvPrefetch struct {
	k    *Kernel
	dst  *Buffer
	runs []prefetchRun
}

// prefetchRun is one dispatch of a kvPrefetch.
type prefetchRun struct {
	src, dst Range
	push     touchPush
	groups   uint32
}

// newKVPrefetch returns the prefetch of kv's buffers, a load every stride
// bytes (a multiple of 16), or nil where off.
func (c *sparseCore) newKVPrefetch(kv *kvStore) (*kvPrefetch, error) {
	if c.opt.NoPrefetch {
		return nil, nil
	}
	k, err := c.ctx.SharedKernel(KernelSpec{Shader: "touch", Bindings: 2, Push: touchPush{}, Spec: []uint32{copyWorkgroup}})
	if err != nil {
		return nil, err
	}
	stride := cmp.Or(c.opt.PrefetchStride, prefetchStride)
	align := max(c.ctx.Info.Limits.MinStorageBufferOffsetAlignment, 16)
	p := &kvPrefetch{k: k}
	var total uint64
	for _, src := range slices.Concat(kv.k, kv.v) {
		n := (src.Size() + stride - 1) / stride
		groups := c.ctx.copyGroups(n)
		size := (uint64(groups)*copyWorkgroup*16 + align - 1) / align * align // a uvec4 a subgroup of one lane at most
		p.runs = append(p.runs, prefetchRun{src: src.Whole(), dst: Range{Off: total, Size: size},
			push: touchPush{N: uint32(n), Step: uint32(stride / 16)}, groups: groups})
		total += size
	}
	if p.dst, err = c.ctx.NewBuffer("vk "+c.name+" prefetch results", total, DeviceLocal); err != nil {
		return nil, err
	}
	for i := range p.runs {
		p.runs[i].dst.Buf = p.dst
	}
	return p, nil
}

// free frees the prefetch's results buffer (nil-safe).
func (p *kvPrefetch) free() {
	if p != nil {
		p.dst.Free()
	}
}

// recordPrefetch records the cache's translation prefetch with no barrier
// after it, so that it runs beside the kernel recorded with it: HATA's,
// Quest's, the exact top-k's and Loki's score kernels. Its time is that
// stage's.
func (c *sparseCore) recordPrefetch(b *Batch) error {
	if c.pf == nil {
		return nil
	}
	for _, r := range c.pf.runs {
		set, err := c.set(c.pf.k, r.src, r.dst)
		if err != nil {
			return err
		}
		b.Dispatch(c.pf.k, set, r.push, r.groups, 1, 1)
	}
	return nil
}

// checkPrefetchStride returns an error unless stride is 0 (the default) or
// a power of two from 64 bytes up.
func checkPrefetchStride(stride uint64) error {
	if stride != 0 && (stride < 64 || stride&(stride-1) != 0) {
		return fmt.Errorf("prefetch stride %d: want a power of two from 64 bytes, or 0 for the default (%d)", stride, prefetchStride)
	}
	return nil
}
