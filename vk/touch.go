package vk

// touches is a set of touch.comp dispatches, one per source buffer, each
// loading 16 bytes every stride bytes of its buffer and writing its
// subgroups' XORs (which keep the loads alive) to its own range of dst:
// loads that touch every page of the buffers while moving almost nothing,
// so that the GPU walks their page tables (L2Flush.AddPages, which evicts
// the TLBs, and the top-k methods' translation prefetch, which fills them).
type touches struct {
	k    *Kernel
	dst  *Buffer
	runs []touchRun
}

// touchRun is one dispatch of touches.
type touchRun struct {
	set    *Set
	dst    Range // its subgroups' results
	push   touchPush
	groups uint32
}

// touchPush mirrors touch.comp's push constants.
type touchPush struct {
	N, Step uint32 // loads, uvec4 elements between two
}

// newTouches returns the touches of srcs, a load every stride bytes (a
// multiple of 16; the last at most stride from a buffer's end), their
// results in a buffer called name. On error nothing stays allocated.
func (c *Context) newTouches(name string, srcs []*Buffer, stride uint64) (*touches, error) {
	k, err := c.SharedKernel(KernelSpec{Shader: "touch", Bindings: 2, Push: touchPush{}, Spec: []uint32{copyWorkgroup}})
	if err != nil {
		return nil, err
	}
	t := &touches{k: k}
	var total uint64
	for _, src := range srcs {
		n := (src.Size() + stride - 1) / stride
		groups := c.copyGroups(n)
		size := c.bindAlign(uint64(groups) * copyWorkgroup * 16) // a uvec4 a subgroup of one lane at most
		t.runs = append(t.runs, touchRun{dst: Range{Off: total, Size: size}, push: touchPush{N: uint32(n), Step: uint32(stride / 16)}, groups: groups})
		total += size
	}
	if t.dst, err = c.NewBuffer(name, max(total, 16), DeviceLocal); err != nil {
		return nil, err
	}
	for i, src := range srcs {
		r := &t.runs[i]
		r.dst.Buf = t.dst
		if r.set, err = k.NewSet(src.Whole(), r.dst); err != nil {
			t.free()
			return nil, err
		}
	}
	return t, nil
}

// record records the touches with no barrier between or after them.
func (t *touches) record(b *Batch) {
	for _, r := range t.runs {
		b.Dispatch(t.k, r.set, r.push, r.groups, 1, 1)
	}
}

// free frees the sets and the results buffer (nil-safe).
func (t *touches) free() {
	if t == nil {
		return
	}
	for _, r := range t.runs {
		r.set.Free()
	}
	t.dst.Free()
}
