package vk

import (
	"cmp"
	"math"
)

// The onekernel variant of HATA (SparseOptions.Variant "onekernel"): the
// fused chain's four stages as work items of one dispatch, hata_step.glsl,
// each item waiting only for the items of its own row that it reads (see the
// shader for the queue and why it cannot deadlock). It needs what the fused
// chain's kernels need plus: the histogram in one pass with at most 16 bins
// per lane (G*rbit+1 <= maxBinsPerLane*WG), the cache in one buffer, the shared memory
// of all four stages at once and 14 storage buffers; where any of these
// fails, the step runs the fused chain instead.

// oneKernelChunk is the default tokens per score and select item of
// hata_step (eight rounds of its 128 lanes x 4 token pairs, eight tiles of
// 128 lanes x 8 keys): on the H200 8192 was faster than 1024, 2048, 4096
// and 16384 at every shape swept (runs 15-17, BENCHMARKS.md).
const oneKernelChunk = 8192

// oneKernelWorkgroups is the default of SparseOptions.QueueGroups.
const oneKernelWorkgroups = 8

// hataStepPush mirrors hata_step.glsl's push constants.
type hataStepPush struct {
	N, Cap, ChunkLen, NChunks, SinkEnd, RecentStart, KeyStride uint32
	KK, K, KStride, SplitLen, Splits                           uint32
	Scale                                                      float32
	Rows, Hkv, Ldw, Rbit                                       uint32
	ItemEnd                                                    uint32
}

// oneKernel is the plan of a onekernel step: the kernel, its counters
// [1 + 3*rows] uint32 (zeroed in the upload stage) and the workgroups.
type oneKernel struct {
	k      *Kernel
	ctr    Range
	groups int
}

// stepKernel returns hata_step for h, or nil when the variant cannot run it
// (the caller then records the fused chain).
func (m *HATA) stepKernel(h *hataStep) (*oneKernel, error) {
	info := m.ctx.Info
	if !h.fusedHist || len(m.kv.k) != 1 || info.Limits.MaxStorageBuffersPerStage < 14 {
		return nil, nil
	}
	wg := cmp.Or(m.opt.Workgroup, sparseWorkgroup)
	nb := h.g*m.w.Rbit + 1
	if wg%32 != 0 || wg%int(info.MaxSubgroupSize) != 0 || nb > maxBinsPerLane*wg {
		return nil, nil
	}
	tpt, shader, err := m.sparseLanes("hata_step")
	if err != nil {
		return nil, err
	}
	sl := wg / 32
	nslot := wg / tpt
	shared := 4*(1+wg+nb+2+h.g*m.d+sl*h.g*32+h.g) + listMergeShared(nslot, m.d, h.g)
	if wg%tpt != 0 || shared > int(info.Limits.MaxComputeSharedMemorySize) {
		return nil, nil
	}
	k, err := m.kernel(shader, 14, hataStepPush{},
		uint32(wg), uint32(tpt), uint32(m.d), uint32(h.g), uint32(m.tile()), uint32(m.ws/4), uint32(nb),
		b32(info.Type == DeviceCPU), // POLL_ALL: lavapipe needs every lane to poll (hata_step.glsl)
		m.codesPerVec4())
	if err != nil {
		return nil, err
	}
	ctrBytes := uint64(1+3*h.rows) * 4
	ctr, err := m.buf("step counters", ctrBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	items := m.stepItems(h, h.k)[3] // the attention's splits are not known here: at most k per row
	groups := min(max(info.ComputeUnits, 1)*cmp.Or(m.opt.QueueGroups, oneKernelWorkgroups), items, int(info.Limits.MaxComputeWorkGroupCount[0]))
	return &oneKernel{k: k, ctr: ctr.Range(0, ctrBytes), groups: groups}, nil
}

// stepItems returns where hata_step's kinds of items end in its queue (the
// shader's order): its encode items (a code word of a row each), score
// items, select items (a chunk of a row each) and attention items (splits
// per row).
func (m *HATA) stepItems(h *hataStep, splits int) [4]int {
	ne := h.rows * ((m.w.Rbit + 31) / 32)
	ns := h.rows * h.sel.nchunks
	return [4]int{ne, ne + ns, ne + 2*ns, ne + 2*ns + h.rows*splits}
}

// recordStep records the onekernel step ("step") into the attention a: one
// dispatch on a GPU; on a CPU device one per kind of item (encode, score,
// select, attend) with a workgroup per item, the queue head set to the
// kind's first item before each, because lavapipe silently ends an
// invocation's loops after 65535 iterations of all of them together, which
// long polls or many items per workgroup reach (hata_step.glsl).
func (m *HATA) recordStep(b *Batch, h *hataStep, o *oneKernel, a *attention) error {
	b.Stage("step")
	set, err := m.set(o.k, h.q, m.wbuf.Whole(), h.qcodes, m.keyCodes(),
		h.keys, h.sel.hist, h.sel.sel, m.kv.k[0].Whole(), m.kv.v[0].Whole(), a.po, a.pml, a.out, a.cnt, o.ctr)
	if err != nil {
		return err
	}
	push := hataStepPush{
		N: uint32(m.n), Cap: uint32(m.cap), ChunkLen: uint32(h.scoreChunk), NChunks: uint32(h.sel.nchunks),
		SinkEnd: uint32(h.sel.sinkEnd), RecentStart: uint32(h.sel.recentEnd), KeyStride: uint32(m.cap),
		KK: uint32(h.sel.kk), K: uint32(h.k), KStride: uint32(h.k),
		SplitLen: uint32(a.length), Splits: uint32(a.splits), Scale: float32(1 / math.Sqrt(float64(m.d))),
		Rows: uint32(h.rows), Hkv: uint32(m.hkv), Ldw: uint32(m.w.Rbit), Rbit: uint32(m.w.Rbit),
	}
	if m.ctx.Info.Type != DeviceCPU {
		b.Dispatch(o.k, set, push, uint32(o.groups), 1, 1)
		b.Barrier()
		return nil
	}
	first := 0
	for _, end := range m.stepItems(h, a.splits) {
		b.Fill(o.ctr.Buf.Range(o.ctr.Off, 4), uint32(first)) // the queue head
		b.Barrier()
		push.ItemEnd = uint32(end)
		// A workgroup per item, so that no workgroup's loops add up to many.
		groups := min(end-first, int(m.ctx.Info.Limits.MaxComputeWorkGroupCount[0]))
		b.Dispatch(o.k, set, push, uint32(groups), 1, 1)
		b.Barrier()
		first = end
	}
	return nil
}
