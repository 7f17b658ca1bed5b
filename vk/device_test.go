package vk

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestChooseDevice(t *testing.T) {
	bad := errors.New("no compute queue")
	infos := []DeviceInfo{
		{Index: 0, Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Type: DeviceCPU},
		{Index: 1, Name: "Intel(R) UHD Graphics", Type: DeviceIntegrated},
		{Index: 2, Name: "Broken Discrete", Type: DeviceDiscrete, usable: bad},
		{Index: 3, Name: "NVIDIA H200", Type: DeviceDiscrete},
		{Index: 4, Name: "virtio-gpu", Type: DeviceVirtual},
	}
	for _, c := range []struct {
		infos []DeviceInfo
		sel   string
		want  int
		err   string
	}{
		{infos, "", 3, ""},                                       // discrete first, skipping the unusable one
		{infos[:3], "", 1, ""},                                   // then integrated
		{[]DeviceInfo{infos[0], infos[4]}, "", 1, ""},            // then virtual
		{infos[:1], "", 0, ""},                                   // then CPU
		{infos, "0", 0, ""},                                      // an index
		{infos, " 4 ", 4, ""},                                    // spaces trimmed
		{infos, "h200", 3, ""},                                   // a name substring, any case
		{infos, "LLVMPIPE", 0, ""},                               //
		{infos, "7", 0, "out of range"},                          //
		{infos, "radeon", 0, `no device name contains "radeon"`}, //
		{infos, "2", 0, "no compute queue"},                      // an unusable device asked for by index
		{infos[2:3], "", 0, "no usable device"},                  //
		{nil, "", 0, "no Vulkan devices"},                        //
	} {
		got, err := chooseDevice(c.infos, c.sel)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("chooseDevice(%d devices, %q) = %d, %v; want an error containing %q", len(c.infos), c.sel, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("chooseDevice(%d devices, %q) = %d, %v; want %d", len(c.infos), c.sel, got, err, c.want)
		}
	}
}

func TestSubgroupOpsString(t *testing.T) {
	if got, want := (SubgroupBasic | SubgroupShuffle | SubgroupClustered).String(), "basic,shuffle,clustered"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestDevices(t *testing.T) {
	ctx := device(t)
	infos, err := Devices()
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	found := false
	for _, d := range infos {
		if d.Name == ctx.Info.Name && d.DriverName == ctx.Info.DriverName {
			found = true
		}
		if d.Usable() != nil {
			continue
		}
		l := d.Limits
		if d.SubgroupSize == 0 || d.MinSubgroupSize > d.SubgroupSize || d.SubgroupSize > d.MaxSubgroupSize ||
			l.MaxStorageBufferRange == 0 || l.MaxComputeSharedMemorySize == 0 || l.MaxComputeWorkGroupInvocations == 0 ||
			l.MaxComputeWorkGroupCount[0] == 0 || len(d.Heaps) == 0 || d.DriverName == "" || d.APIString() == "0.0.0" {
			t.Errorf("device %d %q: implausible properties %+v", d.Index, d.Name, d)
		}
	}
	if !found {
		t.Errorf("Devices() does not list the open device %q", ctx.Info.Name)
	}
	var buf bytes.Buffer
	if err := DescribeDevices(&buf); err != nil {
		t.Fatalf("DescribeDevices: %v", err)
	}
	for _, want := range []string{ctx.Info.Name, "maxStorageBufferRange", "subgroup", "heap 0", "timestamps", "host memory", "subgroup check passed"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("DescribeDevices output lacks %q:\n%s", want, buf.String())
		}
	}
	t.Logf("\n%s", buf.String())
}

// TestEnvSwitches: the environment's switches take 1/0, true/false, yes/no
// and on/off in any case, an unset one its default, and OpenWith refuses
// any other value, naming the variable, before it opens anything.
func TestEnvSwitches(t *testing.T) {
	for _, c := range []struct {
		v       string
		def, on bool
	}{
		{"", true, true}, {"", false, false}, {"1", false, true}, {"On", false, true},
		{"YES", false, true}, {"true", false, true}, {"0", true, false}, {"off", true, false},
		{"No", true, false}, {"FALSE", true, false},
	} {
		t.Setenv(EnvDedicated, c.v)
		if on, err := envSwitch(EnvDedicated, c.def); err != nil || on != c.on {
			t.Errorf("$%s=%q, default %v: %v (%v), want %v", EnvDedicated, c.v, c.def, on, err, c.on)
		}
	}
	for _, name := range []string{EnvValidate, EnvKernelStats, EnvDedicated, EnvFullSubgroups, EnvHostHugePages} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, "maybe")
			c, err := OpenWith(Options{})
			if err == nil {
				c.Close()
				t.Fatalf("$%s=maybe: opened", name)
			}
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "maybe") {
				t.Errorf("$%s=maybe: %v, want an error naming both", name, err)
			}
			if err := DescribeDevices(io.Discard); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("$%s=maybe: DescribeDevices: %v, want an error naming it", name, err)
			}
		})
	}
	// A $HATA_VK_DEVICE that names no device: hata devices lists them all
	// and fails.
	if _, err := Devices(); err != nil {
		t.Skipf("no Vulkan devices: %v", err)
	}
	t.Setenv(EnvDevice, "no such device")
	var buf bytes.Buffer
	if err := DescribeDevices(&buf); err == nil || !strings.Contains(err.Error(), "no default device") || !strings.Contains(buf.String(), "api ") {
		t.Errorf("$%s names no device: %v, listing %q; want the devices listed and an error", EnvDevice, err, buf.String())
	}
}
