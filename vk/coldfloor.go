package vk

import "fmt"

// ChainKernels is what ColdDispatchFloor's chain of dispatches runs.
type ChainKernels int

// The chains of ColdDispatchFloor.
const (
	// ChainOne runs every dispatch with one pipeline (copy.comp at 16n
	// lanes, the context's).
	ChainOne ChainKernels = iota
	// ChainCopies runs each dispatch with a pipeline of its own, all of
	// the same kernel at the same size (copy.comp at 16n lanes, built n
	// times and freed after): what switching pipelines costs where their
	// code is the same.
	ChainCopies
	// ChainSizes runs each dispatch with a distinct kernel (copy.comp at
	// 16, 32, ..., 16n lanes, the context's): code of its own, as a step's
	// kernels have.
	ChainSizes
	// ChainLarge runs each dispatch with a distinct kernel of kilobytes of
	// code, all at 16n lanes (bigcode.comp, the same copy after 128
	// unrolled rounds of arithmetic whose constants differ by kernel, the
	// context's): what a kernel as large as a step's pays to fetch its code
	// after the flush, against the chain without it. Warm, its rounds make
	// each level longer than ChainOne's; the flush's difference is the
	// measurement. On the H200 (27 KB of machine code a kernel): 16.4 and
	// 15.9 us a level after the L2 flush in two runs, 8.5 without
	// (BENCHMARKS.md session 28, runs 315 and 317).
	ChainLarge
)

// ColdDispatchFloor measures what a dependent dispatch costs right after an
// L2 flush, as every stage of a timed decode step pays it (the benchmarks
// flush before every step): a chain of n one-workgroup copy dispatches of
// 4 KiB each, a barrier between consecutive ones (DispatchFloor's chain),
// submitted reps times, each after flush has run (nil: no flush, the
// chain's code and data warm from the run before), with the pipelines
// kernels says (n <= 8). It returns the median over reps chains
// of the chain's time divided by n, in nanoseconds. Session 26 found a
// step's kernels slower after the flush even where their data was in L2
// (the threshold round 3.6 us instead of 1.9) and quick again after another
// instance's step with the same pipelines. On the H200 (session 27, runs
// 306-312) a level of one pipeline costs 0.02-0.14 us more after the flush
// than without, and so does a level of 8 pipelines of the same kernel: a
// pipeline switch costs nothing measurable, and copy.comp's code (a few
// instructions; a step's kernels run through kilobytes) at most 0.1 us a
// dispatch. The distinct kernels' level costs 0.5 us more after the flush
// and 0.7 more than one pipeline's even without it, but their smaller
// workgroups copy the same 4 KiB in more rounds a lane (16 at 16 lanes, 2
// at 128), so that is their loads, not their code.
func (c *Context) ColdDispatchFloor(n int, kernels ChainKernels, flush *L2Flush, reps int) (float64, error) {
	if n < 1 || n > 8 || reps < 1 || kernels < ChainOne || kernels > ChainLarge {
		return 0, fmt.Errorf("vk: cold dispatch floor: %d dispatches, kernels %d, reps %d: want 1 to 8 dispatches, kernels ChainOne to ChainLarge and reps >= 1", n, kernels, reps)
	}
	const elems = 256 // uvec4 elements a dispatch copies: 4 KiB
	bufs := make([]*Buffer, 2)
	for i := range bufs {
		b, err := c.NewBuffer(fmt.Sprintf("cold dispatch floor %d", i), elems*16, DeviceLocal)
		if err != nil {
			return 0, err
		}
		defer b.Free()
		bufs[i] = b
	}
	// Dispatch i reads what dispatch i-1 wrote: sets[i] copies bufs[i%2]
	// to bufs[1-i%2] with kernel ks[i].
	ks := make([]*Kernel, n)
	sets := make([]*Set, n)
	for i := range n {
		wg := uint32(16 * n) // one size for the whole chain
		if kernels == ChainSizes {
			wg = uint32(16 * (i + 1))
		}
		spec := KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{wg}}
		if kernels == ChainLarge {
			spec = KernelSpec{Shader: "bigcode", Bindings: 2, Push: copyPush{}, Spec: []uint32{wg, uint32(i + 1)}}
		}
		var k *Kernel
		var err error
		if kernels == ChainCopies {
			if k, err = c.NewKernel(spec); err == nil {
				defer k.Free()
			}
		} else {
			k, err = c.SharedKernel(spec)
		}
		if err != nil {
			return 0, err
		}
		ks[i] = k
		if sets[i], err = k.NewSet(bufs[i%2].Whole(), bufs[1-i%2].Whole()); err != nil {
			return 0, err
		}
		defer sets[i].Free()
	}
	b, err := c.NewBatch()
	if err != nil {
		return 0, err
	}
	defer b.Free()
	med, err := medianRunAfter(b, reps, "chain", flush.Run, func(b *Batch) {
		b.Stage("chain")
		for i := range n {
			if i > 0 {
				b.Barrier()
			}
			b.Dispatch(ks[i], sets[i], copyPush{N: elems}, 1, 1, 1)
		}
		b.Stage("end")
	})
	if err != nil {
		return 0, err
	}
	if med <= 0 {
		return 0, fmt.Errorf("vk: cold dispatch floor: the device reported no time (timestamps unsupported?)")
	}
	return med / float64(n), nil
}
