package vk

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestAttentionTrace runs HATA with SparseOptions.Trace on a cache in three
// buffers (the trace indexes rows across them), against ref (a traced
// kernel computes the same), and checks that every workgroup of every
// buffer wrote its clock readings in order (the trace is poisoned before the
// step when validating, and Summary refuses a workgroup whose readings stand
// still), for the fused and the naive chain, both merges and both key
// widths of select_groups, the attention's,
// hata_encode_q's, hata_score's and the select write's (EncodeTrace,
// ScoreTrace, SelectTrace, Traces); and
// that an untraced method refuses to report.
func TestAttentionTrace(t *testing.T) {
	ctx := clockDevice(t)
	rng := rand.New(rand.NewPCG(8, 8))
	s := ref.Shape{B: 3, Hq: 4, Hkv: 2, N: 700, D: 64}
	w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
	kv := reftest.DyadicKV(rng, s, true)
	for _, o := range []SparseOptions{
		{Storage: F16, Trace: true, ScoreChunk: 256, Split: SplitPolicy{Splits: 3}, Merge: MergeFold},     // select_write_cum
		{Storage: F16, Trace: true, ScoreChunk: 256, Split: SplitPolicy{Splits: 5}, Merge: MergeSeparate}, // (no plan: chunks <= 2048)
		{Storage: F32, Trace: true, Variant: VariantNaive, Split: SplitPolicy{Splits: 2}},
		{Storage: F16, Trace: true, ScoreChunk: 16384, Split: SplitPolicy{Splits: 2}},              // select_groups_k8
		{Storage: F16, Trace: true, ScoreChunk: 16384, KeyBytes: 2, Split: SplitPolicy{Splits: 2}}, // select_groups
	} {
		o.Reserve = 3
		m, err := ctx.NewHATA("hata", w, ref.Windows{}, false, o)
		if err != nil {
			t.Fatal(err)
		}
		m.maxBuf = 2 * uint64(roundUp(s.N+3, 64)*s.D*o.Storage.bytes()) // the 6 cache rows in 3 buffers
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if len(m.kv.k) != 3 {
			t.Errorf("%+v: the cache in %d buffers, want 3", o, len(m.kv.k))
		}
		want := ref.NewHATA(w, ref.Windows{}, false)
		if err := want.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if _, err := m.AttentionTrace(); err == nil {
			t.Errorf("%+v: AttentionTrace before any step: no error", o)
		}
		if _, err := m.ScoreTrace(); err == nil {
			t.Errorf("%+v: ScoreTrace before any step: no error", o)
		}
		if _, err := m.EncodeTrace(); err == nil {
			t.Errorf("%+v: EncodeTrace before any step: no error", o)
		}
		if _, err := m.SelectTrace(); err == nil {
			t.Errorf("%+v: SelectTrace before any step: no error", o)
		}
		stepHATA(t, rng, "traced", kv, s.Hq, ref.Budget{K: 40}, want, m)
		tr, err := m.AttentionTrace()
		if err != nil {
			t.Fatal(err)
		}
		if rows := s.B * s.Hkv; len(tr.Points) != rows*o.Split.Splits {
			t.Errorf("%+v: %d traced workgroups, want %d rows x %d splits", o, len(tr.Points), rows, o.Split.Splits)
		}
		sum, err := tr.Summary()
		if err != nil {
			t.Errorf("%+v: %v", o, err)
		}
		if sum.Span <= 0 || !strings.Contains(sum.String(), "workgroups") {
			t.Errorf("%+v: summary %+v (%s)", o, sum, sum)
		}
		t.Logf("%+v: %s", o, sum)
		trs, err := m.Traces()
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != 4 || trs[0].Kernel != "hata_encode_q" || trs[1].Kernel != "hata_score" || trs[2].Kernel != "select" || trs[3].Kernel != "sparse_split" {
			t.Fatalf("%+v: Traces = %d traces, want hata_encode_q, hata_score, select, sparse_split", o, len(trs))
		}
		et := trs[0]
		if rows := s.B * s.Hkv; len(et.Points) != rows*m.ws {
			t.Errorf("%+v: %d traced encode workgroups, want %d rows x %d code words", o, len(et.Points), rows, m.ws)
		}
		if es, err := et.Summary(); err != nil || len(es.Median) != len(EncodeTracePhases) || es.Span <= 0 {
			t.Errorf("%+v: encode trace summary %+v: %v", o, es, err)
		} else {
			t.Logf("%+v: hata_encode_q %s", o, es)
		}
		trs = trs[1:]
		sel := trs[1]
		if rows := s.B * s.Hkv; len(sel.Points) == 0 || len(sel.Points)%rows != 0 {
			t.Errorf("%+v: %d traced select workgroups, want a positive multiple of %d rows", o, len(sel.Points), rows)
		}
		if sum, err := sel.Summary(); err != nil || len(sum.Median) != len(SelectTracePhases) || sum.Span <= 0 {
			t.Errorf("%+v: select trace summary %+v: %v", o, sum, err)
		} else {
			t.Logf("%+v: select %s", o, sum)
		}
		st := trs[0]
		chunk := m.hataScoreChunk(s.N, s.B*s.Hkv, m.key8Chunks(true)) // (key8 matters to the fused chain alone)
		if rows := s.B * s.Hkv; len(st.Points) != rows*((s.N+chunk-1)/chunk) {
			t.Errorf("%+v: %d traced score workgroups, want %d rows x %d chunks", o, len(st.Points), rows, (s.N+chunk-1)/chunk)
		}
		ss, err := st.Summary()
		if err != nil {
			t.Errorf("%+v: score trace: %v", o, err)
		}
		if len(ss.Median) != len(ScoreTracePhases) || ss.Span <= 0 || !strings.Contains(ss.String(), "histogram") {
			t.Errorf("%+v: score summary %+v (%s)", o, ss, ss)
		}
		t.Logf("%+v: hata_score %s", o, ss)
		ran := builtShaders(m.sparseCore)
		write := "select_write_trace"
		if o.Variant != VariantNaive {
			write = "select_write_cum_trace" // the fused chain's
		}
		if selectGroups(o.ScoreChunk) > 0 {
			write = "select_groups_k8_trace" // one-byte keys by default where select_groups runs
			if o.KeyBytes == 2 {
				write = "select_groups_trace"
			}
		}
		if !ran[write] {
			t.Errorf("%+v: %s did not run (ran %v)", o, write, ran)
		}
		m.Close()
	}
	plain, _ := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16}, kv)
	defer plain.Close()
	if _, err := plain.Decode(reftest.Dyadic(rng, s.B*s.Hq*s.D), ref.Budget{K: 40}); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.AttentionTrace(); err == nil || !strings.Contains(err.Error(), "Trace") {
		t.Errorf("AttentionTrace without SparseOptions.Trace = %v, want an error naming Trace", err)
	}
	if _, err := plain.Traces(); err == nil || !strings.Contains(err.Error(), "Trace") {
		t.Errorf("Traces without SparseOptions.Trace = %v, want an error naming Trace", err)
	}
}

// TestSelectRowsTrace runs Quest and the exact top-k with SparseOptions.Trace,
// where they select by select_rows (RowSelectOn), against ref, and checks
// that its one workgroup per row wrote its readings in order (SelectTrace).
func TestSelectRowsTrace(t *testing.T) {
	ctx := clockDevice(t)
	rng := rand.New(rand.NewPCG(9, 9))
	s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 900, D: 64}
	kv := reftest.DyadicKV(rng, s, true)
	for _, name := range []string{"quest", "topk"} {
		o := SparseOptions{Storage: F16, Trace: true, RowSelect: RowSelectOn}
		got, err := ctx.SparseFactory(o)(name, s.Hkv, s.D, ref.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.New(name, s.Hkv, s.D, ref.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []ref.Method{got, want} {
			if err := m.Prefill(kv); err != nil {
				t.Fatal(err)
			}
		}
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		b := ref.Budget{K: 70}
		decodeStep(t, name+" traced", name, q, kv, b, want, got, false)
		c := coreOf(got)
		tr, err := c.SelectTrace()
		if err != nil {
			t.Fatal(err)
		}
		if rows := s.B * s.Hkv; len(tr.Points) != rows {
			t.Errorf("%s: %d traced select workgroups, want one per row, %d", name, len(tr.Points), rows)
		}
		if sum, err := tr.Summary(); err != nil || len(sum.Median) != len(SelectTracePhases) || sum.Span <= 0 {
			t.Errorf("%s: select_rows trace summary %+v: %v", name, sum, err)
		} else {
			t.Logf("%s: select_rows %s", name, sum)
		}
		ran := builtShaders(c)
		if !ran["select_rows_trace"] {
			t.Errorf("%s: select_rows_trace did not run (ran %v)", name, ran)
		}
		got.(interface{ Close() error }).Close()
	}
}

// TestH2OTrace runs H2O with SparseOptions.Trace against ref and checks
// that its traced attention reads back after each step (Traces: H2O selects
// on the host, so sparse_split's readings alone) and is well formed. H2O's
// Decode runs its plan itself, and until it marked the step as run,
// AttentionTrace said no traced step had run since the prefill (found by
// TestFuzzDiff, seed 7 among hata, lsh, loki and h2o).
func TestH2OTrace(t *testing.T) {
	ctx := clockDevice(t)
	rng := rand.New(rand.NewPCG(11, 11))
	s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 200, D: 64}
	kv := reftest.DyadicKV(rng, s, false)
	got, err := ctx.NewH2O(s.D, SparseOptions{Storage: F32, Trace: true, Split: SplitPolicy{Splits: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want := ref.NewH2O()
	for _, m := range []ref.Method{got, want} {
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := got.Traces(); err == nil {
		t.Error("Traces before any step: no error")
	}
	for step := range 2 {
		where := fmt.Sprintf("h2o traced, step %d", step)
		decodeStep(t, where, "h2o", reftest.Dyadic(rng, s.B*s.Hq*s.D), kv, ref.Budget{K: 40}, want, got, true)
		trs, err := got.Traces()
		if err != nil {
			t.Fatalf("%s: Traces: %v", where, err)
		}
		if len(trs) != 1 || trs[0].Kernel != "sparse_split" {
			t.Fatalf("%s: Traces = %d traces, want sparse_split's", where, len(trs))
		}
		if sum, err := trs[0].Summary(); err != nil || sum.Span <= 0 {
			t.Errorf("%s: attention trace summary %+v: %v", where, sum, err)
		} else {
			t.Logf("%s: %s", where, sum)
		}
	}
}

// clockDevice returns the shared test context, skipping the test where the
// device has no device-scope shader clock (the traced kernels need it).
func clockDevice(t *testing.T) *Context {
	t.Helper()
	ctx := device(t)
	if !ctx.Info.ShaderClock {
		t.Skipf("%s has no device-scope shader clock (VK_KHR_shader_clock)", ctx.Info.Name)
	}
	return ctx
}

// TestDenseTrace runs dense attention with DenseOptions.Trace on a cache in
// three buffers (the trace indexes rows across them), against ref (a traced
// kernel computes the same), for both storages and both merges, and checks
// that every workgroup wrote its readings in order (the trace is poisoned
// before the step when validating, and Summary refuses a workgroup whose
// readings stand still); that a step with more splits traces them all; and
// that an untraced Dense, or one not stepped since its prefill, refuses to
// report.
func TestDenseTrace(t *testing.T) {
	ctx := clockDevice(t)
	rng := rand.New(rand.NewPCG(10, 10))
	const b, hkv, g, n, d = 3, 2, 2, 300, 64
	for _, c := range []struct {
		s      Storage
		splits int
		merge  MergeMode
	}{{F16, 3, MergeFold}, {F32, 5, MergeSeparate}, {F16, 1, MergeFold}} {
		kv := randomKV(rng, b, hkv, n, d, c.s)
		m, err := ctx.NewDense(DenseOptions{Storage: c.s, Trace: true, Merge: c.merge, Split: SplitPolicy{Splits: c.splits}, Reserve: 4})
		if err != nil {
			t.Fatal(err)
		}
		m.maxRange = 2 * uint64(roundUp(n+4, 64)*d*c.s.bytes()) // the 6 cache rows in 3 buffers
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if len(m.kv.k) != 3 {
			t.Errorf("%+v: the cache in %d buffers, want 3", c, len(m.kv.k))
		}
		if _, err := m.AttentionTrace(); err == nil {
			t.Errorf("%+v: AttentionTrace before any step: no error", c)
		}
		for step, splits := range []int{c.splits, c.splits + 2} {
			m.opt.Split.Splits = splits
			where := fmt.Sprintf("%+v step %d (%d splits)", c, step, splits)
			q := normal(rng, b*hkv*g*d, 2)
			res, err := m.Decode(q, ref.Full)
			if err != nil {
				t.Fatal(err)
			}
			checkDense(t, where, res.Out, q, kv)
			trs, err := m.Traces()
			if err != nil {
				t.Fatal(err)
			}
			if len(trs) != 1 || trs[0].Kernel != "dense_split" || len(trs[0].Phases) != len(DenseTracePhases) {
				t.Fatalf("%s: Traces = %+v, want dense_split's", where, trs)
			}
			if len(trs[0].Points) != b*hkv*splits {
				t.Errorf("%s: %d traced workgroups, want %d rows x %d splits", where, len(trs[0].Points), b*hkv, splits)
			}
			sum, err := trs[0].Summary()
			if err != nil {
				t.Errorf("%s: %v", where, err)
			}
			if sum.Span <= 0 || !strings.Contains(sum.String(), "first tile") {
				t.Errorf("%s: summary %+v (%s)", where, sum, sum)
			}
			t.Logf("%s: %s", where, sum)
		}
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if _, err := m.AttentionTrace(); err == nil || !strings.Contains(err.Error(), "since the last prefill") {
			t.Errorf("%+v: AttentionTrace after a new prefill = %v, want an error", c, err)
		}
		m.Close()
	}
	plain, err := ctx.NewDense(DenseOptions{Storage: F16})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	kv := randomKV(rng, 1, 1, 50, d, F16)
	if err := plain.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Decode(normal(rng, g*d, 2), ref.Full); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Traces(); err == nil || !strings.Contains(err.Error(), "Trace") {
		t.Errorf("Traces without DenseOptions.Trace = %v, want an error naming Trace", err)
	}
}

// TestTraceOffsets pins Offsets, Summary's start skew and span, and
// StartAfter on readings that wrap past 2^32 (the clock's low word) and a
// workgroup that starts before workgroup 0: all are relative to the
// earliest start.
func TestTraceOffsets(t *testing.T) {
	const top = 1 << 32
	tr := KernelTrace{Kernel: "k", Phases: []string{"a", "b"}, Points: [][]uint32{
		{top - 6, top - 1, 14}, // starts 6 ticks before the clock wraps
		{top - 16, top - 6, 4}, // 10 ticks before workgroup 0
		{top - 2, 2, 30},       // the last to start and end
	}}
	want := [][]int64{{10, 15, 30}, {0, 10, 20}, {14, 18, 46}}
	if got := tr.Offsets(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Offsets = %v, want %v", got, want)
	}
	s, err := tr.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if s.StartSkew != 14 || s.Span != 46 {
		t.Errorf("Summary: start skew %v, span %v; want 14, 46", s.StartSkew, s.Span)
	}
	if s.Median[0] != 5 || s.Max[0] != 10 || s.Median[1] != 15 || s.Max[1] != 28 {
		t.Errorf("Summary: medians %v, maxima %v; want [5 15], [10 28]", s.Median, s.Max)
	}
	if (KernelTrace{}).Offsets() != nil {
		t.Error("Offsets of no workgroups: want nil")
	}
	// StartAfter: from the earliest start of the other (top-20, past the
	// wrap from tr's earliest, top-16, and from 3) to tr's.
	for _, c := range []struct {
		u    KernelTrace
		want int64
	}{
		{KernelTrace{Points: [][]uint32{{top - 20, 0}}}, 4},
		{KernelTrace{Points: [][]uint32{{5, 9}, {3, 9}}}, -19},
	} {
		if got := tr.StartAfter(c.u); got != c.want {
			t.Errorf("StartAfter(%v) = %d, want %d", c.u.Points, got, c.want)
		}
	}
}
