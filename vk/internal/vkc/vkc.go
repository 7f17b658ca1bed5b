// Package vkc is the only cgo of the project: the few Vulkan calls that
// github.com/vulkan-go/vulkan (Vulkan 1.0 entry points, 1.1.88 headers) does
// not wrap, written in C against the system headers (libvulkan-dev):
//
//   - loading libvulkan.so.1 once with dlopen, for vk.SetGetInstanceProcAddr
//     (vulkan-go's own loader opens "libvulkan.so", which only the -dev
//     package installs);
//   - vkGetPhysicalDeviceProperties2 / Features2 with their pNext chains
//     (subgroup size and operations, 8/16-bit storage, float16, int8, driver
//     name, maximum allocation size, compute-unit counts), and the 1.0
//     properties, memory types and queue families in the same call;
//   - the calls whose arguments hold arrays of structures or nested
//     pointers (calls.go explains why vulkan-go must not make them);
//   - a C-allocated pNext feature chain for vkCreateDevice;
//   - VK_KHR_pipeline_executable_properties: a pipeline's executables and
//     the compiler's statistics of each (registers, shared memory, ...);
//   - VK_EXT_debug_utils: a messenger whose callback, written in C, records
//     every validation warning and error for the Go side to read;
//   - VkResult codes turned into Go errors that name the call.
//
// Handles cross this package as unsafe.Pointer (vulkan-go's handle types are
// C pointers of another package), and no Go pointer is ever stored in C
// memory.
package vkc

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <vulkan/vulkan.h>

static PFN_vkGetInstanceProcAddr vkc_gipa = NULL;

static void* vkc_load(void) {
	if (vkc_gipa) return (void*)vkc_gipa;
	void* h = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) return NULL;
	vkc_gipa = (PFN_vkGetInstanceProcAddr)dlsym(h, "vkGetInstanceProcAddr");
	return (void*)vkc_gipa;
}

static const char* vkc_dlerror(void) {
	const char* e = dlerror();
	return e ? e : "";
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

var (
	loadOnce sync.Once
	gipa     unsafe.Pointer
	loadErr  error
)

// Load dlopens libvulkan.so.1 (once per process) and returns its
// vkGetInstanceProcAddr, for vk.SetGetInstanceProcAddr.
func Load() (unsafe.Pointer, error) {
	loadOnce.Do(func() {
		p := C.vkc_load()
		if p == nil {
			loadErr = fmt.Errorf("vulkan: dlopen libvulkan.so.1: %s (install the Vulkan loader, Debian: libvulkan1)", C.GoString(C.vkc_dlerror()))
			return
		}
		gipa = p
	})
	return gipa, loadErr
}
