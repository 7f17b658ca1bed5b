package vk

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCheckSubgroups runs the subgroup check on the test device (lavapipe
// in CI, at 4, 8 and 16 lanes under make test; the H200), where it must
// pass, and once in workgroups of half a subgroup, where the subgroups
// cannot be full and it must say so.
func TestCheckSubgroups(t *testing.T) {
	ctx := device(t)
	start := time.Now()
	if err := ctx.CheckSubgroups(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%q, subgroups of %d-%d lanes: checked in %v", ctx.Info.Name, ctx.Info.MinSubgroupSize, ctx.Info.MaxSubgroupSize, time.Since(start))
	sg := ctx.Info.MaxSubgroupSize
	if sg < 2 || ctx.Info.MinSubgroupSize != sg {
		return
	}
	err := ctx.checkLanes(sg/2, 4)
	if err == nil || !strings.Contains(err.Error(), "not full") {
		t.Errorf("workgroups of %d in subgroups of %d: %v, want subgroups not full", sg/2, sg, err)
	}
}

// TestLaneOrderError checks the check's verdicts on results made up here:
// in place, one pair of lanes swapped, more subgroups than full ones.
func TestLaneOrderError(t *testing.T) {
	const wg, groups, sg = 16, 3, 8
	res := make([]byte, wg*groups*16)
	put := func(i, place, subgroups uint32) {
		binary.LittleEndian.PutUint32(res[16*i:], place)
		binary.LittleEndian.PutUint32(res[16*i+4:], subgroups)
		binary.LittleEndian.PutUint32(res[16*i+8:], sg)
	}
	for i := range uint32(wg * groups) {
		put(i, i%wg, wg/sg)
	}
	if err := laneOrderError(res, wg, groups, ""); err != nil {
		t.Fatalf("every lane in place: %v", err)
	}
	put(wg+9, 1, wg/sg) // workgroup 1's invocation 9 is lane 1 of subgroup 0
	err := laneOrderError(res, wg, groups, ", requiring full subgroups")
	want := "in workgroups of 16, requiring full subgroups, invocation 9 of workgroup 1 is lane 1 of subgroup 0 (subgroups of 8 lanes), numbered 1"
	if err == nil || err.Error() != want {
		t.Errorf("a lane out of place: %v, want %q", err, want)
	}
	put(wg+9, 9, wg/sg)
	put(2*wg+3, 3, wg/sg+1)
	err = laneOrderError(res, wg, groups, "")
	want = "in workgroups of 16, workgroup 2 runs 3 subgroups of 8 lanes: not full"
	if err == nil || err.Error() != want {
		t.Errorf("a subgroup short of a lane: %v, want %q", err, want)
	}
}

// disorderedLanes is lane_order.comp with every pair of lanes swapped: what
// a driver that numbered a subgroup's lanes otherwise would report.
const disorderedLanes = `#version 450
#extension GL_KHR_shader_subgroup_basic : require
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) writeonly buffer Out { uvec4 out_[]; };
void main() {
    const uint i = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationIndex;
    out_[i] = uvec4((gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID) ^ 1u, gl_NumSubgroups, gl_SubgroupSize, 0u);
}
`

// TestOpenChecksSubgroups checks that OpenWith runs the subgroup check and
// fails with its error: a SPIR-V directory replaces the probe by one that
// reports its lanes swapped in pairs (compiled here with glslc; the test
// skips without it, which CI installs).
func TestOpenChecksSubgroups(t *testing.T) {
	device(t)
	dir := t.TempDir()
	compileKernel(t, dir, "lane_order", disorderedLanes)
	c, err := OpenWith(Options{Device: fmt.Sprint(testCtx.Info.Index), SPIRVDir: dir, Validate: envValidate()})
	if err == nil {
		c.Close()
		t.Fatal("OpenWith with a probe that swaps lanes: no error")
	}
	want := fmt.Sprintf("invocation 0 of workgroup 0 is lane 1 of subgroup 0 (subgroups of %d lanes), numbered 1", testCtx.Info.MaxSubgroupSize)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("OpenWith with a probe that swaps lanes: %v, want it to say %q", err, want)
	}
}
