package vkc

import "fmt"

// Error is a failed Vulkan call: the command's name and the VkResult it
// returned. It prints as
//
//	vulkan: vkCreateShaderModule: VK_ERROR_OUT_OF_DEVICE_MEMORY
type Error struct {
	Call   string // the Vulkan command, e.g. "vkAllocateMemory"
	Result int32  // the VkResult code (negative for errors)
}

// Error implements error.
func (e *Error) Error() string {
	return "vulkan: " + e.Call + ": " + ResultName(e.Result)
}

// OutOfMemory reports whether the call ran out of host or device memory.
func (e *Error) OutOfMemory() bool {
	return e.Result == ErrorOutOfHostMemory || e.Result == ErrorOutOfDeviceMemory
}

// VkResult codes the runtime tests for by value.
const (
	Success                 = 0
	NotReady                = 1
	Timeout                 = 2
	Incomplete              = 5
	ErrorOutOfHostMemory    = -1
	ErrorOutOfDeviceMemory  = -2
	ErrorLayerNotPresent    = -6
	ErrorExtensionMissing   = -7
	ErrorIncompatibleDriver = -9
	ErrorFragmentedPool     = -12
	ErrorOutOfPoolMemory    = -1000069000
)

// Check returns nil for VK_SUCCESS and an *Error naming call otherwise. The
// non-error status codes (VK_TIMEOUT, VK_INCOMPLETE, ...) count as failures
// too: the runtime never asks for partial results.
func Check(call string, result int32) error {
	if result == Success {
		return nil
	}
	return &Error{Call: call, Result: result}
}

// resultNames are the VkResult codes of the Vulkan 1.3 headers.
var resultNames = map[int32]string{
	0:           "VK_SUCCESS",
	1:           "VK_NOT_READY",
	2:           "VK_TIMEOUT",
	3:           "VK_EVENT_SET",
	4:           "VK_EVENT_RESET",
	5:           "VK_INCOMPLETE",
	-1:          "VK_ERROR_OUT_OF_HOST_MEMORY",
	-2:          "VK_ERROR_OUT_OF_DEVICE_MEMORY",
	-3:          "VK_ERROR_INITIALIZATION_FAILED",
	-4:          "VK_ERROR_DEVICE_LOST",
	-5:          "VK_ERROR_MEMORY_MAP_FAILED",
	-6:          "VK_ERROR_LAYER_NOT_PRESENT",
	-7:          "VK_ERROR_EXTENSION_NOT_PRESENT",
	-8:          "VK_ERROR_FEATURE_NOT_PRESENT",
	-9:          "VK_ERROR_INCOMPATIBLE_DRIVER",
	-10:         "VK_ERROR_TOO_MANY_OBJECTS",
	-11:         "VK_ERROR_FORMAT_NOT_SUPPORTED",
	-12:         "VK_ERROR_FRAGMENTED_POOL",
	-13:         "VK_ERROR_UNKNOWN",
	-1000069000: "VK_ERROR_OUT_OF_POOL_MEMORY",
	-1000072003: "VK_ERROR_INVALID_EXTERNAL_HANDLE",
	-1000161000: "VK_ERROR_FRAGMENTATION",
	-1000257000: "VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS",
	1000297000:  "VK_PIPELINE_COMPILE_REQUIRED",
	-1000000000: "VK_ERROR_SURFACE_LOST_KHR",
	-1000000001: "VK_ERROR_NATIVE_WINDOW_IN_USE_KHR",
	1000001003:  "VK_SUBOPTIMAL_KHR",
	-1000001004: "VK_ERROR_OUT_OF_DATE_KHR",
	-1000003001: "VK_ERROR_INCOMPATIBLE_DISPLAY_KHR",
	-1000011001: "VK_ERROR_VALIDATION_FAILED_EXT",
	-1000012000: "VK_ERROR_INVALID_SHADER_NV",
	-1000174001: "VK_ERROR_NOT_PERMITTED_KHR",
	-1000255000: "VK_ERROR_FULL_SCREEN_EXCLUSIVE_MODE_LOST_EXT",
	1000268000:  "VK_THREAD_IDLE_KHR",
	1000268001:  "VK_THREAD_DONE_KHR",
	1000268002:  "VK_OPERATION_DEFERRED_KHR",
	1000268003:  "VK_OPERATION_NOT_DEFERRED_KHR",
	-1000338000: "VK_ERROR_COMPRESSION_EXHAUSTED_EXT",
}

// ResultName returns the VkResult's name from the Vulkan headers, or
// VkResult(n) for a code it does not know.
func ResultName(r int32) string {
	if s, ok := resultNames[r]; ok {
		return s
	}
	return fmt.Sprintf("VkResult(%d)", r)
}
