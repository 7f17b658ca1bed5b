package vk

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// tracePoints is the clock readings of one traced sparse_split workgroup
// (sparse_split.glsl's TRACE_POINTS).
const tracePoints = 5

// TracePhases names the phases of a traced sparse_split workgroup, between
// its clock readings: its indices and query loaded ("indices"), its slot's
// list of K/V rows attended ("list"), its slots merged ("merge"), and the
// row's splits merged when it is the row's last ("fold"; the fence and
// counter only, otherwise).
var TracePhases = [tracePoints - 1]string{"indices", "list", "merge", "fold"}

// AttentionTrace is the device clock's readings in every workgroup of the
// last step's sparse attention (SparseOptions.Trace), in the clock's ticks:
// VK_KHR_shader_clock leaves the unit to the driver: nanoseconds on
// lavapipe, and on the H200 (NVIDIA 580), where a step's span of readings
// agrees with its GPU timestamps (B8/256K: 60.5 us traced, 63.7 us for the
// stage with its timestamp and launch; BENCHMARKS.md). Only the low 32
// bits are kept (lavapipe's high word was not reliable); Summary takes
// differences modulo 2^32, so one step must span less than 2^31 ticks.
type AttentionTrace struct {
	// Points are the readings of each workgroup, rows times splits, at its
	// start, after each of TracePhases.
	Points [][tracePoints]uint32
}

// AttentionTrace returns the clock readings of the last Decode or Step's
// attention. It fails unless the method was built with SparseOptions.Trace
// and has run a step since its last prefill.
func (c *sparseCore) AttentionTrace() (AttentionTrace, error) {
	if !c.opt.Trace {
		return AttentionTrace{}, c.errorf("AttentionTrace: built without SparseOptions.Trace")
	}
	a := c.lastAttend
	if !c.stepped || a == nil || a.trace.Buf == nil {
		return AttentionTrace{}, c.errorf("AttentionTrace: no traced step has run since the last prefill")
	}
	raw := make([]byte, a.trace.Size)
	if err := c.ctx.Read(a.trace.Buf, a.trace.Off, raw); err != nil {
		return AttentionTrace{}, err
	}
	t := AttentionTrace{Points: make([][tracePoints]uint32, len(raw)/(4*tracePoints))}
	for w := range t.Points {
		for p := range tracePoints {
			t.Points[w][p] = binary.LittleEndian.Uint32(raw[(w*tracePoints+p)*4:])
		}
	}
	return t, nil
}

// TraceSummary is an AttentionTrace in a few numbers, in the clock's ticks.
type TraceSummary struct {
	Workgroups int
	// Median and Max are each phase's (TracePhases) median and longest
	// duration over the workgroups.
	Median, Max [tracePoints - 1]float64
	// StartSkew is the latest workgroup start less the earliest; Span the
	// latest end less the earliest start.
	StartSkew, Span float64
}

// Summary returns the trace's summary; it fails when a workgroup's readings
// go backwards or stand still from start to end (a workgroup that wrote
// none: the kernel did not run traced).
func (t AttentionTrace) Summary() (TraceSummary, error) {
	s := TraceSummary{Workgroups: len(t.Points)}
	if len(t.Points) == 0 {
		return s, fmt.Errorf("vk: attention trace: no workgroups")
	}
	// Every reading relative to workgroup 0's start, modulo 2^32.
	ref := t.Points[0][0]
	rel := func(x uint32) int64 { return int64(int32(x - ref)) }
	phase := make([][]float64, tracePoints-1)
	first, lastStart, lastEnd := int64(0), int64(0), rel(t.Points[0][tracePoints-1])
	for w, p := range t.Points {
		for i := 1; i < tracePoints; i++ {
			d := int32(p[i] - p[i-1])
			if d < 0 {
				return s, fmt.Errorf("vk: attention trace: workgroup %d: reading %d (%d) before reading %d (%d)", w, i, p[i], i-1, p[i-1])
			}
			phase[i-1] = append(phase[i-1], float64(d))
		}
		if p[tracePoints-1] == p[0] {
			return s, fmt.Errorf("vk: attention trace: workgroup %d: no time from start to end (%v): not traced", w, p)
		}
		first, lastStart, lastEnd = min(first, rel(p[0])), max(lastStart, rel(p[0])), max(lastEnd, rel(p[tracePoints-1]))
	}
	for i, xs := range phase {
		slices.Sort(xs)
		s.Median[i], s.Max[i] = xs[len(xs)/2], xs[len(xs)-1]
	}
	s.StartSkew, s.Span = float64(lastStart-first), float64(lastEnd-first)
	return s, nil
}

// MedianSummary returns the element-wise median of ss (the upper one of an
// even count), for traces of several steps.
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
	out := TraceSummary{Workgroups: ss[0].Workgroups}
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
	for i, name := range TracePhases {
		parts = append(parts, fmt.Sprintf("%s %s (max %s)", name, us(s.Median[i]), us(s.Max[i])))
	}
	return strings.Join(parts, "; ")
}
