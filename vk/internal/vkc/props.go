package vkc

/*
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

typedef struct {
	char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
	uint32_t type, vendorID, deviceID, driverVersion;
	uint64_t maxStorageBufferRange, minStorageBufferOffsetAlignment;
	uint32_t maxComputeSharedMemorySize, maxComputeWorkGroupCount[3], maxComputeWorkGroupSize[3];
	uint32_t maxComputeWorkGroupInvocations, maxPushConstantsSize;
	uint32_t maxPerStageDescriptorStorageBuffers;
	float timestampPeriod;
	uint32_t heapCount, typeCount;
	uint64_t heapSize[VK_MAX_MEMORY_HEAPS];
	uint32_t heapFlags[VK_MAX_MEMORY_HEAPS];
	uint32_t typeFlags[VK_MAX_MEMORY_TYPES], typeHeap[VK_MAX_MEMORY_TYPES];
	int32_t computeFamily;
	uint32_t computeQueues;
	uint32_t timestampValidBits;
	uint32_t apiVersion, driverID;
	char driverName[VK_MAX_DRIVER_NAME_SIZE];
	char driverInfo[VK_MAX_DRIVER_INFO_SIZE];
	uint32_t subgroupSize, subgroupStages, subgroupOps;
	uint32_t minSubgroupSize, maxSubgroupSize;
	uint64_t maxMemoryAllocationSize;
	uint32_t smCount, amdComputeUnits;
	uint32_t shaderInt64, shaderInt16, shaderFloat64;
	uint32_t storageBuffer16BitAccess, storageBuffer8BitAccess;
	uint32_t shaderFloat16, shaderInt8;
	uint32_t subgroupSizeControl, computeFullSubgroups;
	uint32_t pipelineExecutableInfo;
	uint32_t shaderDeviceClock;
	uint64_t hostImportAlignment;
} vkc_props;

static int vkc_has_ext(VkExtensionProperties* exts, uint32_t n, const char* name) {
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(exts[i].extensionName, name) == 0) return 1;
	return 0;
}

// vkc_query fills out from vkGetPhysicalDeviceProperties2/Features2, chaining
// only the structures that the device's API version or extensions allow (a
// structure the device does not know is a validation error). Returns 0, or -1
// when the 1.1 entry points are missing, or a negative VkResult.
static int vkc_query(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkPhysicalDevice pd, vkc_props* out) {
	PFN_vkGetPhysicalDeviceProperties gp =
		(PFN_vkGetPhysicalDeviceProperties)gipa(inst, "vkGetPhysicalDeviceProperties");
	PFN_vkGetPhysicalDeviceProperties2 gp2 =
		(PFN_vkGetPhysicalDeviceProperties2)gipa(inst, "vkGetPhysicalDeviceProperties2");
	PFN_vkGetPhysicalDeviceFeatures2 gf2 =
		(PFN_vkGetPhysicalDeviceFeatures2)gipa(inst, "vkGetPhysicalDeviceFeatures2");
	PFN_vkEnumerateDeviceExtensionProperties ede =
		(PFN_vkEnumerateDeviceExtensionProperties)gipa(inst, "vkEnumerateDeviceExtensionProperties");
	if (!gp || !gp2 || !gf2 || !ede) return -1;


	PFN_vkGetPhysicalDeviceMemoryProperties gmp =
		(PFN_vkGetPhysicalDeviceMemoryProperties)gipa(inst, "vkGetPhysicalDeviceMemoryProperties");
	PFN_vkGetPhysicalDeviceQueueFamilyProperties gqf =
		(PFN_vkGetPhysicalDeviceQueueFamilyProperties)gipa(inst, "vkGetPhysicalDeviceQueueFamilyProperties");
	if (!gmp || !gqf) return -1;

	// Vulkan 1.0 properties.
	VkPhysicalDeviceProperties p0;
	gp(pd, &p0);
	memcpy(out->name, p0.deviceName, sizeof(out->name));
	out->type = p0.deviceType;
	out->vendorID = p0.vendorID;
	out->deviceID = p0.deviceID;
	out->driverVersion = p0.driverVersion;
	const VkPhysicalDeviceLimits* l = &p0.limits;
	out->maxStorageBufferRange = l->maxStorageBufferRange;
	out->minStorageBufferOffsetAlignment = l->minStorageBufferOffsetAlignment;
	out->maxComputeSharedMemorySize = l->maxComputeSharedMemorySize;
	out->maxPerStageDescriptorStorageBuffers = l->maxPerStageDescriptorStorageBuffers;
	for (int i = 0; i < 3; i++) {
		out->maxComputeWorkGroupCount[i] = l->maxComputeWorkGroupCount[i];
		out->maxComputeWorkGroupSize[i] = l->maxComputeWorkGroupSize[i];
	}
	out->maxComputeWorkGroupInvocations = l->maxComputeWorkGroupInvocations;
	out->maxPushConstantsSize = l->maxPushConstantsSize;
	out->timestampPeriod = l->timestampPeriod;
	VkPhysicalDeviceMemoryProperties mp;
	gmp(pd, &mp);
	out->heapCount = mp.memoryHeapCount;
	for (uint32_t i = 0; i < mp.memoryHeapCount; i++) {
		out->heapSize[i] = mp.memoryHeaps[i].size;
		out->heapFlags[i] = mp.memoryHeaps[i].flags;
	}
	out->typeCount = mp.memoryTypeCount;
	for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
		out->typeFlags[i] = mp.memoryTypes[i].propertyFlags;
		out->typeHeap[i] = mp.memoryTypes[i].heapIndex;
	}
	uint32_t nq = 0;
	gqf(pd, &nq, NULL);
	VkQueueFamilyProperties* qf = calloc(nq ? nq : 1, sizeof(*qf));
	if (!qf) return (int)VK_ERROR_OUT_OF_HOST_MEMORY;
	gqf(pd, &nq, qf);
	out->computeFamily = -1;
	for (uint32_t i = 0; i < nq; i++) {
		if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
			out->computeFamily = (int32_t)i;
			out->computeQueues = qf[i].queueCount;
			out->timestampValidBits = qf[i].timestampValidBits;
			break;
		}
	}
	free(qf);

	uint32_t api = p0.apiVersion;
	out->apiVersion = api;
	if (api < VK_API_VERSION_1_1) return -2;

	uint32_t n = 0;
	VkResult r = ede(pd, NULL, &n, NULL);
	if (r != VK_SUCCESS) return (int)r;
	VkExtensionProperties* exts = calloc(n ? n : 1, sizeof(*exts));
	if (!exts) return (int)VK_ERROR_OUT_OF_HOST_MEMORY;
	r = ede(pd, NULL, &n, exts);
	if (r != VK_SUCCESS) { free(exts); return (int)r; }
	int v12 = api >= VK_API_VERSION_1_2, v13 = api >= VK_API_VERSION_1_3;
	int drvExt = v12 || vkc_has_ext(exts, n, "VK_KHR_driver_properties");
	int sgcExt = v13 || vkc_has_ext(exts, n, "VK_EXT_subgroup_size_control");
	int smExt = vkc_has_ext(exts, n, "VK_NV_shader_sm_builtins");
	int amdExt = vkc_has_ext(exts, n, "VK_AMD_shader_core_properties");
	int f16Ext = v12 || vkc_has_ext(exts, n, "VK_KHR_shader_float16_int8");
	int s8Ext = v12 || vkc_has_ext(exts, n, "VK_KHR_8bit_storage");
	int pepExt = vkc_has_ext(exts, n, "VK_KHR_pipeline_executable_properties");
	int clkExt = vkc_has_ext(exts, n, "VK_KHR_shader_clock");
	int hostExt = vkc_has_ext(exts, n, "VK_EXT_external_memory_host");
	free(exts);

	// Properties: 1.1 core structures, then the optional ones.
	VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
	VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sg};
	VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
	VkPhysicalDeviceSubgroupSizeControlProperties sgc = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
	VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
	VkPhysicalDeviceShaderCorePropertiesAMD amd = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD};
	void* head = &m3;
	if (drvExt) { drv.pNext = head; head = &drv; }
	if (sgcExt) { sgc.pNext = head; head = &sgc; }
	if (smExt) { sm.pNext = head; head = &sm; }
	if (amdExt) { amd.pNext = head; head = &amd; }
	VkPhysicalDeviceExternalMemoryHostPropertiesEXT host = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
	if (hostExt) { host.pNext = head; head = &host; }
	VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = head};
	gp2(pd, &p2);

	// Features: 1.1 core 16-bit storage, then float16/int8 and 8-bit storage.
	VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
	VkPhysicalDeviceShaderFloat16Int8Features f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
	VkPhysicalDevice8BitStorageFeatures s8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
	VkPhysicalDeviceSubgroupSizeControlFeatures sgcf = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
	VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pep = {
		.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
	head = &s16;
	if (f16Ext) { f16.pNext = head; head = &f16; }
	if (s8Ext) { s8.pNext = head; head = &s8; }
	if (sgcExt) { sgcf.pNext = head; head = &sgcf; }
	if (pepExt) { pep.pNext = head; head = &pep; }
	VkPhysicalDeviceShaderClockFeaturesKHR clk = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CLOCK_FEATURES_KHR};
	if (clkExt) { clk.pNext = head; head = &clk; }
	VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = head};
	gf2(pd, &f2);

	out->driverID = drv.driverID;
	memcpy(out->driverName, drv.driverName, sizeof(out->driverName));
	memcpy(out->driverInfo, drv.driverInfo, sizeof(out->driverInfo));
	out->subgroupSize = sg.subgroupSize;
	out->subgroupStages = sg.supportedStages;
	out->subgroupOps = sg.supportedOperations;
	out->minSubgroupSize = sgcExt ? sgc.minSubgroupSize : sg.subgroupSize;
	out->maxSubgroupSize = sgcExt ? sgc.maxSubgroupSize : sg.subgroupSize;
	out->maxMemoryAllocationSize = m3.maxMemoryAllocationSize;
	out->smCount = smExt ? sm.shaderSMCount : 0;
	out->amdComputeUnits = amdExt ? amd.shaderEngineCount * amd.shaderArraysPerEngineCount * amd.computeUnitsPerShaderArray : 0;
	out->shaderInt64 = f2.features.shaderInt64;
	out->shaderInt16 = f2.features.shaderInt16;
	out->shaderFloat64 = f2.features.shaderFloat64;
	out->storageBuffer16BitAccess = s16.storageBuffer16BitAccess;
	out->storageBuffer8BitAccess = s8Ext ? s8.storageBuffer8BitAccess : 0;
	out->shaderFloat16 = f16Ext ? f16.shaderFloat16 : 0;
	out->shaderInt8 = f16Ext ? f16.shaderInt8 : 0;
	out->subgroupSizeControl = sgcExt ? sgcf.subgroupSizeControl : 0;
	out->computeFullSubgroups = sgcExt ? sgcf.computeFullSubgroups : 0;
	out->pipelineExecutableInfo = pepExt ? pep.pipelineExecutableInfo : 0;
	out->shaderDeviceClock = clkExt ? clk.shaderDeviceClock : 0;
	out->hostImportAlignment = hostExt ? host.minImportedHostPointerAlignment : 0;
	return 0;
}

// vkc_feature_chain allocates the pNext chain of VkDeviceCreateInfo enabling
// the given features: VkPhysicalDeviceFeatures2 -> Vulkan11Features ->
// Vulkan12Features [-> Vulkan13Features when v13, else ->
// SubgroupSizeControlFeatures when f->subgroupSizeControl or
// f->computeFullSubgroups] [->
// PipelineExecutablePropertiesFeaturesKHR when f->pipelineExecutableInfo]
// [-> ShaderClockFeaturesKHR (shaderDeviceClock) when f->shaderDeviceClock];
// the device must then enable their extensions. The device must support
// Vulkan 1.2. Free with vkc_free_chain.
static void* vkc_feature_chain(const vkc_props* f, int v13) {
	VkPhysicalDeviceFeatures2* f2 = calloc(1, sizeof(*f2));
	VkPhysicalDeviceVulkan11Features* f11 = calloc(1, sizeof(*f11));
	VkPhysicalDeviceVulkan12Features* f12 = calloc(1, sizeof(*f12));
	VkPhysicalDeviceVulkan13Features* f13 = calloc(1, sizeof(*f13));
	VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR* pep = calloc(1, sizeof(*pep));
	VkPhysicalDeviceShaderClockFeaturesKHR* clk = calloc(1, sizeof(*clk));
	VkPhysicalDeviceSubgroupSizeControlFeatures* sgc = calloc(1, sizeof(*sgc));
	if (!f2 || !f11 || !f12 || !f13 || !pep || !clk || !sgc) { free(f2); free(f11); free(f12); free(f13); free(pep); free(clk); free(sgc); return NULL; }
	f2->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
	f2->pNext = f11;
	f2->features.shaderInt64 = f->shaderInt64 ? VK_TRUE : VK_FALSE;
	f2->features.shaderInt16 = f->shaderInt16 ? VK_TRUE : VK_FALSE;
	f11->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
	f11->pNext = f12;
	f11->storageBuffer16BitAccess = f->storageBuffer16BitAccess ? VK_TRUE : VK_FALSE;
	f12->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
	f12->storageBuffer8BitAccess = f->storageBuffer8BitAccess ? VK_TRUE : VK_FALSE;
	f12->shaderFloat16 = f->shaderFloat16 ? VK_TRUE : VK_FALSE;
	f12->shaderInt8 = f->shaderInt8 ? VK_TRUE : VK_FALSE;
	f13->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
	f13->subgroupSizeControl = f->subgroupSizeControl ? VK_TRUE : VK_FALSE;
	f13->computeFullSubgroups = f->computeFullSubgroups ? VK_TRUE : VK_FALSE;
	pep->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR;
	pep->pipelineExecutableInfo = VK_TRUE;
	VkBaseOutStructure* tail = (VkBaseOutStructure*)f12;
	if (v13) { f12->pNext = f13; tail = (VkBaseOutStructure*)f13; } else free(f13);
	// Before 1.3, VK_EXT_subgroup_size_control's structure (the same one,
	// promoted) carries the two features; the device must enable the
	// extension.
	sgc->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES;
	sgc->subgroupSizeControl = f->subgroupSizeControl ? VK_TRUE : VK_FALSE;
	sgc->computeFullSubgroups = f->computeFullSubgroups ? VK_TRUE : VK_FALSE;
	if (!v13 && (f->subgroupSizeControl || f->computeFullSubgroups)) { tail->pNext = (VkBaseOutStructure*)sgc; tail = (VkBaseOutStructure*)sgc; } else free(sgc);
	if (f->pipelineExecutableInfo) { tail->pNext = (VkBaseOutStructure*)pep; tail = (VkBaseOutStructure*)pep; } else free(pep);
	clk->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CLOCK_FEATURES_KHR;
	clk->shaderDeviceClock = VK_TRUE;
	if (f->shaderDeviceClock) tail->pNext = (VkBaseOutStructure*)clk; else free(clk);
	return f2;
}

// vkc_free_chain frees every structure of a chain vkc_feature_chain made.
static void vkc_free_chain(void* p) {
	VkBaseOutStructure* s = p;
	while (s) {
		VkBaseOutStructure* next = s->pNext;
		free(s);
		s = next;
	}
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Heap is a memory heap: its size and VkMemoryHeapFlags.
type Heap struct {
	Size  uint64
	Flags uint32
}

// MemoryType is a memory type: its VkMemoryPropertyFlags and heap index.
type MemoryType struct {
	Flags uint32
	Heap  int
}

// Props are the properties and features of a physical device.
type Props struct {
	Name                            string
	Type                            uint32 // VkPhysicalDeviceType
	VendorID, DeviceID              uint32
	MaxStorageBufferRange           uint64
	MinStorageBufferOffsetAlignment uint64
	MaxComputeSharedMemorySize      uint32
	MaxStorageBuffersPerStage       uint32 // maxPerStageDescriptorStorageBuffers
	MaxComputeWorkGroupCount        [3]uint32
	MaxComputeWorkGroupSize         [3]uint32
	MaxComputeWorkGroupInvocations  uint32
	MaxPushConstantsSize            uint32
	TimestampPeriod                 float32
	Heaps                           []Heap
	MemoryTypes                     []MemoryType
	ComputeFamily                   int    // first queue family with compute, or -1
	ComputeQueues                   int    // queues of that family
	TimestampValidBits              uint32 // of that family

	APIVersion     uint32 // VkPhysicalDeviceProperties.apiVersion
	DriverID       uint32 // VkDriverId; 0 when the device cannot say
	DriverName     string // e.g. "llvmpipe", "NVIDIA"
	DriverInfo     string // e.g. "Mesa 22.3.6 (LLVM 15.0.6)", "580.159.04"
	SubgroupSize   uint32 // the default subgroup size of compute shaders
	SubgroupStages uint32 // VkShaderStageFlags with subgroup support
	SubgroupOps    uint32 // VkSubgroupFeatureFlags
	// MinSubgroupSize and MaxSubgroupSize bound the subgroup size a shader may
	// run with (equal to SubgroupSize without VK_EXT_subgroup_size_control).
	MinSubgroupSize, MaxSubgroupSize uint32
	MaxMemoryAllocationSize          uint64 // largest single vkAllocateMemory
	SMCount                          uint32 // NVIDIA streaming multiprocessors (VK_NV_shader_sm_builtins), else 0
	AMDComputeUnits                  uint32 // AMD compute units (VK_AMD_shader_core_properties), else 0
	// HostImportAlignment is VK_EXT_external_memory_host's
	// minImportedHostPointerAlignment, or 0 where the device lacks the
	// extension: host memory the process allocated may back a buffer
	// (Device.ImportHostMemory) when its address and size are multiples.
	HostImportAlignment uint64
	Features            Features
}

// Features are the optional device features the kernels may use; Open enables
// every one the device supports.
type Features struct {
	ShaderInt64, ShaderInt16, ShaderFloat64           bool
	StorageBuffer16BitAccess, StorageBuffer8BitAccess bool
	ShaderFloat16, ShaderInt8                         bool
	SubgroupSizeControl, ComputeFullSubgroups         bool
	// PipelineExecutableInfo is VK_KHR_pipeline_executable_properties'
	// feature (queried only when the device offers the extension): the
	// compiler's statistics of each pipeline can be read. Unlike the others,
	// Open enables it only when asked to (with the extension).
	PipelineExecutableInfo bool
	// ShaderDeviceClock is VK_KHR_shader_clock's device-scope clock
	// (queried only when the device offers the extension): kernels may read
	// a clock that every workgroup shares (clockRealtime2x32EXT), for traces.
	// Open enables it, with the extension, wherever it exists.
	ShaderDeviceClock bool
}

// Query returns the properties of the physical device pd of instance inst
// (vulkan-go handles, passed as unsafe.Pointer): the 1.0 properties, memory
// heaps and types and the compute queue family, then, from
// vkGetPhysicalDeviceProperties2 and vkGetPhysicalDeviceFeatures2, the rest.
// The pNext chains live on the C stack. For a device older than Vulkan 1.2
// it returns the 1.0 part and an error saying so.
func Query(inst, pd unsafe.Pointer) (Props, error) {
	if gipa == nil {
		return Props{}, errors.New("vulkan: Query before Load")
	}
	var out C.vkc_props // Go memory without Go pointers: may be passed to C
	rc := C.vkc_query(C.PFN_vkGetInstanceProcAddr(gipa), C.VkInstance(inst), C.VkPhysicalDevice(pd), &out)
	if rc == -1 {
		return Props{}, errors.New("vulkan: the loader lacks vkGetPhysicalDeviceProperties2 (Vulkan 1.1)")
	}
	p := Props{
		Name:                            C.GoString(&out.name[0]),
		Type:                            uint32(out._type),
		VendorID:                        uint32(out.vendorID),
		DeviceID:                        uint32(out.deviceID),
		MaxStorageBufferRange:           uint64(out.maxStorageBufferRange),
		MinStorageBufferOffsetAlignment: uint64(out.minStorageBufferOffsetAlignment),
		MaxComputeSharedMemorySize:      uint32(out.maxComputeSharedMemorySize),
		MaxStorageBuffersPerStage:       uint32(out.maxPerStageDescriptorStorageBuffers),
		MaxComputeWorkGroupInvocations:  uint32(out.maxComputeWorkGroupInvocations),
		MaxPushConstantsSize:            uint32(out.maxPushConstantsSize),
		TimestampPeriod:                 float32(out.timestampPeriod),
		ComputeFamily:                   int(out.computeFamily),
		ComputeQueues:                   int(out.computeQueues),
		TimestampValidBits:              uint32(out.timestampValidBits),
		APIVersion:                      uint32(out.apiVersion),
	}
	for i := range 3 {
		p.MaxComputeWorkGroupCount[i] = uint32(out.maxComputeWorkGroupCount[i])
		p.MaxComputeWorkGroupSize[i] = uint32(out.maxComputeWorkGroupSize[i])
	}
	for i := range int(out.heapCount) {
		p.Heaps = append(p.Heaps, Heap{Size: uint64(out.heapSize[i]), Flags: uint32(out.heapFlags[i])})
	}
	for i := range int(out.typeCount) {
		p.MemoryTypes = append(p.MemoryTypes, MemoryType{Flags: uint32(out.typeFlags[i]), Heap: int(out.typeHeap[i])})
	}
	switch {
	case rc == -2:
		return p, fmt.Errorf("Vulkan %s, the kernels need 1.2", VersionString(p.APIVersion))
	case rc != 0:
		return p, Check("vkEnumerateDeviceExtensionProperties", int32(rc))
	}
	b := func(v C.uint32_t) bool { return v != 0 }
	p2 := Props{
		APIVersion:              uint32(out.apiVersion),
		DriverID:                uint32(out.driverID),
		DriverName:              C.GoString(&out.driverName[0]),
		DriverInfo:              C.GoString(&out.driverInfo[0]),
		SubgroupSize:            uint32(out.subgroupSize),
		SubgroupStages:          uint32(out.subgroupStages),
		SubgroupOps:             uint32(out.subgroupOps),
		MinSubgroupSize:         uint32(out.minSubgroupSize),
		MaxSubgroupSize:         uint32(out.maxSubgroupSize),
		MaxMemoryAllocationSize: uint64(out.maxMemoryAllocationSize),
		SMCount:                 uint32(out.smCount),
		AMDComputeUnits:         uint32(out.amdComputeUnits),
		HostImportAlignment:     uint64(out.hostImportAlignment),
		Features: Features{
			ShaderInt64:              b(out.shaderInt64),
			ShaderInt16:              b(out.shaderInt16),
			ShaderFloat64:            b(out.shaderFloat64),
			StorageBuffer16BitAccess: b(out.storageBuffer16BitAccess),
			StorageBuffer8BitAccess:  b(out.storageBuffer8BitAccess),
			ShaderFloat16:            b(out.shaderFloat16),
			ShaderInt8:               b(out.shaderInt8),
			SubgroupSizeControl:      b(out.subgroupSizeControl),
			ComputeFullSubgroups:     b(out.computeFullSubgroups),
			PipelineExecutableInfo:   b(out.pipelineExecutableInfo),
			ShaderDeviceClock:        b(out.shaderDeviceClock),
		},
	}
	p.DriverID, p.DriverName, p.DriverInfo = p2.DriverID, p2.DriverName, p2.DriverInfo
	p.SubgroupSize, p.SubgroupStages, p.SubgroupOps = p2.SubgroupSize, p2.SubgroupStages, p2.SubgroupOps
	p.MinSubgroupSize, p.MaxSubgroupSize = p2.MinSubgroupSize, p2.MaxSubgroupSize
	p.MaxMemoryAllocationSize, p.SMCount, p.AMDComputeUnits = p2.MaxMemoryAllocationSize, p2.SMCount, p2.AMDComputeUnits
	p.HostImportAlignment = p2.HostImportAlignment
	p.Features = p2.Features
	return p, nil
}

// Chain is a C-allocated pNext chain for VkDeviceCreateInfo.
type Chain struct{ p unsafe.Pointer }

// FeatureChain returns the pNext chain enabling f (VkPhysicalDeviceFeatures2
// and the Vulkan 1.1/1.2 feature structures, plus 1.3's when v13, else
// VkPhysicalDeviceSubgroupSizeControlFeatures where f asks for its features,
// for which CreateDevice must enable ExtSubgroupSizeControl, plus
// VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR when
// f.PipelineExecutableInfo, for which CreateDevice must enable
// ExtPipelineExecutableProperties, and VkPhysicalDeviceShaderClockFeaturesKHR
// when f.ShaderDeviceClock, with ExtShaderClock). The device must support Vulkan 1.2;
// VkDeviceCreateInfo.pEnabledFeatures must then be NULL. Free it after
// vkCreateDevice.
func FeatureChain(f Features, v13 bool) (*Chain, error) {
	i := func(v bool) C.uint32_t {
		if v {
			return 1
		}
		return 0
	}
	in := C.vkc_props{
		shaderInt64: i(f.ShaderInt64), shaderInt16: i(f.ShaderInt16),
		storageBuffer16BitAccess: i(f.StorageBuffer16BitAccess), storageBuffer8BitAccess: i(f.StorageBuffer8BitAccess),
		shaderFloat16: i(f.ShaderFloat16), shaderInt8: i(f.ShaderInt8),
		subgroupSizeControl: i(f.SubgroupSizeControl), computeFullSubgroups: i(f.ComputeFullSubgroups),
		pipelineExecutableInfo: i(f.PipelineExecutableInfo),
		shaderDeviceClock:      i(f.ShaderDeviceClock),
	}
	v := C.int(0)
	if v13 {
		v = 1
	}
	p := C.vkc_feature_chain(&in, v)
	if p == nil {
		return nil, errors.New("vulkan: feature chain: out of host memory")
	}
	return &Chain{p: p}, nil
}

// Ptr returns the chain's head, for VkDeviceCreateInfo.pNext.
func (c *Chain) Ptr() unsafe.Pointer { return c.p }

// Free releases the chain.
func (c *Chain) Free() {
	if c.p != nil {
		C.vkc_free_chain(c.p)
		c.p = nil
	}
}

// VersionString formats a packed Vulkan version as major.minor.patch.
func VersionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v>>22&0x7f, v>>12&0x3ff, v&0xfff)
}
