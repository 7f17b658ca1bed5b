package vk

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// MemoryKind says where a buffer lives and how the host may touch it.
//
// The rule of this package: tensors the kernels work on live in DeviceLocal
// buffers; the host writes into Upload buffers (host-visible, coherent; writes
// through a PCIe BAR are fine) and the GPU copies from them; results come back
// through a Readback buffer (host-visible, host-cached) filled by
// vkCmdCopyBuffer. The host never reads device-local memory, even where it is
// host-visible: on a discrete GPU that read crawls over PCIe uncached. The
// one exception to the first clause is a K/V cache offloaded to host memory
// (DenseOptions.HostCache, SparseOptions.HostCache: the paper's HATA-off),
// whose kernels read it over the bus where it lies, a Host buffer.
type MemoryKind int

// The memory kinds.
const (
	DeviceLocal MemoryKind = iota // GPU memory, not mapped
	Upload                        // mapped, host-visible + coherent: host writes, GPU reads
	Readback                      // mapped, host-visible (+cached when offered): GPU writes, host reads
	Host                          // host memory, not mapped: the kernels read and write it over the bus
)

// String returns "device-local", "upload", "readback" or "host".
func (k MemoryKind) String() string {
	return [...]string{"device-local", "upload", "readback", "host"}[k]
}

// ErrOutOfMemory is wrapped by every error of an allocation that does not fit
// (errors.Is(err, vulkan.ErrOutOfMemory)).
var ErrOutOfMemory = errors.New("vk: out of memory")

// Buffer is a Vulkan buffer with its own memory, usable as a storage buffer and
// as the source and destination of copies and fills. Upload and Readback
// buffers stay mapped for their lifetime.
type Buffer struct {
	ctx      *Context
	name     string
	kind     MemoryKind
	size     uint64
	buf      vulkan.Buffer
	mem      vulkan.DeviceMemory
	ptr      unsafe.Pointer
	coherent bool
	// dedicated: the memory is a dedicated allocation (NewBuffer).
	dedicated bool
	// memType is the index of the memory type its memory came from.
	memType int
	// hostMap is the process's own mapping that imported memory lies in
	// (newHostImport), unmapped after the memory is freed; nil otherwise.
	hostMap []byte
}

// Range is a byte range of a buffer: a binding of a kernel, or a copy's end.
type Range struct {
	Buf       *Buffer
	Off, Size uint64
}

// NewBuffer allocates a buffer of size bytes (rounded up to a multiple of 4;
// at least 4) of the given kind. name is used in error messages. An
// allocation that does not fit fails with an error naming the size, the
// memory type and its heap, wrapping ErrOutOfMemory.
//
// A device-local buffer of at least dedicatedMin bytes gets a dedicated
// allocation (VkMemoryDedicatedAllocateInfo) unless Options.NoDedicated:
// on the H200 the driver then maps it with pages whose translations cover
// far more than the 1 MiB a TLB entry of other memory does (session 27).
func (c *Context) NewBuffer(name string, size uint64, kind MemoryKind) (*Buffer, error) {
	if kind == Host && c.hostHuge {
		return c.newHostImport(name, size, true)
	}
	return c.newBuffer(name, size, kind, c.dedicated && kind == DeviceLocal && size >= dedicatedMin)
}

// Dedicated reports whether NewBuffer gives device-local buffers of 2 MiB
// or more dedicated allocations (not Options.NoDedicated).
func (c *Context) Dedicated() bool { return c.dedicated }

// HostHugePages reports whether NewBuffer gives Host buffers memory this
// process maps in transparent huge pages, imported by the device
// (Options.HostHugePages).
func (c *Context) HostHugePages() bool { return c.hostHuge }

// dedicatedMin is the smallest buffer NewBuffer allocates as dedicated:
// NVIDIA's large page (2 MiB). A smaller buffer spans at most two
// translations however mapped, and a dedicated allocation may round it up
// to a large page of memory.
const dedicatedMin = 2 << 20

// newBuffer is NewBuffer with the choice of a dedicated allocation.
func (c *Context) newBuffer(name string, size uint64, kind MemoryKind, dedicated bool) (*Buffer, error) {
	if err := c.checkOpen(); err != nil {
		return nil, fmt.Errorf("vk: buffer %q: %w", name, err)
	}
	size = max(4, (size+3)&^3)
	b := &Buffer{ctx: c, name: name, kind: kind, size: size}
	if idx, err := c.memoryType(^uint32(0), kind); err == nil && size > c.Info.Heaps[c.memTypes[idx].heap].Size {
		return nil, b.allocErr(fmt.Errorf("larger than the heap"), idx)
	}
	var vb vulkan.Buffer
	r := vulkan.CreateBuffer(c.dev, &vulkan.BufferCreateInfo{
		SType:       vulkan.StructureTypeBufferCreateInfo,
		Size:        vulkan.DeviceSize(size),
		Usage:       vulkan.BufferUsageFlags(vulkan.BufferUsageStorageBufferBit | vulkan.BufferUsageTransferSrcBit | vulkan.BufferUsageTransferDstBit),
		SharingMode: vulkan.SharingModeExclusive,
	}, nil, &vb)
	if err := vkc.Check("vkCreateBuffer", int32(r)); err != nil {
		return nil, b.allocErr(err, -1)
	}
	b.buf = vb
	var req vulkan.MemoryRequirements
	vulkan.GetBufferMemoryRequirements(c.dev, b.buf, &req)
	req.Deref()
	idx, err := c.memoryType(req.MemoryTypeBits, kind)
	if err != nil {
		vulkan.DestroyBuffer(c.dev, b.buf, nil)
		return nil, fmt.Errorf("vk: buffer %q: %w", name, err)
	}
	heap := c.memTypes[idx].heap
	switch {
	case uint64(req.Size) > c.Info.Heaps[heap].Size:
		vulkan.DestroyBuffer(c.dev, b.buf, nil)
		return nil, b.allocErr(fmt.Errorf("larger than the heap"), idx)
	case c.Info.Limits.MaxMemoryAllocationSize > 0 && uint64(req.Size) > c.Info.Limits.MaxMemoryAllocationSize:
		vulkan.DestroyBuffer(c.dev, b.buf, nil)
		return nil, b.allocErr(fmt.Errorf("larger than maxMemoryAllocationSize %s", bytesString(c.Info.Limits.MaxMemoryAllocationSize)), idx)
	}
	var to unsafe.Pointer // the buffer a dedicated allocation is for
	if dedicated {
		to = unsafe.Pointer(b.buf)
	}
	mem, err := c.fns.AllocateMemory(uint64(req.Size), uint32(idx), to)
	if err != nil {
		vulkan.DestroyBuffer(c.dev, b.buf, nil)
		return nil, b.allocErr(err, idx)
	}
	b.dedicated = dedicated
	if err := b.bindMemory(mem, idx); err != nil {
		return nil, err
	}
	return b, nil
}

// bindMemory makes mem, allocated from memory type idx, b's memory: it binds
// it to b's buffer, maps it where b's kind is Upload or Readback, and tracks
// b for Close. On error it destroys b (its buffer, mem, and any mapping of
// its own).
func (b *Buffer) bindMemory(mem unsafe.Pointer, idx int) error {
	c := b.ctx
	b.mem, b.memType = vulkan.DeviceMemory(mem), idx
	b.coherent = c.memTypes[idx].flags&vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostCoherentBit) != 0
	if err := vkc.Check("vkBindBufferMemory", int32(vulkan.BindBufferMemory(c.dev, b.buf, b.mem, 0))); err != nil {
		b.destroy()
		return fmt.Errorf("vk: buffer %q: %w", b.name, err)
	}
	if b.kind == Upload || b.kind == Readback {
		var p unsafe.Pointer
		if err := vkc.Check("vkMapMemory", int32(vulkan.MapMemory(c.dev, b.mem, 0, vulkan.DeviceSize(vulkan.WholeSize), 0, &p))); err != nil {
			b.destroy()
			return fmt.Errorf("vk: buffer %q: %w", b.name, err)
		}
		b.ptr = p
	}
	if err := c.track(b); err != nil {
		b.destroy()
		return err
	}
	return nil
}

// newBuffers allocates total bytes (rounded down to a multiple of align, a
// power of two) of device-local memory as buffers of at most bufferLimit
// bytes, each a multiple of align and named name and its index; dedicated
// allocations where dedicated is set and a buffer has dedicatedMin bytes or
// more. On error nothing stays allocated. (The TLB flush's pages and
// PageWalkCost's memory: memory touched whole, in as few buffers as the
// limits allow.)
func (c *Context) newBuffers(name string, total, align uint64, dedicated bool) ([]*Buffer, error) {
	chunk := c.bufferLimit() &^ (align - 1)
	var bufs []*Buffer
	for left := total &^ (align - 1); left > 0; {
		size := min(left, chunk)
		left -= size
		b, err := c.newBuffer(fmt.Sprintf("%s %d", name, len(bufs)), size, DeviceLocal, dedicated && size >= dedicatedMin)
		if err != nil {
			for _, b := range bufs {
				b.Free()
			}
			return nil, err
		}
		bufs = append(bufs, b)
	}
	return bufs, nil
}

// allocErr describes a failed allocation of b from memory type idx (-1: not
// chosen yet); out-of-memory failures wrap ErrOutOfMemory.
func (b *Buffer) allocErr(err error, idx int) error {
	where := ""
	if idx < 0 { // not chosen yet: name the type that would be
		idx, _ = b.ctx.memoryType(^uint32(0), b.kind)
	}
	if idx >= 0 && idx < len(b.ctx.memTypes) {
		h := b.ctx.memTypes[idx].heap
		where = fmt.Sprintf(" from memory type %d, heap %d (%s)", idx, h, bytesString(b.ctx.Info.Heaps[h].Size))
	}
	var ve *vkc.Error
	if !errors.As(err, &ve) || ve.OutOfMemory() {
		return fmt.Errorf("vk: buffer %q: allocating %s of %s memory%s: %w: %w", b.name, bytesString(b.size), b.kind, where, ErrOutOfMemory, err)
	}
	return fmt.Errorf("vk: buffer %q: allocating %s of %s memory%s: %w", b.name, bytesString(b.size), b.kind, where, err)
}

// memoryType picks the memory type for kind among the allowed bits:
// device-local for DeviceLocal; host-visible+coherent for Upload, preferring
// host memory; host-visible for Readback, preferring host-cached+coherent;
// host memory for Host, preferring it uncached (the GPU's reads then need not
// snoop the CPU's caches), and host-visible memory of any sort where the
// device has no memory that is not device-local (a CPU device, an
// integrated GPU: there the host's memory is the device's).
func (c *Context) memoryType(allowed uint32, kind MemoryKind) (int, error) {
	const (
		dl  = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyDeviceLocalBit)
		hv  = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostVisibleBit)
		hc  = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostCoherentBit)
		hca = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostCachedBit)
	)
	type pref struct{ want, avoid vulkan.MemoryPropertyFlags }
	var prefs []pref
	switch kind {
	case DeviceLocal:
		prefs = []pref{{want: dl}}
	case Upload:
		prefs = []pref{{want: hv | hc, avoid: dl}, {want: hv | hc}}
	case Readback:
		prefs = []pref{{want: hv | hca | hc}, {want: hv | hca}, {want: hv}}
	case Host:
		prefs = []pref{{want: hv | hc, avoid: dl | hca}, {want: hv, avoid: dl}, {want: hv}}
	}
	for _, p := range prefs {
		for i, mt := range c.memTypes {
			if allowed&(1<<i) != 0 && mt.flags&p.want == p.want && mt.flags&p.avoid == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("no memory type for %s buffers (allowed types %#x)", kind, allowed)
}

// Name returns the name given at NewBuffer.
func (b *Buffer) Name() string { return b.name }

// Size returns the buffer's size in bytes.
func (b *Buffer) Size() uint64 { return b.size }

// Kind returns the buffer's memory kind.
func (b *Buffer) Kind() MemoryKind { return b.kind }

// Bytes returns the mapped memory of an Upload or Readback buffer (nil for
// DeviceLocal and Host). Read a Readback buffer only after the batch that filled it
// has been submitted (Submit waits for it).
func (b *Buffer) Bytes() []byte {
	if b.ptr == nil {
		return nil
	}
	return unsafe.Slice((*byte)(b.ptr), b.size)
}

// Whole returns the range of the whole buffer.
func (b *Buffer) Whole() Range { return Range{Buf: b, Off: 0, Size: b.size} }

// Range returns the byte range [off, off+size) of the buffer.
func (b *Buffer) Range(off, size uint64) Range { return Range{Buf: b, Off: off, Size: size} }

// check reports whether r lies inside its buffer.
func (r Range) check() error {
	if r.Buf == nil {
		return fmt.Errorf("range of a nil buffer")
	}
	if r.Buf.buf == vulkan.NullBuffer {
		return fmt.Errorf("buffer %q is freed (Buffer.Free, or its context closed)", r.Buf.name)
	}
	if r.Off > r.Buf.size || r.Size > r.Buf.size-r.Off {
		return fmt.Errorf("range [%d, +%d) outside buffer %q of %d bytes", r.Off, r.Size, r.Buf.name, r.Buf.size)
	}
	return nil
}

// invalidate makes device writes to a non-coherent mapped buffer visible.
func (b *Buffer) invalidate() error {
	if b.coherent || b.ptr == nil {
		return nil
	}
	return b.ctx.fns.InvalidateMappedMemory(unsafe.Pointer(b.mem))
}

// Free releases the buffer. Submit waits for its batch, so between batches
// no batch uses it; after a Submit that timed out one may, and the context
// then holds the buffer's memory until that batch is seen finished (see
// Batch). Either way the buffer reads as freed at once.
func (b *Buffer) Free() {
	if b == nil || b.buf == vulkan.NullBuffer {
		return
	}
	b.ctx.untrack(b)
	dead := &Buffer{ctx: b.ctx, buf: b.buf, mem: b.mem, ptr: b.ptr}
	b.buf, b.mem, b.ptr = vulkan.NullBuffer, vulkan.NullDeviceMemory, nil
	b.ctx.retire(dead)
}

func (b *Buffer) release() { b.destroy() }

func (b *Buffer) destroy() {
	if b.ptr != nil {
		vulkan.UnmapMemory(b.ctx.dev, b.mem)
		b.ptr = nil
	}
	destroyHandle(b.ctx.dev, &b.buf, vulkan.DestroyBuffer)
	destroyHandle(b.ctx.dev, &b.mem, vulkan.FreeMemory)
	if b.hostMap != nil {
		syscall.Munmap(b.hostMap) // fails only for a range never mapped
		b.hostMap = nil
	}
}

// Region is a piece of host data for Context.Write.
type Region struct {
	Dst  *Buffer
	Off  uint64 // byte offset in Dst, a multiple of 4
	Data []byte // length a multiple of 4
}

// stagingMax bounds the context's staging buffers by default; larger
// transfers go through them in pieces.
const stagingMax = 64 << 20

// Write copies every region's data into its buffer (any kind) through the
// context's Upload staging buffer and vkCmdCopyBuffer, and waits.
func (c *Context) Write(regions ...Region) error {
	if err := c.checkOpen(); err != nil {
		return fmt.Errorf("vk: write: %w", err)
	}
	var total uint64
	for _, r := range regions {
		if err := r.Dst.Range(r.Off, uint64(len(r.Data))).check(); err != nil {
			return fmt.Errorf("vk: write: %w", err)
		}
		if r.Off%4 != 0 || len(r.Data)%4 != 0 {
			return fmt.Errorf("vk: write to %q at %d of %d bytes: offset and length must be multiples of 4", r.Dst.name, r.Off, len(r.Data))
		}
		total += uint64(len(r.Data))
	}
	if total == 0 {
		return nil
	}
	c.xferMu.Lock()
	defer c.xferMu.Unlock()
	if err := c.staging(&c.upload, "upload staging", Upload, total); err != nil {
		return err
	}
	// The host rewrites the staging buffer before flush's Begin: a transfer
	// whose wait timed out may still be reading it (into its own regions).
	if err := c.xfer.settle(); err != nil {
		return fmt.Errorf("vk: write: %w", err)
	}
	st := c.upload
	var used uint64
	var copies []copyOp
	flush := func() error {
		if len(copies) == 0 {
			return nil
		}
		b := c.xfer
		if err := b.Begin(); err != nil {
			return err
		}
		for _, op := range copies {
			b.Copy(op.dst, op.src)
		}
		_, err := b.Submit()
		copies, used = copies[:0], 0
		return err
	}
	for _, r := range regions {
		data, off := r.Data, r.Off
		for len(data) > 0 {
			if used == st.size {
				if err := flush(); err != nil {
					return err
				}
			}
			n := min(uint64(len(data)), st.size-used)
			copy(st.Bytes()[used:], data[:n])
			copies = append(copies, copyOp{dst: r.Dst.Range(off, n), src: st.Range(used, n)})
			used += n
			off += n
			data = data[n:]
		}
	}
	return flush()
}

// copyOp is one vkCmdCopyBuffer region.
type copyOp struct{ dst, src Range }

// Read copies len(data) bytes at offset off of src into data, through the
// context's Readback staging buffer, and waits.
func (c *Context) Read(src *Buffer, off uint64, data []byte) error {
	if err := c.checkOpen(); err != nil {
		return fmt.Errorf("vk: read: %w", err)
	}
	if err := src.Range(off, uint64(len(data))).check(); err != nil {
		return fmt.Errorf("vk: read: %w", err)
	}
	if off%4 != 0 || len(data)%4 != 0 {
		return fmt.Errorf("vk: read from %q at %d of %d bytes: offset and length must be multiples of 4", src.name, off, len(data))
	}
	if len(data) == 0 {
		return nil
	}
	c.xferMu.Lock()
	defer c.xferMu.Unlock()
	if err := c.staging(&c.download, "readback staging", Readback, uint64(len(data))); err != nil {
		return err
	}
	st := c.download
	for len(data) > 0 {
		n := min(uint64(len(data)), st.size)
		b := c.xfer
		if err := b.Begin(); err != nil {
			return err
		}
		b.Copy(st.Range(0, n), src.Range(off, n))
		if _, err := b.Submit(); err != nil {
			return err
		}
		if err := st.invalidate(); err != nil {
			return err
		}
		copy(data, st.Bytes()[:n])
		data, off = data[n:], off+n
	}
	return nil
}

// staging makes *buf a staging buffer of the kind with room for min(want,
// stagingMax) bytes, and the transfer batch ready. Called with xferMu held.
func (c *Context) staging(buf **Buffer, name string, kind MemoryKind, want uint64) error {
	if c.xfer == nil {
		b, err := c.NewBatch()
		if err != nil {
			return err
		}
		c.xfer = b
	}
	want = min(max(want, 1<<20), c.stagingMax)
	if *buf != nil && (*buf).size >= want {
		return nil
	}
	(*buf).Free()
	nb, err := c.NewBuffer(name, want, kind)
	if err != nil {
		*buf = nil
		return err
	}
	*buf = nb
	return nil
}

// bindAlign rounds x up to a multiple of the offset alignment a storage
// buffer binding needs (minStorageBufferOffsetAlignment, and at least 16
// bytes), so that regions of that size laid end to end can each be bound.
func (c *Context) bindAlign(x uint64) uint64 {
	a := max(c.Info.Limits.MinStorageBufferOffsetAlignment, 16)
	return (x + a - 1) / a * a
}
