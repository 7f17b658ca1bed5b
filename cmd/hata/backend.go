package main

import (
	"github.com/hata-go/hata/experiments"
	"github.com/hata-go/hata/ref"
)

// backend builds methods on one device.
type backend interface {
	NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error)
}

// openBackend opens -device cpu (the pure-Go reference) or -device vulkan on
// the device -vkdevice names (default: $HATA_VK_DEVICE, else discrete GPU >
// integrated > CPU). The returned function releases it.
func openBackend(device, vkdevice string) (backend, func(), error) {
	if device == "cpu" {
		if vkdevice != "" {
			return nil, nil, usagef("-vkdevice %q needs -device vulkan", vkdevice)
		}
		return experiments.CPU{}, func() {}, nil
	}
	v, err := experiments.OpenVulkan(vkdevice)
	if err != nil {
		return nil, nil, err
	}
	return v, func() { v.Close() }, nil
}
