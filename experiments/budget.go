package experiments

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/hata-go/hata/plots"
	"github.com/hata-go/hata/ref"
)

// BudgetConfig is the budget ablation (the paper's Fig. 7): oracle top-k
// recall, attention-mass recall and output error against dense attention,
// versus the token budget, one line per method.
type BudgetConfig struct {
	Common
	Input
	BudgetSweep
}

// BudgetSweep are the keys of the budget ablation beside where its decode
// steps come from: budget runs the sweep on an Input, model_budget on traces
// of the small model (ModelTraceInput).
type BudgetSweep struct {
	// Methods are the methods compared. Default hata lsh loki quest streaming
	// h2o magicpig topk (topk is the exact oracle, the upper bound).
	Methods []string `toml:"methods" json:"methods"`
	// Budgets are ratios of N in (0, 1), token counts >= 2, or 1 (the whole
	// cache, where hata attend's -budget 1 is one token). Default 0.4%,
	// 0.78%, 1.56%, 3.125%, 6.25%, 12.5% of N.
	Budgets []float64 `toml:"budgets" json:"budgets"`
	// Options are the methods' parameters.
	Options MethodOptions `toml:"options" json:"options"`
	// Hash is where hata's weights come from: hash.weights, a file of
	// [Hkv][D][Rbit] weights (.npy or .pt; in model_budget, of trace.layer),
	// or training with the other keys (in model_budget, on the training
	// trace).
	Hash HashSource `toml:"hash" json:"hash"`
}

func (s *BudgetSweep) methodNames() ([]string, bool) { return s.Methods, false }

func defaultBudget() *BudgetConfig {
	return &BudgetConfig{
		Common: Common{Kind: "budget"},
		Input:  defaultInput(),
		BudgetSweep: BudgetSweep{
			Methods: []string{"hata", "lsh", "loki", "quest", "streaming", "h2o", "magicpig", "topk"},
			Budgets: []float64{0.004, 0.0078, 0.0156, 0.03125, 0.0625, 0.125},
			Options: defaultMethodOptions(),
			Hash:    defaultHashSource(),
		},
	}
}

func (c *BudgetConfig) validate() error {
	if err := c.Input.validate(); err != nil {
		return err
	}
	if err := c.BudgetSweep.validate(); err != nil {
		return err
	}
	if err := c.Hash.validate(); err != nil { // now with hash.weights, which must exist
		return err
	}
	if slices.Contains(c.Methods, "hata") {
		if err := c.Input.checkWeightsFile("hash.weights", c.Hash.Weights, c.Options.Rbit); err != nil {
			return err
		}
	}
	training := slices.Contains(c.Methods, "hata") && c.Hash.Weights == ""
	return c.Input.checkSizes(c.Methods, c.Options, factor{"options.rbit", c.Options.Rbit, 128}, training, c.Hash)
}

// validate checks the sweep's keys but whether hash.weights exists, which
// budget checks when the config loads and model_budget when the run starts.
func (s BudgetSweep) validate() error {
	if err := validateMethods("methods", s.Methods); err != nil {
		return err
	}
	if err := validateBudgets("budgets", s.Budgets); err != nil {
		return err
	}
	if err := s.Options.validate(); err != nil {
		return err
	}
	return validateHashSource(s.Hash)
}

// validateHashSource checks a HashSource's training keys, not whether
// hash.weights exists.
func validateHashSource(h HashSource) error {
	h.Weights = ""
	return h.validate()
}

// budgetPoint is one method at one budget.
type budgetPoint struct {
	Method string  `json:"method"`
	Budget float64 `json:"budget"`
}

func (c *BudgetConfig) points() []point {
	var ps []point
	for _, m := range c.Methods { // method-major: a worker reuses one prefill over the budgets
		for _, b := range c.Budgets {
			ps = append(ps, point{Index: len(ps), Params: budgetPoint{m, b}})
		}
	}
	return ps
}

var accuracyColumns = []string{"recall", "mass", "rel_l2", "read_frac", "samples", "device"}

func (c *BudgetConfig) columns() []string {
	return append([]string{"method", "budget", "k", "n"}, accuracyColumns...)
}

// accuracyRow formats the metric columns shared by budget and rbit rows.
func accuracyRow(m metrics, samples int, device string) []string {
	return []string{fmtFloat(m.Recall), fmtFloat(m.Mass), fmtFloat(m.RelL2), fmtFloat(m.Read), fmtInt(samples), device}
}

// accuracyState returns the run's shared inputs and hash weights.
func accuracyState(e *env, in Input, opts MethodOptions, hash HashSource) *accState {
	return e.state(func() any { return newAccState(in, opts, hash) }).(*accState)
}

func (c *BudgetConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	bp := p.Params.(budgetPoint)
	st := accuracyState(e, c.Input, c.Options, c.Hash)
	opts, err := st.methodOptions(ctx, e, bp.Method, c.Options.Rbit)
	if err != nil {
		return nil, err
	}
	s := st.in.in.Synth
	hkv, d := s.Hkv, s.D
	if c.Input.Input == "trace" {
		step, err := st.in.step(0)
		if err != nil {
			return nil, err
		}
		hkv, d = step.shape.Hkv, step.shape.D
	}
	build := func() (ref.Method, error) { return w.backend.NewMethod(bp.Method, hkv, d, opts) }
	m, err := evaluate(ctx, st.in, w, bp.Method, bp.Method, build, budgetOf(bp.Budget))
	if err != nil {
		return nil, err
	}
	row := append([]string{bp.Method, fmtFloat(bp.Budget), fmtInt(m.K), fmtInt(m.N)}, accuracyRow(m, c.Samples, w.backend.Name())...)
	return [][]string{row}, nil
}

func (c *BudgetConfig) finish(*Table) {}

// budgetPercent is the x value of a budget row: the budget as a percentage
// of the cached tokens (k/N for absolute budgets).
func budgetPercent(t *Table, i int) float64 {
	b := t.Float(i, "budget")
	if b < 1 {
		return 100 * b
	}
	return 100 * t.Float(i, "k") / t.Float(i, "n")
}

func (c *BudgetConfig) figures(t *Table) ([]figure, error) {
	pct := &Table{Columns: append(t.Columns, "budget_pct")}
	var ticks []float64
	for i, r := range t.Rows {
		x := budgetPercent(t, i)
		pct.Rows = append(pct.Rows, append(append([]string(nil), r...), fmtFloat(x)))
		if !math.IsNaN(x) && !containsFloat(ticks, x) {
			ticks = append(ticks, x)
		}
	}
	keep := func(i int) bool { return pct.Str(i, "method") != "dense" }
	xl := "token budget (% of cached tokens, log scale)"
	panels := []plots.Line{
		{Title: "Oracle top-k recall", XLabel: xl, YLabel: "recall of the exact top-k", YMin: 0, YMax: 1.02,
			Series: pct.series("method", "budget_pct", "recall", keep)},
		{Title: "Attention mass recall", XLabel: xl, YLabel: "dense attention mass kept", YMin: 0, YMax: 1.02,
			Series: pct.series("method", "budget_pct", "mass", keep)},
		{Title: "Output error vs dense", XLabel: xl, YLabel: "relative L2 error of the output",
			Series: pct.series("method", "budget_pct", "rel_l2", keep)},
	}
	return linePanels("budget", panels, ticks, true, 2, "method")
}

// linePanels builds a figure of line charts sharing x ticks. With
// legendTitle set, the panels share one legend (plots.Figure.Legend: in the
// grid's free tile, or in a strip below a full grid), so no legend covers a
// line; otherwise each has its own.
func linePanels(name string, panels []plots.Line, ticks []float64, logX bool, cols int, legendTitle string) ([]figure, error) {
	var fig plots.Figure
	fig.Cols = cols
	var names []string // every series name, in order of first appearance
	for _, l := range panels {
		for _, s := range l.Series {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	for _, l := range panels {
		l.LogX = logX
		if len(ticks) <= 12 {
			l.XTicks = ticks
		}
		l.NoLegend = legendTitle != ""
		l.Names = names
		p, err := l.Plot()
		if err != nil {
			return nil, fmt.Errorf("figure %s: %w", name, err)
		}
		fig.Panels = append(fig.Panels, p)
	}
	if legendTitle != "" {
		p, err := plots.LegendPanel(legendTitle, names, true)
		if err != nil {
			return nil, fmt.Errorf("figure %s: %w", name, err)
		}
		fig.Legend, fig.LegendHeight = p, plots.LegendSize(len(names))
	}
	return []figure{{Name: name, Fig: fig}}, nil
}

func containsFloat(xs []float64, x float64) bool {
	for _, y := range xs {
		if math.Abs(x-y) <= 1e-9*math.Abs(y) {
			return true
		}
	}
	return false
}
