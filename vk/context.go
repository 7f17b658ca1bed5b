package vk

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// Environment variables read by Open.
const (
	// EnvDevice selects the device when Open's argument is empty: a decimal
	// index into Devices() or a case-insensitive substring of the name.
	EnvDevice = "HATA_VK_DEVICE"
	// EnvValidate = 1 turns on VK_LAYER_KHRONOS_validation (with
	// synchronization validation) and records every warning and error it
	// reports; see Context.ValidationMessages.
	EnvValidate = "HATA_VK_VALIDATE"
	// EnvKernelStats = 1 turns on Options.KernelStats for every context
	// opened, whatever the options say.
	EnvKernelStats = "HATA_VK_KERNELSTATS"
	// EnvSPIRV names a directory whose <kernel>.spv files replace the
	// built-in SPIR-V of those kernels (Options.SPIRVDir) when the options
	// name none.
	EnvSPIRV = "HATA_VK_SPIRV"
	// EnvDedicated = 0 turns on Options.NoDedicated for every context
	// opened, whatever the options say (the A/B of session 27).
	EnvDedicated = "HATA_VK_DEDICATED"
	// EnvFullSubgroups = 0 turns on Options.NoFullSubgroups for every
	// context opened, whatever the options say (an A/B of the request).
	EnvFullSubgroups = "HATA_VK_FULLSUBGROUPS"
	// EnvHostHugePages = 1 turns on Options.HostHugePages for every
	// context opened, whatever the options say.
	EnvHostHugePages = "HATA_VK_HOSTHUGEPAGES"
)

const validationLayer = "VK_LAYER_KHRONOS_validation"

// ErrNoValidationLayer is returned (wrapped) by OpenWith when Options.Validate
// asks for the Khronos validation layer and the loader does not have it.
var ErrNoValidationLayer = errors.New("the Khronos validation layer is not installed (Debian: apt install vulkan-validationlayers)")

// Options configure OpenWith.
type Options struct {
	// Device is a decimal index into Devices() or a substring of a device
	// name; "" means $HATA_VK_DEVICE, and when that is unset too, the first
	// usable device in the order discrete, integrated, virtual, CPU.
	Device string
	// Validate enables the Khronos validation layer and records its messages.
	Validate bool
	// Poison fills every kernel output with NaN before the kernel runs (and
	// host readback memory before the copy), so a result that a kernel failed
	// to write cannot pass a test as a stale value. On whenever Validate is.
	Poison bool
	// KernelStats captures every kernel's compiler statistics (registers,
	// shared memory, ...; see Kernel.Stats and Context.KernelStats) through
	// VK_KHR_pipeline_executable_properties. It costs nothing at run time,
	// only a little when each kernel is built. Default off; also on when
	// $HATA_VK_KERNELSTATS=1. A device without the extension still opens:
	// the statistics calls then return an error wrapping ErrNoKernelStats.
	KernelStats bool
	// SPIRVDir, when not empty, is a directory of compiled kernels for
	// kernel experiments (BENCHMARKS.md's A/B runs): a kernel whose
	// <name>.spv is there is built from that file instead of the built-in
	// SPIR-V (package shaders); the others stay built in. The file goes
	// through the same checks (push constants, specialization ids), so it
	// must keep the kernel's interface. "" means $HATA_VK_SPIRV. OpenWith
	// fails when the directory does not exist.
	SPIRVDir string
	// NoDedicated allocates every buffer's memory as a plain allocation.
	// By default a device-local buffer of 2 MiB or more gets a dedicated
	// allocation of its own (VkMemoryDedicatedAllocateInfo), which NVIDIA's
	// driver maps with large pages: on the H200 a load every MiB of a cold
	// 4 GiB buffer took 108 us with plain allocations, its page walks one
	// after another, and 19 us with dedicated ones (session 27, run 306).
	// Also on when $HATA_VK_DEDICATED=0.
	NoDedicated bool
	// NoFullSubgroups creates every pipeline without requiring full
	// subgroups. By default, on a device with DeviceInfo.FullSubgroups,
	// every kernel whose workgroup is a multiple of the largest subgroup
	// size is created with VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_
	// SUBGROUPS_BIT, so that the kernels' assumption of full subgroups
	// (doc.go) is a request the driver must honour, not a property of the
	// drivers they were tested on. Also on when $HATA_VK_FULLSUBGROUPS=0.
	NoFullSubgroups bool
	// HostHugePages backs every Host buffer (a K/V cache offloaded to host
	// memory, DenseOptions.HostCache and SparseOptions.HostCache) with
	// memory the process maps itself in transparent huge pages, which the
	// device imports (VK_EXT_external_memory_host), instead of memory the
	// driver allocates. OpenWith fails on a device that cannot import host
	// memory. Also on when $HATA_VK_HOSTHUGEPAGES=1. On the H200 it changed
	// neither host gathers nor HATA-off's step (BENCHMARKS.md, session 45);
	// it is here for drivers that map host memory by its pages.
	HostHugePages bool

	// subgroupExt enables full subgroups through
	// VK_EXT_subgroup_size_control, as on a device before Vulkan 1.3,
	// whatever the device's version: the tests' way to run that path on a
	// 1.3 device that also offers the extension (TestFullSubgroupsExtension).
	subgroupExt bool
}

// ErrNoKernelStats is returned (wrapped, naming the device) by Kernel.Stats
// and Context.KernelStats when the context was asked to capture kernel
// statistics and the device cannot.
var ErrNoKernelStats = errors.New("no kernel statistics: the device lacks VK_KHR_pipeline_executable_properties or its pipelineExecutableInfo feature")

// ErrKernelStatsOff is returned (wrapped) by Kernel.Stats and
// Context.KernelStats when the context was not asked to capture kernel
// statistics.
var ErrKernelStatsOff = errors.New("kernel statistics are off (Options.KernelStats or $HATA_VK_KERNELSTATS=1 turns them on)")

// Context is one logical device with one compute queue: the owner of every
// buffer, kernel and batch made from it. Its methods are safe for concurrent
// use; the objects it makes (Buffer, Batch, Dense, ...) are not, unless they
// say so.
type Context struct {
	// Info describes the device in use.
	Info DeviceInfo

	in        *instance
	pd        vulkan.PhysicalDevice
	dev       vulkan.Device
	fns       *vkc.Device // the calls made in C (see package vkc)
	queue     vulkan.Queue
	queue2    vulkan.Queue // the compute family's second queue, or nil (QueueOverlap)
	memTypes  []memType
	poison    bool
	statsErr  error  // why Kernel.Stats cannot answer (no "vk: " prefix); nil: pipelines capture their statistics
	spirvDir  string // Options.SPIRVDir: replacement kernels, "" for none
	dedicated bool   // large device-local buffers get dedicated allocations (Options.NoDedicated)
	fullSG    bool   // pipelines may require full subgroups (DeviceInfo.FullSubgroups, Options.NoFullSubgroups)
	hostHuge  bool   // Host buffers are imported host memory in huge pages (Options.HostHugePages)

	queueMu  sync.Mutex // vkQueueSubmit needs the queue externally synchronised
	queue2Mu sync.Mutex // and queue2

	mu       sync.Mutex // guards the fields below
	closed   bool
	pools    []vulkan.DescriptorPool
	live     map[resource]uint64 // objects to free at Close, by creation order
	seq      uint64
	kernels  map[string]*Kernel // SharedKernel's cache
	replaced map[string]bool    // kernels built from spirvDir
	finalLog []vkc.Message      // validation messages, kept after Close
	finalN   int                // and their count
	// stuck holds the batches whose last wait failed (a Submit that timed
	// out) and that no one has seen finished since; while there are any,
	// held keeps the handles of what was freed (retire, see Batch).
	stuck map[*Batch]bool
	held  []resource

	spanTiming atomic.Bool // SetSpanTiming

	xferMu     sync.Mutex // guards the transfer staging below
	stagingMax uint64     // size bound of the staging buffers
	xfer       *Batch
	upload     *Buffer
	download   *Buffer
}

// resource is a device object that Close frees if its owner did not.
type resource interface{ release() }

// destroyHandle calls destroy(dev, *h, nil) if *h is not the null handle
// (every vulkan-go Null* handle is its type's zero value) and leaves *h null,
// so that a resource's destroy may run on a half-built or destroyed object.
func destroyHandle[H comparable](dev vulkan.Device, h *H, destroy func(vulkan.Device, H, *vulkan.AllocationCallbacks)) {
	var null H
	if *h != null {
		destroy(dev, *h, nil)
		*h = null
	}
}

// memType is one Vulkan memory type.
type memType struct {
	flags vulkan.MemoryPropertyFlags
	heap  int
}

// instance is a VkInstance with its validation log.
type instance struct {
	inst vulkan.Instance
	log  *vkc.Log // nil without validation
}

var (
	loadOnce sync.Once
	loadErr  error
	// instMu serialises instance creation: vulkan-go keeps the instance-level
	// function pointers in C globals that vulkan.InitInstance rewrites.
	instMu sync.Mutex
)

// loadVulkan dlopens the loader and initialises vulkan-go, once.
func loadVulkan() error {
	loadOnce.Do(func() {
		p, err := vkc.Load()
		if err != nil {
			loadErr = err
			return
		}
		vulkan.SetGetInstanceProcAddr(p)
		if err := vulkan.Init(); err != nil {
			loadErr = fmt.Errorf("vulkan: %w", err)
		}
	})
	return loadErr
}

// envValidate reports whether $HATA_VK_VALIDATE asks for validation.
func envValidate() bool { return envOn(EnvValidate) }

// envOn reports whether the environment variable name is set to 1, true,
// yes or on (checkEnvSwitches refuses other values than those, 0, false, no
// and off before a context opens).
func envOn(name string) bool {
	on, _ := envSwitch(name, false)
	return on
}

// envDefaultOn reports whether the switch name is on, unset counting as on.
func envDefaultOn(name string) bool {
	on, _ := envSwitch(name, true)
	return on
}

// envSwitch returns the switch the environment variable name sets: def
// where it is unset or empty, true for 1, true, yes or on, false for 0,
// false, no or off (in any case), and an error naming the variable for
// anything else.
func envSwitch(name string, def bool) (bool, error) {
	switch v := os.Getenv(name); strings.ToLower(v) {
	case "":
		return def, nil
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	default:
		return def, fmt.Errorf("vk: $%s=%q: want 1 or 0 (true/false, yes/no, on/off)", name, v)
	}
}

// checkEnvSwitches returns an error naming the first of the switches a
// context reads from the environment that is set to something envSwitch
// does not take.
func checkEnvSwitches() error {
	for _, name := range []string{EnvValidate, EnvKernelStats, EnvDedicated, EnvFullSubgroups, EnvHostHugePages} {
		if _, err := envSwitch(name, false); err != nil {
			return err
		}
	}
	return nil
}

// newInstance creates a Vulkan 1.3 instance, with the validation layer and a
// recording debug messenger when validate is set.
func newInstance(validate bool) (*instance, error) {
	if err := loadVulkan(); err != nil {
		return nil, err
	}
	instMu.Lock()
	defer instMu.Unlock()
	in := &instance{}
	var layers, exts []string
	var next unsafe.Pointer
	if validate {
		have, err := vkc.InstanceLayers()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(have, validationLayer) {
			return nil, fmt.Errorf("vk: %s=1 asks for %s: %w", EnvValidate, validationLayer, ErrNoValidationLayer)
		}
		lexts, _ := vkc.LayerExtensions(validationLayer)
		syncVal := slices.Contains(lexts, "VK_EXT_validation_features")
		if in.log, err = vkc.NewLog(syncVal); err != nil {
			return nil, err
		}
		layers = append(layers, validationLayer)
		exts = append(exts, "VK_EXT_debug_utils")
		if syncVal {
			exts = append(exts, "VK_EXT_validation_features")
		}
		next = in.log.InstanceNext()
	}
	p, err := vkc.CreateInstance(vulkan.MakeVersion(1, 3, 0), layers, exts, next)
	if err != nil {
		if in.log != nil {
			in.log.Free()
		}
		var ve *vkc.Error
		if errors.As(err, &ve) && ve.Result == vkc.ErrorIncompatibleDriver {
			err = fmt.Errorf("%w (no Vulkan driver found; for the CPU one, Debian: mesa-vulkan-drivers)", err)
		}
		return nil, err
	}
	in.inst = vulkan.Instance(p)
	if err := vulkan.InitInstance(in.inst); err != nil {
		in.destroy()
		return nil, fmt.Errorf("vulkan: %w", err)
	}
	if in.log != nil {
		if err := in.log.Attach(instPtr(in.inst)); err != nil {
			in.destroy()
			return nil, err
		}
	}
	return in, nil
}

// destroy destroys the instance and frees its log.
func (in *instance) destroy() {
	if in.log != nil {
		in.log.Detach(instPtr(in.inst))
	}
	vulkan.DestroyInstance(in.inst, nil)
	if in.log != nil {
		in.log.Free()
		in.log = nil
	}
}

// devices describes every physical device of the instance.
func (in *instance) devices() ([]DeviceInfo, []vulkan.PhysicalDevice, error) {
	var n uint32
	if err := vkc.Check("vkEnumeratePhysicalDevices", int32(vulkan.EnumeratePhysicalDevices(in.inst, &n, nil))); err != nil {
		return nil, nil, err
	}
	pds := make([]vulkan.PhysicalDevice, n)
	if n > 0 {
		if err := vkc.Check("vkEnumeratePhysicalDevices", int32(vulkan.EnumeratePhysicalDevices(in.inst, &n, pds))); err != nil {
			return nil, nil, err
		}
	}
	infos := make([]DeviceInfo, 0, n)
	for i, pd := range pds[:n] {
		infos = append(infos, describe(in.inst, pd, i))
	}
	return infos, pds[:n], nil
}

// Open opens the device sel names (see Options.Device), with validation when
// $HATA_VK_VALIDATE=1: OpenWith(EnvOptions(sel)).
func Open(sel string) (*Context, error) {
	return OpenWith(EnvOptions(sel))
}

// EnvOptions returns the options Open(sel) uses: Device sel, and Validate
// when $HATA_VK_VALIDATE=1. (Every context also reads $HATA_VK_DEVICE when
// Device is "", $HATA_VK_SPIRV when SPIRVDir is "", and
// $HATA_VK_KERNELSTATS, $HATA_VK_DEDICATED and $HATA_VK_FULLSUBGROUPS.)
func EnvOptions(sel string) Options {
	return Options{Device: sel, Validate: envValidate()}
}

// OpenWith opens a device as o says.
func OpenWith(o Options) (*Context, error) {
	if err := checkEnvSwitches(); err != nil {
		return nil, err
	}
	in, err := newInstance(o.Validate)
	if err != nil {
		return nil, err
	}
	c, err := open(in, o)
	if err != nil {
		in.destroy()
		return nil, err
	}
	key := fmt.Sprintf("%d/%s/%v/%v/%s", c.Info.Index, c.Info.Name, c.fullSG, o.subgroupExt, c.spirvDir)
	if _, done := subgroupsChecked.Load(key); !done {
		if err := c.CheckSubgroups(); err != nil {
			c.Close()
			return nil, err
		}
		subgroupsChecked.Store(key, true)
	}
	return c, nil
}

// subgroupsChecked holds the devices (index, name, how their kernels
// request full subgroups, and the SPIR-V directory, which may replace the
// probe) that passed CheckSubgroups in this process: OpenWith checks each
// once.
var subgroupsChecked sync.Map

func open(in *instance, o Options) (*Context, error) {
	infos, pds, err := in.devices()
	if err != nil {
		return nil, err
	}
	sel := o.Device
	if sel == "" {
		sel = os.Getenv(EnvDevice)
	}
	pick, err := chooseDevice(infos, sel)
	if err != nil {
		return nil, err
	}
	c := &Context{
		Info:       infos[pick],
		in:         in,
		pd:         pds[pick],
		poison:     o.Poison || o.Validate,
		stagingMax: stagingMax,
		live:       map[resource]uint64{},
		stuck:      map[*Batch]bool{},
		kernels:    map[string]*Kernel{},
		replaced:   map[string]bool{},
		spirvDir:   cmp.Or(o.SPIRVDir, os.Getenv(EnvSPIRV)),
		dedicated:  !o.NoDedicated && envDefaultOn(EnvDedicated),
		fullSG:     infos[pick].FullSubgroups && !o.NoFullSubgroups && envDefaultOn(EnvFullSubgroups),
		hostHuge:   o.HostHugePages || envOn(EnvHostHugePages),
	}
	if c.hostHuge && c.Info.HostImportAlignment == 0 {
		return nil, fmt.Errorf("vk: device %d %q: Options.HostHugePages or $%s: the device cannot import host memory (no %s)",
			c.Info.Index, c.Info.Name, EnvHostHugePages, vkc.ExtExternalMemoryHost)
	}
	if c.spirvDir != "" {
		st, err := os.Stat(c.spirvDir)
		var pe *os.PathError
		switch {
		case errors.As(err, &pe):
			err = pe.Err
		case err == nil && !st.IsDir():
			err = errors.New("not a directory")
		}
		if err != nil {
			return nil, fmt.Errorf("vk: SPIR-V directory %s (Options.SPIRVDir or $%s): %w", c.spirvDir, EnvSPIRV, err)
		}
	}
	for _, mt := range c.Info.memTypes {
		c.memTypes = append(c.memTypes, memType{flags: vulkan.MemoryPropertyFlags(mt.Flags), heap: mt.Heap})
	}

	d := &c.Info
	// Kernel statistics: the extension and its feature, enabled only when
	// asked for (the pipelines' capture flag is legal only with both).
	var exts []string
	switch {
	case !o.KernelStats && !envOn(EnvKernelStats):
		c.statsErr = ErrKernelStatsOff
	case !d.KernelStats:
		c.statsErr = fmt.Errorf("device %d %q: %w", d.Index, d.Name, ErrNoKernelStats)
	default:
		exts = append(exts, vkc.ExtPipelineExecutableProperties)
	}
	// The shared shader clock (traces): enabled wherever the device has it,
	// at no cost to kernels that do not read it.
	if d.ShaderClock {
		exts = append(exts, vkc.ExtShaderClock)
	}
	// Imported host memory (newHostImport): wherever the device has it.
	if d.HostImportAlignment > 0 {
		exts = append(exts, vkc.ExtExternalMemoryHost)
	}
	// Full subgroups: Vulkan 1.3's feature, or before 1.3 the extension's.
	v13 := d.APIVersion >= vulkan.MakeVersion(1, 3, 0) && !o.subgroupExt
	if c.fullSG && !v13 {
		exts = append(exts, vkc.ExtSubgroupSizeControl)
	}
	chain, err := vkc.FeatureChain(vkc.Features{
		ShaderInt64: d.Int64, ShaderInt16: d.Int16,
		StorageBuffer16BitAccess: d.StorageBuffer16Bit, StorageBuffer8BitAccess: d.StorageBuffer8Bit,
		ShaderFloat16: d.Float16, ShaderInt8: d.Int8,
		PipelineExecutableInfo: c.statsErr == nil,
		ShaderDeviceClock:      d.ShaderClock,
		ComputeFullSubgroups:   c.fullSG,
	}, v13)
	if err != nil {
		return nil, err
	}
	defer chain.Free()
	queues := uint32(min(max(d.ComputeQueues, 1), 2))
	dev, err := vkc.CreateDevice(instPtr(in.inst), devPtr(c.pd), d.computeQueue, queues, exts, chain)
	if err != nil {
		return nil, fmt.Errorf("vk: device %d %q: %w", d.Index, d.Name, err)
	}
	c.dev = vulkan.Device(dev)
	if c.fns, err = vkc.LoadDevice(instPtr(in.inst), dev); err != nil {
		vulkan.DestroyDevice(c.dev, nil)
		return nil, err
	}
	if c.statsErr == nil {
		if err := c.fns.LoadPipelineExecutables(); err != nil {
			c.statsErr = fmt.Errorf("device %d %q: %w (%v)", d.Index, d.Name, ErrNoKernelStats, err)
		}
	}
	var q vulkan.Queue
	vulkan.GetDeviceQueue(c.dev, d.computeQueue, 0, &q)
	c.queue = q
	if queues == 2 {
		var q2 vulkan.Queue
		vulkan.GetDeviceQueue(c.dev, d.computeQueue, 1, &q2)
		c.queue2 = q2
	}
	return c, nil
}

// Poisons reports whether kernels should fill their outputs with NaN before
// they run (Options.Poison, on whenever validating).
func (c *Context) Poisons() bool { return c.poison }

// Validating reports whether the validation layer is on.
func (c *Context) Validating() bool { return c.in.log != nil || c.finalLog != nil }

// ValidationCount returns the number of validation warnings and errors seen
// so far (0 without validation). Tests compare it before and after.
func (c *Context) ValidationCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.in.log == nil {
		return c.finalN
	}
	return c.in.log.Count()
}

// ValidationMessages returns the validation warnings and errors recorded from
// the n-th on (n = 0: all; the first 256 are kept), formatted as
// "error validation: [VUID-...] text".
func (c *Context) ValidationMessages(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	msgs := c.finalLog
	if c.in.log != nil {
		msgs = c.in.log.Messages(0)
	}
	var out []string
	for i := n; i < len(msgs); i++ {
		out = append(out, msgs[i].String())
	}
	return out
}

// checkOpen fails on a closed context. Every call that reaches the device
// through the context (allocations, kernels, batches, transfers) checks it
// first: a Vulkan call on the destroyed device would abort the process.
func (c *Context) checkOpen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("vk: context is closed")
	}
	return nil
}

// track registers r to be freed at Close; it fails on a closed context.
func (c *Context) track(r resource) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("vk: context is closed")
	}
	c.seq++
	c.live[r] = c.seq
	return nil
}

// untrack forgets r; its owner frees it.
func (c *Context) untrack(r resource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.live, r)
}

// Close waits for the device to go idle and frees everything made from the
// context that is still alive, newest first (after what was freed while a
// batch was stuck, see Batch), then the device and instance. Validation
// messages stay readable. Only the first call closes; later ones, and calls
// made while it runs, return nil at once.
func (c *Context) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true // from here on track fails, and a second Close returns
	c.mu.Unlock()
	vulkan.DeviceWaitIdle(c.dev)
	c.mu.Lock()
	rs := make([]resource, 0, len(c.live))
	for r := range c.live {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b resource) int { return cmp.Compare(c.live[b], c.live[a]) })
	rs = append(c.held, rs...) // the device is idle: no batch is stuck
	c.held = nil
	clear(c.stuck)
	c.mu.Unlock()
	for _, r := range rs {
		r.release()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pools {
		vulkan.DestroyDescriptorPool(c.dev, p, nil)
	}
	c.pools = nil
	vulkan.DestroyDevice(c.dev, nil)
	c.fns.Free()
	if c.in.log != nil {
		c.in.log.Detach(instPtr(c.in.inst))
		vulkan.DestroyInstance(c.in.inst, nil)
		c.finalLog = c.in.log.Messages(0)
		c.finalN = c.in.log.Count()
		c.in.log.Free()
		c.in.log = nil
		if c.finalLog == nil {
			c.finalLog = []vkc.Message{}
		}
		return nil
	}
	vulkan.DestroyInstance(c.in.inst, nil)
	return nil
}

// instPtr and devPtr convert vulkan-go handles (C pointer types of that
// package) to unsafe.Pointer for package vkc.
func instPtr(h vulkan.Instance) unsafe.Pointer      { return unsafe.Pointer(h) }
func devPtr(h vulkan.PhysicalDevice) unsafe.Pointer { return unsafe.Pointer(h) }
