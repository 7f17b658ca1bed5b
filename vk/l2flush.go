package vk

import "fmt"

// L2Flush evicts the device's last-level cache between two submissions: Run
// submits one dispatch of the read kernel (read.comp, ReadBandwidth's) over
// a device-local buffer of its size and waits for it. The benchmarks run it
// before every timed decode step, so that no step finds in the cache what
// the steps before it left there (their key codes, selected K/V rows, hash
// weights, histograms): in a model, the other layers run between two decode
// steps of one layer, and their weights pass through the cache. Reads only,
// so that no dirty line is written back during the next step.
type L2Flush struct {
	k        *Kernel
	set      *Set
	src, dst *Buffer
	b        *Batch
	push     readPush
	groups   uint32
	pages    []*Buffer // AddPages' buffers
	touch    *touches  // of pages
}

// touchStride is the bytes between two of AddPages' loads: the smallest
// page a GPU's driver maps device-local memory with (64 KiB on NVIDIA's,
// beside its 2 MiB pages), so that every page is touched however mapped.
const touchStride = 64 << 10

// NewL2Flush returns an L2Flush that reads asked bytes (rounded down to 16;
// at most maxStorageBufferRange). Make size a few times the last-level
// cache: Vulkan does not report its size (the H200's is 60 MB, an MI300X's
// Infinity Cache 256 MB).
func (c *Context) NewL2Flush(asked uint64) (*L2Flush, error) {
	size := asked &^ 15
	if size == 0 || size > uint64(c.Info.Limits.MaxStorageBufferRange) || size/16 > 1<<32-1 {
		return nil, fmt.Errorf("vk: L2 flush of %d bytes: want 16 <= size <= maxStorageBufferRange (%d)", asked, c.Info.Limits.MaxStorageBufferRange)
	}
	k, err := c.SharedKernel(KernelSpec{Shader: "read", Bindings: 2, Push: readPush{}, Spec: []uint32{copyWorkgroup, readUnroll}})
	if err != nil {
		return nil, err
	}
	f := &L2Flush{k: k, push: readPush{N: uint32(size / 16)}, groups: c.copyGroups(size / 16)}
	// read.comp writes one uvec4 per subgroup: room for subgroups of one lane.
	if f.src, err = c.NewBuffer("L2 flush source", size, DeviceLocal); err == nil {
		f.dst, err = c.NewBuffer("L2 flush subgroup results", uint64(f.groups)*copyWorkgroup*16, DeviceLocal)
	}
	if err == nil {
		f.set, err = k.NewSet(f.src.Whole(), f.dst.Whole())
	}
	if err == nil {
		f.b, err = c.NewBatch()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// AddPages adds to the flush total bytes (rounded down to 64 KiB) of
// device-local memory of its own, in buffers of at most
// maxStorageBufferRange, whose every 64 KiB Run then loads 16 bytes of
// (touch.comp): a sparse read that evicts from the GPU's translation caches
// (TLBs) what a step left there, as the other layers of a model do, whose
// KV caches and weights the step's own do not share pages with. The pages
// are plain allocations, never dedicated ones (NewBuffer's rule), so that
// the driver maps them with its small pages and they take as many TLB
// entries as they can: 48 GiB of dedicated memory left a step's dedicated
// K/V translations in place on the H200 (HATA's B8/256K step 154.8 us after
// it, 166.9 after plain pages; session 27, run 307).
func (f *L2Flush) AddPages(total uint64) error {
	c := f.k.ctx
	pages, err := c.newBuffers("L2 flush pages", total, touchStride, false)
	if err != nil {
		return err
	}
	f.pages = append(f.pages, pages...)
	t, err := c.newTouches("L2 flush pages' subgroup results", f.pages, touchStride)
	if err != nil {
		return err
	}
	f.touch.free()
	f.touch = t
	return nil
}

// Run reads the whole buffer, and touches AddPages' pages, on the device
// and returns when it is done. A nil flush (no flush: the timer's FlushNone,
// ColdDispatchFloor's chains without one) does nothing.
func (f *L2Flush) Run() error {
	if f == nil {
		return nil
	}
	if err := f.b.Begin(); err != nil {
		return err
	}
	f.b.Dispatch(f.k, f.set, f.push, f.groups, 1, 1)
	if f.touch != nil {
		f.touch.record(f.b)
	}
	_, err := f.b.Submit()
	return err
}

// Close frees the buffers (none where f is nil). The read kernel is the
// context's.
func (f *L2Flush) Close() error {
	if f == nil {
		return nil
	}
	f.touch.free()
	for _, p := range f.pages {
		p.Free()
	}
	if f.b != nil {
		f.b.Free()
	}
	if f.set != nil {
		f.set.Free()
	}
	if f.dst != nil {
		f.dst.Free()
	}
	if f.src != nil {
		f.src.Free()
	}
	*f = L2Flush{}
	return nil
}
