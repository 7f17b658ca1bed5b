package vkc

// The Vulkan calls whose arguments hold arrays of structures or nested
// pointers, made in C here instead of through vulkan-go. vulkan-go converts
// such arguments into C memory whose only owner is a cell with a GC finalizer
// (`defer runtime.SetFinalizer(&unpacked, ...)` in its cgo_helpers.go) that
// becomes unreachable as soon as the conversion returns: a garbage collection
// during the call frees the memory the driver is reading. It crashed
// vkCreateComputePipelines under `go test -race` here (SIGSEGV inside the
// driver). vulkan-go is kept for the calls whose arguments are scalars,
// handles and flat structures.

/*
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

static VkResult vkc_instance_layers(PFN_vkGetInstanceProcAddr gipa, char* names, uint32_t cap, uint32_t* n) {
	PFN_vkEnumerateInstanceLayerProperties f =
		(PFN_vkEnumerateInstanceLayerProperties)gipa(NULL, "vkEnumerateInstanceLayerProperties");
	if (!f) return VK_ERROR_INITIALIZATION_FAILED;
	uint32_t count = 0;
	VkResult r = f(&count, NULL);
	if (r != VK_SUCCESS) return r;
	VkLayerProperties* p = calloc(count ? count : 1, sizeof(*p));
	if (!p) return VK_ERROR_OUT_OF_HOST_MEMORY;
	r = f(&count, p);
	if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
		*n = 0;
		for (uint32_t i = 0; i < count && *n < cap; i++, (*n)++)
			memcpy(names + (size_t)i * VK_MAX_EXTENSION_NAME_SIZE, p[i].layerName, VK_MAX_EXTENSION_NAME_SIZE);
		r = VK_SUCCESS;
	}
	free(p);
	return r;
}

static VkResult vkc_layer_extensions(PFN_vkGetInstanceProcAddr gipa, const char* layer, char* names, uint32_t cap, uint32_t* n) {
	PFN_vkEnumerateInstanceExtensionProperties f =
		(PFN_vkEnumerateInstanceExtensionProperties)gipa(NULL, "vkEnumerateInstanceExtensionProperties");
	if (!f) return VK_ERROR_INITIALIZATION_FAILED;
	uint32_t count = 0;
	VkResult r = f(layer, &count, NULL);
	if (r != VK_SUCCESS) return r;
	VkExtensionProperties* p = calloc(count ? count : 1, sizeof(*p));
	if (!p) return VK_ERROR_OUT_OF_HOST_MEMORY;
	r = f(layer, &count, p);
	if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
		*n = 0;
		for (uint32_t i = 0; i < count && *n < cap; i++, (*n)++)
			memcpy(names + (size_t)i * VK_MAX_EXTENSION_NAME_SIZE, p[i].extensionName, VK_MAX_EXTENSION_NAME_SIZE);
		r = VK_SUCCESS;
	}
	free(p);
	return r;
}

static VkResult vkc_create_instance(PFN_vkGetInstanceProcAddr gipa, uint32_t api, const char** layers, uint32_t nl,
		const char** exts, uint32_t ne, void* next, VkInstance* out) {
	PFN_vkCreateInstance f = (PFN_vkCreateInstance)gipa(NULL, "vkCreateInstance");
	if (!f) return VK_ERROR_INITIALIZATION_FAILED;
	VkApplicationInfo app = {
		.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
		.pApplicationName = "hata", .pEngineName = "hata", .apiVersion = api,
	};
	VkInstanceCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pNext = next, .pApplicationInfo = &app,
		.enabledLayerCount = nl, .ppEnabledLayerNames = layers,
		.enabledExtensionCount = ne, .ppEnabledExtensionNames = exts,
	};
	return f(&ci, NULL, out);
}

static VkResult vkc_create_device(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkPhysicalDevice pd,
		uint32_t family, uint32_t queues, const char** exts, uint32_t ne, void* next, VkDevice* out) {
	PFN_vkCreateDevice f = (PFN_vkCreateDevice)gipa(inst, "vkCreateDevice");
	if (!f) return VK_ERROR_INITIALIZATION_FAILED;
	float prio[2] = {1.0f, 1.0f};
	if (queues < 1 || queues > 2) return VK_ERROR_INITIALIZATION_FAILED;
	VkDeviceQueueCreateInfo q = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
		.queueFamilyIndex = family, .queueCount = queues, .pQueuePriorities = prio,
	};
	VkDeviceCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = next,
		.queueCreateInfoCount = 1, .pQueueCreateInfos = &q,
		.enabledExtensionCount = ne, .ppEnabledExtensionNames = exts,
	};
	return f(pd, &ci, NULL, out);
}

typedef struct {
	VkDevice dev;
	PFN_vkGetDeviceProcAddr gdpa;
	PFN_vkCreateDescriptorSetLayout createDSL;
	PFN_vkCreatePipelineLayout createPL;
	PFN_vkCreateDescriptorPool createDP;
	PFN_vkAllocateDescriptorSets allocDS;
	PFN_vkUpdateDescriptorSets updateDS;
	PFN_vkCreateShaderModule createSM;
	PFN_vkCreateComputePipelines createCP;
	PFN_vkBeginCommandBuffer begin;
	PFN_vkCmdPipelineBarrier barrier;
	PFN_vkCmdWaitEvents waitEvents;
	PFN_vkCmdCopyBuffer copy;
	PFN_vkQueueSubmit submit;
	PFN_vkInvalidateMappedMemoryRanges invalidate;
	PFN_vkAllocateMemory allocMem;
	// VK_KHR_pipeline_executable_properties, NULL until vkc_load_executables.
	PFN_vkGetPipelineExecutablePropertiesKHR execProps;
	PFN_vkGetPipelineExecutableStatisticsKHR execStats;
} vkc_dev;

static vkc_dev* vkc_load_device(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkDevice dev) {
	PFN_vkGetDeviceProcAddr gdpa = (PFN_vkGetDeviceProcAddr)gipa(inst, "vkGetDeviceProcAddr");
	if (!gdpa) return NULL;
	vkc_dev* d = calloc(1, sizeof(*d));
	if (!d) return NULL;
	d->dev = dev;
	d->gdpa = gdpa;
	d->createDSL = (PFN_vkCreateDescriptorSetLayout)gdpa(dev, "vkCreateDescriptorSetLayout");
	d->createPL = (PFN_vkCreatePipelineLayout)gdpa(dev, "vkCreatePipelineLayout");
	d->createDP = (PFN_vkCreateDescriptorPool)gdpa(dev, "vkCreateDescriptorPool");
	d->allocDS = (PFN_vkAllocateDescriptorSets)gdpa(dev, "vkAllocateDescriptorSets");
	d->updateDS = (PFN_vkUpdateDescriptorSets)gdpa(dev, "vkUpdateDescriptorSets");
	d->createSM = (PFN_vkCreateShaderModule)gdpa(dev, "vkCreateShaderModule");
	d->createCP = (PFN_vkCreateComputePipelines)gdpa(dev, "vkCreateComputePipelines");
	d->begin = (PFN_vkBeginCommandBuffer)gdpa(dev, "vkBeginCommandBuffer");
	d->barrier = (PFN_vkCmdPipelineBarrier)gdpa(dev, "vkCmdPipelineBarrier");
	d->waitEvents = (PFN_vkCmdWaitEvents)gdpa(dev, "vkCmdWaitEvents");
	d->copy = (PFN_vkCmdCopyBuffer)gdpa(dev, "vkCmdCopyBuffer");
	d->submit = (PFN_vkQueueSubmit)gdpa(dev, "vkQueueSubmit");
	d->invalidate = (PFN_vkInvalidateMappedMemoryRanges)gdpa(dev, "vkInvalidateMappedMemoryRanges");
	d->allocMem = (PFN_vkAllocateMemory)gdpa(dev, "vkAllocateMemory");
	if (!d->allocMem || !d->createDSL || !d->createPL || !d->createDP || !d->allocDS || !d->updateDS || !d->createSM ||
		!d->createCP || !d->begin || !d->barrier || !d->waitEvents || !d->copy || !d->submit || !d->invalidate) {
		free(d);
		return NULL;
	}
	return d;
}

// vkc_load_executables resolves the two entry points of
// VK_KHR_pipeline_executable_properties; the device must have enabled it.
static int vkc_load_executables(vkc_dev* d) {
	d->execProps = (PFN_vkGetPipelineExecutablePropertiesKHR)d->gdpa(d->dev, "vkGetPipelineExecutablePropertiesKHR");
	d->execStats = (PFN_vkGetPipelineExecutableStatisticsKHR)d->gdpa(d->dev, "vkGetPipelineExecutableStatisticsKHR");
	return d->execProps && d->execStats;
}

// vkc_executables sets *out to a calloc'd array of the *n executables of
// pipe (free it); VK_INCOMPLETE (the count grew between the two calls) asks
// again.
static VkResult vkc_executables(vkc_dev* d, VkPipeline pipe, uint32_t* n, VkPipelineExecutablePropertiesKHR** out) {
	*n = 0;
	*out = NULL;
	if (!d->execProps) return VK_ERROR_EXTENSION_NOT_PRESENT;
	VkPipelineInfoKHR pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pipe};
	for (;;) {
		uint32_t count = 0;
		VkResult r = d->execProps(d->dev, &pi, &count, NULL);
		if (r != VK_SUCCESS) return r;
		VkPipelineExecutablePropertiesKHR* p = calloc(count ? count : 1, sizeof(*p));
		if (!p) return VK_ERROR_OUT_OF_HOST_MEMORY;
		for (uint32_t i = 0; i < count; i++) p[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR;
		r = d->execProps(d->dev, &pi, &count, p);
		if (r == VK_INCOMPLETE) { free(p); continue; }
		if (r != VK_SUCCESS) { free(p); return r; }
		*n = count;
		*out = p;
		return VK_SUCCESS;
	}
}

// vkc_statistics sets *out to a calloc'd array of the *n statistics of
// executable index of pipe (free it).
static VkResult vkc_statistics(vkc_dev* d, VkPipeline pipe, uint32_t index, uint32_t* n, VkPipelineExecutableStatisticKHR** out) {
	*n = 0;
	*out = NULL;
	if (!d->execStats) return VK_ERROR_EXTENSION_NOT_PRESENT;
	VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipe, .executableIndex = index};
	for (;;) {
		uint32_t count = 0;
		VkResult r = d->execStats(d->dev, &ei, &count, NULL);
		if (r != VK_SUCCESS) return r;
		VkPipelineExecutableStatisticKHR* s = calloc(count ? count : 1, sizeof(*s));
		if (!s) return VK_ERROR_OUT_OF_HOST_MEMORY;
		for (uint32_t i = 0; i < count; i++) s[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
		r = d->execStats(d->dev, &ei, &count, s);
		if (r == VK_INCOMPLETE) { free(s); continue; }
		if (r != VK_SUCCESS) { free(s); return r; }
		*n = count;
		*out = s;
		return VK_SUCCESS;
	}
}

// vkc_statistic_value reads the member of s's value union that its format
// names.
static void vkc_statistic_value(const VkPipelineExecutableStatisticKHR* s, uint32_t* b, int64_t* i, uint64_t* u, double* f) {
	switch (s->format) {
	case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: *b = s->value.b32; break;
	case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: *i = s->value.i64; break;
	case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: *u = s->value.u64; break;
	case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: *f = s->value.f64; break;
	default: break;
	}
}

static VkResult vkc_create_dsl(vkc_dev* d, uint32_t n, VkDescriptorSetLayout* out) {
	VkDescriptorSetLayoutBinding b[16];
	if (n > 16) return VK_ERROR_TOO_MANY_OBJECTS;
	for (uint32_t i = 0; i < n; i++) {
		b[i] = (VkDescriptorSetLayoutBinding){
			.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
			.descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
		};
	}
	VkDescriptorSetLayoutCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = n, .pBindings = b,
	};
	return d->createDSL(d->dev, &ci, NULL, out);
}

static VkResult vkc_create_pl(vkc_dev* d, VkDescriptorSetLayout dsl, uint32_t push, VkPipelineLayout* out) {
	VkPushConstantRange r = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = push};
	VkPipelineLayoutCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1, .pSetLayouts = &dsl,
		.pushConstantRangeCount = push ? 1 : 0, .pPushConstantRanges = push ? &r : NULL,
	};
	return d->createPL(d->dev, &ci, NULL, out);
}

static VkResult vkc_create_pool(vkc_dev* d, uint32_t sets, uint32_t descriptors, VkDescriptorPool* out) {
	VkDescriptorPoolSize s = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = descriptors};
	VkDescriptorPoolCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
		.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT,
		.maxSets = sets, .poolSizeCount = 1, .pPoolSizes = &s,
	};
	return d->createDP(d->dev, &ci, NULL, out);
}

static VkResult vkc_alloc_set(vkc_dev* d, VkDescriptorPool pool, VkDescriptorSetLayout dsl, VkDescriptorSet* out) {
	VkDescriptorSetAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
		.descriptorPool = pool, .descriptorSetCount = 1, .pSetLayouts = &dsl,
	};
	return d->allocDS(d->dev, &ai, out);
}

static VkResult vkc_update_set(vkc_dev* d, VkDescriptorSet set, uint32_t n, VkBuffer* bufs, uint64_t* offs, uint64_t* ranges) {
	VkDescriptorBufferInfo info[16];
	VkWriteDescriptorSet w[16];
	if (n > 16) return VK_ERROR_TOO_MANY_OBJECTS;
	for (uint32_t i = 0; i < n; i++) {
		info[i] = (VkDescriptorBufferInfo){.buffer = bufs[i], .offset = offs[i], .range = ranges[i]};
		w[i] = (VkWriteDescriptorSet){
			.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = i,
			.descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &info[i],
		};
	}
	d->updateDS(d->dev, n, w, 0, NULL);
	return VK_SUCCESS;
}

static VkResult vkc_create_module(vkc_dev* d, const uint32_t* code, size_t bytes, VkShaderModule* out) {
	VkShaderModuleCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = bytes, .pCode = code,
	};
	return d->createSM(d->dev, &ci, NULL, out);
}

static VkResult vkc_create_pipeline(vkc_dev* d, VkShaderModule module, VkPipelineLayout layout,
		const uint32_t* spec, uint32_t n, uint32_t flags, uint32_t stageFlags, VkPipeline* out) {
	VkSpecializationMapEntry e[32];
	if (n > 32) return VK_ERROR_TOO_MANY_OBJECTS;
	for (uint32_t i = 0; i < n; i++)
		e[i] = (VkSpecializationMapEntry){.constantID = i, .offset = 4 * i, .size = 4};
	VkSpecializationInfo si = {.mapEntryCount = n, .pMapEntries = e, .dataSize = 4 * (size_t)n, .pData = spec};
	VkComputePipelineCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO, .flags = flags,
		.stage = {
			.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .flags = stageFlags, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
			.module = module, .pName = "main", .pSpecializationInfo = n ? &si : NULL,
		},
		.layout = layout,
	};
	return d->createCP(d->dev, VK_NULL_HANDLE, 1, &ci, NULL, out);
}

static VkResult vkc_begin(vkc_dev* d, VkCommandBuffer cb) {
	VkCommandBufferBeginInfo bi = {
		.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
	};
	return d->begin(cb, &bi);
}

static void vkc_barrier(vkc_dev* d, VkCommandBuffer cb, uint32_t srcStage, uint32_t dstStage, uint32_t srcAccess, uint32_t dstAccess) {
	VkMemoryBarrier m = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = srcAccess, .dstAccessMask = dstAccess};
	d->barrier(cb, srcStage, dstStage, 0, 1, &m, 0, NULL, 0, NULL);
}

static void vkc_wait_event(vkc_dev* d, VkCommandBuffer cb, VkEvent e, uint32_t srcStage, uint32_t dstStage, uint32_t srcAccess, uint32_t dstAccess) {
	VkMemoryBarrier m = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = srcAccess, .dstAccessMask = dstAccess};
	d->waitEvents(cb, 1, &e, srcStage, dstStage, 1, &m, 0, NULL, 0, NULL);
}

static void vkc_copy(vkc_dev* d, VkCommandBuffer cb, VkBuffer src, VkBuffer dst, uint32_t n, const uint64_t* regions) {
	// regions: n triples (srcOffset, dstOffset, size), the layout of VkBufferCopy.
	d->copy(cb, src, dst, n, (const VkBufferCopy*)regions);
}

static VkResult vkc_submit(vkc_dev* d, VkQueue q, VkCommandBuffer cb, VkFence fence) {
	VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
	return d->submit(q, 1, &si, fence);
}

// vkc_alloc_mem allocates size bytes of memory type index, dedicated to
// buffer (VkMemoryDedicatedAllocateInfo, core in Vulkan 1.1) unless buffer
// is VK_NULL_HANDLE.
static VkResult vkc_alloc_mem(vkc_dev* d, uint64_t size, uint32_t index, VkBuffer buffer, VkDeviceMemory* out) {
	VkMemoryDedicatedAllocateInfo ded = {.sType = VK_STRUCTURE_TYPE_MEMORY_DEDICATED_ALLOCATE_INFO, .buffer = buffer};
	VkMemoryAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = buffer != VK_NULL_HANDLE ? &ded : NULL,
		.allocationSize = size, .memoryTypeIndex = index,
	};
	return d->allocMem(d->dev, &ai, NULL, out);
}

// vkc_host_buffer creates a storage buffer of size bytes that memory
// imported from a host pointer may back (VkExternalMemoryBufferCreateInfo).
static VkResult vkc_host_buffer(vkc_dev* d, uint64_t size, uint32_t usage, VkBuffer* out) {
	PFN_vkCreateBuffer f = (PFN_vkCreateBuffer)d->gdpa(d->dev, "vkCreateBuffer");
	if (!f) return VK_ERROR_INITIALIZATION_FAILED;
	VkExternalMemoryBufferCreateInfo ext = {
		.sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
		.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT,
	};
	VkBufferCreateInfo ci = {
		.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .pNext = &ext,
		.size = size, .usage = usage, .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
	};
	return f(d->dev, &ci, NULL, out);
}

// vkc_host_pointer_types sets *bits to the memory types that may import
// the host memory at ptr (vkGetMemoryHostPointerPropertiesEXT).
static VkResult vkc_host_pointer_types(vkc_dev* d, void* ptr, uint32_t* bits) {
	PFN_vkGetMemoryHostPointerPropertiesEXT f =
		(PFN_vkGetMemoryHostPointerPropertiesEXT)d->gdpa(d->dev, "vkGetMemoryHostPointerPropertiesEXT");
	if (!f) return VK_ERROR_EXTENSION_NOT_PRESENT;
	VkMemoryHostPointerPropertiesEXT hp = {.sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
	VkResult r = f(d->dev, VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT, ptr, &hp);
	*bits = hp.memoryTypeBits;
	return r;
}

// vkc_import_host imports size bytes of host memory at ptr as memory of
// type index (VkImportMemoryHostPointerInfoEXT).
static VkResult vkc_import_host(vkc_dev* d, void* ptr, uint64_t size, uint32_t index, VkDeviceMemory* out) {
	VkImportMemoryHostPointerInfoEXT imp = {
		.sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
		.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT, .pHostPointer = ptr,
	};
	VkMemoryAllocateInfo ai = {
		.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &imp,
		.allocationSize = size, .memoryTypeIndex = index,
	};
	return d->allocMem(d->dev, &ai, NULL, out);
}

static VkResult vkc_invalidate(vkc_dev* d, VkDeviceMemory mem) {
	VkMappedMemoryRange r = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = mem, .offset = 0, .size = VK_WHOLE_SIZE};
	return d->invalidate(d->dev, 1, &r);
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// nameSize is VK_MAX_EXTENSION_NAME_SIZE, the size of layer and extension names.
const nameSize = C.VK_MAX_EXTENSION_NAME_SIZE

func names(buf []byte, n int) []string {
	out := make([]string, n)
	for i := range out {
		b := buf[i*nameSize : (i+1)*nameSize]
		for j, c := range b {
			if c == 0 {
				b = b[:j]
				break
			}
		}
		out[i] = string(b)
	}
	return out
}

// InstanceLayers returns the names of the installed instance layers.
func InstanceLayers() ([]string, error) {
	const max = 256
	buf := make([]byte, max*nameSize)
	var n C.uint32_t
	r := C.vkc_instance_layers(C.PFN_vkGetInstanceProcAddr(gipa), (*C.char)(unsafe.Pointer(&buf[0])), max, &n)
	if err := Check("vkEnumerateInstanceLayerProperties", int32(r)); err != nil {
		return nil, err
	}
	return names(buf, int(n)), nil
}

// LayerExtensions returns the instance extensions a layer provides.
func LayerExtensions(layer string) ([]string, error) {
	const max = 256
	buf := make([]byte, max*nameSize)
	cl := C.CString(layer)
	defer C.free(unsafe.Pointer(cl))
	var n C.uint32_t
	r := C.vkc_layer_extensions(C.PFN_vkGetInstanceProcAddr(gipa), cl, (*C.char)(unsafe.Pointer(&buf[0])), max, &n)
	if err := Check("vkEnumerateInstanceExtensionProperties", int32(r)); err != nil {
		return nil, err
	}
	return names(buf, int(n)), nil
}

// cStrings copies ss into a C array of C strings; free releases both.
func cStrings(ss []string) (arr **C.char, free func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	p := (**C.char)(C.calloc(C.size_t(len(ss)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	a := unsafe.Slice(p, len(ss))
	for i, s := range ss {
		a[i] = C.CString(s)
	}
	return p, func() {
		for _, c := range a {
			C.free(unsafe.Pointer(c))
		}
		C.free(unsafe.Pointer(p))
	}
}

// CreateInstance calls vkCreateInstance for the given API version with the
// layers and extensions enabled and next (C memory, or nil) as pNext.
func CreateInstance(api uint32, layers, exts []string, next unsafe.Pointer) (unsafe.Pointer, error) {
	if gipa == nil {
		return nil, errors.New("vulkan: CreateInstance before Load")
	}
	cl, freeL := cStrings(layers)
	defer freeL()
	ce, freeE := cStrings(exts)
	defer freeE()
	var inst C.VkInstance
	r := C.vkc_create_instance(C.PFN_vkGetInstanceProcAddr(gipa), C.uint32_t(api), cl, C.uint32_t(len(layers)), ce, C.uint32_t(len(exts)), next, &inst)
	return unsafe.Pointer(inst), Check("vkCreateInstance", int32(r))
}

// ExtPipelineExecutableProperties is the device extension that reads a
// pipeline's executables and their compiler statistics.
const ExtPipelineExecutableProperties = "VK_KHR_pipeline_executable_properties"

// ExtSubgroupSizeControl is the device extension that, before Vulkan 1.3,
// offers computeFullSubgroups (FeatureChain's structure for it).
const ExtSubgroupSizeControl = "VK_EXT_subgroup_size_control"

// ExtExternalMemoryHost is the device extension that imports host memory
// the process allocated as device memory (Device.ImportHostMemory).
const ExtExternalMemoryHost = "VK_EXT_external_memory_host"

// ExtShaderClock is the device extension whose shaderDeviceClock feature
// lets kernels read a clock shared by every workgroup (traces).
const ExtShaderClock = "VK_KHR_shader_clock"

// CreateDevice calls vkCreateDevice with queues (1 or 2) queues of the given
// family, the device extensions exts enabled and chain (see FeatureChain) as
// pNext.
func CreateDevice(inst, pd unsafe.Pointer, family, queues uint32, exts []string, chain *Chain) (unsafe.Pointer, error) {
	ce, freeE := cStrings(exts)
	defer freeE()
	var dev C.VkDevice
	r := C.vkc_create_device(C.PFN_vkGetInstanceProcAddr(gipa), C.VkInstance(inst), C.VkPhysicalDevice(pd), C.uint32_t(family),
		C.uint32_t(queues), ce, C.uint32_t(len(exts)), chain.Ptr(), &dev)
	return unsafe.Pointer(dev), Check("vkCreateDevice", int32(r))
}

// Device holds the device-level entry points of the calls made in C.
type Device struct{ p *C.vkc_dev }

// LoadDevice resolves the entry points of device dev with vkGetDeviceProcAddr.
func LoadDevice(inst, dev unsafe.Pointer) (*Device, error) {
	p := C.vkc_load_device(C.PFN_vkGetInstanceProcAddr(gipa), C.VkInstance(inst), C.VkDevice(dev))
	if p == nil {
		return nil, errors.New("vulkan: vkGetDeviceProcAddr: a core 1.0 entry point is missing")
	}
	return &Device{p: p}, nil
}

// Free releases the entry-point table (not the device).
func (d *Device) Free() {
	if d != nil && d.p != nil {
		C.free(unsafe.Pointer(d.p))
		d.p = nil
	}
}

// CreateDescriptorSetLayout makes a layout of n storage buffers at bindings
// 0..n-1 of set 0, visible to compute shaders (n <= 16).
func (d *Device) CreateDescriptorSetLayout(n int) (unsafe.Pointer, error) {
	var out C.VkDescriptorSetLayout
	r := C.vkc_create_dsl(d.p, C.uint32_t(n), &out)
	return unsafe.Pointer(out), Check("vkCreateDescriptorSetLayout", int32(r))
}

// CreatePipelineLayout makes a layout of one set and push bytes of compute
// push constants (0: none).
func (d *Device) CreatePipelineLayout(dsl unsafe.Pointer, push uint32) (unsafe.Pointer, error) {
	var out C.VkPipelineLayout
	r := C.vkc_create_pl(d.p, C.VkDescriptorSetLayout(dsl), C.uint32_t(push), &out)
	return unsafe.Pointer(out), Check("vkCreatePipelineLayout", int32(r))
}

// CreateDescriptorPool makes a pool of sets sets and descriptors storage
// buffers whose sets can be freed one by one.
func (d *Device) CreateDescriptorPool(sets, descriptors uint32) (unsafe.Pointer, error) {
	var out C.VkDescriptorPool
	r := C.vkc_create_pool(d.p, C.uint32_t(sets), C.uint32_t(descriptors), &out)
	return unsafe.Pointer(out), Check("vkCreateDescriptorPool", int32(r))
}

// AllocateDescriptorSet allocates one set of layout dsl from pool; the
// VkResult is returned as is, for the caller to try another pool.
func (d *Device) AllocateDescriptorSet(pool, dsl unsafe.Pointer) (unsafe.Pointer, int32) {
	var out C.VkDescriptorSet
	r := C.vkc_alloc_set(d.p, C.VkDescriptorPool(pool), C.VkDescriptorSetLayout(dsl), &out)
	return unsafe.Pointer(out), int32(r)
}

// UpdateDescriptorSet binds buffer bufs[i] at [offs[i], offs[i]+ranges[i]) to
// binding i of set (at most 16).
func (d *Device) UpdateDescriptorSet(set unsafe.Pointer, bufs []unsafe.Pointer, offs, ranges []uint64) error {
	if len(bufs) == 0 || len(bufs) > 16 || len(offs) != len(bufs) || len(ranges) != len(bufs) {
		return errors.New("vulkan: vkUpdateDescriptorSets: 1 to 16 bindings with one offset and range each")
	}
	// Handles are driver pointers, not Go pointers: the array may be passed.
	r := C.vkc_update_set(d.p, C.VkDescriptorSet(set), C.uint32_t(len(bufs)), (*C.VkBuffer)(unsafe.Pointer(&bufs[0])),
		(*C.uint64_t)(unsafe.Pointer(&offs[0])), (*C.uint64_t)(unsafe.Pointer(&ranges[0])))
	return Check("vkUpdateDescriptorSets", int32(r))
}

// CreateShaderModule makes a shader module of SPIR-V words.
func (d *Device) CreateShaderModule(code []uint32) (unsafe.Pointer, error) {
	if len(code) == 0 {
		return nil, errors.New("vulkan: vkCreateShaderModule: empty code")
	}
	var out C.VkShaderModule
	r := C.vkc_create_module(d.p, (*C.uint32_t)(unsafe.Pointer(&code[0])), C.size_t(4*len(code)), &out)
	return unsafe.Pointer(out), Check("vkCreateShaderModule", int32(r))
}

// PipelineCreateCaptureStatistics is VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR,
// the flag of CreateComputePipeline that keeps the compiler's statistics for
// PipelineExecutables (legal only with ExtPipelineExecutableProperties and
// its feature enabled).
const PipelineCreateCaptureStatistics = uint32(C.VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR)

// ShaderStageRequireFullSubgroups is
// VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT, the stage flag
// of CreateComputePipeline that makes the driver launch every subgroup with
// all its invocations active (legal only with Vulkan 1.3's
// computeFullSubgroups feature enabled, and a workgroup whose size is a
// multiple of the subgroup size).
const ShaderStageRequireFullSubgroups = uint32(C.VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT)

// CreateComputePipeline makes the pipeline of entry point "main" of module
// with layout, specialization constant i = spec[i] (4 bytes each, at most 32),
// VkPipelineCreateFlags flags (0, or PipelineCreateCaptureStatistics) and
// VkPipelineShaderStageCreateFlags stageFlags (0, or
// ShaderStageRequireFullSubgroups).
func (d *Device) CreateComputePipeline(module, layout unsafe.Pointer, spec []uint32, flags, stageFlags uint32) (unsafe.Pointer, error) {
	var sp *C.uint32_t
	if len(spec) > 0 {
		sp = (*C.uint32_t)(unsafe.Pointer(&spec[0]))
	}
	var out C.VkPipeline
	r := C.vkc_create_pipeline(d.p, C.VkShaderModule(module), C.VkPipelineLayout(layout), sp, C.uint32_t(len(spec)), C.uint32_t(flags), C.uint32_t(stageFlags), &out)
	return unsafe.Pointer(out), Check("vkCreateComputePipelines", int32(r))
}

// BeginCommandBuffer begins a one-time-submit recording.
func (d *Device) BeginCommandBuffer(cb unsafe.Pointer) error {
	return Check("vkBeginCommandBuffer", int32(C.vkc_begin(d.p, C.VkCommandBuffer(cb))))
}

// CmdMemoryBarrier records one global memory barrier.
func (d *Device) CmdMemoryBarrier(cb unsafe.Pointer, srcStage, dstStage, srcAccess, dstAccess uint32) {
	C.vkc_barrier(d.p, C.VkCommandBuffer(cb), C.uint32_t(srcStage), C.uint32_t(dstStage), C.uint32_t(srcAccess), C.uint32_t(dstAccess))
}

// CmdWaitEvent records a wait for event e (set with srcStage) before the
// dstStage of later commands, with one global memory barrier.
func (d *Device) CmdWaitEvent(cb, e unsafe.Pointer, srcStage, dstStage, srcAccess, dstAccess uint32) {
	C.vkc_wait_event(d.p, C.VkCommandBuffer(cb), C.VkEvent(e), C.uint32_t(srcStage), C.uint32_t(dstStage), C.uint32_t(srcAccess), C.uint32_t(dstAccess))
}

// CmdCopyBuffer records a copy of regions, given as (srcOffset, dstOffset,
// size) triples, from src to dst.
func (d *Device) CmdCopyBuffer(cb, src, dst unsafe.Pointer, regions [][3]uint64) {
	if len(regions) == 0 {
		return
	}
	C.vkc_copy(d.p, C.VkCommandBuffer(cb), C.VkBuffer(src), C.VkBuffer(dst), C.uint32_t(len(regions)), (*C.uint64_t)(unsafe.Pointer(&regions[0])))
}

// QueueSubmit submits one command buffer, signalling fence.
func (d *Device) QueueSubmit(queue, cb, fence unsafe.Pointer) error {
	return Check("vkQueueSubmit", int32(C.vkc_submit(d.p, C.VkQueue(queue), C.VkCommandBuffer(cb), C.VkFence(fence))))
}

// InvalidateMappedMemory invalidates the whole of mapped memory mem.
func (d *Device) InvalidateMappedMemory(mem unsafe.Pointer) error {
	return Check("vkInvalidateMappedMemoryRanges", int32(C.vkc_invalidate(d.p, C.VkDeviceMemory(mem))))
}

// AllocateMemory allocates size bytes of memory type index. With buffer
// not nil the memory is dedicated to that buffer (VkMemoryDedicatedAllocateInfo,
// Vulkan 1.1): bind it there, at offset 0, and nowhere else.
func (d *Device) AllocateMemory(size uint64, index uint32, buffer unsafe.Pointer) (unsafe.Pointer, error) {
	var out C.VkDeviceMemory
	r := C.vkc_alloc_mem(d.p, C.uint64_t(size), C.uint32_t(index), C.VkBuffer(buffer), &out)
	return unsafe.Pointer(out), Check("vkAllocateMemory", int32(r))
}

// HostBuffer creates a buffer of size bytes with the given usage flags that
// ImportHostMemory's memory may back.
func (d *Device) HostBuffer(size uint64, usage uint32) (unsafe.Pointer, error) {
	var out C.VkBuffer
	r := C.vkc_host_buffer(d.p, C.uint64_t(size), C.uint32_t(usage), &out)
	return unsafe.Pointer(out), Check("vkCreateBuffer (external host memory)", int32(r))
}

// HostPointerTypes returns the memory types that may import the host memory
// at ptr (vkGetMemoryHostPointerPropertiesEXT).
func (d *Device) HostPointerTypes(ptr unsafe.Pointer) (uint32, error) {
	var bits C.uint32_t
	r := C.vkc_host_pointer_types(d.p, ptr, &bits)
	return uint32(bits), Check("vkGetMemoryHostPointerPropertiesEXT", int32(r))
}

// ImportHostMemory makes size bytes of host memory at ptr (allocated by the
// process, not by Go: mmap'd, aligned to Props.HostImportAlignment, size a
// multiple of it) device memory of type index, which must be one of
// HostPointerTypes(ptr). The host memory must outlive the device memory.
// The device must have enabled ExtExternalMemoryHost.
func (d *Device) ImportHostMemory(ptr unsafe.Pointer, size uint64, index uint32) (unsafe.Pointer, error) {
	var out C.VkDeviceMemory
	r := C.vkc_import_host(d.p, ptr, C.uint64_t(size), C.uint32_t(index), &out)
	return unsafe.Pointer(out), Check("vkAllocateMemory (imported host memory)", int32(r))
}

// LoadPipelineExecutables resolves vkGetPipelineExecutablePropertiesKHR and
// vkGetPipelineExecutableStatisticsKHR with vkGetDeviceProcAddr. Call it only
// on a device created with ExtPipelineExecutableProperties enabled.
func (d *Device) LoadPipelineExecutables() error {
	if C.vkc_load_executables(d.p) == 0 {
		return errors.New("vulkan: vkGetDeviceProcAddr: " + ExtPipelineExecutableProperties + "'s entry points are missing")
	}
	return nil
}

// Executable is one executable of a pipeline (for a compute pipeline,
// usually one: the compute shader) with the compiler's statistics of it.
type Executable struct {
	Name, Description string
	Stages            uint32 // VkShaderStageFlags
	SubgroupSize      uint32 // 0 when the driver does not say
	Stats             []Statistic
}

// Statistic is one compiler statistic of an executable.
type Statistic struct {
	Name, Description string
	// Value is a bool, int64, uint64 or float64, as the statistic's
	// VkPipelineExecutableStatisticFormatKHR says (nil for an unknown one).
	Value any
}

// PipelineExecutables returns the executables of pipeline pipe, each with
// its statistics (vkGetPipelineExecutablePropertiesKHR, then
// vkGetPipelineExecutableStatisticsKHR per executable). The pipeline must have
// been created with PipelineCreateCaptureStatistics, after
// LoadPipelineExecutables.
func (d *Device) PipelineExecutables(pipe unsafe.Pointer) ([]Executable, error) {
	var n C.uint32_t
	var props *C.VkPipelineExecutablePropertiesKHR
	r := C.vkc_executables(d.p, C.VkPipeline(pipe), &n, &props)
	if err := Check("vkGetPipelineExecutablePropertiesKHR", int32(r)); err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(props))
	out := make([]Executable, int(n))
	for i, p := range unsafe.Slice(props, int(n)) {
		out[i] = Executable{
			Name:         C.GoString(&p.name[0]),
			Description:  C.GoString(&p.description[0]),
			Stages:       uint32(p.stages),
			SubgroupSize: uint32(p.subgroupSize),
		}
		stats, err := d.statistics(pipe, uint32(i))
		if err != nil {
			return nil, err
		}
		out[i].Stats = stats
	}
	return out, nil
}

// statistics returns the statistics of executable index of pipe.
func (d *Device) statistics(pipe unsafe.Pointer, index uint32) ([]Statistic, error) {
	var n C.uint32_t
	var stats *C.VkPipelineExecutableStatisticKHR
	r := C.vkc_statistics(d.p, C.VkPipeline(pipe), C.uint32_t(index), &n, &stats)
	if err := Check("vkGetPipelineExecutableStatisticsKHR", int32(r)); err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(stats))
	cs := unsafe.Slice(stats, int(n))
	out := make([]Statistic, int(n))
	for i := range out {
		s := &cs[i]
		var b C.uint32_t
		var i64 C.int64_t
		var u64 C.uint64_t
		var f64 C.double
		C.vkc_statistic_value(s, &b, &i64, &u64, &f64)
		var v any
		switch s.format {
		case C.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
			v = b != 0
		case C.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
			v = int64(i64)
		case C.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
			v = uint64(u64)
		case C.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR:
			v = float64(f64)
		}
		out[i] = Statistic{Name: C.GoString(&s.name[0]), Description: C.GoString(&s.description[0]), Value: v}
	}
	return out, nil
}
