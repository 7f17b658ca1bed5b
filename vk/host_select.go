package vk

import (
	"math"
	"unsafe"

	"github.com/hata-go/hata/ref"
)

// Streaming is StreamingLLM with GPU attention (the vk implementation of
// ref.Streaming): the selection depends on positions only, so the host
// computes it (the first Sink tokens, then the most recent ones up to k) and
// uploads it with q; the attention runs on the GPU as HATA's does. Timings
// names the stages "upload" (q and the selection), ["poison",] "attend",
// ["readback"].
type Streaming struct {
	*sparseCore
	sink int
}

var _ ref.Method = (*Streaming)(nil)

// NewStreaming returns StreamingLLM with sink attention sinks (0: 4,
// negative: none) for caches of head dimension d.
func (c *Context) NewStreaming(d, sink int, o SparseOptions) (*Streaming, error) {
	core, err := newSparseCore(c, "streaming", d, o)
	if err != nil {
		return nil, err
	}
	m := &Streaming{sparseCore: core, sink: ref.NewStreaming(sink).Sink}
	core.planner = m
	return m, nil
}

// plan implements planner: the positional selection, made on the host.
func (m *Streaming) plan(q []float32, budget ref.Budget) (*stepPlan, error) {
	s, err := m.prepareStep(q, budget)
	if err != nil {
		return nil, err
	}
	k := s.k
	sinkEnd, recentStart, _ := windows(ref.Windows{Sink: m.sink, Recent: k}, m.n, k)
	keep := make([]int32, 0, k)
	for t := range sinkEnd {
		keep = append(keep, int32(t))
	}
	for t := recentStart; t < m.n; t++ {
		keep = append(keep, int32(t))
	}
	sel := make([][]int32, s.rows)
	for r := range sel {
		sel[r] = keep
	}
	hostSel, err := m.hostSelection(sel, k)
	if err != nil {
		return nil, err
	}
	return &stepPlan{s: s, hostSel: hostSel}, nil
}

// H2O is the heavy-hitter oracle with GPU attention (the vk implementation of
// ref.H2O). The history (accumulated attention A and the evicted flags, per
// row and token) lives on the host in a ref.H2OHistory, whose Select picks
// the tokens as ref does (the recent half of the budget, then the survivors
// with the largest A, ties to the smaller index); the selection is uploaded
// with q. The GPU attends and computes the raw logits q_h·k_t of the kept
// tokens (score_logits over the index list, read back with the output); the
// history's Accumulate turns them into the softmax over the kept set in
// float64 and adds it to A, exactly as ref does from its own dot products
// (which the GPU's equal whenever they are exact in float32, as with the
// acceptance suite's dyadic inputs). Timings names the stages "upload",
// ["poison",] "score" (the logits of the kept tokens), "attend",
// "readback".
type H2O struct {
	*sparseCore
	hist   *ref.H2OHistory // A and the evicted flags, per row and token
	scores [][]float64     // the ranking of the last Decode (ref.H2O.Scores)
}

var (
	_ ref.Method = (*H2O)(nil)
	_ ref.Scorer = (*H2O)(nil)
)

// NewH2O returns the heavy-hitter oracle for caches of head dimension d.
func (c *Context) NewH2O(d int, o SparseOptions) (*H2O, error) {
	core, err := newSparseCore(c, "h2o", d, o)
	if err != nil {
		return nil, err
	}
	return &H2O{sparseCore: core}, nil
}

func (m *H2O) reset() {
	m.hist = ref.NewH2OHistory(m.rows(), m.n)
	m.scores = nil
}

// Prefill implements ref.Method: every token starts with A = 0.
func (m *H2O) Prefill(kv *ref.KV) error {
	if err := m.sparseCore.Prefill(kv); err != nil {
		return err
	}
	m.reset()
	return nil
}

// PrefillRandom fills the cache on the device (see Dense.PrefillRandom).
func (m *H2O) PrefillRandom(b, hkv, n, d int, seed uint32) error {
	if err := m.sparseCore.PrefillRandom(b, hkv, n, d, seed); err != nil {
		return err
	}
	m.reset()
	return nil
}

// Append implements ref.Method: the new token starts with A = 0, not evicted.
func (m *H2O) Append(k, v []float32) error {
	if err := m.sparseCore.Append(k, v); err != nil {
		return err
	}
	m.hist.Append()
	return nil
}

// h2oStep is a prepared H2O decode step.
type h2oStep struct {
	plan  *stepPlan
	sel   [][]int32
	x, rb Range // logits [rows][G][k] and their readback
}

func (m *H2O) prepare(q []float32, budget ref.Budget) (*h2oStep, error) {
	s, err := m.prepareStep(q, budget)
	if err != nil {
		return nil, err
	}
	k := s.k
	var sel [][]int32
	sel, m.scores = m.hist.Select(k) // ref.H2O's selection, on the host
	hostSel, err := m.hostSelection(sel, k)
	if err != nil {
		return nil, err
	}
	chunk := m.scoreChunk(k, s.rows, scoreMaxChunk, logitsPerCU)
	nchunks := (k + chunk - 1) / chunk
	xBytes := uint64(s.rows*s.g*k) * 4
	x, err := m.buf("kept logits", xBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	pmlBytes := uint64(s.rows*s.g*nchunks) * 8
	pml, err := m.buf("kept logit partials", pmlBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	rb, err := m.buf("kept logits readback", xBytes, Readback)
	if err != nil {
		return nil, err
	}
	lk, err := m.logitsKernel(s.g, m.d, m.opt.Storage, true, m.opt.PairedKV)
	if err != nil {
		return nil, err
	}
	xr, pr := x.Range(0, xBytes), pml.Range(0, pmlBytes)
	h := &h2oStep{sel: sel, x: xr, rb: rb.Range(0, xBytes)}
	h.plan = &stepPlan{
		s: s, hostSel: hostSel, poison: []Range{xr, pr},
		extra: []copyOp{{dst: h.rb, src: xr}},
		rec: func(b *Batch) error {
			b.Stage("score")
			if err := m.recordLogits(b, lk, logitsPush{N: uint32(k), Cap: uint32(m.cap), KStride: uint32(k), ChunkLen: uint32(chunk), NChunks: uint32(nchunks), XStride: uint32(k), Scale: 1},
				s.q, m.groups(), s.sel, xr, pr); err != nil {
				return err
			}
			b.Barrier()
			return nil
		},
	}
	return h, nil
}

// accumulate hands the logits of the kept tokens, read back, to the history
// (ref.H2OHistory.Accumulate: the softmax over the kept set of every head
// added to A, every token not kept evicted; ref.H2O.Decode, steps 4 and 5).
func (m *H2O) accumulate(h *h2oStep) error {
	if err := h.rb.Buf.invalidate(); err != nil {
		return err
	}
	s := h.plan.s
	raw := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(h.rb.Buf.Bytes()))), s.rows*s.g*s.k) // [rows][G][k]
	scale := 1 / math.Sqrt(float64(m.d))
	x := make([]float64, s.g*s.k) // x: [G][k], one row's logits
	for r, sel := range h.sel {
		for i, v := range raw[r*s.g*s.k : (r+1)*s.g*s.k] {
			x[i] = float64(v) * scale
		}
		m.hist.Accumulate(r, sel, x)
	}
	return nil
}

// Decode implements ref.Method: one step of H2O's history. It runs its
// plan itself (not through sparseCore.Decode, whose planner has no history
// to accumulate), so it marks the step as run itself too: AttentionTrace
// and Traces read a traced step's readings only after one.
func (m *H2O) Decode(q []float32, budget ref.Budget) (*ref.Result, error) {
	h, err := m.prepare(q, budget)
	if err != nil {
		return nil, err
	}
	res, err := m.run(q, h.plan, true)
	m.stepped = err == nil
	if err != nil {
		return nil, err
	}
	return res, m.accumulate(h)
}

// Step runs one decode step (a step of the history: the logits are read
// back to accumulate A) without reading the output back.
func (m *H2O) Step(q []float32, budget ref.Budget) (Timings, error) {
	if _, err := m.Decode(q, budget); err != nil {
		return Timings{}, err
	}
	return m.timings, nil
}

// Scores implements ref.Scorer: A of the tokens not evicted, and A/(1+A) - 1
// for the evicted ones, as they stood when the last Decode selected.
func (m *H2O) Scores() ([][]float64, error) {
	if m.scores == nil {
		return nil, m.errorf("no scores before the first Decode")
	}
	return m.scores, nil
}
