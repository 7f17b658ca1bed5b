package experiments

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hata-go/hata/plots"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

// Shape is the attention layer the timing kinds use, and the hash width of
// the hashing methods timed on it. Defaults are Llama-3.1-8B's, Hq 32, Hkv
// 8, D 128, and the paper's rbit 128.
type Shape struct {
	Hq  int `toml:"hq" json:"hq"`
	Hkv int `toml:"hkv" json:"hkv"`
	D   int `toml:"d" json:"d"`
	// Rbit is the bits of hata's and lsh's codes (random weights: the
	// timing does not depend on their values), a multiple of 32 up to
	// vk.MaxTuningRbit; the other methods ignore it.
	Rbit int `toml:"rbit" json:"rbit"`
	// HostCache keeps every method's K/V cache in host memory, which the
	// kernels read over the bus (vk.Tuning.HostCache: the paper's HATA-off
	// for one layer); the speedups are then over dense over an offloaded
	// cache too. The CPU backend refuses it (its cache is the host's).
	HostCache bool `toml:"host_cache" json:"host_cache"`
	// PairedKV true keeps a token's K and V side by side in one buffer in
	// the caches of the methods that read such a cache: every method's
	// fused chain (vk.Tuning.PairedKV = 1); the other variants of hata and
	// lsh keep theirs apart. false keeps every cache apart (2 with
	// host_cache; a cache in device memory is apart anyway). Unset, a
	// cache in host memory is paired where the method reads it only in
	// its attention (vk.PairsHostCache: every method but the exact top-k
	// and H2O), and one in device memory is apart. The CPU backend refuses
	// true (it runs no kernels whose layout this is).
	PairedKV *bool `toml:"paired_kv" json:"paired_kv,omitempty"`
	// HostLayout is not a key: it records in the resolved config (the
	// results' config.json) the rule that laid out a cache in host memory
	// where paired_kv is unset, "by method" (vk.PairsHostCache, since
	// session 47; markLayout). Results timed before that rule, every
	// cache apart, lack it, so their identity differs and a run never
	// resumes their points, or labels them, under the rule.
	HostLayout string `toml:"-" json:"host_layout,omitempty"`
}

// markLayout sets HostLayout from HostCache and PairedKV (the kinds'
// validate calls it, before the config's identity is taken).
func (s *Shape) markLayout() {
	s.HostLayout = ""
	if s.HostCache && s.PairedKV == nil {
		s.HostLayout = "by method"
	}
}

// MaxBatch, MaxTokens, MaxHeads and MaxHeadDim bound the shape of a timed
// step: its batch, context length, query heads and head dimension. The
// heads and the head dimension may be 32 and 8 times those of the paper's
// models (32 query heads, D 128); together the bounds keep every size
// computed from a shape far from overflowing (the fp16 K and V caches of the
// largest shape take 2*1024*1024*2^24*1024*2 = 2^56 bytes).
const (
	MaxBatch   = 1024
	MaxTokens  = 1 << 24
	MaxHeads   = 1024
	MaxHeadDim = 1024
)

func (s Shape) validate() error {
	switch {
	case s.Hq < 1 || s.Hq > MaxHeads:
		return badKey("hq", "%d, want in [1, %d]", s.Hq, MaxHeads)
	case s.Hkv < 1 || s.Hq%s.Hkv != 0:
		return badKey("hkv", "%d, want >= 1 and a divisor of hq=%d", s.Hkv, s.Hq)
	case s.D < 2 || s.D%2 != 0 || s.D > MaxHeadDim:
		return badKey("d", "%d, want an even number in [2, %d]", s.D, MaxHeadDim)
	case s.Rbit < 32 || s.Rbit%32 != 0 || s.Rbit > vk.MaxTuningRbit:
		return badKey("rbit", "%d, want a multiple of 32 in [32, %d]", s.Rbit, vk.MaxTuningRbit)
	}
	return nil
}

// memoryNote is what the figures' titles add after the clock: where the
// timed caches lie, if not in device memory, and whether methods' K and V
// are paired (tuning), naming those that are not where some are.
func (s Shape) memoryNote(methods []string) string {
	var note string
	if s.HostCache {
		note = ", K/V in host memory"
	}
	var apart []string
	for _, m := range methods {
		if s.tuning(m).PairedKV != 1 {
			apart = append(apart, m)
		}
	}
	switch {
	case len(apart) == len(methods):
	case len(apart) == 0:
		note += ", K and V paired"
	default:
		note += ", K and V paired but " + strings.Join(apart, "'s, ") + "'s"
	}
	return note
}

// gpuCache returns the key of a cache option that only GPU kernels have
// (host_cache, paired_kv), which the CPU backend refuses before any point,
// or "" where none is set.
func (s Shape) gpuCache() string {
	switch {
	case s.HostCache:
		return "host_cache"
	case s.PairedKV != nil && *s.PairedKV:
		return "paired_kv"
	}
	return ""
}

// tuning returns the timer's parameters for method (name or name/variant)
// on s: the hash width for hata and lsh, for every method where the cache
// is in host memory, and for those that read a paired cache how it is laid
// out (PairedKV; unset, vk.Tuning.ForMethod's rule).
func (s Shape) tuning(method string) vk.Tuning {
	var t vk.Tuning
	if name, _, _ := strings.Cut(method, "/"); name == "hata" || name == "lsh" {
		t.Rbit = s.Rbit
	}
	if s.HostCache {
		t.HostCache = 1
	}
	switch {
	case s.PairedKV != nil && *s.PairedKV && (vk.Tuning{PairedKV: 1}).Check(method) == nil:
		t.PairedKV = 1
	case s.PairedKV != nil && !*s.PairedKV && s.HostCache:
		t.PairedKV = 2 // apart (in device memory it is anyway)
	}
	return t.ForMethod(method)
}

// SpeedConfig is the decode-step latency sweep (the paper's Fig. 5): one
// layer, one decode step, per method, batch and context length, at a budget,
// with the speedup over dense attention. It needs a backend that implements
// Timer; the CPU backend's timings are wall-clock medians (clock
// "cpu-wallclock"), only good for testing the pipeline.
type SpeedConfig struct {
	Common
	Shape
	// Methods are timed. Default dense hata loki quest (the paper's Fig. 5).
	Methods []string `toml:"methods" json:"methods"`
	// Batches are the batch sizes. Default 1 8.
	Batches []int `toml:"batches" json:"batches"`
	// Ns are the context lengths (cached tokens). Default 8K..256K.
	Ns []int `toml:"ns" json:"ns"`
	// Budget is a ratio of N or a token count. Default 1.56% (the paper's).
	Budget float64 `toml:"budget" json:"budget"`
	// Reps is the number of timed decode steps per point (the median is
	// reported). Default 50.
	Reps int `toml:"reps" json:"reps"`
}

func (c *SpeedConfig) methodNames() ([]string, bool) { return c.Methods, true }

func (c *SpeedConfig) measuresTime() {}

func defaultSpeed() *SpeedConfig {
	return &SpeedConfig{
		Common: Common{Kind: "speed"}, Shape: Shape{Hq: 32, Hkv: 8, D: 128, Rbit: ref.DefaultRbit},
		Methods: []string{"dense", "hata", "loki", "quest"},
		Batches: []int{1, 8},
		Ns:      []int{8192, 16384, 32768, 65536, 131072, 262144},
		Budget:  0.0156, Reps: 50,
	}
}

func validateInts(key string, xs []int, lo, hi int) error {
	if len(xs) == 0 {
		return badKey(key, "empty")
	}
	for i, x := range xs {
		if x < lo || x > hi || slices.Contains(xs[:i], x) {
			return badKey(key, "%d, want distinct values in [%d, %d]", x, lo, hi)
		}
	}
	return nil
}

// StepKeys name the parameters of a timed decode step where they are set,
// for errors: the config keys of the speed and breakdown kinds, the flags of
// hata bench.
type StepKeys struct{ B, Hq, Hkv, N, D, Rbit string }

// CheckStepSize reports whether timing method (a name of ref.MethodNames,
// optionally name/variant) on shape s, with hash width rbit for hata and lsh,
// keeps each of its host tensors within MaxTensorBytes. On a GPU (onDevice)
// the host holds the queries and the methods' host-side state (the hash
// weights, Loki's basis, H2O's score history); on the CPU backend also the
// K/V cache and what the methods derive from it. The memory of a GPU is its
// driver's to refuse: package vk reports a cache it cannot allocate as the
// point's error. The error, like a config's, has a method ConfigKey that
// returns the key of keys at fault, and reads "key: value with ...".
func CheckStepSize(method string, s ref.Shape, rbit int, onDevice bool, keys StepKeys) error {
	b, hq, hkv := factor{keys.B, s.B, 1}, factor{keys.Hq, s.Hq, 32}, factor{keys.Hkv, s.Hkv, 8}
	n, d, r := factor{keys.N, s.N, 8192}, factor{keys.D, s.D, 128}, factor{keys.Rbit, rbit, 128}
	name, _, _ := strings.Cut(method, "/")
	ts := []tensor{{"the queries [B][Hq][D] of float32", 32, []factor{b, hq, d}}}
	switch name {
	case "hata", "lsh":
		ts = append(ts, tensor{"the hash weights [Hkv][D][Rbit] of float32", 32, []factor{hkv, d, r}})
	case "loki":
		ts = append(ts, tensor{"Loki's basis [Hkv][D][D] of float64", 64, []factor{hkv, d, d}})
	case "h2o":
		ts = append(ts, tensor{"H2O's score history [B][Hkv][N] of float64", 64, []factor{b, hkv, n}})
	}
	if !onDevice {
		ts = append(ts, tensor{"the K cache [B][Hkv][N][D] of float32", 32, []factor{b, hkv, n, d}})
		switch name {
		case "hata", "lsh":
			ts = append(ts, tensor{"the key codes [B][Hkv][N][Rbit] of bits", 1, []factor{b, hkv, n, r}})
		case "loki":
			ts = append(ts,
				tensor{"Loki's attention probabilities [B][Hq][N] of float64", 64, []factor{b, hq, n}},
				tensor{"Loki's rotated keys [B][Hkv][N][32 channels] of float64", 64 * 32, []factor{b, hkv, n}})
		case "magicpig":
			ts = append(ts, tensor{"MagicPIG's key codes [B][Hkv][N][150 tables] of uint32", 32 * 150, []factor{b, hkv, n}})
		}
	}
	return checkTensors(ts...)
}

// onDevice reports whether every device of c is a GPU (a "vk" spec): then
// the timed caches live in device memory. Any other ("cpu", or "auto",
// which may fall back to the CPU) holds them on the host.
func (c *Common) onDevice() bool {
	for _, dev := range c.Devices {
		if dev != "vk" && !strings.HasPrefix(dev, "vk:") {
			return false
		}
	}
	return len(c.Devices) > 0
}

// checkSizes checks the host tensors of the sweep's largest step of every
// method (see CheckStepSize): the largest of batches at the largest of ns.
func (c *SpeedConfig) checkSizes(keys StepKeys) error {
	s := ref.Shape{B: slices.Max(c.Batches), Hq: c.Hq, Hkv: c.Hkv, N: slices.Max(c.Ns), D: c.D}
	for _, m := range c.Methods {
		if err := CheckStepSize(m, s, c.Rbit, c.onDevice(), keys); err != nil {
			return err
		}
	}
	return nil
}

// speedKeys are the keys of the speed kind's step parameters.
var speedKeys = StepKeys{B: "batches", Hq: "hq", Hkv: "hkv", N: "ns", D: "d", Rbit: "rbit"}

func (c *SpeedConfig) validate() error {
	if err := c.validateValues(); err != nil {
		return err
	}
	c.markLayout()
	return c.checkSizes(speedKeys)
}

// validateValues checks each key's values, not yet the sizes they make
// together.
func (c *SpeedConfig) validateValues() error {
	if err := c.Shape.validate(); err != nil {
		return err
	}
	if len(c.Methods) == 0 {
		return badKey("methods", "empty")
	}
	for i, m := range c.Methods {
		name, variant, slash := strings.Cut(m, "/")
		if !slices.Contains(ref.MethodNames, name) || slices.Contains(c.Methods[:i], m) || slash && variant == "" {
			return badKey("methods", "%q, want distinct names of %s (optionally name/variant)", m, strings.Join(ref.MethodNames, ", "))
		}
		if err := vk.CheckVariant(name, variant); err != nil {
			return badKey("methods", "%q: %v", m, err)
		}
	}
	if err := validateInts("batches", c.Batches, 1, MaxBatch); err != nil {
		return err
	}
	if err := validateInts("ns", c.Ns, 1, MaxTokens); err != nil {
		return err
	}
	if err := validateBudgets("budget", []float64{c.Budget}); err != nil {
		return err
	}
	if c.Reps < 1 || c.Reps > 100000 {
		return badKey("reps", "%d, want in [1, 100000]", c.Reps)
	}
	return nil
}

// timingPoint is one timed configuration.
type timingPoint struct {
	Method string  `json:"method"`
	B      int     `json:"b"`
	N      int     `json:"n"`
	Budget float64 `json:"budget"`
}

func (c *SpeedConfig) points() []point {
	var ps []point
	for _, b := range c.Batches {
		for _, n := range c.Ns {
			for _, m := range c.Methods {
				ps = append(ps, point{Index: len(ps), Params: timingPoint{m, b, n, c.Budget}})
			}
		}
	}
	return ps
}

// timingColumns is the row format of the speed and breakdown kinds. levels
// is how many of the step's dispatches ran one after another (Timing.Levels;
// empty on the CPU): with the device's dispatch floor, the step's latency
// roofline, as copy_gbps is its bandwidth one.
var timingColumns = []string{"method", "b", "n", "budget", "k", "clock", "median_us",
	"encode_us", "score_us", "select_us", "attend_us", "merge_us", "other_us", "bytes", "gbps", "copy_gbps", "levels", "speedup", "device"}

func (c *SpeedConfig) columns() []string { return timingColumns }

func (c *SpeedConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	return timePoint(w, c.Shape, c.Reps, p.Params.(timingPoint))
}

// timePoint times one configuration on the worker's backend.
func timePoint(w *worker, sh Shape, reps int, tp timingPoint) ([][]string, error) {
	timer, ok := w.backend.(Timer)
	if !ok {
		return nil, fmt.Errorf("device %s cannot time decode steps (its backend has no Timer)", w.backend.Name())
	}
	shape := ref.Shape{B: tp.B, Hq: sh.Hq, Hkv: sh.Hkv, N: tp.N, D: sh.D}
	budget := budgetOf(tp.Budget)
	k, err := budget.Tokens(tp.N)
	if err != nil {
		return nil, err
	}
	t, err := timer.Time(tp.Method, shape, budget, reps, sh.tuning(tp.Method))
	if err != nil {
		return nil, err
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	row := []string{tp.Method, fmtInt(tp.B), fmtInt(tp.N), fmtFloat(tp.Budget), fmtInt(k), t.Clock, fmtFloat(us(t.Median))}
	var staged time.Duration
	for _, s := range Stages {
		d, ok := t.Stages[s]
		if !ok {
			row = append(row, "")
			continue
		}
		staged += d
		row = append(row, fmtFloat(us(d)))
	}
	for s := range t.Stages {
		if !slices.Contains(Stages, s) {
			return nil, fmt.Errorf("timer reported stage %q, want one of %v", s, Stages)
		}
	}
	other := ""
	if len(t.Stages) > 0 {
		other = fmtFloat(math.Max(0, us(t.Median-staged)))
	}
	gbps := ""
	if t.Bytes > 0 && t.Median > 0 {
		gbps = fmtFloat(float64(t.Bytes) / t.Median.Seconds() / 1e9)
	}
	copyBW := ""
	if t.CopyGBps > 0 {
		copyBW = fmtFloat(t.CopyGBps)
	}
	levels := ""
	if t.Levels > 0 {
		levels = fmtInt(t.Levels)
	}
	row = append(row, other, strconv.FormatInt(t.Bytes, 10), gbps, copyBW, levels, "", w.backend.Name())
	return [][]string{row}, nil
}

// finish fills speedup = median(dense) / median(method) for the rows with a
// dense row of the same batch, length and device.
func (c *SpeedConfig) finish(t *Table) { fillSpeedup(t) }

func fillSpeedup(t *Table) { speedupOverDense(t, "median_us", "b", "n", "device") }

// speedupOverDense sets each row's speedup column to the dense row's time
// column divided by its own, where a dense row with the same values in the
// key columns exists.
func speedupOverDense(t *Table, time string, keys ...string) {
	key := func(i int) string {
		var k []string
		for _, c := range keys {
			k = append(k, t.Str(i, c))
		}
		return strings.Join(k, "\x00")
	}
	dense := map[string]float64{}
	for i := range t.Rows {
		if t.Str(i, "method") == "dense" {
			dense[key(i)] = t.Float(i, time)
		}
	}
	for i := range t.Rows {
		if d, ok := dense[key(i)]; ok && t.Float(i, time) > 0 {
			t.set(i, "speedup", fmtFloat(d/t.Float(i, time)))
		}
	}
}

// clockLabel names the clock of the rows for axis labels.
func clockLabel(t *Table) string {
	var clocks []string
	for i := range t.Rows {
		if c := t.Str(i, "clock"); !slices.Contains(clocks, c) {
			clocks = append(clocks, c)
		}
	}
	return strings.Join(clocks, ", ")
}

func (c *SpeedConfig) figures(t *Table) ([]figure, error) {
	var panels []plots.Line
	var ticks []float64
	for _, n := range c.Ns {
		ticks = append(ticks, float64(n))
	}
	clock := clockLabel(t) + c.memoryNote(c.Methods)
	for _, b := range c.Batches {
		bs := strconv.Itoa(b)
		inB := func(i int) bool { return t.Str(i, "b") == bs }
		panels = append(panels,
			plots.Line{Title: fmt.Sprintf("Decode latency, batch %d (%s)", b, clock), XLabel: "context length N (tokens, log scale)",
				YLabel: "median time per step (µs, log scale)", LogY: true, Series: t.series("method", "n", "median_us", inB)},
			plots.Line{Title: fmt.Sprintf("Speedup over dense, batch %d, budget %s", b, budgetsLabel([]float64{c.Budget})),
				XLabel: "context length N (tokens, log scale)", YLabel: "speedup (dense time / method time)",
				Series: t.series("method", "n", "speedup", func(i int) bool { return inB(i) && t.Str(i, "method") != "dense" })})
	}
	return linePanels("speed", panels, ticks, true, 2, "method")
}

// BreakdownConfig is the stage breakdown of HATA's decode step (the paper's
// Fig. 9): kernel variants from naive to fused, each timed per stage (encode,
// score, select, attend, and the merge where it is a dispatch of its own) at
// each context length. Variants are passed to the backend's Timer as
// "hata/<variant>"; plain "hata" is the backend's default kernels. The CPU
// backend knows only plain names (no variants).
type BreakdownConfig struct {
	Common
	Shape
	// Variants are the method strings timed. Default vk's chains from
	// naive to fused, as configs/fig9.toml has them: hata/naive,
	// hata/twokernel, hata/fused (vk.SparseOptions.Variant; vk.CheckVariant
	// lists every method's).
	Variants []string `toml:"variants" json:"variants"`
	// B is the batch. Default 1.
	B int `toml:"b" json:"b"`
	// Ns are the context lengths. Default 32K and 128K.
	Ns []int `toml:"ns" json:"ns"`
	// Budget is a ratio of N or a token count. Default 1.56%.
	Budget float64 `toml:"budget" json:"budget"`
	// Reps is the number of timed steps per point. Default 50.
	Reps int `toml:"reps" json:"reps"`
}

func (c *BreakdownConfig) methodNames() ([]string, bool) { return c.Variants, true }

func (c *BreakdownConfig) measuresTime() {}

func defaultBreakdown() *BreakdownConfig {
	return &BreakdownConfig{
		Common: Common{Kind: "breakdown"}, Shape: Shape{Hq: 32, Hkv: 8, D: 128, Rbit: ref.DefaultRbit},
		Variants: []string{"hata/naive", "hata/twokernel", "hata/fused"},
		B:        1, Ns: []int{32768, 131072}, Budget: 0.0156, Reps: 50,
	}
}

func (c *BreakdownConfig) validate() error {
	s := SpeedConfig{Common: c.Common, Shape: c.Shape, Methods: c.Variants, Batches: []int{c.B}, Ns: c.Ns, Budget: c.Budget, Reps: c.Reps}
	err := s.validateValues()
	var k interface{ ConfigKey() string }
	if err != nil && errors.As(err, &k) {
		switch k.ConfigKey() {
		case "methods":
			return badKey("variants", "%s", strings.TrimPrefix(err.Error(), "methods: "))
		case "batches":
			return badKey("b", "%d, want in [1, %d]", c.B, MaxBatch)
		}
	}
	if err != nil {
		return err
	}
	c.markLayout()
	return s.checkSizes(StepKeys{B: "b", Hq: "hq", Hkv: "hkv", N: "ns", D: "d", Rbit: "rbit"})
}

func (c *BreakdownConfig) points() []point {
	var ps []point
	for _, n := range c.Ns {
		for _, v := range c.Variants {
			ps = append(ps, point{Index: len(ps), Params: timingPoint{v, c.B, n, c.Budget}})
		}
	}
	return ps
}

func (c *BreakdownConfig) columns() []string { return timingColumns }

func (c *BreakdownConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	return timePoint(w, c.Shape, c.Reps, p.Params.(timingPoint))
}

// finish fills speedup relative to the first variant (the naive one) at the
// same length and device.
func (c *BreakdownConfig) finish(t *Table) {
	base := map[string]float64{}
	key := func(i int) string { return t.Str(i, "n") + "/" + t.Str(i, "device") }
	for i := range t.Rows {
		if t.Str(i, "method") == c.Variants[0] {
			base[key(i)] = t.Float(i, "median_us")
		}
	}
	for i := range t.Rows {
		if b, ok := base[key(i)]; ok && t.Float(i, "median_us") > 0 {
			t.set(i, "speedup", fmtFloat(b/t.Float(i, "median_us")))
		}
	}
}

func (c *BreakdownConfig) figures(t *Table) ([]figure, error) {
	var fig plots.Figure
	fig.Cols = min(len(c.Ns)+1, 3)
	clock := clockLabel(t) + c.memoryNote(c.Variants)
	stages := append(slices.Clone(Stages), "other")
	for _, n := range c.Ns {
		ns := strconv.Itoa(n)
		var cats []string
		layers := make([]plots.Series, len(Stages)+1)
		for j, s := range stages {
			layers[j].Name = s
		}
		for i := range t.Rows {
			if t.Str(i, "n") != ns {
				continue
			}
			cats = append(cats, t.Str(i, "method"))
			staged := false
			for j, s := range Stages {
				v := t.Float(i, s+"_us")
				staged = staged || !math.IsNaN(v)
				layers[j].Y = append(layers[j].Y, v)
			}
			other := t.Float(i, "other_us")
			if !staged { // no stage times: the whole step is "other"
				other = t.Float(i, "median_us")
			}
			layers[len(Stages)].Y = append(layers[len(Stages)].Y, other)
		}
		if len(cats) == 0 {
			continue
		}
		p, err := plots.Stacked{Title: fmt.Sprintf("Decode stages, B=%d, N=%d (%s)", c.B, n, clock),
			YLabel: "median time per step (µs)", Categories: cats, Layers: layers, NoLegend: true}.Plot()
		if err != nil {
			return nil, err
		}
		fig.Panels = append(fig.Panels, p)
	}
	if len(fig.Panels) == 0 {
		return nil, nil
	}
	leg, err := plots.BarLegendPanel("stage", stages)
	if err != nil {
		return nil, err
	}
	fig.Legend, fig.LegendHeight = leg, plots.LegendSize(len(stages))
	return []figure{{Name: "breakdown", Fig: fig}}, nil
}
