package vk

import (
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/hata-go/hata/ref"
)

// Halves runs a top-k method as two instances over the two halves of the
// batch at once, the second half's decode steps on the compute family's
// second queue (Context.QueueOverlap), so that one half's latency-bound
// stages (encode, select, the attention's list of K/V reads) may run beside
// the other's: an experiment on the way to a step pipelined over its rows
// (BENCHMARKS.md, session 9). The rows of a batch are independent, so its
// output and selection are those of one instance, the first half's rows
// first. A batch of one runs on the first instance alone; so does a device
// with one compute queue, where the halves take turns.
//
// Timings reports one stage, "step": from the earlier of the two halves'
// first kernel timestamps to the later of their last ones, on the device
// clock both queues share on the GPUs this was measured on (a span shorter
// than either half's own is an error: the clocks are not comparable).
type Halves struct {
	ctx    *Context
	name   string
	a, b   halfMethod
	nb     int // batches of the first half, 0 before a prefill
	batch  int // B
	hkv, d int
	tim    Timings
}

// halfMethod is what Halves needs of each instance (every top-k method of
// this package).
type halfMethod interface {
	ref.Method
	PrefillRandom(b, hkv, n, d int, seed uint32) error
	Timings() Timings
	Step(q []float32, budget ref.Budget) (Timings, error)
	io.Closer
	onSecondQueue()
}

var _ ref.Method = (*Halves)(nil)

// NewHalves returns name's method (see newSparseMethod) as two instances with
// the options o, the second on the second queue.
func (c *Context) NewHalves(name string, hkv, d int, ro ref.Options, o SparseOptions) (*Halves, error) {
	var ms [2]halfMethod
	for i := range ms {
		m, err := c.newSparseMethod(name, hkv, d, ro, o)
		if err != nil {
			if ms[0] != nil {
				ms[0].Close()
			}
			return nil, err
		}
		hm, ok := m.(halfMethod)
		if !ok {
			if cl, ok := m.(io.Closer); ok {
				cl.Close()
			}
			if ms[0] != nil {
				ms[0].Close()
			}
			return nil, fmt.Errorf("vk: %s cannot run in halves (no device-side decode step)", name)
		}
		ms[i] = hm
	}
	ms[1].onSecondQueue()
	return &Halves{ctx: c, name: name, a: ms[0], b: ms[1], hkv: hkv, d: d}, nil
}

// Name implements ref.Method.
func (h *Halves) Name() string { return h.name }

// split sets the halves for a batch of b: ceil(b/2) batches first.
func (h *Halves) split(b int) {
	h.batch, h.nb = b, (b+1)/2
}

// half returns the part of x: [B][rest] of the first (i = 0) or second half.
func (h *Halves) half(x []float32, i int) []float32 {
	per := len(x) / h.batch
	if i == 0 {
		return x[:h.nb*per]
	}
	return x[h.nb*per:]
}

// both runs f on the halves at once (on the first alone for a batch of
// one) and returns the first error.
func (h *Halves) both(f func(m halfMethod, i int) error) error {
	if h.nb == h.batch {
		return f(h.a, 0)
	}
	var wg sync.WaitGroup
	var errs [2]error
	for i, m := range []halfMethod{h.a, h.b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(m, i)
		}()
	}
	wg.Wait()
	if errs[0] != nil {
		return errs[0]
	}
	return errs[1]
}

// Prefill implements ref.Method: each half takes its batches' rows.
func (h *Halves) Prefill(kv *ref.KV) error {
	if kv == nil {
		return fmt.Errorf("vk %s halves: prefill: nil cache", h.name)
	}
	h.split(kv.B)
	r := h.nb * kv.Hkv
	parts := [2]*ref.KV{
		{B: h.nb, Hkv: kv.Hkv, D: kv.D, N: kv.N, K: kv.K[:r], V: kv.V[:r]},
		{B: kv.B - h.nb, Hkv: kv.Hkv, D: kv.D, N: kv.N, K: kv.K[r:], V: kv.V[r:]},
	}
	// Loki fits its basis on the cache it is given (ref.FitLokiBasis): on the
	// whole batch for both halves, as one instance would.
	if l, ok := h.a.(*Loki); ok && l.basis == nil {
		p, err := ref.FitLokiBasis(kv)
		if err != nil {
			return fmt.Errorf("vk %s halves: %v", h.name, err)
		}
		return h.both(func(m halfMethod, i int) error { return m.(*Loki).prefillBasis(parts[i], p) })
	}
	return h.both(func(m halfMethod, i int) error { return m.Prefill(parts[i]) })
}

// PrefillRandom fills each half's cache on the device (Dense.PrefillRandom):
// the second half with seed+1, so the halves hold different caches.
func (h *Halves) PrefillRandom(b, hkv, n, d int, seed uint32) error {
	if b < 1 {
		return fmt.Errorf("vk %s halves: prefill random: B=%d, want >= 1", h.name, b)
	}
	h.split(b)
	return h.both(func(m halfMethod, i int) error {
		nb := h.nb
		if i == 1 {
			nb = b - h.nb
		}
		return m.PrefillRandom(nb, hkv, n, d, seed+uint32(i))
	})
}

// Append implements ref.Method.
func (h *Halves) Append(k, v []float32) error {
	if h.nb == 0 {
		return fmt.Errorf("vk %s halves: append before prefill", h.name)
	}
	if len(k)%h.batch != 0 || len(v)%h.batch != 0 {
		return fmt.Errorf("vk %s halves: append: len(k)=%d len(v)=%d, want multiples of B=%d", h.name, len(k), len(v), h.batch)
	}
	return h.both(func(m halfMethod, i int) error { return m.Append(h.half(k, i), h.half(v, i)) })
}

// Decode implements ref.Method: both halves at once, their outputs and
// selections concatenated.
func (h *Halves) Decode(q []float32, budget ref.Budget) (*ref.Result, error) {
	if h.nb == 0 {
		return nil, fmt.Errorf("vk %s halves: decode before prefill", h.name)
	}
	if len(q)%h.batch != 0 {
		return nil, fmt.Errorf("vk %s halves: decode: len(q)=%d, want a multiple of B=%d", h.name, len(q), h.batch)
	}
	var rs [2]*ref.Result
	if err := h.both(func(m halfMethod, i int) error {
		r, err := m.Decode(h.half(q, i), budget)
		rs[i] = r
		return err
	}); err != nil {
		return nil, err
	}
	if rs[1] == nil {
		h.tim = oneSpan(h.a.Timings())
		return rs[0], nil
	}
	t, err := h.span(h.a.Timings(), h.b.Timings())
	if err != nil {
		return nil, err
	}
	h.tim = t
	return &ref.Result{
		Out:      append(append([]float32(nil), rs[0].Out...), rs[1].Out...),
		Selected: append(append([][]int32(nil), rs[0].Selected...), rs[1].Selected...),
	}, nil
}

// Step runs one decode step of both halves without reading anything back.
func (h *Halves) Step(q []float32, budget ref.Budget) (Timings, error) {
	if h.nb == 0 {
		return Timings{}, fmt.Errorf("vk %s halves: step before prefill", h.name)
	}
	if err := h.both(func(m halfMethod, i int) error {
		_, err := m.Step(h.half(q, i), budget)
		return err
	}); err != nil {
		return Timings{}, err
	}
	if h.nb == h.batch {
		h.tim = oneSpan(h.a.Timings())
		return h.tim, nil
	}
	t, err := h.span(h.a.Timings(), h.b.Timings())
	h.tim = t
	return t, err
}

// Timings returns the last step's span (see Halves).
func (h *Halves) Timings() Timings { return h.tim }

// Close frees both instances.
func (h *Halves) Close() error {
	h.a.Close()
	return h.b.Close()
}

// kernelSpan returns the first kernel stage's start and the last one's end
// (the stages but upload, poison and readback), and whether there is one.
func kernelSpan(t Timings) (start, end uint64, ok bool) {
	for _, s := range t.Stages {
		if hostStages[s.Name] {
			continue
		}
		if !ok {
			start, ok = s.Start, true
		}
		end = s.End
	}
	return start, end, ok
}

// oneSpan is one instance's kernel stages as one "step" stage (a batch of
// one: the first half alone).
func oneSpan(t Timings) Timings {
	if !t.Supported {
		return t
	}
	var ns float64
	for _, s := range t.Stages {
		if !hostStages[s.Name] {
			ns += s.Ns
		}
	}
	return Timings{Supported: true, Stages: []Stage{{Name: "step", Ns: ns}}}
}

// span returns the "step" stage from the earlier start to the later end of
// the two halves' kernel stages.
func (h *Halves) span(a, b Timings) (Timings, error) {
	if !a.Supported || !b.Supported {
		return Timings{}, nil
	}
	sa, ea, oka := kernelSpan(a)
	sb, eb, okb := kernelSpan(b)
	if !oka || !okb {
		return Timings{Supported: true}, nil
	}
	mask := uint64(math.MaxUint64)
	if bits := h.ctx.Info.TimestampValidBits; bits < 64 {
		mask = 1<<bits - 1
	}
	period := float64(h.ctx.Info.Limits.TimestampPeriod)
	start, end := min(sa, sb), max(ea, eb)
	ns := float64((end-start)&mask) * period
	own := max(float64((ea-sa)&mask), float64((eb-sb)&mask)) * period
	if ns < own || ns > 1e9 {
		return Timings{}, fmt.Errorf("vk %s halves: the two queues' timestamps give a span of %.0f ns against %.0f for one half: not one clock", h.name, ns, own)
	}
	return Timings{Supported: true, Stages: []Stage{{Name: "step", Ns: ns}}}, nil
}

// Codes implements ref.Coder for the hashing methods (hata, lsh): the two
// halves' codes of the last Decode, the first half's batches first.
func (h *Halves) Codes() (qcodes, kcodes []uint32, err error) {
	ca, ok := h.a.(ref.Coder)
	if !ok {
		return nil, nil, fmt.Errorf("vk %s halves: %s has no hash codes", h.name, h.name)
	}
	if qcodes, kcodes, err = ca.Codes(); err != nil || h.nb == h.batch {
		return qcodes, kcodes, err
	}
	qb, kb, err := h.b.(ref.Coder).Codes()
	if err != nil {
		return nil, nil, err
	}
	return append(qcodes, qb...), append(kcodes, kb...), nil
}
