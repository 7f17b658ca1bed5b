package vk

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// copyPush mirrors copy.comp's push constants.
type copyPush struct {
	N uint32 // uvec4 elements
}

// CopyBandwidth measures the device's memory bandwidth with a copy kernel
// (16-byte loads and stores, grid-stride loop) over two device-local buffers
// of size bytes each: it returns bytes read plus bytes written per second,
// the median of reps runs timed with GPU timestamps. Every benchmark row
// carries it as its roofline; choose size well above the last-level cache
// (the H200's L2 is 60 MB) and within maxStorageBufferRange.
func (c *Context) CopyBandwidth(size uint64, reps int) (float64, error) {
	size &^= 15
	if size == 0 || size > uint64(c.Info.Limits.MaxStorageBufferRange) || reps < 1 {
		return 0, fmt.Errorf("vk: copy bandwidth: size %d bytes, reps %d: want 16 <= size <= maxStorageBufferRange (%d) and reps >= 1",
			size, reps, c.Info.Limits.MaxStorageBufferRange)
	}
	med, err := c.timeCopies("copy bandwidth", size, c.copyGroups(size/16), 1, reps, false)
	if err != nil {
		return 0, err
	}
	return 2 * float64(size) / (med * 1e-9), nil
}

// WarmClocks keeps the device busy for about d with back-to-back chains of
// copy dispatches (64 MiB each way, 64 dispatches a submit; 4 MiB and 4 on
// CPU devices) and returns the copy bandwidth of the last submit (reads plus
// writes per second). GPUs lower their clocks after a second or two without
// work (pipeline creation, host-side preparation) and raise them again only
// slowly under a decode step's intermittent load: on a fresh H200 the clock
// fell from 1980 to 345 MHz and the rows timed then read 1.6 TB/s of copy
// bandwidth instead of 4.0 (BENCHMARKS.md, run 191). A timer calls it just
// before its timed steps.
func (c *Context) WarmClocks(d time.Duration) (float64, error) {
	size, n := min(uint64(64<<20), uint64(c.Info.Limits.MaxStorageBufferRange))&^15, 64
	if c.Info.Type == DeviceCPU {
		size, n = 4<<20, 4 // a CPU has no clocks to raise: keep it short
	}
	if d <= 0 || size == 0 {
		return 0, fmt.Errorf("vk: warm clocks: duration %v, buffers of %d bytes: want both > 0", d, size)
	}
	var bw float64
	err := c.withCopyChain("clock warm-up", size, func(ch *copyChain, b *Batch) error {
		for start := time.Now(); bw == 0 || time.Since(start) < d; {
			if err := b.Begin(); err != nil {
				return err
			}
			b.Stage("chain")
			ch.record(b, n, c.copyGroups(size/16), false)
			t, err := b.Submit()
			if err != nil {
				return err
			}
			ns := t.Get("chain")
			if ns <= 0 {
				return fmt.Errorf("vk: warm clocks: the device reported no time (timestamps unsupported?)")
			}
			bw = 2 * float64(size) * float64(n) / (ns * 1e-9)
		}
		return nil
	})
	return bw, err
}

// chainPush mirrors chain.comp's push constants (TestSyncScopes' probe).
type chainPush struct {
	N, Step, Groups uint32
}

// readPush mirrors read.comp's push constants.
type readPush struct {
	N uint32 // uvec4 elements
}

// readUnroll is read.comp's loads in flight per invocation per step.
const readUnroll = 4

// ReadBandwidth measures the device's read-only bandwidth: the read kernel
// streams a device-local buffer of size bytes (16-byte loads, readUnroll in
// flight per invocation, grid-stride loop over 16 workgroups per compute
// unit) and writes 16 bytes per workgroup. It returns the bytes read and
// written per second, the median of reps runs timed with GPU timestamps: the
// roofline of a kernel that only streams its cache (dense attention), which
// a copy's reads plus writes (CopyBandwidth) do not reach on every device.
func (c *Context) ReadBandwidth(size uint64, reps int) (float64, error) {
	bw, _, err := c.readBandwidth(size, readUnroll, reps, DeviceLocal, nil)
	return bw, err
}

// HostReadBandwidth is ReadBandwidth over a Host buffer: what a kernel
// streams from host memory over the bus, the roofline of dense attention
// over a cache offloaded there (DenseOptions.HostCache).
func (c *Context) HostReadBandwidth(size uint64, reps int) (float64, error) {
	bw, _, err := c.readBandwidth(size, readUnroll, reps, Host, nil)
	return bw, err
}

// readBandwidth is ReadBandwidth with unroll loads in flight per invocation
// from a source buffer of memory kind; with fill it also fills the source
// (before the warm-up run, not timed) and returns the workgroups' XORs of the
// last run, for the test to check that every element was read once.
func (c *Context) readBandwidth(size uint64, unroll uint32, reps int, kind MemoryKind, fill func(src *Buffer) error) (float64, []byte, error) {
	size &^= 15
	if size == 0 || size > uint64(c.Info.Limits.MaxStorageBufferRange) || size/16 > math.MaxUint32 || reps < 1 {
		return 0, nil, fmt.Errorf("vk: read bandwidth: size %d bytes, reps %d: want 16 <= size <= maxStorageBufferRange (%d) and reps >= 1",
			size, reps, c.Info.Limits.MaxStorageBufferRange)
	}
	k, err := c.SharedKernel(KernelSpec{Shader: "read", Bindings: 2, Push: readPush{}, Spec: []uint32{copyWorkgroup, unroll}})
	if err != nil {
		return 0, nil, err
	}
	groups := c.copyGroups(size / 16)
	out := uint64(groups) * 16 // one uvec4 per workgroup
	src, err := c.NewBuffer("read bandwidth source", size, kind)
	if err != nil {
		return 0, nil, err
	}
	defer src.Free()
	dst, err := c.NewBuffer("read bandwidth workgroup results", out, DeviceLocal)
	if err != nil {
		return 0, nil, err
	}
	defer dst.Free()
	if fill != nil {
		if err := fill(src); err != nil {
			return 0, nil, err
		}
	}
	med, xors, err := c.timeXors("read bandwidth", k, []Range{src.Whole(), dst.Whole()}, readPush{N: uint32(size / 16)}, groups, reps, fill != nil)
	if err != nil {
		return 0, nil, err
	}
	return float64(size+out) / (med * 1e-9), xors, nil
}

// gatherReadPush mirrors gather_read.comp's push constants.
type gatherReadPush struct {
	Rows, Nbuf, Iters, Seed uint32
}

const (
	gatherMaxBufs = 8       // gather_read.comp's source bindings
	gatherBytes   = 1 << 30 // what one GatherBandwidth run reads at most, about
)

// gatherRun is one configuration of gather_read.comp.
type gatherRun struct {
	rowBytes uint64 // bytes of a row: a power of two, 16 to 16*copyWorkgroup
	size     uint64 // bytes of each source buffer, a multiple of rowBytes
	nbuf     int    // source buffers, 1 to gatherMaxBufs
	groups   uint32 // workgroups of copyWorkgroup, a multiple of nbuf
	iters    uint32 // rows each row slot reads, a multiple of readUnroll
	seed     uint32
	kind     MemoryKind // the source buffers' memory: DeviceLocal, or Host (HostGatherBandwidth)
	unroll   uint32     // rows in flight per lane, dividing readUnroll; 0: readUnroll
	alloc    sourceAlloc
}

// sourceAlloc says how a gather's source buffers are allocated.
type sourceAlloc int

const (
	allocPlain     sourceAlloc = iota // NewBuffer
	allocDedicated                    // a dedicated allocation each
	allocImport                       // host memory the process maps, imported (newHostImport)
	allocImportTHP                    // the same with transparent huge pages
)

// String names a for logs.
func (a sourceAlloc) String() string {
	return [...]string{"allocated", "dedicated", "imported", "imported in huge pages"}[a]
}

// vecs returns the uvec4 of a row, which are the lanes of a row slot.
func (r gatherRun) vecs() uint32 { return uint32(r.rowBytes / 16) }

// bytes returns the bytes one run gathers.
func (r gatherRun) bytes() uint64 {
	return uint64(r.groups) * uint64(copyWorkgroup/r.vecs()) * uint64(r.iters) * r.rowBytes
}

// GatherBandwidth measures the bandwidth of random row reads, the access of
// the top-k methods' attention (a selected token's K row and V row, 256
// bytes each at d = 128 in float16): rows of rowBytes (a power of two, 16 to
// 4096) read at pseudo-random positions of span bytes of device-local memory
// (in as few buffers as maxStorageBufferRange and maxMemoryAllocationSize
// allow, up to 8; every workgroup reads one of them), readUnroll rows in
// flight per lane, 16 workgroups of 256 lanes per compute unit, about as
// many bytes read per run as the span, and at most 1 GiB. It
// returns the bytes read per second, the median of reps runs timed with GPU
// timestamps, and the buffers the span took. With a span well above the
// last-level cache, it is the roofline of a gather from a cache that large.
func (c *Context) GatherBandwidth(rowBytes, span uint64, reps int) (float64, int, error) {
	return c.gatherBandwidth(rowBytes, span, reps, DeviceLocal)
}

// HostGatherBandwidth is GatherBandwidth over Host buffers: random rows read
// from host memory over the bus, the roofline of a top-k method's attention
// over a cache offloaded there (SparseOptions.HostCache).
func (c *Context) HostGatherBandwidth(rowBytes, span uint64, reps int) (float64, int, error) {
	return c.gatherBandwidth(rowBytes, span, reps, Host)
}

// gatherBandwidth is GatherBandwidth from buffers of memory kind.
func (c *Context) gatherBandwidth(rowBytes, span uint64, reps int, kind MemoryKind) (float64, int, error) {
	r, err := c.gatherPlan(rowBytes, span)
	r.kind = kind
	if err == nil && reps < 1 {
		err = fmt.Errorf("reps %d: want at least 1", reps)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("vk: gather bandwidth of %d-byte rows over %d bytes: %w", rowBytes, span, err)
	}
	ns, _, err := c.gatherRead(r, reps, nil)
	if err != nil {
		return 0, 0, err
	}
	return float64(r.bytes()) / (ns * 1e-9), r.nbuf, nil
}

// gatherPlan returns GatherBandwidth's run for rows of rowBytes over span
// bytes.
func (c *Context) gatherPlan(rowBytes, span uint64) (gatherRun, error) {
	if rowBytes < 16 || rowBytes > 16*copyWorkgroup || rowBytes&(rowBytes-1) != 0 {
		return gatherRun{}, fmt.Errorf("row bytes: want a power of two from 16 to %d", 16*copyWorkgroup)
	}
	limit := c.bufferLimit() &^ (rowBytes - 1)
	if span < rowBytes || limit == 0 || span > gatherMaxBufs*limit {
		return gatherRun{}, fmt.Errorf("span: want from one row to %d buffers of %d bytes (maxStorageBufferRange, maxMemoryAllocationSize)",
			gatherMaxBufs, c.bufferLimit())
	}
	nbuf := int((span + limit - 1) / limit)
	r := gatherRun{rowBytes: rowBytes, size: span / uint64(nbuf) &^ (rowBytes - 1), nbuf: nbuf, seed: 0x9e3779b9}
	r.groups = max(c.copyGroups(0)/uint32(nbuf), 1) * uint32(nbuf)
	perStep := uint64(r.groups) * uint64(copyWorkgroup/r.vecs()) * rowBytes * readUnroll
	r.iters = uint32(max((min(gatherBytes, span)+perStep/2)/perStep, 1)) * readUnroll
	return r, nil
}

// bufferLimit returns the most bytes one buffer may hold where it is bound
// whole and has an allocation of its own: the smaller of
// maxStorageBufferRange and maxMemoryAllocationSize (GatherBandwidth's
// buffers, the TLB flush's pages, PageWalkCost's memory).
func (c *Context) bufferLimit() uint64 {
	l := c.Info.Limits
	return min(l.MaxStorageBufferRange, cmp.Or(l.MaxMemoryAllocationSize, l.MaxStorageBufferRange))
}

// gatherRead runs r reps+1 times (the first warms up) and returns the
// median time of the last reps in nanoseconds and the workgroups' XORs of the
// last run; fill, if not nil, fills source buffer i before the first.
func (c *Context) gatherRead(r gatherRun, reps int, fill func(i int, src *Buffer) error) (float64, []byte, error) {
	k, err := c.SharedKernel(KernelSpec{Shader: "gather_read", Bindings: gatherMaxBufs + 1, Push: gatherReadPush{},
		Spec: []uint32{copyWorkgroup, cmp.Or(r.unroll, readUnroll), r.vecs()}})
	if err != nil {
		return 0, nil, err
	}
	out := uint64(r.groups) * 16 // one uvec4 per workgroup
	ranges := make([]Range, gatherMaxBufs+1)
	for i := range r.nbuf {
		name := fmt.Sprintf("gather bandwidth source %d", i)
		var src *Buffer
		var err error
		switch r.alloc {
		case allocPlain:
			src, err = c.NewBuffer(name, r.size, r.kind)
		case allocDedicated:
			src, err = c.newBuffer(name, r.size, r.kind, true)
		default:
			src, err = c.newHostImport(name, r.size, r.alloc == allocImportTHP)
		}
		if err != nil {
			return 0, nil, err
		}
		defer src.Free()
		if fill != nil {
			if err := fill(i, src); err != nil {
				return 0, nil, err
			}
		}
		ranges[i] = src.Whole()
	}
	for i := r.nbuf; i < gatherMaxBufs; i++ {
		ranges[i] = ranges[0]
	}
	dst, err := c.NewBuffer("gather bandwidth workgroup results", out, DeviceLocal)
	if err != nil {
		return 0, nil, err
	}
	defer dst.Free()
	ranges[gatherMaxBufs] = dst.Whole()
	push := gatherReadPush{Rows: uint32(r.size / r.rowBytes), Nbuf: uint32(r.nbuf), Iters: r.iters, Seed: r.seed}
	return c.timeXors("gather bandwidth", k, ranges, push, r.groups, reps, true)
}

// timeXors times the roofline kernels that XOR what they read (read.comp,
// gather_read.comp): k over the ranges of its bindings, the last its
// workgroups' results (zeroed before every run), in one dispatch of groups
// workgroups, reps+1 runs of which the first warms up. It returns the
// median GPU time of the last reps in nanoseconds and, with readback, the
// results buffer after the last; what names the measurement in errors.
func (c *Context) timeXors(what string, k *Kernel, ranges []Range, push any, groups uint32, reps int, readback bool) (float64, []byte, error) {
	set, err := k.NewSet(ranges...)
	if err != nil {
		return 0, nil, err
	}
	defer set.Free()
	b, err := c.NewBatch()
	if err != nil {
		return 0, nil, err
	}
	defer b.Free()
	dst := ranges[len(ranges)-1]
	med, err := medianRun(b, reps, "kernel", func(b *Batch) {
		b.Fill(dst, 0)
		b.Barrier()
		b.Stage("kernel")
		b.Dispatch(k, set, push, groups, 1, 1)
		b.Stage("end")
	})
	if err != nil {
		return 0, nil, err
	}
	if med <= 0 {
		return 0, nil, fmt.Errorf("vk: %s: the device reported no time (timestamps unsupported?)", what)
	}
	if !readback {
		return med, nil, nil
	}
	xors := make([]byte, dst.Size)
	if err := c.Read(dst.Buf, dst.Off, xors); err != nil {
		return 0, nil, err
	}
	return med, xors, nil
}

// DispatchFloor measures what one dependent dispatch costs on the device
// when it moves almost nothing: a chain of n dispatches of the copy kernel,
// each over groups workgroups of 256 invocations copying 16 bytes apiece,
// with a compute-to-compute memory barrier between consecutive dispatches
// (as between the stages of a decode step), timed as a whole with GPU
// timestamps. It returns the median over reps chains of the chain's time
// divided by n, in nanoseconds: the fixed cost below which no stage of a
// dependent chain can go, however few bytes it moves.
func (c *Context) DispatchFloor(n int, groups uint32, reps int) (float64, error) {
	return c.dispatchFloor(n, groups, reps, false)
}

// dispatchFloor is DispatchFloor; stamped also writes a timestamp before
// every dispatch, as Batch.Stage does between the stages of a decode step,
// so that the two show what the timestamps themselves add (n < maxStages).
func (c *Context) dispatchFloor(n int, groups uint32, reps int, stamped bool) (float64, error) {
	if n < 1 || groups < 1 || reps < 1 || groups > c.Info.Limits.MaxComputeWorkGroupCount[0] {
		return 0, fmt.Errorf("vk: dispatch floor: %d dispatches of %d workgroups, reps %d: want all >= 1 and workgroups <= %d",
			n, groups, reps, c.Info.Limits.MaxComputeWorkGroupCount[0])
	}
	med, err := c.timeCopies("dispatch floor", uint64(groups)*copyWorkgroup*16, groups, n, reps, stamped)
	if err != nil {
		return 0, err
	}
	return med / float64(n), nil
}

// copyWorkgroup is copy.comp's (and chase.comp's) workgroup size here.
const copyWorkgroup = 256

// copyGroups returns the workgroups of a grid-stride kernel over elems
// elements, one per invocation per step: 16 per compute unit, fewer when
// elems (> 0) needs fewer, within maxComputeWorkGroupCount[0]; elems = 0:
// no bound from the elements.
func (c *Context) copyGroups(elems uint64) uint32 {
	need := uint64(math.MaxUint32)
	if elems > 0 {
		need = (elems + copyWorkgroup - 1) / copyWorkgroup
	}
	return uint32(min(uint64(max(c.Info.ComputeUnits, 1))*16, need, uint64(c.Info.Limits.MaxComputeWorkGroupCount[0])))
}

// medianRun records a command buffer with record, reps+1 times in b (the
// first run warms up), and returns the median over the last reps of the GPU
// time of its stage named stage, in nanoseconds (0 when the device has no
// timestamps).
func medianRun(b *Batch, reps int, stage string, record func(b *Batch)) (float64, error) {
	return medianRunAfter(b, reps, stage, nil, record)
}

// medianRunAfter is medianRun with before, where not nil, run before each
// of the reps+1 command buffers (ColdDispatchFloor's L2 flush, a submission
// of its own).
func medianRunAfter(b *Batch, reps int, stage string, before func() error, record func(b *Batch)) (float64, error) {
	var times []float64
	for range reps + 1 {
		if before != nil {
			if err := before(); err != nil {
				return 0, err
			}
		}
		if err := b.Begin(); err != nil {
			return 0, err
		}
		record(b)
		t, err := b.Submit()
		if err != nil {
			return 0, err
		}
		times = append(times, t.Get(stage))
	}
	times = times[1:]
	slices.Sort(times)
	return times[len(times)/2], nil
}

// copyChain is two device-local buffers and the copy kernel's sets between
// them, for chains of dependent copy dispatches (DispatchFloor,
// QueueOverlap).
type copyChain struct {
	k         *Kernel
	src, dst  *Buffer
	fwd, back *Set
	size      uint64 // bytes of each buffer, a multiple of 16
}

// newCopyChain allocates a copyChain of two buffers of size bytes (a
// multiple of 16); what names them in errors.
func (c *Context) newCopyChain(what string, size uint64) (*copyChain, error) {
	k, err := c.SharedKernel(KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{copyWorkgroup}})
	if err != nil {
		return nil, err
	}
	p := &copyChain{k: k, size: size}
	if p.src, err = c.NewBuffer(what+" source", size, DeviceLocal); err != nil {
		return nil, err
	}
	if p.dst, err = c.NewBuffer(what+" destination", size, DeviceLocal); err != nil {
		p.free()
		return nil, err
	}
	if p.fwd, err = k.NewSet(p.src.Whole(), p.dst.Whole()); err != nil {
		p.free()
		return nil, err
	}
	if p.back, err = k.NewSet(p.dst.Whole(), p.src.Whole()); err != nil {
		p.free()
		return nil, err
	}
	return p, nil
}

// free frees the sets and buffers made so far.
func (p *copyChain) free() {
	p.back.Free()
	p.fwd.Free()
	p.dst.Free()
	p.src.Free()
}

// record records n copy dispatches of groups workgroups, alternating the
// direction so that every dispatch reads what the one before it wrote, with
// a barrier between them (and, stamped, a timestamp "chain" after each
// barrier).
func (p *copyChain) record(b *Batch, n int, groups uint32, stamped bool) {
	for i := range n {
		if i > 0 {
			b.Barrier()
			if stamped {
				b.Stage("chain")
			}
		}
		set := p.fwd
		if i%2 == 1 {
			set = p.back
		}
		b.Dispatch(p.k, set, copyPush{N: uint32(p.size / 16)}, groups, 1, 1)
	}
}

// withCopyChain runs f with a copyChain of two buffers of size bytes (what
// names them in errors) and a batch, and frees both afterwards.
func (c *Context) withCopyChain(what string, size uint64, f func(ch *copyChain, b *Batch) error) error {
	ch, err := c.newCopyChain(what, size)
	if err != nil {
		return err
	}
	defer ch.free()
	b, err := c.NewBatch()
	if err != nil {
		return err
	}
	defer b.Free()
	return f(ch, b)
}

// timeCopies runs, reps times after one warm-up, a chain of n copy
// dispatches of groups workgroups between two device-local buffers of size
// bytes (a multiple of 16), alternating the direction so that every dispatch
// reads what the one before it wrote, with a barrier between them (and,
// stamped, a timestamp); it returns the median GPU time of the chain in
// nanoseconds.
func (c *Context) timeCopies(what string, size uint64, groups uint32, n, reps int, stamped bool) (float64, error) {
	var med float64
	err := c.withCopyChain(what, size, func(ch *copyChain, b *Batch) (err error) {
		med, err = medianRun(b, reps, "chain", func(b *Batch) {
			b.Fill(ch.src.Whole(), 0x3f800000)
			b.Barrier()
			b.Stage("chain")
			ch.record(b, n, groups, stamped)
			b.Stage("end")
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	if med <= 0 {
		return 0, fmt.Errorf("vk: %s: the device reported no time (timestamps unsupported?)", what)
	}
	return med, nil
}

// chasePush mirrors chase.comp's push constants.
type chasePush struct {
	N, Hops, Stride, Init uint32
	Busy, BusyMax         uint32 // LoadedLatency: uvec4 the other workgroups copy, slices each at most
}

// chaseStride is the distance between consecutive links of LoadLatency's
// chain, in 4-byte words: 4 KiB plus one 128-byte line, so that every hop
// lands on a new cache line and a new 4 KiB page.
const chaseStride = 1024 + 32

// LoadLatency measures the latency of one dependent load on the device: one
// invocation follows a chain of links chaseStride words apart through a
// device-local buffer of size bytes, each load waiting for the one before it.
// With flush = 0 the chain's lines stay in the last-level cache from one run
// to the next (its hit latency); with flush > 0 a scratch buffer of flush
// bytes, larger than that cache, is filled before every run (not timed), so
// that every hop is a miss (the memory's latency). Two chains of different
// lengths are timed with GPU timestamps, reps times each, and the difference
// of their medians divided by the difference of their hops is returned, in
// nanoseconds, so that the dispatch's own cost cancels. It is the latency
// roofline beside DispatchFloor, on an idle device: no kernel whose step
// waits on a load can take less per wait (LoadedLatency: what it takes on a
// busy one).
func (c *Context) LoadLatency(size, flush uint64, reps int) (float64, error) {
	ns, _, err := c.loadLatency(chaseRun{size: size, flush: flush}, reps)
	return ns, err
}

// LoadedLatency is LoadLatency's chain (over 1 MiB) followed while every
// other workgroup of the same dispatch (16 per compute unit) copies
// between two buffers of busy bytes each, as fast as the device lets them,
// until the chain is done: the latency of a dependent load on a device
// whose memory is saturated, as inside a decode step's bandwidth-bound
// stages. busy should be well above the last-level cache.
func (c *Context) LoadedLatency(busy uint64, reps int) (float64, error) {
	ns, _, err := c.loadLatency(chaseRun{size: 1 << 20, busy: busy}, reps)
	return ns, err
}

// chaseRun is one configuration of loadLatency: the chain's region, the
// flush before every run, the busy copy beside it (bytes per buffer).
type chaseRun struct {
	size, flush, busy uint64
	busyMax           uint32 // slices each busy workgroup copies at most; 0: 4096
}

// chaseHops are the lengths of LoadLatency's two chains.
const chaseShort, chaseLong = 16, 16 + 512

// loadLatency is LoadLatency and LoadedLatency; it also returns where the
// last (long) chain ended, next[n], for the test to check that the chain was
// followed.
func (c *Context) loadLatency(r chaseRun, reps int) (float64, uint32, error) {
	n := r.size / 4
	lim := uint64(c.Info.Limits.MaxStorageBufferRange)
	if n <= chaseStride || n > 1<<30 || r.size+8 > lim || r.flush > lim || r.busy > lim || reps < 1 {
		return 0, 0, fmt.Errorf("vk: load latency: size %d bytes, flush %d, busy %d, reps %d: want %d < size <= min(4 GiB, maxStorageBufferRange %d), flush and busy <= maxStorageBufferRange, reps >= 1",
			r.size, r.flush, r.busy, reps, 4*chaseStride, lim)
	}
	var bufs []*Buffer
	defer func() {
		for _, b := range bufs {
			b.Free()
		}
	}()
	alloc := func(name string, size uint64) (*Buffer, error) {
		b, err := c.NewBuffer(name, size, DeviceLocal)
		if err == nil {
			bufs = append(bufs, b)
		}
		return b, err
	}
	var scratch *Buffer
	if r.flush > 0 {
		var err error
		if scratch, err = alloc("load latency flush", r.flush&^3); err != nil {
			return 0, 0, err
		}
	}
	buf, err := alloc("load latency chain", 4*(n+2))
	if err != nil {
		return 0, 0, err
	}
	src, dst := buf, buf // bound but unread without busy
	busy := r.busy / 16
	if busy > 0 {
		if src, err = alloc("load latency busy source", 16*busy); err != nil {
			return 0, 0, err
		}
		if dst, err = alloc("load latency busy destination", 16*busy); err != nil {
			return 0, 0, err
		}
	}
	k, err := c.SharedKernel(KernelSpec{Shader: "chase", Bindings: 3, Push: chasePush{}, Spec: []uint32{copyWorkgroup}})
	if err != nil {
		return 0, 0, err
	}
	set, err := k.NewSet(buf.Whole(), src.Whole(), dst.Whole())
	if err != nil {
		return 0, 0, err
	}
	defer set.Free()
	b, err := c.NewBatch()
	if err != nil {
		return 0, 0, err
	}
	defer b.Free()
	if err := b.Begin(); err != nil {
		return 0, 0, err
	}
	b.Dispatch(k, set, chasePush{N: uint32(n), Stride: chaseStride, Init: 1}, c.copyGroups(n), 1, 1)
	if _, err := b.Submit(); err != nil {
		return 0, 0, err
	}
	run := chasePush{N: uint32(n), Stride: chaseStride, Busy: uint32(busy), BusyMax: cmp.Or(r.busyMax, 4096)}
	groups := uint32(1)
	if busy > 0 {
		groups = c.copyGroups(0) // 16 per compute unit: workgroup 0 chases, the others copy
	}
	med := func(hops uint32) (float64, error) {
		run.Hops = hops
		flushes := uint32(0)
		return medianRun(b, reps, "chase", func(b *Batch) {
			if scratch != nil {
				b.Fill(scratch.Whole(), flushes)
				flushes++
			}
			b.Fill(buf.Range(4*n+4, 4), 0) // the chain's done flag
			b.Barrier()
			b.Stage("chase")
			b.Dispatch(k, set, run, groups, 1, 1)
			b.Stage("end")
		})
	}
	t0, err := med(chaseShort)
	if err != nil {
		return 0, 0, err
	}
	t1, err := med(chaseLong)
	if err != nil {
		return 0, 0, err
	}
	if t1 <= 0 || t0 <= 0 {
		return 0, 0, fmt.Errorf("vk: load latency: the device reported no time (timestamps unsupported?)")
	}
	var end [4]byte
	if err := c.Read(buf, 4*n, end[:]); err != nil {
		return 0, 0, err
	}
	return max(t1-t0, 0) / (chaseLong - chaseShort), binary.LittleEndian.Uint32(end[:]), nil
}
