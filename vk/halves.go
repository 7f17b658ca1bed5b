package vk

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hata-go/hata/ref"
)

// Halves runs a top-k method as two instances over the two halves of a
// decode step's cache rows at once, the second half's decode steps on the
// compute family's second queue (Context.QueueOverlap), so that one half's
// latency-bound stages (encode, select, the attention's list of K/V reads)
// may run beside the other's: an experiment on the way to a step pipelined
// over its rows (BENCHMARKS.md, session 9). A batch of two or more splits by
// batch (the first ceil(B/2) batches first), a batch of one by KV heads (the
// first ceil(Hkv/2) heads, with their hash weights or Loki bases); either way
// the first half holds a prefix of the rows b*Hkv+h, of the query heads and
// of the output. The rows are independent, so the output and selection are
// those of one instance. One row, and lsh at a batch of one without given
// weights (its random projections are drawn per head count), run on one
// instance. On a device with one compute queue the second half's steps go
// to that queue too, where the halves take turns.
//
// Timings reports one stage, "step": from the earlier of the two halves'
// first kernel timestamps to the later of their last ones, on the device
// clock both queues share on the GPUs this was measured on (a span shorter
// than either half's own is an error: the clocks are not comparable).
type Halves struct {
	ctx  *Context
	name string
	hkv  int
	d    int
	ro   ref.Options
	o    SparseOptions

	ms    [2]halfMethod // ms[1] nil: one instance for every row (splitNone)
	split halvesSplit
	b     int // B of the cache, 0 before a prefill
	tim   Timings
}

// halvesSplit is how Halves divides the cache rows b*Hkv+h among its
// instances.
type halvesSplit int

const (
	splitNone  halvesSplit = iota // one instance holds every row
	splitBatch                    // the first ceil(B/2) batches, then the rest
	splitHeads                    // a batch of one: the first ceil(Hkv/2) KV heads, then the rest
)

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

var (
	_ ref.Method = (*Halves)(nil)
	_ ref.Coder  = (*Halves)(nil)
)

// NewHalves returns name's method (see newSparseMethod) with the options ro
// and o, run as Halves. Its instances are made at the first prefill, when
// the batch says how to split.
func (c *Context) NewHalves(name string, hkv, d int, ro ref.Options, o SparseOptions) (*Halves, error) {
	// The same checks as one instance, now rather than at the prefill.
	m, err := c.newSparseMethod(name, hkv, d, ro, o)
	if err != nil {
		return nil, err
	}
	hm, ok := m.(halfMethod)
	if !ok {
		if cl, ok := m.(io.Closer); ok {
			cl.Close()
		}
		return nil, fmt.Errorf("vk: %s cannot run in halves (no device-side decode step)", name)
	}
	return &Halves{ctx: c, name: name, hkv: hkv, d: d, ro: ro, o: o, ms: [2]halfMethod{hm, nil}}, nil
}

// Name implements ref.Method.
func (h *Halves) Name() string { return h.name }

// plan makes the instances for a batch of b: two over halves of the batch
// (b >= 2) or of the KV heads, or one; the ones it has when they fit.
func (h *Halves) plan(b int) error {
	split := splitNone
	switch {
	case b >= 2:
		split = splitBatch
	case h.hkv >= 2 && !(h.name == "lsh" && h.ro.W == nil):
		split = splitHeads
	}
	if split == h.split && h.ms[0] != nil {
		h.b = b
		return nil
	}
	h.close()
	h.b, h.split = b, split
	n := 2
	if split == splitNone {
		n = 1
	}
	for i := range n {
		_, h0, hkv := h.shape(i)
		ro, err := headOptions(h.ro, h0, h0+hkv, h.d)
		if err != nil {
			return fmt.Errorf("vk %s halves: %v", h.name, err)
		}
		m, err := h.ctx.newSparseMethod(h.name, hkv, h.d, ro, h.o)
		if err != nil {
			h.close()
			return err
		}
		h.ms[i] = m.(halfMethod)
	}
	if h.ms[1] != nil {
		h.ms[1].onSecondQueue()
	}
	return nil
}

// shape returns the batches of instance i's cache, its first KV head and
// its KV heads: b*hkv rows, from row 0 for the first and rowsA() for the
// second.
func (h *Halves) shape(i int) (b, h0, hkv int) {
	switch h.split {
	case splitBatch:
		ba := (h.b + 1) / 2
		if i == 0 {
			return ba, 0, h.hkv
		}
		return h.b - ba, 0, h.hkv
	case splitHeads:
		ha := (h.hkv + 1) / 2
		if i == 0 {
			return 1, 0, ha
		}
		return 1, ha, h.hkv - ha
	}
	return h.b, 0, h.hkv
}

// rowsA returns the cache rows of the first instance.
func (h *Halves) rowsA() int {
	b, _, hkv := h.shape(0)
	return b * hkv
}

// headOptions returns o for the KV heads [h0, h1): their hash weights and
// Loki bases (all of them where [h0, h1) is every head).
func headOptions(o ref.Options, h0, h1, d int) (ref.Options, error) {
	if o.W != nil {
		per := o.W.D * o.W.Rbit
		w, err := ref.NewHashWeights(h1-h0, o.W.D, o.W.Rbit, o.W.W[h0*per:h1*per])
		if err != nil {
			return o, err
		}
		o.W = w
	}
	if o.LokiBasis != nil {
		o.LokiBasis = o.LokiBasis[h0*d*d : h1*d*d]
	}
	return o, nil
}

// part returns the first (i = 0) or second half's part of x, per row of the
// cache: the first rowsA rows' share.
func (h *Halves) part(x []float32, i int) []float32 {
	cut := h.rowsA() * (len(x) / (h.b * h.hkv))
	if i == 0 {
		return x[:cut]
	}
	return x[cut:]
}

// both runs f on the instances at once and returns the first error.
func (h *Halves) both(f func(m halfMethod, i int) error) error {
	if h.ms[1] == nil {
		return f(h.ms[0], 0)
	}
	var wg sync.WaitGroup
	var errs [2]error
	for i, m := range h.ms {
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

// Prefill implements ref.Method: each half takes its rows.
func (h *Halves) Prefill(kv *ref.KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("vk %s halves: prefill: %v", h.name, err)
	}
	if kv.Hkv != h.hkv {
		return fmt.Errorf("vk %s halves: prefill: Hkv=%d, the method was built for %d", h.name, kv.Hkv, h.hkv)
	}
	if err := h.plan(kv.B); err != nil {
		return err
	}
	// Loki fits its basis per KV head on the cache it is given
	// (ref.FitLokiBasis): on the whole batch, as one instance would, each
	// half taking its heads' bases.
	var basis []float64
	if h.name == "loki" && h.ro.LokiBasis == nil && h.ms[1] != nil {
		var err error
		if basis, err = ref.FitLokiBasis(kv); err != nil {
			return fmt.Errorf("vk %s halves: %v", h.name, err)
		}
	}
	return h.both(func(m halfMethod, i int) error {
		b, h0, hkv := h.shape(i)
		r0 := 0
		if i == 1 {
			r0 = h.rowsA()
		}
		part := &ref.KV{B: b, Hkv: hkv, D: kv.D, N: kv.N, K: kv.K[r0 : r0+b*hkv], V: kv.V[r0 : r0+b*hkv]}
		if basis != nil {
			return m.(*Loki).prefillBasis(part, basis[h0*kv.D*kv.D:(h0+hkv)*kv.D*kv.D])
		}
		return m.Prefill(part)
	})
}

// PrefillRandom fills each half's cache on the device (Dense.PrefillRandom):
// the second half with seed+1, so the halves hold different caches.
func (h *Halves) PrefillRandom(b, hkv, n, d int, seed uint32) error {
	if b < 1 || hkv != h.hkv {
		return fmt.Errorf("vk %s halves: prefill random: B=%d Hkv=%d, want B >= 1 and the method's Hkv %d", h.name, b, hkv, h.hkv)
	}
	if err := h.plan(b); err != nil {
		return err
	}
	return h.both(func(m halfMethod, i int) error {
		hb, _, hh := h.shape(i)
		return m.PrefillRandom(hb, hh, n, d, seed+uint32(i))
	})
}

// check reports an error unless a prefill came first and x has whole rows.
func (h *Halves) check(what string, x []float32) error {
	if h.b == 0 {
		return fmt.Errorf("vk %s halves: %s before prefill", h.name, what)
	}
	if rows := h.b * h.hkv; len(x)%rows != 0 {
		return fmt.Errorf("vk %s halves: %s: length %d, want a multiple of the cache's rows B*Hkv = %d", h.name, what, len(x), rows)
	}
	return nil
}

// Append implements ref.Method.
func (h *Halves) Append(k, v []float32) error {
	if err := h.check("append k", k); err != nil {
		return err
	}
	if err := h.check("append v", v); err != nil {
		return err
	}
	var ok [2]bool
	err := h.both(func(m halfMethod, i int) error {
		err := m.Append(h.part(k, i), h.part(v, i))
		ok[i] = err == nil
		return err
	})
	if err != nil && h.ms[1] != nil && ok[0] != ok[1] {
		// One half holds the token and the other not: rather than decode
		// over halves of different lengths, drop both caches.
		h.close()
		return fmt.Errorf("%w; the other half appended its token, so both halves' caches are dropped (prefill again)", err)
	}
	return err
}

// Decode implements ref.Method: both halves at once, their outputs and
// selections concatenated.
func (h *Halves) Decode(q []float32, budget ref.Budget) (*ref.Result, error) {
	if err := h.check("decode", q); err != nil {
		return nil, err
	}
	var rs [2]*ref.Result
	t0 := time.Now()
	if err := h.both(func(m halfMethod, i int) error {
		r, err := m.Decode(h.part(q, i), budget)
		rs[i] = r
		return err
	}); err != nil {
		return nil, err
	}
	t, err := h.span(time.Since(t0))
	if err != nil {
		return nil, err
	}
	h.tim = t
	if rs[1] == nil {
		return rs[0], nil
	}
	return &ref.Result{
		Out:      append(append([]float32(nil), rs[0].Out...), rs[1].Out...),
		Selected: append(append([][]int32(nil), rs[0].Selected...), rs[1].Selected...),
	}, nil
}

// Step runs one decode step of both halves without reading anything back.
func (h *Halves) Step(q []float32, budget ref.Budget) (Timings, error) {
	if err := h.check("step", q); err != nil {
		return Timings{}, err
	}
	t0 := time.Now()
	if err := h.both(func(m halfMethod, i int) error {
		_, err := m.Step(h.part(q, i), budget)
		return err
	}); err != nil {
		return Timings{}, err
	}
	t, err := h.span(time.Since(t0))
	h.tim = t
	return t, err
}

// Timings returns the last step's span (see Halves).
func (h *Halves) Timings() Timings { return h.tim }

// Codes implements ref.Coder for the hashing methods (hata, lsh): the two
// halves' codes of the last Decode, the first half's rows first.
func (h *Halves) Codes() (qcodes, kcodes []uint32, err error) {
	var cs [2]ref.Coder
	for i, m := range h.ms {
		if m == nil {
			continue
		}
		c, ok := m.(ref.Coder)
		if !ok {
			return nil, nil, fmt.Errorf("vk %s halves: %s has no hash codes", h.name, h.name)
		}
		cs[i] = c
	}
	if cs[0] == nil {
		return nil, nil, fmt.Errorf("vk %s halves: codes before prefill", h.name)
	}
	if qcodes, kcodes, err = cs[0].Codes(); err != nil || cs[1] == nil {
		return qcodes, kcodes, err
	}
	qb, kb, err := cs[1].Codes()
	if err != nil {
		return nil, nil, err
	}
	return append(qcodes, qb...), append(kcodes, kb...), nil
}

// Close frees the instances; a later prefill makes them again.
func (h *Halves) Close() error {
	h.close()
	return nil
}

// close frees the instances and forgets the cache's batch, so that a step
// before the next prefill is refused as one before any prefill.
func (h *Halves) close() {
	for i, m := range h.ms {
		if m != nil {
			m.Close()
		}
		h.ms[i] = nil
	}
	h.b = 0
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

// span returns the last step as one "step" stage: one instance's kernel
// stages, or from the earlier start to the later end of the two halves'.
// wall is the host's time from before the two submits to after both waits:
// every timestamp of the step lies inside it, so a span longer than wall (or
// shorter than one half's own) means the two queues do not share a clock.
// (A fixed bound in its place, 1 s, failed on lavapipe with validation on
// two busy cores, where one half took 1.4 s.)
func (h *Halves) span(wall time.Duration) (Timings, error) {
	var ts []Timings
	for _, m := range h.ms {
		if m != nil {
			ts = append(ts, m.Timings())
		}
	}
	var start, end uint64
	var own float64
	levels := 0 // the two queues' chains side by side: the longer one
	for i, t := range ts {
		levels = max(levels, t.Levels)
		if !t.Supported {
			return Timings{}, nil
		}
		s, e, ok := kernelSpan(t)
		if !ok {
			return Timings{Supported: true}, nil
		}
		if i == 0 || s < start {
			start = s
		}
		end = max(end, e)
		own = max(own, h.ctx.ticksNs(s, e))
	}
	ns := h.ctx.ticksNs(start, end)
	// The slack covers the rounding of timestampPeriod over the span.
	if ns < own || ns > float64(wall.Nanoseconds())*1.001+1e4 {
		return Timings{}, fmt.Errorf("vk %s halves: the two queues' timestamps give a span of %.0f ns against %.0f for one half: not one clock", h.name, ns, own)
	}
	return Timings{Supported: true, Stages: []Stage{{Name: "step", Ns: ns}}, Levels: levels}, nil
}
