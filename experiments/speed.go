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
}

func (s Shape) validate() error {
	switch {
	case s.Hq < 1:
		return badKey("hq", "%d, want >= 1", s.Hq)
	case s.Hkv < 1 || s.Hq%s.Hkv != 0:
		return badKey("hkv", "%d, want >= 1 and a divisor of hq=%d", s.Hkv, s.Hq)
	case s.D < 2 || s.D%2 != 0:
		return badKey("d", "%d, want an even number >= 2", s.D)
	case s.Rbit < 32 || s.Rbit%32 != 0 || s.Rbit > vk.MaxTuningRbit:
		return badKey("rbit", "%d, want a multiple of 32 in [32, %d]", s.Rbit, vk.MaxTuningRbit)
	}
	return nil
}

// tuning returns the timer's parameters for method (name or name/variant)
// on s: the hash width for hata and lsh, nothing for the others.
func (s Shape) tuning(method string) vk.Tuning {
	if name, _, _ := strings.Cut(method, "/"); name == "hata" || name == "lsh" {
		return vk.Tuning{Rbit: s.Rbit}
	}
	return vk.Tuning{}
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

func (c *SpeedConfig) validate() error {
	if err := c.Shape.validate(); err != nil {
		return err
	}
	if len(c.Methods) == 0 {
		return badKey("methods", "empty")
	}
	for i, m := range c.Methods {
		name, _, _ := strings.Cut(m, "/")
		if !slices.Contains(ref.MethodNames, name) || slices.Contains(c.Methods[:i], m) {
			return badKey("methods", "%q, want distinct names of %s (optionally name/variant)", m, strings.Join(ref.MethodNames, ", "))
		}
	}
	if err := validateInts("batches", c.Batches, 1, 1024); err != nil {
		return err
	}
	if err := validateInts("ns", c.Ns, 1, 1<<24); err != nil {
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
	clock := clockLabel(t)
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
	// Variants are the method strings timed. Default the paper's steps:
	// hata/naive, hata/fused-score, hata/fused-attend, hata/fused-encode
	// (each adds one fusion to the previous).
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

func defaultBreakdown() *BreakdownConfig {
	return &BreakdownConfig{
		Common: Common{Kind: "breakdown"}, Shape: Shape{Hq: 32, Hkv: 8, D: 128, Rbit: ref.DefaultRbit},
		Variants: []string{"hata/naive", "hata/fused-score", "hata/fused-attend", "hata/fused-encode"},
		B:        1, Ns: []int{32768, 131072}, Budget: 0.0156, Reps: 50,
	}
}

func (c *BreakdownConfig) validate() error {
	s := SpeedConfig{Shape: c.Shape, Methods: c.Variants, Batches: []int{c.B}, Ns: c.Ns, Budget: c.Budget, Reps: c.Reps}
	err := s.validate()
	var k interface{ ConfigKey() string }
	if err != nil && errors.As(err, &k) {
		switch k.ConfigKey() {
		case "methods":
			return badKey("variants", "%s", strings.TrimPrefix(err.Error(), "methods: "))
		case "batches":
			return badKey("b", "%d, want in [1, 1024]", c.B)
		}
	}
	return err
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
	clock := clockLabel(t)
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
