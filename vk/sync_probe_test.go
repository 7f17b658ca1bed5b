package vk

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// TestSyncScopes times chains of dependent copy dispatches (DispatchFloor's)
// with the dependency expressed in several ways, and two such chains
// recorded interleaved in one command buffer: whether a narrower wait than
// Batch.Barrier's (compute and transfer, both sides) lets a dispatch start
// sooner, whether the device runs two chains side by side when each dispatch
// waits (vkCmdWaitEvents) only for its own chain's previous one, and what a
// dependent dispatch costs with no barrier at all, its workgroups waiting
// for the previous dispatch's through a counter in memory (chain.comp). GPU
// timestamps, median of reps; the times are logged, not asserted
// (BENCHMARKS.md has the H200's). It checks that every chain carried its
// data through, every workgroup copying what others wrote. The chain without
// any wait races by design, and the counter chains are ordered by the
// shader, not by the API, which synchronization validation cannot see: both
// are left out under validation. The counter chains also need the device to
// launch a dispatch's workgroups only after the previous dispatch's, which
// Vulkan does not promise: they run on CPU devices (lavapipe runs
// dispatches one after the other) and NVIDIA's (run 107), not elsewhere,
// where they could hang.
func TestSyncScopes(t *testing.T) {
	ctx := device(t)
	const n, reps = 256, 20
	wide := uint32(max(ctx.Info.ComputeUnits, 1)) * 4
	size := uint64(wide) * copyWorkgroup * 16
	var chains [2]*copyChain
	for i := range chains {
		ch, err := ctx.newCopyChain(fmt.Sprintf("sync probe %d", i), size)
		if err != nil {
			t.Fatal(err)
		}
		defer ch.free()
		chains[i] = ch
	}
	flagK, err := ctx.SharedKernel(KernelSpec{Shader: "chain", Bindings: 3, Push: chainPush{}, Spec: []uint32{copyWorkgroup}})
	if err != nil {
		t.Fatal(err)
	}
	cnt, err := ctx.NewBuffer("sync probe counters", 4*n, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	defer cnt.Free()
	var flagSets [2]*Set // chain 0's buffers, forwards and back
	for i, s := range [][2]*Buffer{{chains[0].src, chains[0].dst}, {chains[0].dst, chains[0].src}} {
		if flagSets[i], err = flagK.NewSet(s[0].Whole(), s[1].Whole(), cnt.Whole()); err != nil {
			t.Fatal(err)
		}
		defer flagSets[i].Free()
	}
	events := make([][]vulkan.Event, 2)
	for i := range events {
		events[i] = make([]vulkan.Event, n)
		for j := range events[i] {
			r := vulkan.CreateEvent(ctx.dev, &vulkan.EventCreateInfo{SType: vulkan.StructureTypeEventCreateInfo}, nil, &events[i][j])
			if err := vkc.Check("vkCreateEvent", int32(r)); err != nil {
				t.Fatal(err)
			}
			defer vulkan.DestroyEvent(ctx.dev, events[i][j], nil)
		}
	}
	b, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	const (
		compute = uint32(vulkan.PipelineStageComputeShaderBit)
		write   = uint32(vulkan.AccessShaderWriteBit)
		rw      = uint32(vulkan.AccessShaderReadBit | vulkan.AccessShaderWriteBit)
	)
	type variant struct {
		name   string
		use    int    // chains, interleaved
		groups uint32 // workgroups per dispatch
		wait   func(c, i int)
		events bool // every dispatch sets its own event
		flags  bool // chain.comp: no barriers, counters in memory
		racy   bool // nothing orders the dispatches: no data check
	}
	full := func(c, i int) { b.Barrier() }
	computeOnly := func(c, i int) {
		b.ctx.fns.CmdMemoryBarrier(unsafe.Pointer(b.cb), compute, compute, write, rw)
	}
	none := func(c, i int) {}
	event := func(c, i int) {
		b.ctx.fns.CmdWaitEvent(unsafe.Pointer(b.cb), unsafe.Pointer(events[c][i-1]), compute, compute, write, rw)
	}
	// dispatch records step i of chain c: groups workgroups copying one
	// element per invocation.
	dispatch := func(v variant, c, i int) {
		elems := v.groups * copyWorkgroup
		if v.flags {
			b.Dispatch(flagK, flagSets[i%2], chainPush{N: elems, Step: uint32(i), Groups: v.groups}, v.groups, 1, 1)
			return
		}
		set := chains[c].fwd
		if i%2 == 1 {
			set = chains[c].back
		}
		b.Dispatch(chains[c].k, set, copyPush{N: elems}, v.groups, 1, 1)
	}
	// run times v; every chain's last buffer must then hold what was
	// filled into its first (unless racy).
	run := func(v variant) (float64, error) {
		var times []float64
		for r := range reps + 1 {
			if err := b.Begin(); err != nil {
				return 0, err
			}
			b.Fill(cnt.Whole(), 0)
			for c := range v.use {
				b.Fill(chains[c].src.Whole(), uint32(0x3f800000+c+r))
				b.Fill(chains[c].dst.Whole(), 0)
			}
			b.Barrier()
			b.Stage("chain")
			for i := range n {
				for c := range v.use {
					if i > 0 {
						v.wait(c, i)
					}
					dispatch(v, c, i)
					if v.events {
						vulkan.CmdSetEvent(b.cb, events[c][i], vulkan.PipelineStageFlags(compute))
					}
				}
			}
			b.Stage("end")
			tm, err := b.Submit()
			if err != nil {
				return 0, err
			}
			if v.events {
				for c := range v.use {
					for _, e := range events[c] {
						if err := vkc.Check("vkResetEvent", int32(vulkan.ResetEvent(ctx.dev, e))); err != nil {
							return 0, err
						}
					}
				}
			}
			// n even: the last dispatch wrote src (back); with n odd, dst.
			for c := range v.use {
				last := chains[c].src
				if n%2 == 1 {
					last = chains[c].dst
				}
				got := make([]byte, v.groups*copyWorkgroup*16)
				if err := ctx.Read(last, 0, got); err != nil {
					return 0, err
				}
				want := uint32(0x3f800000 + c + r)
				for w := 0; w < len(got) && !v.racy; w += 4 {
					if x := binary.LittleEndian.Uint32(got[w:]); x != want {
						return 0, fmt.Errorf("chain %d, run %d: word %d of the last buffer is %#x, want the filled %#x", c, r, w/4, x, want)
					}
				}
			}
			if r > 0 {
				times = append(times, tm.Get("chain"))
			}
		}
		return medianF(times), nil
	}
	var lines []string
	for _, v := range []variant{
		{name: "barrier (Batch.Barrier: compute+transfer)", use: 1, groups: 1, wait: full},
		{name: "barrier, compute to compute", use: 1, groups: 1, wait: computeOnly},
		{name: "event per dispatch", use: 1, groups: 1, wait: event, events: true},
		{name: "no wait (launches only)", use: 1, groups: 1, wait: none, racy: true},
		{name: "counter in memory, no barrier", use: 1, groups: 1, wait: none, flags: true},
		{name: fmt.Sprintf("barrier, %d workgroups", wide), use: 1, groups: wide, wait: full},
		{name: fmt.Sprintf("counter in memory, %d workgroups", wide), use: 1, groups: wide, wait: none, flags: true},
		{name: "two chains, barrier", use: 2, groups: 1, wait: full},
		{name: "two chains, compute barrier", use: 2, groups: 1, wait: computeOnly},
		{name: "two chains, events", use: 2, groups: 1, wait: event, events: true},
	} {
		if (v.racy || v.flags) && envValidate() {
			continue
		}
		if v.flags && !inOrderLaunch(ctx.Info) {
			continue // a dispatch's workgroups could spin on ones never launched
		}
		ns, err := run(v)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if ctx.Info.TimestampValidBits > 0 && ns <= 0 {
			t.Errorf("%s: %.0f ns: want a positive time", v.name, ns)
		}
		lines = append(lines, fmt.Sprintf("%-44s %8.1f us, %.2f us per step", v.name, ns/1e3, ns/1e3/float64(n)))
	}
	t.Logf("%d dependent copy dispatches per chain, median of %d:\n%s", n, reps, strings.Join(lines, "\n"))
}

// inOrderLaunch reports whether TestSyncScopes' counter chains may run on a
// device: a CPU device, or NVIDIA's (vendor 0x10de), where they were
// measured.
func inOrderLaunch(info DeviceInfo) bool {
	return info.Type == DeviceCPU || info.VendorID == 0x10de
}
