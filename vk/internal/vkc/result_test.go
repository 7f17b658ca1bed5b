package vkc

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	if err := Check("vkCreateBuffer", Success); err != nil {
		t.Errorf("Check(VK_SUCCESS) = %v, want nil", err)
	}
	err := Check("vkCreateShaderModule", ErrorOutOfDeviceMemory)
	if got, want := err.Error(), "vulkan: vkCreateShaderModule: VK_ERROR_OUT_OF_DEVICE_MEMORY"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	var ve *Error
	if !errors.As(err, &ve) || !ve.OutOfMemory() || ve.Call != "vkCreateShaderModule" {
		t.Errorf("errors.As(%v) = %+v: want an out-of-memory *Error naming the call", err, ve)
	}
	if got := Check("vkWaitForFences", Timeout).Error(); got != "vulkan: vkWaitForFences: VK_TIMEOUT" {
		t.Errorf("timeout: %q", got)
	}
	if got := ResultName(-424242); got != "VkResult(-424242)" {
		t.Errorf("ResultName of an unknown code = %q", got)
	}
	if got := ResultName(ErrorOutOfPoolMemory); got != "VK_ERROR_OUT_OF_POOL_MEMORY" {
		t.Errorf("ResultName(%d) = %q", ErrorOutOfPoolMemory, got)
	}
}
