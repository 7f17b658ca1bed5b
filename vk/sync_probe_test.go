package vk

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// TestSyncScopes times chains of dependent 1-workgroup copy dispatches
// (DispatchFloor's) with the dependency expressed four ways, and two such
// chains recorded interleaved in one command buffer: the question is whether
// a narrower wait than Batch.Barrier's (compute and transfer, both sides)
// lets a dispatch start sooner, and whether the device runs two chains side
// by side when each dispatch waits (vkCmdWaitEvents) only for its own chain's
// previous one. GPU timestamps, median of reps; the times are logged, not
// asserted (BENCHMARKS.md has the H200's). It checks that every chain
// carried its data through. The chain without waits races by design and is
// left out under validation.
func TestSyncScopes(t *testing.T) {
	ctx := device(t)
	const n, reps = 256, 20
	var chains [2]*copyChain
	for i := range chains {
		ch, err := ctx.newCopyChain(fmt.Sprintf("sync probe %d", i), copyWorkgroup*16)
		if err != nil {
			t.Fatal(err)
		}
		defer ch.free()
		chains[i] = ch
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
	// dispatch records step i of chain c.
	dispatch := func(c, i int) {
		set := chains[c].fwd
		if i%2 == 1 {
			set = chains[c].back
		}
		b.Dispatch(chains[c].k, set, copyPush{N: uint32(chains[c].size / 16)}, 1, 1, 1)
	}
	// wait records the dependency of step i (> 0) of chain c on step i-1.
	type waitFn func(c, i int)
	full := func(c, i int) { b.Barrier() }
	computeOnly := func(c, i int) {
		b.ctx.fns.CmdMemoryBarrier(unsafe.Pointer(b.cb), compute, compute, write, rw)
	}
	none := func(c, i int) {}
	event := func(c, i int) {
		b.ctx.fns.CmdWaitEvent(unsafe.Pointer(b.cb), unsafe.Pointer(events[c][i-1]), compute, compute, write, rw)
	}
	// run times chains 0..use-1, step by step interleaved, each step i > 0
	// behind wait; with events every step sets its own event.
	// Unless unordered, every chain's last buffer must hold what was filled
	// into its first.
	run := func(use int, wait waitFn, setEvents, unordered bool) (float64, error) {
		var times []float64
		for r := range reps + 1 {
			if err := b.Begin(); err != nil {
				return 0, err
			}
			for c := range use {
				b.Fill(chains[c].src.Whole(), uint32(0x3f800000+c+r))
				b.Fill(chains[c].dst.Whole(), 0)
			}
			b.Barrier()
			b.Stage("chain")
			for i := range n {
				for c := range use {
					if i > 0 {
						wait(c, i)
					}
					dispatch(c, i)
					if setEvents {
						vulkan.CmdSetEvent(b.cb, events[c][i], vulkan.PipelineStageFlags(compute))
					}
				}
			}
			b.Stage("end")
			tm, err := b.Submit()
			if err != nil {
				return 0, err
			}
			if setEvents {
				for c := range use {
					for _, e := range events[c] {
						if err := vkc.Check("vkResetEvent", int32(vulkan.ResetEvent(ctx.dev, e))); err != nil {
							return 0, err
						}
					}
				}
			}
			// n even: the last dispatch wrote src (back); with n odd, dst.
			for c := range use {
				last := chains[c].src
				if n%2 == 1 {
					last = chains[c].dst
				}
				got := make([]byte, last.Size())
				if err := ctx.Read(last, 0, got); err != nil {
					return 0, err
				}
				want := uint32(0x3f800000 + c + r)
				for w := 0; w < len(got) && !unordered; w += 4 {
					if v := binary.LittleEndian.Uint32(got[w:]); v != want {
						return 0, fmt.Errorf("chain %d, run %d: word %d of the last buffer is %#x, want the filled %#x", c, r, w/4, v, want)
					}
				}
			}
			if r > 0 {
				times = append(times, tm.Get("chain"))
			}
		}
		slices.Sort(times)
		return times[len(times)/2], nil
	}
	var lines []string
	for _, v := range []struct {
		name              string
		use               int
		wait              waitFn
		events, unordered bool
	}{
		{"barrier (Batch.Barrier: compute+transfer)", 1, full, false, false},
		{"barrier, compute to compute", 1, computeOnly, false, false},
		{"event per dispatch", 1, event, true, false},
		{"no wait (launches only)", 1, none, false, true},
		{"two chains, barrier", 2, full, false, false},
		{"two chains, compute barrier", 2, computeOnly, false, false},
		{"two chains, events", 2, event, true, false},
	} {
		if v.unordered && envValidate() {
			continue // a deliberate race, which synchronization validation reports
		}
		ns, err := run(v.use, v.wait, v.events, v.unordered)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if ctx.Info.TimestampValidBits > 0 && ns <= 0 {
			t.Errorf("%s: %.0f ns: want a positive time", v.name, ns)
		}
		lines = append(lines, fmt.Sprintf("%-44s %8.1f us, %.2f us per step", v.name, ns/1e3, ns/1e3/float64(n)))
	}
	t.Logf("%d dependent 1-workgroup copies per chain, median of %d:\n%s", n, reps, strings.Join(lines, "\n"))
}
