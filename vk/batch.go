package vk

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// maxStages bounds the named stages of one batch (timestamp queries).
const maxStages = 64

// submitTimeout bounds the wait for one batch (a variable so that a test can
// make a wait time out).
var submitTimeout = 10 * time.Minute

// Batch records many commands (dispatches, copies, fills, barriers) into one
// command buffer, submits it once and waits for it, timing every named stage
// with GPU timestamps. A Batch is reusable and must be used by one goroutine
// at a time:
//
//	b.Begin()
//	b.Stage("split")
//	b.Dispatch(k, set, push, x, y, z)
//	b.Barrier()
//	b.Stage("merge")
//	...
//	t, err := b.Submit() // t.Stages: [{split ns} {merge ns}]
//
// Recording methods do not return errors: the first one is kept and returned
// by Submit, which then submits nothing.
//
// A wait that fails (Submit returning VK_TIMEOUT after submitTimeout, ten
// minutes) leaves the batch stuck: the device may still run it, reading and
// writing every buffer it was recorded with. Until it is seen finished (its
// next Begin or Free, which wait for it again, or a free on its context
// that finds its fence signalled), Buffer.Free, Set.Free and Kernel.Free on
// its context hold the freed object's Vulkan handles instead of destroying
// them (the object reads as freed at once), and destroy them once no batch
// of the context is stuck, or at Context.Close after the device is idle.
// The error paths that free what a failed step made (a cache that was to
// grow, a prefill's cache, descriptor sets, scratch buffers) therefore need
// not tell a timeout from any other error. The rule is conservative: while
// one batch is stuck, a buffer it never used is held too.
type Batch struct {
	ctx     *Context
	pool    vulkan.CommandPool
	cb      vulkan.CommandBuffer
	fence   vulkan.Fence
	queries vulkan.QueryPool
	stages  []string
	open    bool
	err     error
	bound   *Kernel
	inSpan  bool // span timing: a kernel stage is open, later ones join it
	second  bool // submitted to the context's second queue (QueueOverlap)
	levels  int  // Timings.Levels of what is recorded (and, until the next Begin, submitted)
	level   bool // a dispatch was recorded since the last barrier (it opened a level)
	// pending: submitted and not yet seen finished. A wait that timed out
	// (or failed) leaves it set, so that Begin and Free wait again before
	// they reset or destroy a command buffer the device may still run.
	pending bool
	// stuck: a wait failed and the context holds what is freed until this
	// batch, or its fence, is seen finished (Context.stuck, retire).
	stuck bool
}

// hostStages are the stages that move data between the host and the device
// or prepare a step (the methods' upload, poison and readback): with span
// timing they always get their timestamp, and every other stage joins the
// kernel stage before it unless a host stage came between.
var hostStages = map[string]bool{"upload": true, "poison": true, "readback": true}

// Stage is the GPU time of one named stage of a batch.
type Stage struct {
	Name       string
	Ns         float64 // nanoseconds, from timestamps and the device's timestampPeriod
	Start, End uint64  // the device's timestamp ticks around the stage (Halves spans two batches with them)
}

// Timings are the stages of one submitted batch, in recording order. Each
// stage runs from its Stage call to the next one (or to Submit): the
// timestamps are written at the bottom of the pipe, after every earlier
// command has finished, so the stages tile the batch without gaps.
type Timings struct {
	Stages []Stage
	// Supported is false when the queue has no timestamps; Stages is empty.
	Supported bool
	// Levels is how many dispatches of the batch ran one after another:
	// its dispatches in groups separated by barriers, each group waiting
	// for the one before (dispatches of one group may overlap). Each level
	// costs at least Context.DispatchFloor, the latency roofline of a step.
	Levels int
}

// Total returns the sum of every stage, in ns.
func (t Timings) Total() float64 {
	var s float64
	for _, st := range t.Stages {
		s += st.Ns
	}
	return s
}

// Get returns the summed time of the stages called name, in ns (0 if none).
func (t Timings) Get(name string) float64 {
	var s float64
	for _, st := range t.Stages {
		if st.Name == name {
			s += st.Ns
		}
	}
	return s
}

// String formats the stages as "upload 12.3µs, split 1.2ms, ...".
func (t Timings) String() string {
	if !t.Supported {
		return "no timestamps"
	}
	var s []string
	for _, st := range t.Stages {
		s = append(s, fmt.Sprintf("%s %v", st.Name, time.Duration(st.Ns).Round(100*time.Nanosecond)))
	}
	return strings.Join(s, ", ")
}

// NewBatch creates a batch with its own command pool, command buffer, fence
// and timestamp query pool.
func (c *Context) NewBatch() (*Batch, error) {
	if err := c.checkOpen(); err != nil {
		return nil, fmt.Errorf("vk: batch: %w", err)
	}
	b := &Batch{ctx: c}
	var pool vulkan.CommandPool
	r := vulkan.CreateCommandPool(c.dev, &vulkan.CommandPoolCreateInfo{
		SType:            vulkan.StructureTypeCommandPoolCreateInfo,
		Flags:            vulkan.CommandPoolCreateFlags(vulkan.CommandPoolCreateResetCommandBufferBit),
		QueueFamilyIndex: c.Info.computeQueue,
	}, nil, &pool)
	if err := vkc.Check("vkCreateCommandPool", int32(r)); err != nil {
		return nil, err
	}
	b.pool = pool
	cbs := make([]vulkan.CommandBuffer, 1)
	r = vulkan.AllocateCommandBuffers(c.dev, &vulkan.CommandBufferAllocateInfo{
		SType:              vulkan.StructureTypeCommandBufferAllocateInfo,
		CommandPool:        b.pool,
		Level:              vulkan.CommandBufferLevelPrimary,
		CommandBufferCount: 1,
	}, cbs)
	if err := vkc.Check("vkAllocateCommandBuffers", int32(r)); err != nil {
		b.destroy()
		return nil, err
	}
	b.cb = cbs[0]
	var fence vulkan.Fence
	r = vulkan.CreateFence(c.dev, &vulkan.FenceCreateInfo{SType: vulkan.StructureTypeFenceCreateInfo}, nil, &fence)
	if err := vkc.Check("vkCreateFence", int32(r)); err != nil {
		b.destroy()
		return nil, err
	}
	b.fence = fence
	if c.Info.TimestampValidBits > 0 {
		var qp vulkan.QueryPool
		r = vulkan.CreateQueryPool(c.dev, &vulkan.QueryPoolCreateInfo{
			SType:      vulkan.StructureTypeQueryPoolCreateInfo,
			QueryType:  vulkan.QueryTypeTimestamp,
			QueryCount: maxStages + 1,
		}, nil, &qp)
		if err := vkc.Check("vkCreateQueryPool", int32(r)); err != nil {
			b.destroy()
			return nil, err
		}
		b.queries = qp
	}
	if err := c.track(b); err != nil {
		b.destroy()
		return nil, err
	}
	return b, nil
}

// Begin starts recording, discarding anything recorded since the last Submit.
func (b *Batch) Begin() error {
	if b.pool == vulkan.NullCommandPool {
		return fmt.Errorf("vk: batch: Begin on a freed batch (Batch.Free, or its context closed)")
	}
	if err := b.settle(); err != nil {
		return err
	}
	if b.open {
		vulkan.EndCommandBuffer(b.cb)
	}
	b.open, b.err, b.stages, b.bound, b.inSpan = false, nil, b.stages[:0], nil, false
	b.levels, b.level = 0, false
	if err := vkc.Check("vkResetCommandBuffer", int32(vulkan.ResetCommandBuffer(b.cb, 0))); err != nil {
		return err
	}
	if err := b.ctx.fns.BeginCommandBuffer(unsafe.Pointer(b.cb)); err != nil {
		return err
	}
	b.open = true
	if b.queries != vulkan.NullQueryPool {
		vulkan.CmdResetQueryPool(b.cb, b.queries, 0, maxStages+1)
	}
	return nil
}

func (b *Batch) fail(format string, a ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("vk: batch: "+format, a...)
	}
}

func (b *Batch) ready() bool {
	if !b.open {
		b.fail("recording before Begin")
	}
	return b.err == nil
}

// Stage starts the named stage: it ends the previous one and writes a
// timestamp once every earlier command has finished. With span timing
// (Context.SetSpanTiming) a kernel stage that follows another kernel stage
// writes none and its time is reported under the earlier one.
func (b *Batch) Stage(name string) {
	if !b.ready() {
		return
	}
	host := hostStages[name]
	if b.inSpan && !host && b.ctx.spanTiming.Load() {
		return // the open kernel stage's timestamp spans this one too
	}
	b.inSpan = !host
	if len(b.stages) == maxStages {
		b.fail("more than %d stages", maxStages)
		return
	}
	if b.queries != vulkan.NullQueryPool {
		vulkan.CmdWriteTimestamp(b.cb, vulkan.PipelineStageBottomOfPipeBit, b.queries, uint32(len(b.stages)))
	}
	b.stages = append(b.stages, name)
}

// inHostStage reports whether the open stage is a host stage (hostStages):
// the last one Stage recorded, since a host stage is always recorded and a
// kernel stage that span timing folds into the one before it follows a
// kernel stage.
func (b *Batch) inHostStage() bool {
	return len(b.stages) > 0 && hostStages[b.stages[len(b.stages)-1]]
}

// Dispatch records k over x*y*z workgroups with set bound and push as its push
// constants (a value of the kernel's push-constant type, or nil).
func (b *Batch) Dispatch(k *Kernel, set *Set, push any, x, y, z uint32) {
	if !b.ready() {
		return
	}
	lim := b.ctx.Info.Limits.MaxComputeWorkGroupCount
	switch {
	case set == nil || set.set == vulkan.NullDescriptorSet || set.k.spec.Bindings != k.spec.Bindings:
		b.fail("dispatch %s: no descriptor set, a freed one, or one of another layout", k.spec.Shader)
		return
	case x == 0 || y == 0 || z == 0:
		b.fail("dispatch %s: empty grid %dx%dx%d", k.spec.Shader, x, y, z)
		return
	case x > lim[0] || y > lim[1] || z > lim[2]:
		b.fail("dispatch %s: grid %dx%dx%d over maxComputeWorkGroupCount %v", k.spec.Shader, x, y, z, lim)
		return
	case reflect.TypeOf(push) != k.pushType:
		b.fail("dispatch %s: push constants %T, the kernel takes %v", k.spec.Shader, push, k.pushType)
		return
	}
	if b.bound != k {
		vulkan.CmdBindPipeline(b.cb, vulkan.PipelineBindPointCompute, k.pipe)
		b.bound = k
	}
	vulkan.CmdBindDescriptorSets(b.cb, vulkan.PipelineBindPointCompute, k.layout, 0, 1, []vulkan.DescriptorSet{set.set}, 0, nil)
	if k.pushType != nil {
		// A copy in Go memory without pointers: cgo lets C read it.
		p := reflect.New(k.pushType)
		p.Elem().Set(reflect.ValueOf(push))
		vulkan.CmdPushConstants(b.cb, k.layout, vulkan.ShaderStageFlags(vulkan.ShaderStageComputeBit), 0, k.pushSize, p.UnsafePointer())
	}
	vulkan.CmdDispatch(b.cb, x, y, z)
	k.recorded.Add(1)
	if !b.level && !b.inHostStage() { // a host stage's dispatches open no level
		b.levels++
		b.level = true
	}
}

// Barrier makes every earlier shader and transfer write visible to every
// later shader and transfer access.
func (b *Batch) Barrier() {
	if !b.ready() {
		return
	}
	const stages = uint32(vulkan.PipelineStageComputeShaderBit | vulkan.PipelineStageTransferBit)
	b.ctx.fns.CmdMemoryBarrier(unsafe.Pointer(b.cb), stages, stages,
		uint32(vulkan.AccessShaderWriteBit|vulkan.AccessTransferWriteBit),
		uint32(vulkan.AccessShaderReadBit|vulkan.AccessShaderWriteBit|vulkan.AccessTransferReadBit|vulkan.AccessTransferWriteBit))
	b.level = false
}

// Copy records a copy of src into dst (equal sizes, multiples of 4).
func (b *Batch) Copy(dst, src Range) {
	if !b.ready() {
		return
	}
	if err := dst.check(); err != nil {
		b.fail("copy: %v", err)
		return
	}
	if err := src.check(); err != nil {
		b.fail("copy: %v", err)
		return
	}
	if dst.Size != src.Size {
		b.fail("copy %q -> %q: %d bytes into %d", src.Buf.name, dst.Buf.name, src.Size, dst.Size)
		return
	}
	if dst.Size == 0 {
		return
	}
	b.ctx.fns.CmdCopyBuffer(unsafe.Pointer(b.cb), unsafe.Pointer(src.Buf.buf), unsafe.Pointer(dst.Buf.buf), [][3]uint64{{src.Off, dst.Off, dst.Size}})
}

// CopyRegion is one region of CopyRegions.
type CopyRegion struct{ SrcOff, DstOff, Size uint64 }

// CopyRegions records one copy of many regions from src into dst.
func (b *Batch) CopyRegions(dst, src *Buffer, regions []CopyRegion) {
	if !b.ready() || len(regions) == 0 {
		return
	}
	vr := make([][3]uint64, len(regions))
	for i, r := range regions {
		if err := src.Range(r.SrcOff, r.Size).check(); err != nil {
			b.fail("copy regions: %v", err)
			return
		}
		if err := dst.Range(r.DstOff, r.Size).check(); err != nil {
			b.fail("copy regions: %v", err)
			return
		}
		vr[i] = [3]uint64{r.SrcOff, r.DstOff, r.Size}
	}
	b.ctx.fns.CmdCopyBuffer(unsafe.Pointer(b.cb), unsafe.Pointer(src.buf), unsafe.Pointer(dst.buf), vr)
}

// NaNBits is the float32 quiet NaN that Fill poisons outputs with.
const NaNBits = 0x7fc00000

// Fill records filling r (offset and size multiples of 4) with the 32-bit
// word w, e.g. NaNBits.
func (b *Batch) Fill(r Range, w uint32) {
	if !b.ready() {
		return
	}
	if err := r.check(); err != nil {
		b.fail("fill: %v", err)
		return
	}
	if r.Off%4 != 0 || r.Size%4 != 0 {
		b.fail("fill %q at %d of %d bytes: offset and size must be multiples of 4", r.Buf.name, r.Off, r.Size)
		return
	}
	if r.Size > 0 {
		vulkan.CmdFillBuffer(b.cb, r.Buf.buf, vulkan.DeviceSize(r.Off), vulkan.DeviceSize(r.Size), w)
	}
}

// SetSpanTiming sets whether the batches of c time each kernel stage (off,
// the default) or only spans of consecutive kernel stages (on): in a span
// the first stage writes the timestamp and reports the whole span's time
// under its name, and the stages after it report nothing. A timestamp
// between two dependent dispatches is not free (about 1 us on an H200, where
// a dependent dispatch costs 2.3: TestDispatchFloor), so a benchmark times a
// step's total with spans and its stage breakdown without. It applies to
// batches recorded after the call.
func (c *Context) SetSpanTiming(on bool) { c.spanTiming.Store(on) }

// Submit ends recording, submits the batch, waits for it and returns the
// GPU time of each stage. Device writes are visible to the host afterwards
// (Readback buffers need no further call). A wait that times out (after
// ten minutes) returns VK_TIMEOUT and leaves the batch submitted and stuck:
// the next Begin or Free waits for it again before it touches the command
// buffer, and until then its context holds what is freed (see Batch).
func (b *Batch) Submit() (Timings, error) {
	n, err := b.start()
	if err != nil {
		return Timings{}, err
	}
	return b.finish(n)
}

// start ends recording and submits the batch without waiting for it; n is
// its number of stages, for finish.
func (b *Batch) start() (n uint32, err error) {
	if b.err == nil && !b.open {
		b.fail("Submit before Begin")
	}
	if b.err != nil {
		if b.open {
			vulkan.EndCommandBuffer(b.cb)
			b.open = false
		}
		return 0, b.err
	}
	n = uint32(len(b.stages))
	if b.queries != vulkan.NullQueryPool && n > 0 {
		vulkan.CmdWriteTimestamp(b.cb, vulkan.PipelineStageBottomOfPipeBit, b.queries, n)
	}
	b.ctx.fns.CmdMemoryBarrier(unsafe.Pointer(b.cb),
		uint32(vulkan.PipelineStageComputeShaderBit|vulkan.PipelineStageTransferBit), uint32(vulkan.PipelineStageHostBit),
		uint32(vulkan.AccessShaderWriteBit|vulkan.AccessTransferWriteBit), uint32(vulkan.AccessHostReadBit))
	b.open = false
	if err := vkc.Check("vkEndCommandBuffer", int32(vulkan.EndCommandBuffer(b.cb))); err != nil {
		return 0, err
	}
	c := b.ctx
	if err := vkc.Check("vkResetFences", int32(vulkan.ResetFences(c.dev, 1, []vulkan.Fence{b.fence}))); err != nil {
		return 0, err
	}
	q, mu := c.queue, &c.queueMu
	if b.second {
		q, mu = c.queue2, &c.queue2Mu
	}
	mu.Lock()
	err = c.fns.QueueSubmit(unsafe.Pointer(q), unsafe.Pointer(b.cb), unsafe.Pointer(b.fence))
	mu.Unlock()
	b.pending = err == nil
	return n, err
}

// wait waits for the submitted batch's fence, at most submitTimeout, and
// clears pending once it has signalled. A wait that fails makes the batch
// stuck; one that succeeds after that unsticks it.
func (b *Batch) wait() error {
	fences := []vulkan.Fence{b.fence}
	if err := vkc.Check("vkWaitForFences", int32(vulkan.WaitForFences(b.ctx.dev, 1, fences, vulkan.True, uint64(submitTimeout)))); err != nil {
		if !b.stuck {
			b.stuck = true
			b.ctx.stick(b)
		}
		return err
	}
	b.pending = false
	if b.stuck {
		b.stuck = false
		b.ctx.unstick(b)
	}
	return nil
}

// stick records that b's wait failed: until b is seen finished, what is
// freed on c is held (retire).
func (c *Context) stick(b *Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stuck[b] = true
}

// unstick records that b, stuck before, has finished, and destroys what was
// held where no batch is stuck any more.
func (c *Context) unstick(b *Batch) {
	c.mu.Lock()
	delete(c.stuck, b)
	rs := c.reap()
	c.mu.Unlock()
	for _, r := range rs {
		r.release()
	}
}

// retire destroys r, which holds the handles of a buffer, set or kernel just
// freed, once no submission that a wait gave up on may still use it: at
// once unless a batch of c is stuck, else when the last stuck batch is seen
// finished (unstick, or a later retire that finds its fence signalled), or
// at Close.
func (c *Context) retire(r resource) {
	c.mu.Lock()
	c.held = append(c.held, r)
	rs := c.reap()
	c.mu.Unlock()
	for _, r := range rs {
		r.release()
	}
}

// reap, called with c.mu held, forgets the stuck batches whose fences have
// signalled and, where none is left, hands back what was held for the
// caller to release once it has unlocked c.mu (Set's release locks it).
// Only a stuck batch's fence is read here, from any goroutine: the batch's
// own goroutine unsticks it, under c.mu, before it resets or destroys the
// fence, and vkGetFenceStatus, like vkWaitForFences, needs no external
// synchronisation of the fence.
func (c *Context) reap() []resource {
	for b := range c.stuck {
		if vulkan.GetFenceStatus(c.dev, b.fence) == vulkan.Success {
			delete(c.stuck, b)
		}
	}
	if len(c.stuck) > 0 {
		return nil
	}
	rs := c.held
	c.held = nil
	return rs
}

// settle waits for a submission whose wait failed before (Submit returned a
// timeout): its command buffer must not be reset while the device may still
// run it.
func (b *Batch) settle() error {
	if !b.pending {
		return nil
	}
	if err := b.wait(); err != nil {
		return fmt.Errorf("vk: batch: the last submission has not finished: %w", err)
	}
	return nil
}

// finish waits for the batch that start submitted and returns the GPU time
// of each of its n stages.
func (b *Batch) finish(n uint32) (Timings, error) {
	c := b.ctx
	if err := b.wait(); err != nil {
		return Timings{}, err
	}
	if b.queries == vulkan.NullQueryPool || n == 0 {
		return Timings{Supported: b.queries != vulkan.NullQueryPool, Levels: b.levels}, nil
	}
	ts := make([]uint64, n+1)
	if err := vkc.Check("vkGetQueryPoolResults", int32(vulkan.GetQueryPoolResults(c.dev, b.queries, 0, n+1,
		uint(8*len(ts)), unsafe.Pointer(&ts[0]), 8, vulkan.QueryResultFlags(vulkan.QueryResult64Bit|vulkan.QueryResultWaitBit)))); err != nil {
		return Timings{}, err
	}
	t := Timings{Supported: true, Stages: make([]Stage, n), Levels: b.levels}
	for i := range t.Stages {
		t.Stages[i] = Stage{Name: b.stages[i], Ns: c.ticksNs(ts[i], ts[i+1]), Start: ts[i], End: ts[i+1]}
	}
	return t, nil
}

// ticksNs returns the nanoseconds between two of the device's timestamps
// (ticks of timestampPeriod ns; only the valid bits count, so a counter that
// wrapped between them still gives their difference).
func (c *Context) ticksNs(from, to uint64) float64 {
	mask := uint64(math.MaxUint64)
	if bits := c.Info.TimestampValidBits; bits < 64 {
		mask = 1<<bits - 1
	}
	return float64((to-from)&mask) * float64(c.Info.Limits.TimestampPeriod)
}

// Free destroys the batch. A submission whose wait timed out is waited for
// first; if it still has not finished, the batch stays with its context,
// whose Close waits for the device to go idle before it destroys it.
func (b *Batch) Free() {
	if b == nil || b.pool == vulkan.NullCommandPool {
		return
	}
	if b.settle() != nil {
		return
	}
	b.ctx.untrack(b)
	b.destroy()
}

func (b *Batch) release() { b.destroy() }

func (b *Batch) destroy() {
	b.open, b.pending = false, false // recording into, or submitting, the freed command buffer fails (ready, start)
	dev := b.ctx.dev
	destroyHandle(dev, &b.queries, vulkan.DestroyQueryPool)
	destroyHandle(dev, &b.fence, vulkan.DestroyFence)
	destroyHandle(dev, &b.pool, vulkan.DestroyCommandPool) // frees the command buffer
}
