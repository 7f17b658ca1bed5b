package main

import (
	"fmt"

	"github.com/hata-go/hata/ref"
)

// backend builds methods on one device.
type backend interface {
	NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error)
	Close()
}

// cpuBackend is the pure-Go reference.
type cpuBackend struct{}

func (cpuBackend) NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	return ref.New(name, hkv, d, o)
}
func (cpuBackend) Close() {}

// openBackend returns the backend of -device.
func openBackend(device, vkdevice string) (backend, error) {
	switch device {
	case "cpu":
		if vkdevice != "" {
			return nil, usagef("-vkdevice %q needs -device vulkan", vkdevice)
		}
		return cpuBackend{}, nil
	}
	return nil, fmt.Errorf("-device vulkan: the Vulkan backend is not built into this binary yet")
}
