package experiments

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hata-go/hata/model"
	"github.com/hata-go/hata/plots"
)

// ThroughputConfig times greedy decoding of the whole small model at a long
// context, per method: a prompt of each context length from the held-out
// text is prefilled densely once (on the CPU, package model), then every
// method decodes warmup untimed and tokens timed steps greedily, its
// attention built by the worker's backend in the sparse layers (dense too:
// the backend's dense attention there, so methods are compared on one
// device). The clock is the host's wall clock around each decode step:
// seconds and mean_ms are the total and mean over the timed steps, median_ms
// the median step, and tokens_per_s = 1000/median_ms (the median resists
// other work on a shared machine); speedup is dense's median_ms over the
// method's. A
// row includes the model's own CPU work (projections, MLP, head) that no
// attention method changes: at these sizes that work dominates, and the
// speedup over dense is bounded by it.
type ThroughputConfig struct {
	Common
	// Model is the checkpoint and texts.
	Model ModelSource `toml:"model" json:"model"`
	// Methods are timed. Default dense hata lsh loki quest streaming h2o
	// topk.
	Methods []string `toml:"methods" json:"methods"`
	// Budget is a ratio of each sparse layer's cache. Default 1.56%.
	Budget float64 `toml:"budget" json:"budget"`
	// Contexts are the prompt lengths in tokens (BOS included). Default
	// 2048.
	Contexts []int `toml:"contexts" json:"contexts"`
	// Warmup decode steps are run untimed (pipelines compile, caches
	// warm), then Tokens steps are timed. Default 4 and 32.
	Warmup int `toml:"warmup" json:"warmup"`
	Tokens int `toml:"tokens" json:"tokens"`
	// Offset is the byte offset of the prompts in the held-out text.
	// Default 0.
	Offset int `toml:"offset" json:"offset"`
	// Options are the methods' parameters; options.rbit is the width of
	// lsh and of hata's weights.
	Options MethodOptions `toml:"options" json:"options"`
	// Hash is where hata's weights come from.
	Hash ModelHash `toml:"hash" json:"hash"`
}

func (c *ThroughputConfig) methodNames() ([]string, bool) { return c.Methods, false }

func (c *ThroughputConfig) measuresTime() {}

func defaultThroughput() *ThroughputConfig {
	return &ThroughputConfig{
		Common: Common{Kind: "throughput"}, Model: defaultModelSource(),
		Methods:  []string{"dense", "hata", "lsh", "loki", "quest", "streaming", "h2o", "topk"},
		Budget:   0.0156,
		Contexts: []int{2048},
		Warmup:   4, Tokens: 32,
		Options: defaultMethodOptions(), Hash: defaultModelHash(),
	}
}

func (c *ThroughputConfig) validate() error {
	if err := c.Model.validate(); err != nil {
		return err
	}
	if err := validateMethods("methods", c.Methods); err != nil {
		return err
	}
	if err := validateRatios("budget", []float64{c.Budget}); err != nil {
		return err
	}
	if err := validateInts("contexts", c.Contexts, 1, maxModelTokens); err != nil {
		return err
	}
	switch {
	case c.Warmup < 0 || c.Warmup > maxDecodeTokens:
		return badKey("warmup", "%d, want in [0, %d]", c.Warmup, maxDecodeTokens)
	case c.Tokens < 1 || c.Tokens > maxDecodeTokens:
		return badKey("tokens", "%d, want in [1, %d]", c.Tokens, maxDecodeTokens)
	case c.Offset < 0:
		return badKey("offset", "%d, want >= 0", c.Offset)
	}
	if err := c.Options.validate(); err != nil {
		return err
	}
	if err := c.Hash.validate(); err != nil {
		return err
	}
	return c.Model.checkHashTraining(c.Hash)
}

// throughputPoint is one method at one context length.
type throughputPoint struct {
	Method  string `json:"method"`
	Context int    `json:"context"`
}

func (c *ThroughputConfig) points() []point {
	var ps []point
	for _, cx := range c.Contexts { // context-major: the prefill of a length is shared
		for _, m := range c.Methods {
			ps = append(ps, point{Index: len(ps), Params: throughputPoint{m, cx}})
		}
	}
	return ps
}

func (c *ThroughputConfig) columns() []string {
	return []string{"method", "context", "budget", "warmup", "tokens", "seconds", "mean_ms", "median_ms", "tokens_per_s", "speedup",
		"read_frac", "prefill_s", "clock", "device"}
}

// prefill returns the dense prefill of the prompt of n tokens (BOS, then n-1
// held-out bytes from offset) and the seconds it took, computed once per
// length and shared by the methods.
func (s *modelState) prefill(text []byte, offset, n int) (*model.Prefilled, float64, error) {
	s.mu.Lock()
	cell, ok := s.prefills[n]
	if !ok {
		cell = &prefillCell{}
		s.prefills[n] = cell
	}
	s.mu.Unlock()
	cell.once.Do(func() {
		if offset+n-1 > len(text) {
			cell.err = fmt.Errorf("held-out text %s: %d bytes, a prompt of %d tokens from offset %d needs %d", s.src.Heldout, len(text), n, offset, offset+n-1)
			return
		}
		toks := append([]int{s.m.Config.BOSTokenID}, model.EncodeBytes(text[offset:offset+n-1])...)
		t0 := time.Now()
		cell.pre, cell.err = s.m.Prefill(toks)
		cell.seconds = time.Since(t0).Seconds()
	})
	return cell.pre, cell.seconds, cell.err
}

func (c *ThroughputConfig) readsFiles() (ModelFiles, bool) {
	return c.Model.ModelFiles, readsTrainText(c.Methods, c.Hash.Dir != "", c.Options)
}

func (c *ThroughputConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	tp := p.Params.(throughputPoint)
	st := modelStateOf(e, c.Model, c.Hash, c.Options, c.Methods)
	m, text, err := st.load(e)
	if err != nil {
		return nil, err
	}
	if n := tp.Context + c.Warmup + c.Tokens; n > m.Config.MaxSeqLen {
		fmt.Fprintf(e.stderr, "%s: %d positions are beyond the model's trained %d\n", c.Name, n, m.Config.MaxSeqLen)
	}
	pre, prefillS, err := st.prefill(text, c.Offset, tp.Context)
	if err != nil {
		return nil, err
	}
	tr := newTracker(c.Model.DenseLayers)
	defer tr.close()
	f, err := st.factory(ctx, e, w, tp.Method, tr)
	if err != nil {
		return nil, err
	}
	s, err := pre.Session(model.DecodeConfig{Methods: f, DenseLayers: c.Model.denseLayers(), Budget: budgetOf(c.Budget)})
	if err != nil {
		return nil, err
	}
	logits := pre.LastLogits()
	var secs float64
	steps := make([]float64, 0, c.Tokens) // ms per timed step
	for i := range c.Warmup + c.Tokens {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if logits, err = s.Step(argmax(logits)); err != nil {
			return nil, err
		}
		if i >= c.Warmup {
			d := time.Since(t0).Seconds()
			secs += d
			steps = append(steps, 1000*d)
		}
	}
	read := 1.0
	if s.Cached > 0 {
		read = s.Attended / s.Cached
	}
	med := median(steps)
	row := []string{tp.Method, fmtInt(tp.Context), fmtFloat(c.Budget), fmtInt(c.Warmup), fmtInt(c.Tokens), fmtFloat(secs),
		fmtFloat(1000 * secs / float64(c.Tokens)), fmtFloat(med), fmtFloat(1000 / med), "",
		fmtFloat(read), fmtFloat(prefillS), "wallclock", w.backend.Name()}
	return [][]string{row}, nil
}

// argmax returns the index of the largest logit (the smallest index of a
// tie), the greedy token.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// finish fills speedup = median step time of dense / that of the method, at
// the same context on the same device.
func (c *ThroughputConfig) finish(t *Table) { speedupOverDense(t, "median_ms", "context", "device") }

// figures draws decode tokens/s per method, one panel of bars per context
// length and device.
func (c *ThroughputConfig) figures(t *Table) ([]figure, error) {
	var groups []string
	for i := range t.Rows {
		g := t.Str(i, "context") + "\x00" + t.Str(i, "device")
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	var fig plots.Figure
	fig.Cols = min(len(groups), 2)
	for _, g := range groups {
		var cats []string
		ys := plots.Series{Name: "decode tokens/s"}
		var cx, dev string
		for i := range t.Rows {
			if t.Str(i, "context")+"\x00"+t.Str(i, "device") != g {
				continue
			}
			cx, dev = t.Str(i, "context"), t.Str(i, "device")
			label := t.Str(i, "method")
			if sp := t.Float(i, "speedup"); sp > 0 && label != "dense" {
				label += "\n" + strconv.FormatFloat(sp, 'f', 2, 64) + "x"
			}
			cats = append(cats, label)
			ys.Y = append(ys.Y, t.Float(i, "tokens_per_s"))
		}
		p, err := plots.Stacked{Title: fmt.Sprintf("Decode, %s prompt tokens, budget %.3g%%, %s", cx, 100*c.Budget, dev),
			YLabel: "whole-model tokens/s (1000 / median step ms)", Categories: cats, Layers: []plots.Series{ys}, NoLegend: true}.Plot()
		if err != nil {
			return nil, err
		}
		fig.Panels = append(fig.Panels, p)
	}
	if len(fig.Panels) == 0 {
		return nil, nil
	}
	fig.PanelWidth = plotWidth(len(c.Methods) + 3)
	return []figure{{Name: "throughput", Fig: fig}}, nil
}
