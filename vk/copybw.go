package vk

import (
	"fmt"
	"slices"
)

// copyPush mirrors copy.comp's push constants.
type copyPush struct {
	N uint32 // uvec4 elements
}

// CopyBandwidth measures the device's memory bandwidth with a copy kernel
// (16-byte loads and stores, grid-stride loop) over two device-local buffers
// of size bytes each: it returns bytes read plus bytes written per second,
// the median of reps runs timed with GPU timestamps. Every benchmark row
// carries it as its roofline; choose size well above the last-level cache
// (the H200's L2 is 60 MB) and within maxStorageBufferRange.
func (c *Context) CopyBandwidth(size uint64, reps int) (float64, error) {
	size &^= 15
	if size == 0 || size > uint64(c.Info.Limits.MaxStorageBufferRange) || reps < 1 {
		return 0, fmt.Errorf("vk: copy bandwidth: size %d bytes, reps %d: want 16 <= size <= maxStorageBufferRange (%d) and reps >= 1",
			size, reps, c.Info.Limits.MaxStorageBufferRange)
	}
	src, err := c.NewBuffer("copy source", size, DeviceLocal)
	if err != nil {
		return 0, err
	}
	defer src.Free()
	dst, err := c.NewBuffer("copy destination", size, DeviceLocal)
	if err != nil {
		return 0, err
	}
	defer dst.Free()
	const wg = 256
	k, err := c.SharedKernel(KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{wg}})
	if err != nil {
		return 0, err
	}
	set, err := k.NewSet(src.Whole(), dst.Whole())
	if err != nil {
		return 0, err
	}
	defer set.Free()
	b, err := c.NewBatch()
	if err != nil {
		return 0, err
	}
	defer b.Free()
	n := uint32(size / 16)
	groups := min(uint32(max(c.Info.ComputeUnits, 1))*16, (n+wg-1)/wg, c.Info.Limits.MaxComputeWorkGroupCount[0])
	var times []float64
	for range reps + 1 { // the first run warms up
		if err := b.Begin(); err != nil {
			return 0, err
		}
		b.Fill(src.Whole(), 0x3f800000)
		b.Barrier()
		b.Stage("copy")
		b.Dispatch(k, set, copyPush{N: n}, groups, 1, 1)
		b.Stage("end")
		t, err := b.Submit()
		if err != nil {
			return 0, err
		}
		times = append(times, t.Get("copy"))
	}
	times = times[1:]
	slices.Sort(times)
	med := times[len(times)/2]
	if med <= 0 {
		return 0, fmt.Errorf("vk: copy bandwidth: the device reported no time (timestamps unsupported?)")
	}
	return 2 * float64(size) / (med * 1e-9), nil
}
