package experiments

import (
	"fmt"
	"slices"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

// The Vulkan backend: device specs "vk" (the default device: discrete GPU >
// integrated > virtual > CPU, or $HATA_VK_DEVICE) and "vk:SEL" (SEL an index
// of `hata devices` or a name substring), and "auto": Vulkan when the loader
// finds a usable device (lavapipe included), with the methods that have no GPU
// kernels (vk.Methods lists those that do) on the CPU reference; the CPU
// reference alone when there is no device.
func init() {
	RegisterBackend("vk", func(arg string) (Backend, error) { return OpenVulkan(arg) })
	RegisterBackend("auto", func(arg string) (Backend, error) {
		if arg != "" {
			return nil, fmt.Errorf("device auto takes no argument, got %q", arg)
		}
		v, err := OpenVulkan("")
		if err != nil {
			return CPU{}, nil
		}
		return &Vulkan{Ctx: v.Ctx, spec: v.spec, cpuFallback: true}, nil
	})
}

// Vulkan runs the methods with GPU kernels (vk.Methods) on one Vulkan device.
type Vulkan struct {
	Ctx         *vk.Context
	spec        string
	cpuFallback bool // methods without GPU kernels run on the CPU reference ("auto")
}

var _ Backend = (*Vulkan)(nil)

// OpenVulkan opens the Vulkan device sel ("" for the default choice).
func OpenVulkan(sel string) (*Vulkan, error) {
	ctx, err := vk.Open(sel)
	if err != nil {
		return nil, err
	}
	spec := "vk"
	if sel != "" {
		spec += ":" + sel
	}
	return &Vulkan{Ctx: ctx, spec: spec}, nil
}

// Name implements Backend.
func (v *Vulkan) Name() string {
	if v.cpuFallback {
		return v.spec + "+cpu"
	}
	return v.spec
}

// Device implements Backend.
func (v *Vulkan) Device() DeviceInfo {
	i := v.Ctx.Info
	return DeviceInfo{Name: i.Name, Driver: i.DriverName + " " + i.DriverInfo, API: "Vulkan " + i.APIString()}
}

// NewMethod implements Backend with the GPU kernels.
func (v *Vulkan) NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	if v.cpuFallback && !slices.Contains(vk.Methods, name) {
		return ref.New(name, hkv, d, o)
	}
	return v.Ctx.NewMethod(name, hkv, d, o)
}

// Close releases the device.
func (v *Vulkan) Close() error { return v.Ctx.Close() }
