package vk

import (
	"encoding/binary"
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
	out, err := ctx.NewBuffer("half subgroups", uint64(4*sg/2)*16, Readback)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	b, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	err = ctx.checkLanes(b, out, sg/2, 4)
	if err == nil || !strings.Contains(err.Error(), "not full") {
		t.Errorf("workgroups of %d in subgroups of %d: %v, want subgroups not full", sg/2, sg, err)
	}
}

// TestLaneOrderError checks the check's verdicts on results made up here:
// in place, one pair of lanes swapped, one subgroup short of lanes.
func TestLaneOrderError(t *testing.T) {
	const wg, groups, sg = 16, 3, 8
	res := make([]byte, wg*groups*16)
	put := func(i, place, lanes uint32) {
		binary.LittleEndian.PutUint32(res[16*i:], place)
		binary.LittleEndian.PutUint32(res[16*i+4:], lanes)
		binary.LittleEndian.PutUint32(res[16*i+8:], sg)
	}
	for i := range uint32(wg * groups) {
		put(i, i%wg, sg)
	}
	if err := laneOrderError(res, wg, groups, ""); err != nil {
		t.Fatalf("every lane in place: %v", err)
	}
	put(wg+9, 1, sg) // workgroup 1's invocation 9 is lane 1 of subgroup 0
	err := laneOrderError(res, wg, groups, ", requiring full subgroups")
	want := "in workgroups of 16, requiring full subgroups, invocation 9 of workgroup 1 is lane 1 of subgroup 0 (subgroups of 8 lanes), numbered 1"
	if err == nil || err.Error() != want {
		t.Errorf("a lane out of place: %v, want %q", err, want)
	}
	put(wg+9, 9, sg)
	put(2*wg+3, 3, sg-1)
	err = laneOrderError(res, wg, groups, "")
	want = "in workgroups of 16, invocation 3 of workgroup 2 ran in a subgroup of 7 lanes of 8: not full"
	if err == nil || err.Error() != want {
		t.Errorf("a subgroup short of a lane: %v, want %q", err, want)
	}
}
