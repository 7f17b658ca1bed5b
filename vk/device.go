package vk

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// DeviceType is the kind of a physical device (VkPhysicalDeviceType).
type DeviceType int

// The device types, with Vulkan's values.
const (
	DeviceOther      DeviceType = 0
	DeviceIntegrated DeviceType = 1
	DeviceDiscrete   DeviceType = 2
	DeviceVirtual    DeviceType = 3
	DeviceCPU        DeviceType = 4
)

// String returns "discrete", "integrated", "virtual", "cpu" or "other".
func (t DeviceType) String() string {
	switch t {
	case DeviceIntegrated:
		return "integrated"
	case DeviceDiscrete:
		return "discrete"
	case DeviceVirtual:
		return "virtual"
	case DeviceCPU:
		return "cpu"
	}
	return "other"
}

// rank orders device types for Open's default choice: discrete GPUs first,
// then integrated, virtual, CPU (lavapipe), other.
func (t DeviceType) rank() int {
	switch t {
	case DeviceDiscrete:
		return 0
	case DeviceIntegrated:
		return 1
	case DeviceVirtual:
		return 2
	case DeviceCPU:
		return 3
	}
	return 4
}

// SubgroupOps is a VkSubgroupFeatureFlags mask.
type SubgroupOps uint32

// Subgroup operations the kernels rely on.
const (
	SubgroupBasic      SubgroupOps = 1 << 0
	SubgroupVote       SubgroupOps = 1 << 1
	SubgroupArithmetic SubgroupOps = 1 << 2
	SubgroupBallot     SubgroupOps = 1 << 3
	SubgroupShuffle    SubgroupOps = 1 << 4
	SubgroupClustered  SubgroupOps = 1 << 6
)

// String lists the operations, e.g. "basic,vote,arithmetic,ballot,shuffle,quad".
func (o SubgroupOps) String() string {
	names := []string{"basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle_relative", "clustered", "quad"}
	var s []string
	for i, n := range names {
		if o&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	return strings.Join(s, ",")
}

// Heap is one memory heap of a device.
type Heap struct {
	Size        uint64 // bytes
	DeviceLocal bool
}

// Limits are the device limits the kernels are sized by.
type Limits struct {
	MaxStorageBufferRange           uint64 // largest descriptor range of a storage buffer
	MinStorageBufferOffsetAlignment uint64 // alignment of a storage-buffer binding's offset
	MaxMemoryAllocationSize         uint64 // largest single allocation
	MaxComputeSharedMemorySize      uint32 // bytes of shared memory per workgroup
	MaxStorageBuffersPerStage       uint32 // storage buffers one kernel may bind (maxPerStageDescriptorStorageBuffers)
	MaxComputeWorkGroupCount        [3]uint32
	MaxComputeWorkGroupSize         [3]uint32
	MaxComputeWorkGroupInvocations  uint32
	MaxPushConstantsSize            uint32
	TimestampPeriod                 float32 // ns per timestamp tick
}

// DeviceInfo describes one physical device.
type DeviceInfo struct {
	Index      int    // position in the loader's enumeration, for Open("<index>")
	Name       string // e.g. "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)"
	Type       DeviceType
	VendorID   uint32
	DeviceID   uint32
	DriverName string // e.g. "NVIDIA", "llvmpipe"
	DriverInfo string // e.g. "580.159.04", "Mesa 22.3.6 (LLVM 15.0.6)"
	APIVersion uint32 // packed; see APIString

	SubgroupSize                     uint32 // default subgroup size of compute shaders
	MinSubgroupSize, MaxSubgroupSize uint32 // range a shader may run with
	SubgroupOps                      SubgroupOps
	SubgroupCompute                  bool // subgroup operations are supported in compute shaders

	// Features the kernels may use (all enabled by Open when present).
	StorageBuffer16Bit, StorageBuffer8Bit bool
	Float16, Int8, Int16, Int64           bool

	// KernelStats reports that the device can capture its kernels' compiler
	// statistics (VK_KHR_pipeline_executable_properties with its
	// pipelineExecutableInfo feature); Options.KernelStats enables it.
	KernelStats bool
	// ShaderClock reports that kernels can read a device-scope clock shared
	// by every workgroup (VK_KHR_shader_clock's shaderDeviceClock), which
	// SparseOptions.Trace needs; Open enables it wherever it exists.
	ShaderClock bool
	// FullSubgroups reports that pipelines can require full subgroups
	// (computeFullSubgroups: Vulkan 1.3's, or before 1.3
	// VK_EXT_subgroup_size_control's; VK_PIPELINE_SHADER_STAGE_CREATE_
	// REQUIRE_FULL_SUBGROUPS_BIT). Open enables it wherever the device has
	// it (with the extension before 1.3), and every kernel whose workgroup
	// is a multiple of the largest subgroup size then requests full
	// subgroups (doc.go says why).
	FullSubgroups bool
	// HostImportAlignment is the alignment of host memory the device can
	// import (VK_EXT_external_memory_host's minImportedHostPointerAlignment),
	// or 0 where it cannot; Open enables the extension wherever it exists.
	HostImportAlignment uint64

	// ComputeUnits is the number of streaming multiprocessors (NVIDIA) or
	// compute units (AMD), the CPU count for a CPU device, or 0 when the
	// device does not say. The split heuristics fill this many units.
	ComputeUnits int

	// ComputeQueues is the number of queues of the compute queue family.
	// Open takes two where there are (the second for QueueOverlap), else
	// one; every kernel runs on the first.
	ComputeQueues int

	Heaps              []Heap
	Limits             Limits
	TimestampValidBits uint32 // of the compute queue; 0: no timestamps

	computeQueue uint32           // queue family index used by Open
	memTypes     []vkc.MemoryType // the device's memory types
	usable       error            // why Open cannot use this device, or nil
}

// APIString formats the device's Vulkan version, e.g. "1.3.230".
func (d DeviceInfo) APIString() string { return vkc.VersionString(d.APIVersion) }

// Usable reports why Open cannot run the kernels on the device (no compute
// queue, Vulkan older than 1.2, no subgroup shuffle in compute), or nil.
func (d DeviceInfo) Usable() error { return d.usable }

// Devices lists every physical device the Vulkan loader finds. It creates and
// destroys a Vulkan instance of its own.
func Devices() ([]DeviceInfo, error) {
	in, err := newInstance(false)
	if err != nil {
		return nil, err
	}
	defer in.destroy()
	infos, _, err := in.devices()
	return infos, err
}

// DescribeDevices writes the properties that matter for the kernels of every
// device to w, one block per device, marking the one Open("") would pick; it
// is the `hata devices` command.
func DescribeDevices(w io.Writer) error {
	if err := checkEnvSwitches(); err != nil {
		return err
	}
	infos, err := Devices()
	if err != nil {
		return err
	}
	pick, perr := chooseDevice(infos, os.Getenv(EnvDevice))
	for i, d := range infos {
		mark := ""
		if perr == nil && i == pick {
			mark = "  <- default"
		}
		fmt.Fprintf(w, "%d: %s (%s, vendor %#04x device %#04x)%s\n", d.Index, d.Name, d.Type, d.VendorID, d.DeviceID, mark)
		fmt.Fprintf(w, "   api %s, driver %s %s\n", d.APIString(), d.DriverName, d.DriverInfo)
		fmt.Fprintf(w, "   subgroup %d (min %d, max %d), ops [%s], compute units %d, compute queues %d\n",
			d.SubgroupSize, d.MinSubgroupSize, d.MaxSubgroupSize, d.SubgroupOps, d.ComputeUnits, d.ComputeQueues)
		fmt.Fprintf(w, "   16-bit storage %v, 8-bit storage %v, float16 %v, int8 %v, int64 %v, kernel statistics %v, shader clock %v, full subgroups %v\n",
			d.StorageBuffer16Bit, d.StorageBuffer8Bit, d.Float16, d.Int8, d.Int64, d.KernelStats, d.ShaderClock, d.FullSubgroups)
		l := d.Limits
		fmt.Fprintf(w, "   maxStorageBufferRange %s, maxMemoryAllocationSize %s, shared memory %d B\n",
			bytesString(l.MaxStorageBufferRange), bytesString(l.MaxMemoryAllocationSize), l.MaxComputeSharedMemorySize)
		fmt.Fprintf(w, "   workgroup count %v, size %v, invocations %d, push constants %d B\n",
			l.MaxComputeWorkGroupCount, l.MaxComputeWorkGroupSize, l.MaxComputeWorkGroupInvocations, l.MaxPushConstantsSize)
		fmt.Fprintf(w, "   timestamps: period %g ns, %d valid bits\n", l.TimestampPeriod, d.TimestampValidBits)
		if d.HostImportAlignment > 0 {
			fmt.Fprintf(w, "   imports host memory (VK_EXT_external_memory_host, $%s): %d-byte alignment\n", EnvHostHugePages, d.HostImportAlignment)
		} else {
			fmt.Fprintf(w, "   imports no host memory (no VK_EXT_external_memory_host: $%s cannot open it)\n", EnvHostHugePages)
		}
		for h, hp := range d.Heaps {
			loc := "host"
			if hp.DeviceLocal {
				loc = "device-local"
			}
			fmt.Fprintf(w, "   heap %d: %s %s\n", h, bytesString(hp.Size), loc)
		}
		if d.usable != nil {
			fmt.Fprintf(w, "   not usable: %v\n", d.usable)
			continue
		}
		// Opening it runs CheckSubgroups: say what the kernels would meet.
		c, err := OpenWith(Options{Device: strconv.Itoa(d.Index)})
		if err != nil {
			fmt.Fprintf(w, "   does not open: %v\n", err)
			continue
		}
		if sizes := c.subgroupCheckSizes(); len(sizes) > 0 {
			fmt.Fprintf(w, "   subgroup check passed: full subgroups, lanes in invocation order, in workgroups of %d to %d\n", sizes[0], sizes[len(sizes)-1])
		}
		c.Close()
	}
	if perr != nil {
		return fmt.Errorf("no default device: %w", perr)
	}
	return nil
}

// chooseDevice returns the index into infos of the device sel names: a
// decimal index, or a case-insensitive substring of the name. An empty sel
// picks the first usable device in the order discrete, integrated, virtual,
// CPU, other.
func chooseDevice(infos []DeviceInfo, sel string) (int, error) {
	if len(infos) == 0 {
		return 0, fmt.Errorf("vk: no Vulkan devices (install a driver; for the CPU one, Debian: mesa-vulkan-drivers)")
	}
	sel = strings.TrimSpace(sel)
	if sel != "" {
		if i, err := strconv.Atoi(sel); err == nil {
			if i < 0 || i >= len(infos) {
				return 0, fmt.Errorf("vk: device index %d out of range: %d devices", i, len(infos))
			}
			return i, infos[i].usableErr()
		}
		for i, d := range infos {
			if strings.Contains(strings.ToLower(d.Name), strings.ToLower(sel)) {
				return i, d.usableErr()
			}
		}
		return 0, fmt.Errorf("vk: no device name contains %q (have %s)", sel, deviceNames(infos))
	}
	best := -1
	for i, d := range infos {
		if d.usable != nil {
			continue
		}
		if best < 0 || d.Type.rank() < infos[best].Type.rank() {
			best = i
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("vk: no usable device among %s: %v", deviceNames(infos), infos[0].usable)
	}
	return best, nil
}

func (d DeviceInfo) usableErr() error {
	if d.usable != nil {
		return fmt.Errorf("vk: device %d %q: %w", d.Index, d.Name, d.usable)
	}
	return nil
}

func deviceNames(infos []DeviceInfo) string {
	var s []string
	for _, d := range infos {
		s = append(s, fmt.Sprintf("%d %q", d.Index, d.Name))
	}
	return strings.Join(s, ", ")
}

// describe queries physical device pd. A device the kernels cannot use is
// described as far as it can be, with the reason in usable.
func describe(inst vulkan.Instance, pd vulkan.PhysicalDevice, index int) DeviceInfo {
	p, err := vkc.Query(instPtr(inst), devPtr(pd))
	d := DeviceInfo{
		Index:      index,
		Name:       p.Name,
		Type:       DeviceType(p.Type),
		VendorID:   p.VendorID,
		DeviceID:   p.DeviceID,
		APIVersion: p.APIVersion,
		DriverName: p.DriverName,
		DriverInfo: p.DriverInfo,
		Limits: Limits{
			MaxStorageBufferRange:           p.MaxStorageBufferRange,
			MinStorageBufferOffsetAlignment: p.MinStorageBufferOffsetAlignment,
			MaxMemoryAllocationSize:         p.MaxMemoryAllocationSize,
			MaxComputeSharedMemorySize:      p.MaxComputeSharedMemorySize,
			MaxStorageBuffersPerStage:       p.MaxStorageBuffersPerStage,
			MaxComputeWorkGroupCount:        p.MaxComputeWorkGroupCount,
			MaxComputeWorkGroupSize:         p.MaxComputeWorkGroupSize,
			MaxComputeWorkGroupInvocations:  p.MaxComputeWorkGroupInvocations,
			MaxPushConstantsSize:            p.MaxPushConstantsSize,
			TimestampPeriod:                 p.TimestampPeriod,
		},
		SubgroupSize:        p.SubgroupSize,
		MinSubgroupSize:     p.MinSubgroupSize,
		MaxSubgroupSize:     p.MaxSubgroupSize,
		SubgroupOps:         SubgroupOps(p.SubgroupOps),
		SubgroupCompute:     p.SubgroupStages&uint32(vulkan.ShaderStageComputeBit) != 0,
		StorageBuffer16Bit:  p.Features.StorageBuffer16BitAccess,
		StorageBuffer8Bit:   p.Features.StorageBuffer8BitAccess,
		Float16:             p.Features.ShaderFloat16,
		Int8:                p.Features.ShaderInt8,
		Int16:               p.Features.ShaderInt16,
		Int64:               p.Features.ShaderInt64,
		KernelStats:         p.Features.PipelineExecutableInfo,
		ShaderClock:         p.Features.ShaderDeviceClock,
		FullSubgroups:       p.Features.ComputeFullSubgroups,
		HostImportAlignment: p.HostImportAlignment,
		TimestampValidBits:  p.TimestampValidBits,
		memTypes:            p.MemoryTypes,
	}
	for _, h := range p.Heaps {
		d.Heaps = append(d.Heaps, Heap{Size: h.Size, DeviceLocal: h.Flags&uint32(vulkan.MemoryHeapDeviceLocalBit) != 0})
	}
	switch {
	case p.SMCount > 0:
		d.ComputeUnits = int(p.SMCount)
	case p.AMDComputeUnits > 0:
		d.ComputeUnits = int(p.AMDComputeUnits)
	case d.Type == DeviceCPU:
		d.ComputeUnits = runtime.NumCPU()
	}
	switch {
	case err != nil:
		d.usable = err
	case p.ComputeFamily < 0:
		d.usable = fmt.Errorf("no compute queue")
	case d.APIVersion < vulkan.MakeVersion(1, 2, 0):
		d.usable = fmt.Errorf("Vulkan %s, the kernels need 1.2", d.APIString())
	case !d.SubgroupCompute || d.SubgroupOps&(SubgroupBasic|SubgroupShuffle) != SubgroupBasic|SubgroupShuffle:
		d.usable = fmt.Errorf("subgroup basic+shuffle operations in compute shaders are missing (ops [%s])", d.SubgroupOps)
	}
	d.computeQueue = uint32(max(p.ComputeFamily, 0))
	d.ComputeQueues = p.ComputeQueues
	return d
}

// bytesString formats a byte count in binary units, e.g. "128 MiB".
func bytesString(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.4g MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4g KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
