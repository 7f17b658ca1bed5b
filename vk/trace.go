package vk

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// tracePoints is the clock readings of one traced sparse_split workgroup
// (sparse_split.glsl's TRACE_POINTS); scoreTracePoints of one traced
// hata_score workgroup (hata_score.glsl's); denseTracePoints of one traced
// dense_split workgroup (dense_split.glsl's); encodeTracePoints of one
// traced hata_encode_q workgroup (proj.glsl's).
const (
	tracePoints       = 5
	denseTracePoints  = 5
	scoreTracePoints  = 4
	selectTracePoints = 4 // select.glsl's, of select_write, select_groups and select_rows
	encodeTracePoints = 4
)

// TracePhases names the phases of a traced sparse_split workgroup, between
// its clock readings: its indices and query loaded ("indices"), its slot's
// list of K/V rows attended ("list"), its slots merged ("merge"), and the
// row's splits merged when it is the row's last ("fold"; the fence and
// counter only, otherwise).
var TracePhases = []string{"indices", "list", "merge", "fold"}

// DenseTracePhases names the phases of a traced dense_split workgroup,
// between its clock readings: its query and its first tile of K/V rows
// loaded and the tile attended ("first tile"), its other tiles ("tiles"),
// its slots merged ("merge"), and the row's splits merged when it is the
// row's last ("fold"; the fence and counter only, otherwise, and nothing
// when merged by dense_merge).
var DenseTracePhases = []string{"first tile", "tiles", "merge", "fold"}

// EncodeTracePhases names the phases of a traced hata_encode_q workgroup
// (one code word of a row's G query heads): its queries loaded into shared
// memory ("query"), its W loads and its slices' sums ("sums"), and the
// slices added, the bits set and the code stored ("code").
var EncodeTracePhases = []string{"query", "sums", "code"}

// ScoreTracePhases names the phases of a traced hata_score workgroup: its
// query codes requested (or encoded) and its histogram cleared ("query"),
// its chunk's scores computed and stored ("scores", lane 0's share: the
// other lanes' may end a little later), and its histogram added to the
// row's and its cumulative counts written ("histogram").
var ScoreTracePhases = []string{"query", "scores", "histogram"}

// SelectTracePhases names the phases of a traced workgroup of the select's
// write (select_write or select_groups): the threshold resolved from the
// histograms ("threshold"), its chunk's first output slot found from the
// chunk counts before it ("offset"), and its keys read, marked and its taken
// tokens written ("write"); of select_rows (a workgroup per row): its keys
// loaded and its three histogram passes run ("threshold"), its lanes'
// first output slots found by two prefix sums ("offset"), and its taken
// tokens written ("write").
var SelectTracePhases = []string{"threshold", "offset", "write"}

// KernelTrace is the device clock's readings in every workgroup of one
// traced kernel of the last step (SparseOptions.Trace), in the clock's
// ticks: VK_KHR_shader_clock leaves the unit to the driver: nanoseconds on
// lavapipe, and on the H200 (NVIDIA 580), where a step's span of readings
// agrees with its GPU timestamps (B8/256K: 60.5 us traced, 63.7 us for the
// stage with its timestamp and launch; BENCHMARKS.md). Only the low 32
// bits are kept (lavapipe's high word was not reliable); Summary takes
// differences modulo 2^32, so one step must span less than 2^31 ticks.
type KernelTrace struct {
	// Kernel names the traced kernel ("sparse_split", "hata_score").
	Kernel string
	// Phases names the intervals between a workgroup's readings.
	Phases []string
	// Points are the readings of each workgroup (rows times splits or
	// chunks, row-major), len(Phases)+1 each: its start, then the end of
	// each phase.
	Points [][]uint32
}

// AttentionTrace returns the clock readings of the last Decode or Step's
// attention (sparse_split). It fails unless the method was built with
// SparseOptions.Trace and has run a step since its last prefill.
func (c *sparseCore) AttentionTrace() (KernelTrace, error) {
	var r Range
	if c.lastAttend != nil {
		r = c.lastAttend.trace
	}
	return c.readTrace("AttentionTrace", "sparse_split", TracePhases, r)
}

// SelectTrace returns the clock readings of the last step's select write
// (select_write or select_groups, named "select"). It fails unless the
// method was built with SparseOptions.Trace and has run a step that selects
// on the GPU since its last prefill.
func (c *sparseCore) SelectTrace() (KernelTrace, error) {
	return c.readTrace("SelectTrace", "select", SelectTracePhases, c.lastSelectTrace)
}

// Traces returns the clock readings of every traced kernel of the last step:
// the select's write (when it ran on the GPU) and the attention.
func (c *sparseCore) Traces() ([]KernelTrace, error) {
	out, err := appendTrace(nil, c.lastSelectTrace, c.SelectTrace)
	if err != nil {
		return nil, err
	}
	t, err := c.AttentionTrace()
	if err != nil {
		return nil, err
	}
	return append(out, t), nil
}

// appendTrace appends to out the trace get reads, where r, its buffer, was
// bound by the last step (r.Buf not nil; get's error otherwise names why).
func appendTrace(out []KernelTrace, r Range, get func() (KernelTrace, error)) ([]KernelTrace, error) {
	if r.Buf == nil {
		return out, nil
	}
	t, err := get()
	if err != nil {
		return nil, err
	}
	return append(out, t), nil
}

// ScoreTrace returns the clock readings of the last step's hata_score. It
// fails unless the method was built with SparseOptions.Trace and has run a
// step of a variant that runs hata_score (not onekernel) since its last
// prefill.
func (m *HATA) ScoreTrace() (KernelTrace, error) {
	return m.readTrace("ScoreTrace", "hata_score", ScoreTracePhases, m.lastScoreTrace)
}

// EncodeTrace returns the clock readings of the last step's hata_encode_q.
// It fails unless the method was built with SparseOptions.Trace and has run
// a step of a variant with that dispatch (fused or naive) since its last
// prefill.
func (m *HATA) EncodeTrace() (KernelTrace, error) {
	return m.readTrace("EncodeTrace", "hata_encode_q", EncodeTracePhases, m.lastEncodeTrace)
}

// Traces returns the clock readings of the last step's hata_encode_q (where
// it ran), hata_score, then the select's write and the attention
// (sparseCore.Traces).
func (m *HATA) Traces() ([]KernelTrace, error) {
	out, err := appendTrace(nil, m.lastEncodeTrace, m.EncodeTrace)
	if err != nil {
		return nil, err
	}
	st, err := m.ScoreTrace()
	if err != nil {
		return nil, err
	}
	rest, err := m.sparseCore.Traces()
	if err != nil {
		return nil, err
	}
	return append(append(out, st), rest...), nil
}

// traceBuffer returns the trace buffer named what of a traced kernel
// (SparseOptions.Trace): workgroups times points clock readings; it fails on
// a device without VK_KHR_shader_clock's device clock.
func (c *sparseCore) traceBuffer(what string, workgroups, points int) (Range, error) {
	if !c.ctx.Info.ShaderClock {
		return Range{}, c.errorf("Trace needs VK_KHR_shader_clock's device clock, which %s lacks", c.ctx.Info.Name)
	}
	size := uint64(workgroups*points) * 4
	b, err := c.buf(what, size, DeviceLocal)
	if err != nil {
		return Range{}, err
	}
	return b.Range(0, size), nil
}

// readTrace reads kernel's trace buffer r of the last step, len(phases)+1
// readings per workgroup; what (the caller's name) heads its errors: the
// method built without SparseOptions.Trace, or no traced step since the last
// prefill (r empty).
func (c *sparseCore) readTrace(what, kernel string, phases []string, r Range) (KernelTrace, error) {
	if !c.opt.Trace {
		return KernelTrace{}, c.errorf("%s: built without SparseOptions.Trace", what)
	}
	if !c.stepped || r.Buf == nil {
		return KernelTrace{}, c.errorf("%s: no traced step has run since the last prefill", what)
	}
	return c.ctx.readTrace(r, kernel, phases)
}

// readTrace reads the trace buffer r of a traced kernel's last dispatch,
// len(phases)+1 readings per workgroup.
func (c *Context) readTrace(r Range, kernel string, phases []string) (KernelTrace, error) {
	raw := make([]byte, r.Size)
	if err := c.Read(r.Buf, r.Off, raw); err != nil {
		return KernelTrace{}, err
	}
	n := len(phases) + 1
	t := KernelTrace{Kernel: kernel, Phases: phases, Points: make([][]uint32, len(raw)/(4*n))}
	for w := range t.Points {
		t.Points[w] = make([]uint32, n)
		for p := range n {
			t.Points[w][p] = binary.LittleEndian.Uint32(raw[(w*n+p)*4:])
		}
	}
	return t, nil
}

// Offsets returns every workgroup's readings less the earliest workgroup
// start, in the clock's ticks (differences modulo 2^32, as Summary takes
// them): Offsets()[w][p] is reading p of workgroup w.
func (t KernelTrace) Offsets() [][]int64 {
	if len(t.Points) == 0 || len(t.Points[0]) == 0 {
		return nil
	}
	first := t.start()
	out := make([][]int64, len(t.Points))
	for w, p := range t.Points {
		out[w] = make([]int64, len(p))
		for i, x := range p {
			out[w][i] = int64(int32(x - first))
		}
	}
	return out
}

// StartAfter returns how long after u's earliest workgroup start t's
// earliest one came, in the clock's ticks (readings of one step,
// differences modulo 2^32): where in a step a kernel that runs beside
// others started (HATA.WarmTraces). Both must hold a reading.
func (t KernelTrace) StartAfter(u KernelTrace) int64 { return int64(int32(t.start() - u.start())) }

// start returns the earliest workgroup start of t, whose workgroup 0 holds
// a reading: the one furthest before workgroup 0's, modulo 2^32.
func (t KernelTrace) start() uint32 {
	ref := t.Points[0][0]
	earliest := int32(0)
	for _, p := range t.Points {
		if len(p) > 0 {
			earliest = min(earliest, int32(p[0]-ref))
		}
	}
	return ref + uint32(earliest)
}

// TraceSummary is a KernelTrace in a few numbers, in the clock's ticks.
type TraceSummary struct {
	Kernel     string
	Phases     []string
	Workgroups int
	// Median and Max are each phase's median and longest duration over the
	// workgroups.
	Median, Max []float64
	// StartSkew is the latest workgroup start less the earliest; Span the
	// latest end less the earliest start.
	StartSkew, Span float64
}

// Summary returns the trace's summary; it fails when a workgroup's readings
// go backwards or stand still from start to end (a workgroup that wrote
// none: the kernel did not run traced).
func (t KernelTrace) Summary() (TraceSummary, error) {
	np := len(t.Phases) + 1
	s := TraceSummary{Kernel: t.Kernel, Phases: t.Phases, Workgroups: len(t.Points), Median: make([]float64, np-1), Max: make([]float64, np-1)}
	if len(t.Points) == 0 {
		return s, fmt.Errorf("vk: %s trace: no workgroups", t.Kernel)
	}
	phase := make([][]float64, np-1)
	for w, p := range t.Points {
		if len(p) != np {
			return s, fmt.Errorf("vk: %s trace: workgroup %d: %d readings, want %d", t.Kernel, w, len(p), np)
		}
		for i := 1; i < np; i++ {
			d := int32(p[i] - p[i-1])
			if d < 0 {
				return s, fmt.Errorf("vk: %s trace: workgroup %d: reading %d (%d) before reading %d (%d)", t.Kernel, w, i, p[i], i-1, p[i-1])
			}
			phase[i-1] = append(phase[i-1], float64(d))
		}
		if p[np-1] == p[0] {
			return s, fmt.Errorf("vk: %s trace: workgroup %d: no time from start to end (%v): not traced", t.Kernel, w, p)
		}
	}
	for i, xs := range phase {
		slices.Sort(xs)
		s.Median[i], s.Max[i] = xs[len(xs)/2], xs[len(xs)-1]
	}
	// From the earliest start (Offsets): the latest start and the latest end.
	for _, o := range t.Offsets() {
		s.StartSkew, s.Span = max(s.StartSkew, float64(o[0])), max(s.Span, float64(o[np-1]))
	}
	return s, nil
}

// MedianSummary returns the element-wise median of ss (the upper one of an
// even count), for traces of several steps of one kernel.
func MedianSummary(ss []TraceSummary) TraceSummary {
	if len(ss) == 0 {
		return TraceSummary{}
	}
	med := func(f func(TraceSummary) float64) float64 {
		xs := make([]float64, len(ss))
		for i, s := range ss {
			xs[i] = f(s)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	out := TraceSummary{Kernel: ss[0].Kernel, Phases: ss[0].Phases, Workgroups: ss[0].Workgroups,
		Median: make([]float64, len(ss[0].Median)), Max: make([]float64, len(ss[0].Max))}
	for i := range out.Median {
		out.Median[i] = med(func(s TraceSummary) float64 { return s.Median[i] })
		out.Max[i] = med(func(s TraceSummary) float64 { return s.Max[i] })
	}
	out.StartSkew = med(func(s TraceSummary) float64 { return s.StartSkew })
	out.Span = med(func(s TraceSummary) float64 { return s.Span })
	return out
}

// String formats the summary in microseconds, taking a tick for a
// nanosecond: "256 workgroups, span 14.2 us, start skew 3.1 us; indices
// 1.2 (max 2.0), list ...".
func (s TraceSummary) String() string {
	us := func(x float64) string { return fmt.Sprintf("%.1f", x/1e3) }
	parts := []string{fmt.Sprintf("%d workgroups, span %s us, start skew %s us", s.Workgroups, us(s.Span), us(s.StartSkew))}
	for i, name := range s.Phases {
		parts = append(parts, fmt.Sprintf("%s %s (max %s)", name, us(s.Median[i]), us(s.Max[i])))
	}
	return strings.Join(parts, "; ")
}
