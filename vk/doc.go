// Package vk runs the attention kernels of this project on a GPU (or on Mesa's
// lavapipe CPU driver) through Vulkan compute, and implements ref.Method with
// them, so that the acceptance suite in ref/reftest holds the GPU to the
// reference.
//
// # Runtime
//
//	ctx, err := vk.Open("")          // or vk.OpenWith(vk.Options{...})
//	defer ctx.Close()
//	buf, err := ctx.NewBuffer("K cache", size, vk.DeviceLocal)
//	err = ctx.Write(vk.Region{Dst: buf, Off: 0, Data: bytes}) // host -> device
//	k, err := ctx.SharedKernel(vk.KernelSpec{Shader: "dense_merge", Bindings: 3, Push: mergePush{}, Spec: []uint32{64, 128}})
//	set, err := k.NewSet(a.Whole(), b.Whole(), out.Whole())
//	b, err := ctx.NewBatch()
//	b.Begin(); b.Stage("merge"); b.Dispatch(k, set, mergePush{Splits: 4}, hq, batch, 1); b.Barrier()
//	b.Stage("readback"); b.Copy(rb.Whole(), out.Whole())
//	t, err := b.Submit()              // t.Stages: per-stage GPU time in ns
//
// Open picks a discrete GPU, then an integrated one, then a virtual one, then
// a CPU device; a name substring or an index (its argument, or
// $HATA_VK_DEVICE) overrides that. $HATA_VK_VALIDATE=1 turns on the Khronos
// validation layer with synchronization validation; every warning and error
// it reports is recorded (Context.ValidationMessages), and the tests fail on
// any. $HATA_VK_KERNELSTATS=1 (or Options.KernelStats) captures every
// kernel's compiler statistics, e.g. its register count, through
// VK_KHR_pipeline_executable_properties, for Kernel.Stats and
// Context.KernelStats (`hata bench -kernelstats` prints them); a device
// without the extension still opens, and those calls then say so.
// $HATA_VK_SPIRV=DIR (or Options.SPIRVDir) builds every kernel whose
// <name>.spv is in DIR from that file instead of the built-in SPIR-V: a
// changed kernel can be timed against the built-in one with the same
// program (`hata bench` names the replaced kernels). Devices and
// DescribeDevices list what the loader finds.
//
// # Memory
//
// Tensors live in DeviceLocal buffers. The host writes through Upload buffers
// (host-visible, coherent) and vkCmdCopyBuffer; results come back through
// Readback buffers (host-visible, host-cached) filled by vkCmdCopyBuffer: the
// host never reads device-local memory, which on a discrete GPU is uncached
// PCIe traffic even where it is mappable. Context.Write and Context.Read do
// this through staging buffers of the context (at most 64 MiB, larger
// transfers go in pieces). An allocation that does not fit returns an error
// naming the buffer, the size, the memory type and heap, wrapping
// ErrOutOfMemory.
//
// Every buffer has an allocation of its own, and a device-local one of 2 MiB
// or more a dedicated allocation (VkMemoryDedicatedAllocateInfo), unless
// Options.NoDedicated or $HATA_VK_DEDICATED=0: NVIDIA's driver maps those
// with large pages, whose translations a cold TLB walks about ten times
// faster than plain ones (on the H200 3 against 26 ns a MiB of cache,
// Context.PageWalkCost; BENCHMARKS.md, session 27).
//
// A storage-buffer binding may cover at most maxStorageBufferRange bytes (128
// MiB on lavapipe, 4 GiB on an H200), and one allocation at most
// maxMemoryAllocationSize (4 GiB on an H200). Every method therefore keeps
// its K/V cache [B*Hkv][Cap][D] in one or more buffers of whole cache rows
// (b, h), as many rows as both limits allow, and dispatches each kernel that
// reads the cache once per buffer, with a push constant (row0, row_base in
// dense) naming the buffer's first row; one row, Cap*D elements, must fit,
// which holds up to 256K tokens of D=128 in fp32 on lavapipe. Tests lower
// the limit to cut caches into 1- and 3-row buffers.
//
// A K/V cache in host memory (SparseOptions.HostCache, the paper's
// HATA-off) is a Host buffer that the kernels read over the bus. Random
// reads there slow with the span they spread over (on the H200 512-byte
// rows read 54 GB/s over 1 GiB and 22 over 4 GiB), so the top-k methods'
// attention reads such a cache a window of rows at a time
// (SparseOptions.AttendRows). Options.HostHugePages or
// $HATA_VK_HOSTHUGEPAGES=1 backs Host buffers with memory the process maps
// in transparent huge pages and the device imports
// (VK_EXT_external_memory_host), which on the H200 changed nothing.
//
// # Kernels
//
// Shaders are GLSL in package shaders (entry points *.comp, includes *.glsl),
// compiled to SPIR-V by `make shaders` and embedded. Sizes are specialization
// constants (id 0 is always the workgroup size, `layout(local_size_x_id = 0)
// in;`); each kernel has one push-constant block mirrored by one Go struct,
// which NewKernel checks against the SPIR-V's own OpMemberDecorate offsets
// (and TestPushConstantLayouts for every shader, without a device).
//
// To add a kernel:
//
//  1. Write shaders/<name>.comp (or a .glsl body and thin .comp variants)
//     with `layout(local_size_x_id = 0) in;`, further sizes as
//     `layout(constant_id = 1..) const uint`, storage buffers at set 0,
//     bindings 0..n-1, and one `layout(push_constant) uniform PushConstants`
//     block of 4-byte members; run `make shaders` and commit the .spv.
//  2. Declare the Go struct mirroring the block (uint32/int32/float32 fields
//     in the block's order; add `_ uint32` padding where std430 pads) in the
//     kernel family's file, and register it in pushStructs (registry.go).
//  3. Build it with ctx.SharedKernel(KernelSpec{Shader, Bindings, Push,
//     Spec}); bind buffers with k.NewSet(ranges...), each range at most
//     maxStorageBufferRange bytes at an aligned offset.
//  4. Record it in a Batch: Stage("name"), Dispatch(k, set, push, x, y, z),
//     Barrier() before anything reads its output; Submit returns the
//     per-stage times.
//  5. Test it against package ref on lavapipe with HATA_VK_VALIDATE=1 (the
//     device helper in main_test.go fails a test on any validation message),
//     with shapes that are not multiples of the workgroup; the context
//     poisons outputs with NaN when validating (Options.Poison), so fill your
//     outputs with b.Fill(r, NaNBits) when ctx.Poisons().
//
// Two things the kernels assume of subgroups, which Vulkan 1.2 does not
// promise but the drivers they have run on (NVIDIA's, lavapipe) do, for
// workgroups whose size is a multiple of the subgroup size (which the host
// checks): subgroups are full, and lane i of subgroup s is invocation
// s*gl_SubgroupSize + i (gl_LocalInvocationIndex). wg_scan.glsl's prefix
// sums run in subgroup order over work handed out by
// gl_LocalInvocationIndex, and the attention's slots are numbered by
// subgroup. On a driver that broke either, the select and attention tests
// would fail, and so Open checks both on the device before it returns
// (Context.CheckSubgroups: a probe kernel at every such workgroup size up
// to 1024), refusing a device that breaks them with an error that names
// the workgroup size and the invocation. The first is a request wherever the device can make it: on a
// device with computeFullSubgroups (Vulkan 1.3's, or before 1.3
// VK_EXT_subgroup_size_control's; DeviceInfo.FullSubgroups)
// every kernel whose workgroup is a multiple of the largest subgroup size is
// created with VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT
// (Kernel.FullSubgroups; Options.NoFullSubgroups or $HATA_VK_FULLSUBGROUPS=0
// turn it off). The H200's driver and lavapipe have it. The second no
// flag requests; on a device with varying subgroup sizes (Intel's 8-32) it
// is the driver's to keep, and Open's check is what would catch a driver
// that does not (for the probe's pipelines; a driver could still number
// another pipeline's lanes otherwise, which no check short of the kernels'
// tests would see).
//
// A workgroup's shared memory is ordered by barriers alone: a kernel that
// zeroes a shared histogram before adding to it needs a barrier between the
// two on every path, not only inside a search that some passes skip
// (select_hist lacked one on its first pass until 26ac155; on the H200 that
// wrote wrong selections once the kernel's search got shorter, and lavapipe
// never showed it).
//
// lavapipe ends every loop of an invocation, without an error, once all its
// loops together have iterated 65535 times (gallivm's guard against hung
// shaders, LP_MAX_TGSI_LOOP_ITERATIONS): a kernel whose invocations loop
// longer than that on the test shapes, or spin waiting for another
// workgroup, computes wrong results there and only there. hata_step (the
// onekernel variant), the one kernel that waits for other workgroups, runs as
// one dispatch per kind of item on CPU devices for that reason.
//
// # Timing
//
// Batch.Stage writes a GPU timestamp at the bottom of the pipe, after every
// earlier command has finished; Submit writes the last one. Timings.Stages
// gives each named stage's duration in ns (ticks times the device's
// timestampPeriod), and Get and Total sum them. Dense.Timings returns the
// stages of the last decode: upload, [poison,] split, merge, readback.
// Timestamps are not free: between two dependent dispatches one costs about
// 1 us on an H200, where the dispatch itself costs 2.3 (Context.DispatchFloor
// measures the latter). Context.SetSpanTiming(true) makes later batches time
// each run of consecutive kernel stages as one span under its first stage's
// name, which is how a benchmark times a step's total. Inside a kernel,
// SparseOptions.Trace builds the sparse attention, the select's write and
// HATA's encode and score kernels with a read of the device clock
// (VK_KHR_shader_clock, enabled wherever the device has it) at each phase of
// every workgroup; AttentionTrace, SelectTrace, HATA.EncodeTrace,
// HATA.ScoreTrace (Traces for all) and KernelTrace.Summary say where the
// workgroups spent their time.
//
// # Timeouts
//
// Batch.Submit waits at most ten minutes for its batch. A wait that times
// out returns VK_TIMEOUT and leaves the batch stuck: the device may still
// run it, reading and writing the buffers it was recorded with. The batch's
// next Begin or Free waits for it again before it touches the command
// buffer, and until the batch is seen finished (there, or by a free that
// finds its fence signalled) its context holds every buffer, descriptor set
// and kernel freed on it instead of destroying it: the object reads as
// freed at once, and its Vulkan handles are destroyed once no batch of the
// context is stuck, or at Context.Close after the device is idle. The error
// paths that free what a failed step made (the larger cache of a growth
// that failed, a failed prefill's cache, scratch buffers and descriptor
// sets) therefore need no case of their own for a timeout; a method's next
// step waits for its batch before it records, and Context.Write waits for a
// timed-out transfer before it rewrites the staging buffer that transfer
// reads. The rule is conservative: while one batch is stuck, what it never
// used is held too.
//
// # cgo
//
// Vulkan is reached through github.com/vulkan-go/vulkan for the calls whose
// arguments are scalars, handles and flat structures, and through the one
// cgo package of the project, vk/internal/vkc, for everything else:
// dlopen of libvulkan.so.1, the Vulkan 1.1+ queries, the pNext chains, the
// debug messenger, and every call taking arrays of structures, which
// vulkan-go converts into memory a GC finalizer may free during the call
// (see vkc/calls.go). The rest of the package sees Go types only.
//
// Objects made from a Context (buffers, kernels, sets, batches, methods) are
// not safe for concurrent use; the Context itself is. Nothing in the package
// panics on bad input: every failure is an error naming the call or the
// shapes.
package vk
