package experiments

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

// The Vulkan backend: device specs "vk" (the default device: discrete GPU >
// integrated > virtual > CPU, or $HATA_VK_DEVICE) and "vk:SEL" (SEL an index
// of `hata devices` or a name substring), and "auto": Vulkan when the loader
// finds a usable device (lavapipe included), with the methods that have no GPU
// kernels (vk.Methods lists those that do) on the CPU reference; the CPU
// reference alone when there is no device.
func init() {
	RegisterBackend("vk", func(arg string) (Backend, error) { return OpenVulkan(arg) })
	RegisterBackend("auto", func(arg string) (Backend, error) {
		if arg != "" {
			return nil, fmt.Errorf("device auto takes no argument, got %q", arg)
		}
		v, err := OpenVulkan("")
		if err != nil {
			return CPU{}, nil
		}
		return &Vulkan{Ctx: v.Ctx, spec: v.spec, cpuFallback: true}, nil
	})
}

// Vulkan runs the methods with GPU kernels (vk.Methods) on one Vulkan device.
type Vulkan struct {
	Ctx         *vk.Context
	spec        string
	cpuFallback bool // methods without GPU kernels run on the CPU reference ("auto")
}

var _ Backend = (*Vulkan)(nil)
var _ Timer = (*Vulkan)(nil)

// OpenVulkan opens the Vulkan device sel ("" for the default choice) as
// vk.Open does.
func OpenVulkan(sel string) (*Vulkan, error) {
	return OpenVulkanWith(vk.EnvOptions(sel))
}

// OpenVulkanWith opens the Vulkan device o.Device with options o (see
// vk.OpenWith; vk.EnvOptions gives vk.Open's).
func OpenVulkanWith(o vk.Options) (*Vulkan, error) {
	ctx, err := vk.OpenWith(o)
	if err != nil {
		return nil, err
	}
	spec := "vk"
	if o.Device != "" {
		spec += ":" + o.Device
	}
	return &Vulkan{Ctx: ctx, spec: spec}, nil
}

// Name implements Backend.
func (v *Vulkan) Name() string {
	if v.cpuFallback {
		return v.spec + "+cpu"
	}
	return v.spec
}

// Device implements Backend.
func (v *Vulkan) Device() DeviceInfo {
	i := v.Ctx.Info
	mem := "plain allocations ($" + vk.EnvDedicated + "=0)"
	if v.Ctx.Dedicated() {
		mem = "dedicated allocations for buffers of 2 MiB and more"
	}
	if v.Ctx.HostHugePages() {
		mem += "; host buffers imported in transparent huge pages ($" + vk.EnvHostHugePages + "=1)"
	}
	return DeviceInfo{Name: i.Name, Driver: i.DriverName + " " + i.DriverInfo, API: "Vulkan " + i.APIString(), Memory: mem, Timer: timerInfo()}
}

// timerInfo describes what precedes every timed step ($HATA_BENCH_L2FLUSH,
// $HATA_BENCH_TWIN) for DeviceInfo.Timer.
func timerInfo() string {
	var s string
	switch mode, err := Flush(); {
	case err != nil:
		return err.Error()
	case mode == FlushNone:
		s = "no flush ($" + EnvL2Flush + "=0)"
	case mode == FlushL2:
		s = "an L2 flush ($" + EnvL2Flush + "=l2)"
	default:
		s = "a flush of L2 and the TLBs"
	}
	switch twin, err := Twin(); {
	case err != nil:
		return err.Error()
	case twin.On:
		s += ", then " + twin.String()
	}
	return s
}

// NewMethod implements Backend with the GPU kernels.
func (v *Vulkan) NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	if v.onCPU(name) {
		return ref.New(name, hkv, d, o)
	}
	return v.Ctx.NewMethod(name, hkv, d, o)
}

// onCPU reports whether NewMethod builds method name on the CPU reference:
// with the CPU fallback ("auto"), the methods without GPU kernels.
func (v *Vulkan) onCPU(name string) bool {
	return v.cpuFallback && !slices.Contains(vk.Methods, name)
}

// CheckMethod implements methodChecker: every method of vk.Methods, and
// with the CPU fallback ("auto") every other one unless timed.
func (v *Vulkan) CheckMethod(method string, timed bool) error {
	name, _, _ := strings.Cut(method, "/")
	switch {
	case slices.Contains(vk.Methods, name), v.onCPU(name) && !timed:
		return nil
	case timed:
		return fmt.Errorf("it has no GPU kernels to time (GPU methods: %s); time it with devices = [\"cpu\"]", strings.Join(vk.Methods, " "))
	}
	return fmt.Errorf("it has no GPU kernels (GPU methods: %s); devices = [\"auto\"] runs it on the CPU beside the others, or run it with devices = [\"cpu\"]", strings.Join(vk.Methods, " "))
}

// Close releases the device.
func (v *Vulkan) Close() error { return v.Ctx.Close() }

// benchable is implemented by the vk methods that can fill their cache on the
// device (multi-gigabyte caches in milliseconds) and report the GPU time of
// every stage of their last Decode.
type benchable interface {
	ref.Method
	PrefillRandom(b, hkv, n, d int, seed uint32) error
	Timings() vk.Timings
}

// stageOf maps the vk stage names to the columns of the speed rows; "" marks
// stages that are not part of the step's kernel time (host transfers and the
// test-only poisoning).
var stageOf = map[string]string{
	"encode": "encode", "score": "score", "select": "select",
	"attend": "attend", "split": "attend", "gather": "attend",
	"merge":         "merge",  // the splits' log-sum-exp merge as a dispatch of its own (dense, and the top-k methods where vk.MergeAuto runs it apart)
	"select+attend": "attend", // HATA's fused select_attend: the select's time is in the attend column
	"step":          "attend", // HATA's onekernel: the whole step is one dispatch, its time in the attend column
	"upload":        "", "poison": "", "readback": "",
}

// l2Bytes is a bound on the last-level cache of the GPUs this targets (the
// H200's L2 is 60 MB): smaller caches are replicated and cycled through so
// that every timed step reads from memory, not from L2.
const l2Bytes = 128 << 20

// maxCacheCopies bounds the replication: the flush before every timed step
// (the default timer, Flush) evicts L2 whatever the copies, and each copy
// is a whole instance of the method, warmed once; without a bound a cache
// of kilobytes made tens of thousands of them (a bench at N=16 never
// printed its row).
const maxCacheCopies = 64

// cacheCopies returns how many copies of a K/V cache of cacheBytes the timer
// cycles through: enough to exceed l2Bytes, at most maxCacheCopies, and one
// on a CPU device (lavapipe), whose caches are the host's.
func cacheCopies(cacheBytes int64, cpu bool) int {
	if cpu {
		return 1
	}
	return int(min(maxCacheCopies, max(1, (l2Bytes+cacheBytes-1)/cacheBytes)))
}

// EnvL2Flush names the environment variable that chooses what the Vulkan
// timer evicts before every timed step (Flush): unset, L2 and the address
// translations (FlushPages); "l2", L2 only (FlushL2, the timer of sessions
// 24-25); "0", nothing (FlushNone), to measure what the flush changes.
const EnvL2Flush = "HATA_BENCH_L2FLUSH"

// FlushMode is what the Vulkan timer evicts before every timed step.
type FlushMode int

const (
	// FlushNone evicts nothing: a step may find in L2 and in the TLBs what
	// the step before it left there.
	FlushNone FlushMode = iota
	// FlushL2 reads 512 MiB of other memory (NewFlush), which evicts L2.
	FlushL2
	// FlushPages also loads 16 bytes of every 64 KiB of 48 GiB more
	// (flushPages; vk.L2Flush.AddPages), which evicts the address
	// translations of the step's buffers from the GPU's TLBs. The default.
	FlushPages
)

// Flush returns the flush $HATA_BENCH_L2FLUSH asks for, or an error naming
// a value it does not know.
func Flush() (FlushMode, error) {
	switch v := os.Getenv(EnvL2Flush); v {
	case "":
		return FlushPages, nil
	case "l2":
		return FlushL2, nil
	case "0":
		return FlushNone, nil
	default:
		return 0, fmt.Errorf("$%s=%q: want unset (evict L2 and the TLBs), l2 (L2 only) or 0 (nothing)", EnvL2Flush, v)
	}
}

// EnvTwin names the environment variable that, set to 1, has the Vulkan
// timer run a step of another instance of the method after every flush and
// before every timed step (Twin): the same shape and kernels, its own cache
// and buffers. What that gives back is what a cold step waits for that the
// two instances share, above all the kernels' machine code, which the flush
// evicts from L2 too: on the H200 3.9-6.0 us of HATA's B1/32K and B1/128K
// steps (BENCHMARKS.md, session 28). Where the other instance's own step
// moves about as much as L2 holds it evicts that again, and shows nothing;
// set to B/N ("8/512") the other instance holds B batch rows of N tokens
// instead, whose step moves little, so that it warms the code of a large
// step too, where its kernels are the timed step's: `hata bench` says which
// are (Timing.Twin), and -opt can pin the choices N changes (the tile, the
// merge). A diagnostic, not a model's regime: results.json records it
// (DeviceInfo.Timer).
const EnvTwin = "HATA_BENCH_TWIN"

// TwinShape is what $HATA_BENCH_TWIN asks for (Twin): whether another
// instance steps before every timed step, and its batch rows and tokens
// where they are not the timed shape's.
type TwinShape struct {
	On   bool
	B, N int // both 0: the timed step's
}

// String says what the timer runs after its flush, for DeviceInfo.Timer and
// the bench's header ("" where nothing).
func (t TwinShape) String() string {
	switch {
	case !t.On:
		return ""
	case t.B == 0:
		return "another instance's step ($" + EnvTwin + "=1)"
	}
	return fmt.Sprintf("a step of another instance of B=%d N=%d ($%s=%d/%d)", t.B, t.N, EnvTwin, t.B, t.N)
}

// Twin reports what $HATA_BENCH_TWIN asks for: unset or "0" no other
// instance, "1" one of the timed shape, "B/N" one of B batch rows and N
// tokens (both positive); or an error naming a value it does not know.
func Twin() (TwinShape, error) {
	v := os.Getenv(EnvTwin)
	switch v {
	case "", "0":
		return TwinShape{}, nil
	case "1":
		return TwinShape{On: true}, nil
	}
	bs, ns, ok := strings.Cut(v, "/")
	b, errB := strconv.Atoi(bs)
	n, errN := strconv.Atoi(ns)
	if !ok || errB != nil || errN != nil || b < 1 || n < 1 || b > MaxBatch || n > MaxTokens {
		return TwinShape{}, fmt.Errorf("$%s=%q: want unset or 0 (no other step), 1 (another instance's step after every flush) or B/N (one of B <= %d batch rows and N <= %d tokens, \"8/512\")", EnvTwin, v, MaxBatch, MaxTokens)
	}
	return TwinShape{On: true, B: b, N: n}, nil
}

// twinStepped, where a test sets it, is called after every step of Time's
// other instance ($HATA_BENCH_TWIN).
var twinStepped func()

// flushPages is the memory whose pages FlushPages touches on a GPU
// (FlushSizes): beyond the H200's translation reach (32, 48 and 96 GiB
// left the same steps, run 301) and what a Llama-3.1-8B's weights and other
// 31 layers' caches occupy at the shapes (33 GB at B1/128K).
const flushPages = 48 << 30

// FlushSizes returns what the timer's flush reads to empty L2, 4*l2Bytes
// at most maxStorageBufferRange, and the memory whose pages FlushPages
// touches, flushPages at most half the largest device-local heap; on a CPU
// device, which has no GPU cache or TLBs to empty and whose times are only
// the pipeline's, 1 MiB and 4 MiB (so that CI runs the code).
func (v *Vulkan) FlushSizes() (l2, pages uint64) {
	if v.Ctx.Info.Type == vk.DeviceCPU {
		return 1 << 20, 4 << 20
	}
	var heap uint64 // the largest device-local heap
	for _, h := range v.Ctx.Info.Heaps {
		if h.DeviceLocal {
			heap = max(heap, h.Size)
		}
	}
	return min(uint64(4*l2Bytes), uint64(v.Ctx.Info.Limits.MaxStorageBufferRange)), min(uint64(flushPages), heap/2)
}

// NewFlush returns the flush Time runs before every timed step (mode), nil
// for FlushNone (whose Run and Close do nothing): a read of FlushSizes' first, and with FlushPages a load in
// every 64 KiB of its second. The caller closes it.
// Caches replicated past l2Bytes keep a step's cache rows out of L2 but not
// what every step reads again: a sparse step moves a few megabytes (B1/32K's
// HATA 6.3 MB) with the same query each time, and its codes, selected K/V
// rows and W could stay in L2 from one timed step to the next, where in a
// model the other layers run in between. Nor do they keep the translations
// of the cache's pages out of the TLBs, which a sparse attention's gathers
// touch everywhere: in a model the other layers' caches and weights pass
// through them, and a step that finds them cold takes up to three times as
// long at B8 (session 26, runs 299-301).
func (v *Vulkan) NewFlush(mode FlushMode) (*vk.L2Flush, error) {
	if mode == FlushNone {
		return nil, nil
	}
	size, pages := v.FlushSizes()
	f, err := v.Ctx.NewL2Flush(size)
	if err != nil {
		return nil, err
	}
	if mode == FlushPages {
		if err := f.AddPages(pages); err != nil {
			f.Close()
			return nil, fmt.Errorf("the timer's flush of the TLBs (%d MiB; $%s=l2 flushes L2 alone): %w", pages>>20, EnvL2Flush, err)
		}
	}
	return f, nil
}

// twinStep is Time's other instance of the timed method ($HATA_BENCH_TWIN,
// newTwin): a nil one steps nothing.
type twinStep struct {
	m      benchable
	q      []float32 // [B][Hq][D]: the timed steps' queries
	budget ref.Budget
}

// twinWarmup is the steps newTwin runs its instance before the timed steps
// (its pipelines and its choice of key bytes settled).
const twinWarmup = 3

// newTwin returns the other instance Time steps after every flush where
// tw asks for one, nil where not: method at shape s (with tw's B and N
// where set) with tuning, its own cache filled with other random values
// (seed 2; the timed copies take odd seeds), run twinWarmup steps with q
// (the timed steps' queries, or as many random ones as its batch needs)
// at budget.
func (v *Vulkan) newTwin(tw TwinShape, method string, s ref.Shape, q []float32, budget ref.Budget, tuning vk.Tuning) (*twinStep, error) {
	if !tw.On {
		return nil, nil
	}
	if tw.B > 0 {
		s.B, s.N = tw.B, tw.N
		q = randomQuery(s)
	}
	m, err := v.newBenchable(method, s, tuning, 2)
	if err != nil {
		return nil, fmt.Errorf("$%s: another instance of %s: %w", EnvTwin, method, err)
	}
	t := &twinStep{m: m, q: q, budget: budget}
	for range twinWarmup {
		if err := t.step(); err != nil {
			t.close()
			return nil, err
		}
	}
	return t, nil
}

// randomQuery returns the queries Time steps with at shape s: [B][Hq][D],
// each from vk.RandomValue.
func randomQuery(s ref.Shape) []float32 {
	q := make([]float32, s.B*s.Hq*s.D)
	for i := range q {
		q[i] = vk.RandomValue(12345, uint32(i))
	}
	return q
}

// twinKernels says which kernels the timed instance m and the other one
// share, from one step of each (vk.Context.Recorded before and after): the
// other's step warms the code of those only. A kernel is a step's where the
// step recorded a dispatch of it; each is named by its label, "shader
// spec=...".
func (v *Vulkan) twinKernels(t *twinStep, m benchable, q []float32, budget ref.Budget) (string, error) {
	r0 := v.Ctx.Recorded()
	if err := t.step(); err != nil {
		return "", err
	}
	r1 := v.Ctx.Recorded()
	if _, err := m.Decode(q, budget); err != nil {
		return "", err
	}
	r2 := v.Ctx.Recorded()
	var both, timed, other []string
	for k := range r2 {
		inT, inO := r2[k] > r1[k], r1[k] > r0[k]
		switch {
		case inT && inO:
			both = append(both, k)
		case inT:
			timed = append(timed, k)
		case inO:
			other = append(other, k)
		}
	}
	list := func(ks []string) string {
		slices.Sort(ks)
		return cmp.Or(strings.Join(ks, "; "), "none")
	}
	return fmt.Sprintf("the other instance runs %d of the timed step's %d kernels: %s; the timed step's alone: %s; the other's alone: %s",
		len(both), len(both)+len(timed), list(both), list(timed), list(other)), nil
}

// step runs one decode step of the other instance (none where t is nil).
func (t *twinStep) step() error {
	if t == nil {
		return nil
	}
	if _, err := t.m.Decode(t.q, t.budget); err != nil {
		return fmt.Errorf("$%s: the other instance's step: %w", EnvTwin, err)
	}
	if twinStepped != nil {
		twinStepped()
	}
	return nil
}

// close frees the other instance (none where t is nil).
func (t *twinStep) close() {
	if t != nil {
		closeMethod(t.m)
	}
}

// newBenchable builds method (a name, or name/variant) with tuning for
// Time: its K/V cache of shape s filled on the device with random values
// of seed. On error nothing stays allocated.
func (v *Vulkan) newBenchable(method string, s ref.Shape, tuning vk.Tuning, seed uint32) (benchable, error) {
	name, variant, _ := strings.Cut(method, "/")
	m, err := v.Ctx.BenchMethod(name, variant, s.Hkv, s.D, tuning)
	if err != nil {
		return nil, err
	}
	bm, ok := m.(benchable)
	if !ok {
		closeMethod(m)
		return nil, fmt.Errorf("vk %s: no device-side prefill to benchmark it with", method)
	}
	if err := bm.PrefillRandom(s.B, s.Hkv, s.N, s.D, seed); err != nil {
		closeMethod(bm)
		return nil, err
	}
	return bm, nil
}

// closeMethod frees m's device memory where it holds any (io.Closer).
func closeMethod(m any) {
	if c, ok := m.(io.Closer); ok {
		c.Close()
	}
}

// Time implements Timer with GPU timestamps: the median over reps decode
// steps (after a warm-up of at least 5 steps, one a copy, and 300 ms; each
// timed step after reads that evict L2 and the TLBs, NewFlush, and with
// $HATA_BENCH_TWIN another instance's step, newTwin) of the kernel stages of one step, the upload
// of q (which ends with a compute kernel writing it, as a model's query
// projection does: vk's queryUpload) and the readback of the output left out; the stages are timed with a
// timestamp each, the total (Median) in another reps steps with timestamps
// only around the span of kernels (vk.Context.SetSpanTiming), so the stages
// may add up to more than the total. method may carry a variant,
// "hata/naive"; K/V are fp16; tuning sets the kernel parameters (the zero
// vk.Tuning: the defaults; see vk.Context.BenchMethod). The copy bandwidth is
// measured in the same call.
func (v *Vulkan) Time(method string, s ref.Shape, budget ref.Budget, reps int, tuning vk.Tuning) (Timing, error) {
	name, _, _ := strings.Cut(method, "/")
	mode, err := Flush()
	if err != nil {
		return Timing{}, err
	}
	tw, err := Twin()
	if err != nil {
		return Timing{}, err
	}
	k, err := budget.Tokens(s.N)
	if err != nil {
		return Timing{}, err
	}
	traffic := Traffic{K: k, ElemSize: 2, Rbit: tuning.Rbit}
	if tuning.LokiF32 == 1 {
		traffic.KeyElem = 4 // float32 rotated keys
	}
	bytes := MustMove(name, s, traffic)
	var hostBytes int64
	if tuning.HostCache != 0 {
		hostBytes = CacheBytes(name, s, traffic)
	}
	copies := cacheCopies(int64(2*s.B*s.Hkv*s.N*s.D*2), v.Ctx.Info.Type == vk.DeviceCPU)
	ms := make([]benchable, 0, copies)
	defer func() {
		for _, m := range ms {
			closeMethod(m)
		}
	}()
	for i := range copies {
		m, err := v.newBenchable(method, s, tuning, uint32(2*i+1))
		if err != nil {
			return Timing{}, err
		}
		ms = append(ms, m)
	}
	q := randomQuery(s)
	// Warm up for at least 5 steps, one of every copy, and 300 ms:
	// pipelines, buffers, the GPU's clocks, which idle low while the host
	// prepares the data, and each copy's choice of key bytes.
	for i, start := 0, time.Now(); i < max(5, len(ms)) || time.Since(start) < 300*time.Millisecond; i++ {
		if _, err := ms[i%len(ms)].Decode(q, budget); err != nil {
			return Timing{}, err
		}
	}
	// Full clocks for the timed steps: the warm-up's steps leave the GPU
	// idle between them, and after pipeline creation its clock may be far
	// below its maximum (vk.Context.WarmClocks).
	if v.Ctx.Info.Type != vk.DeviceCPU {
		if _, err := v.Ctx.WarmClocks(250 * time.Millisecond); err != nil {
			return Timing{}, err
		}
	}
	// Steps run again with uint16 keys (vk.SparseOptions.KeyBytes): by
	// default only a warm-up step's, after which the cache keeps uint16.
	fellShort := keyFallbacks(ms)
	twin, err := v.newTwin(tw, method, s, q, budget, tuning)
	if err != nil {
		return Timing{}, err
	}
	defer twin.close()
	var twinKernels string
	if twin != nil {
		if twinKernels, err = v.twinKernels(twin, ms[0], q, budget); err != nil {
			return Timing{}, err
		}
	}
	flush, err := v.NewFlush(mode)
	if err != nil {
		return Timing{}, err
	}
	defer flush.Close()
	steps := &timedSteps{ms: ms, flush: flush, twin: twin, method: method, s: s, q: q, budget: budget, k: k}
	stages := map[string][]float64{}
	traces := newTraceLog()
	for i := range reps {
		m, err := steps.run(i)
		if err != nil {
			return Timing{}, err
		}
		if tuning.Trace != 0 {
			if err := traces.add(m); err != nil {
				return Timing{}, fmt.Errorf("vk %s: %w", method, err)
			}
		}
		t := m.Timings()
		if !t.Supported {
			return Timing{}, fmt.Errorf("vk: %s has no GPU timestamps", v.Ctx.Info.Name)
		}
		per, _, err := stageColumns(t, method)
		if err != nil {
			return Timing{}, err
		}
		for col, ns := range per {
			stages[col] = append(stages[col], ns)
		}
	}
	// The step's total from the same number of steps timed as one span (a
	// timestamp before the first kernel and after the last only): a
	// timestamp between two dependent dispatches costs about 1 us on an H200
	// (vk's TestDispatchFloor), which the stage columns include and the
	// total must not.
	v.Ctx.SetSpanTiming(true)
	defer v.Ctx.SetSpanTiming(false)
	var totals []float64
	levels := 0
	for i := range reps {
		m, err := steps.run(i)
		if err != nil {
			return Timing{}, err
		}
		tm := m.Timings()
		levels = tm.Levels
		_, total, err := stageColumns(tm, method)
		if err != nil {
			return Timing{}, err
		}
		totals = append(totals, total)
	}
	v.Ctx.SetSpanTiming(false)
	// A timed step run again with uint16 keys (vk.SparseOptions.KeyBytes =
	// 1, a threshold at 255 or more) reports only its second run's times.
	if n := keyFallbacks(ms) - fellShort; n > 0 {
		return Timing{}, fmt.Errorf("vk %s: %d timed steps ran again with uint16 keys (a threshold reached 255), so their times are not one step's: time keybytes=1 at a smaller budget", method, n)
	}
	size := min(uint64(1<<30), uint64(v.Ctx.Info.Limits.MaxStorageBufferRange))
	if v.Ctx.Info.Type == vk.DeviceCPU {
		size = 64 << 20
	}
	copyBW, err := v.Ctx.CopyBandwidth(size, 20)
	if err != nil {
		return Timing{}, err
	}
	out := Timing{Clock: "gpu-timestamp", Median: time.Duration(median(totals)), Stages: map[string]time.Duration{},
		Bytes: bytes, HostBytes: hostBytes, CopyGBps: copyBW / 1e9, Levels: levels, Raw: traces.raw, Twin: twinKernels}
	for col, xs := range stages {
		out.Stages[col] = time.Duration(median(xs))
	}
	out.Trace, out.Spans, out.Spanned = traces.lines()
	return out, nil
}

// timedSteps runs Time's timed steps: each after the flush (which empties
// L2 and the TLBs) and the twin's step, on the method's copies in turn, and
// checked.
type timedSteps struct {
	ms     []benchable
	flush  *vk.L2Flush // nil: no flush
	twin   *twinStep   // nil: no twin
	method string
	s      ref.Shape
	q      []float32 // [B][Hq][D]
	budget ref.Budget
	k      int // tokens a row the budget selects
}

// run runs timed step i and returns the copy that ran it.
func (t *timedSteps) run(i int) (benchable, error) {
	m := t.ms[i%len(t.ms)]
	if err := t.flush.Run(); err != nil {
		return nil, err
	}
	if err := t.twin.step(); err != nil {
		return nil, err
	}
	return m, checkedStep(m, t.method, t.s, t.q, t.budget, t.k)
}

// stageColumns adds a step's stage times (ns) into the CSV's stage columns
// (stageOf), leaving out the stages that are not the step's (the upload, the
// readback), and returns them with their total, the step's kernel time (with
// span timing, the span's); an unknown stage is an error.
func stageColumns(t vk.Timings, method string) (per map[string]float64, total float64, err error) {
	per = map[string]float64{}
	for _, st := range t.Stages {
		col, known := stageOf[st.Name]
		if !known {
			return nil, 0, fmt.Errorf("vk %s: unknown stage %q", method, st.Name)
		}
		if col != "" {
			per[col] += st.Ns
			total += st.Ns
		}
	}
	return per, total, nil
}

// traceLog gathers the kernel traces of Time's timed steps (bench -opt
// trace=1), kernel by kernel.
type traceLog struct {
	order      []string                     // the kernels, in the step's order
	sums       map[string][]vk.TraceSummary // by kernel, a summary a step
	warmStarts map[string][]float64         // a warm workgroup's start after the step's first traced kernel's, ns
	raw        []vk.KernelTrace             // the last step's readings
}

func newTraceLog() *traceLog {
	return &traceLog{sums: map[string][]vk.TraceSummary{}, warmStarts: map[string][]float64{}}
}

// add records the traces of m's last step.
func (l *traceLog) add(m benchable) error {
	raw, sums, err := kernelTraces(m)
	if err != nil {
		return err
	}
	l.raw = raw
	for i, sum := range sums {
		if _, ok := l.sums[sum.Kernel]; !ok {
			l.order = append(l.order, sum.Kernel)
		}
		l.sums[sum.Kernel] = append(l.sums[sum.Kernel], sum)
		if strings.HasPrefix(sum.Kernel, warmTrace) {
			l.warmStarts[sum.Kernel] = append(l.warmStarts[sum.Kernel], float64(raw[i].StartAfter(raw[0])))
		}
	}
	return nil
}

// lines returns a line per traced kernel (the medians over the steps, and
// for a warm workgroup when it started), and the sum of the step's own
// kernels' median spans with their count (the warm workgroups, which run
// beside them, left out).
func (l *traceLog) lines() (lines []string, spans time.Duration, spanned int) {
	for _, k := range l.order {
		sum := vk.MedianSummary(l.sums[k])
		line := k + ": " + sum.String()
		if xs := l.warmStarts[k]; len(xs) > 0 {
			line += fmt.Sprintf("; started %.1f us after %s's first workgroup", median(xs)/1e3, l.order[0])
		}
		lines = append(lines, line)
		if !strings.HasPrefix(k, warmTrace) {
			spans += time.Duration(sum.Span) // the device clock's ticks are nanoseconds
			spanned++
		}
	}
	return lines, spans, spanned
}

// warmTrace begins the kernel names of vk.HATA.WarmTraces.
const warmTrace = "warm "

// kernelTraces returns the clock readings of m's last step's traced kernels
// (a vk method built with DenseOptions.Trace or SparseOptions.Trace), then
// those of its warm workgroups where it has them (vk.HATA.WarmTraces), and
// their summaries.
func kernelTraces(m ref.Method) ([]vk.KernelTrace, []vk.TraceSummary, error) {
	tm, ok := m.(interface {
		Traces() ([]vk.KernelTrace, error)
	})
	if !ok {
		return nil, nil, fmt.Errorf("no kernel traces")
	}
	trs, err := tm.Traces()
	if err != nil {
		return nil, nil, err
	}
	if wm, ok := m.(interface {
		WarmTraces() ([]vk.KernelTrace, error)
	}); ok {
		ws, err := wm.WarmTraces()
		if err != nil {
			return nil, nil, err
		}
		trs = append(trs, ws...)
	}
	sums := make([]vk.TraceSummary, len(trs))
	for i, tr := range trs {
		if sums[i], err = tr.Summary(); err != nil {
			return nil, nil, err
		}
	}
	return trs, sums, nil
}

// median returns the median of xs (the upper one of an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// checkedStep runs one timed decode step of m and checks what it returned
// (ref.CheckResult: finite outputs, selections of k unique ascending tokens a
// row), so that a kernel broken on the benchmark's device or shape, which no
// test there may have run, fails its row instead of timing wrong work.
func checkedStep(m benchable, method string, s ref.Shape, q []float32, budget ref.Budget, k int) error {
	res, err := m.Decode(q, budget)
	if err != nil {
		return err
	}
	if err := ref.CheckResult(res, s, k); err != nil {
		return fmt.Errorf("vk %s B=%d N=%d: a timed step's %w; its times are not reported", method, s.B, s.N, err)
	}
	return nil
}

// keyFallbacks returns how many steps the methods ms ran again with uint16
// keys (vk.HATA.KeyFallbacks; 0 for the methods without one-byte keys).
func keyFallbacks(ms []benchable) int {
	n := 0
	for _, m := range ms {
		if f, ok := m.(interface{ KeyFallbacks() int }); ok {
			n += f.KeyFallbacks()
		}
	}
	return n
}
