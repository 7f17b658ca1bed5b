package vk

import (
	"encoding/binary"
	"fmt"
)

// CheckSubgroups checks, on the device, the two things the kernels assume of
// subgroups in a workgroup whose size is a multiple of the largest subgroup
// size (doc.go): every subgroup is full, and lane i of subgroup s is
// invocation s*gl_SubgroupSize + i (gl_LocalInvocationIndex). It runs
// lane_order.comp, built as every kernel is (requiring full subgroups where
// the context does), at each such size from the largest subgroup size,
// doubled, up to 1024 or the device's limit, over enough workgroups to fill
// the device twice, and returns an error naming the first workgroup size,
// invocation and value out of place. Vulkan 1.3 promises neither without
// VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT and the
// second not even with it; NVIDIA's driver and lavapipe keep both. Open
// and OpenWith call it (once a process for each device and way of
// requesting full subgroups), so that a driver that breaks them fails to
// open, with this error, instead of computing wrong selections.
func (c *Context) CheckSubgroups() error {
	groups := uint32(min(max(2*c.Info.ComputeUnits, 4), 256))
	for _, wg := range c.subgroupCheckSizes() {
		if err := c.checkLanes(wg, groups); err != nil {
			return fmt.Errorf("vk: device %d %q: %w; the kernels assume it (vk/doc.go)", c.Info.Index, c.Info.Name, err)
		}
	}
	return nil
}

// subgroupCheckSizes returns the workgroup sizes CheckSubgroups probes: the
// largest subgroup size and its doublings up to 1024, while the device runs
// them (workgroupFits); none where it runs no such workgroup.
func (c *Context) subgroupCheckSizes() []uint32 {
	var sizes []uint32
	for wg := max(c.Info.MaxSubgroupSize, 1); wg <= 1024 && workgroupFits(c.Info, int(wg)); wg *= 2 {
		sizes = append(sizes, wg)
	}
	return sizes
}

// checkLanes runs lane_order.comp in groups workgroups of wg invocations
// and checks its results.
func (c *Context) checkLanes(wg, groups uint32) error {
	k, err := c.NewKernel(KernelSpec{Shader: "lane_order", Bindings: 1, Spec: []uint32{wg}})
	if err != nil {
		return err
	}
	defer k.Free()
	out, err := c.NewBuffer("subgroup check", uint64(groups*wg)*16, Readback)
	if err != nil {
		return err
	}
	defer out.Free()
	set, err := k.NewSet(out.Whole())
	if err != nil {
		return err
	}
	defer set.Free()
	b, err := c.NewBatch()
	if err != nil {
		return err
	}
	defer b.Free()
	if err := b.Begin(); err != nil {
		return err
	}
	b.Dispatch(k, set, nil, groups, 1, 1)
	if _, err := b.Submit(); err != nil {
		return err
	}
	if err := out.invalidate(); err != nil { // a readback memory type need not be coherent
		return err
	}
	full := ""
	if k.FullSubgroups() {
		full = ", requiring full subgroups"
	}
	return laneOrderError(out.Bytes(), wg, groups, full)
}

// laneOrderError checks lane_order.comp's results res (groups*wg of
// (place, subgroups, size, 0), uint32 little-endian) and returns an error
// naming the first invocation whose subgroup numbers it otherwise than
// gl_LocalInvocationIndex, or whose workgroup's subgroups hold more lanes
// than it has invocations (with every invocation in place, some subgroup is
// then not full); nil when every one is in place in full subgroups. full is
// said after the workgroup size.
func laneOrderError(res []byte, wg, groups uint32, full string) error {
	for i := range groups * wg {
		w := func(j uint32) uint32 { return binary.LittleEndian.Uint32(res[16*i+4*j:]) }
		place, subgroups, size := w(0), w(1), max(w(2), 1)
		if li := i % wg; place != li {
			return fmt.Errorf("in workgroups of %d%s, invocation %d of workgroup %d is lane %d of subgroup %d (subgroups of %d lanes), numbered %d",
				wg, full, li, i/wg, place%size, place/size, size, place)
		}
		if subgroups*size != wg {
			return fmt.Errorf("in workgroups of %d%s, workgroup %d runs %d subgroups of %d lanes: not full", wg, full, i/wg, subgroups, size)
		}
	}
	return nil
}
