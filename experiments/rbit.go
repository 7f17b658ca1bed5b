package experiments

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/hata-go/hata/plots"
	"github.com/hata-go/hata/ref"
)

// RbitConfig is the hash-width ablation (the paper's Fig. 8): the accuracy
// metrics of HATA versus rbit, with trained weights ("trained", hata) and
// with random Gaussian ones ("random", the lsh baseline).
type RbitConfig struct {
	Common
	Input
	RbitSweep
}

// RbitSweep are the keys of the hash-width ablation beside where its decode
// steps come from: rbit runs the sweep on an Input, model_rbit on traces of
// the small model (ModelTraceInput).
type RbitSweep struct {
	// Rbits are the hash widths, multiples of 32. Default 32 64 128 256.
	Rbits []int `toml:"rbits" json:"rbits"`
	// Hashing lists "trained" and/or "random". Default both.
	Hashing []string `toml:"hashing" json:"hashing"`
	// Budgets are the budgets evaluated (ratios of N or token counts).
	// Default 1.56%.
	Budgets []float64 `toml:"budgets" json:"budgets"`
	// Options are the methods' parameters (options.rbit is ignored: Rbits
	// sweeps it).
	Options MethodOptions `toml:"options" json:"options"`
	// Hash is the training setup; hash.weights may not be set (one file has
	// one rbit): use WeightsByRbit.
	Hash HashSource `toml:"hash" json:"hash"`
	// WeightsByRbit maps an rbit ("128") to a weights file (.npy or .pt; in
	// model_rbit, of trace.layer); rbits without a file are trained.
	// Default empty.
	WeightsByRbit map[string]string `toml:"weights_by_rbit" json:"weights_by_rbit"`
}

func defaultRbit() *RbitConfig {
	return &RbitConfig{
		Common: Common{Kind: "rbit"},
		Input:  defaultInput(),
		RbitSweep: RbitSweep{
			Rbits:   []int{32, 64, 128, 256},
			Hashing: []string{"trained", "random"},
			Budgets: []float64{0.0156},
			Options: defaultMethodOptions(),
			Hash:    defaultHashSource(),
		},
	}
}

func (c *RbitConfig) validate() error {
	if err := c.Input.validate(); err != nil {
		return err
	}
	if err := c.RbitSweep.validate(); err != nil {
		return err
	}
	methods := []string{"lsh"}
	training := slices.Contains(c.Hashing, "trained")
	if training {
		methods = append(methods, "hata")
		for _, r := range c.Rbits {
			if err := c.Input.checkWeightsFile("weights_by_rbit", c.WeightsByRbit[strconv.Itoa(r)], r); err != nil {
				return err
			}
		}
	}
	rbit := factor{"rbits", slices.Max(c.Rbits), 128}
	return c.Input.checkSizes(methods, c.Options, rbit, training, c.Hash)
}

// validate checks the sweep's keys.
func (s RbitSweep) validate() error {
	if len(s.Rbits) == 0 {
		return badKey("rbits", "empty")
	}
	for i, r := range s.Rbits {
		if r < 32 || r%32 != 0 || r > 1024 {
			return badKey("rbits", "%d, want multiples of 32 in [32, 1024]", r)
		}
		if slices.Contains(s.Rbits[:i], r) {
			return badKey("rbits", "%d listed twice", r)
		}
	}
	if len(s.Hashing) == 0 {
		return badKey("hashing", "empty, want \"trained\" and/or \"random\"")
	}
	for i, h := range s.Hashing {
		if h != "trained" && h != "random" || slices.Contains(s.Hashing[:i], h) {
			return badKey("hashing", "%q, want \"trained\" and/or \"random\", each once", h)
		}
	}
	if err := validateBudgets("budgets", s.Budgets); err != nil {
		return err
	}
	if err := s.Options.validate(); err != nil {
		return err
	}
	if s.Hash.Weights != "" {
		return badKey("hash.weights", "not used by the rbit ablation; use weights_by_rbit = { \"128\" = \"path\" }")
	}
	if err := s.Hash.validate(); err != nil {
		return err
	}
	for k := range s.WeightsByRbit {
		r, err := strconv.Atoi(k)
		if err != nil || !slices.Contains(s.Rbits, r) {
			return badKey("weights_by_rbit", "key %q is not one of rbits %v", k, s.Rbits)
		}
	}
	return nil
}

// rbitPoint is one hashing kind at one width and budget.
type rbitPoint struct {
	Hashing string  `json:"hashing"`
	Rbit    int     `json:"rbit"`
	Budget  float64 `json:"budget"`
}

func (c *RbitConfig) points() []point {
	var ps []point
	for _, h := range c.Hashing {
		for _, r := range c.Rbits {
			for _, b := range c.Budgets {
				ps = append(ps, point{Index: len(ps), Params: rbitPoint{h, r, b}})
			}
		}
	}
	return ps
}

func (c *RbitConfig) columns() []string {
	return append([]string{"hashing", "rbit", "budget", "k", "n"}, accuracyColumns...)
}

func (c *RbitConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	rp := p.Params.(rbitPoint)
	st := accuracyState(e, c.Input, c.Options, c.Hash)
	method := "lsh"
	var opts ref.Options
	if rp.Hashing == "trained" {
		method = "hata"
		wts, err := st.hashWeights(ctx, e, fmt.Sprintf("W_rbit%d.npy", rp.Rbit), c.WeightsByRbit[strconv.Itoa(rp.Rbit)], rp.Rbit)
		if err != nil {
			return nil, err
		}
		opts = c.Options.refOptions(wts, nil)
	} else {
		o := c.Options
		o.Rbit = rp.Rbit
		opts = o.refOptions(nil, nil)
	}
	step, err := st.in.step(0)
	if err != nil {
		return nil, err
	}
	build := func() (ref.Method, error) { return w.backend.NewMethod(method, step.shape.Hkv, step.shape.D, opts) }
	m, err := evaluate(ctx, st.in, w, method, fmt.Sprintf("%s-%d", method, rp.Rbit), build, budgetOf(rp.Budget))
	if err != nil {
		return nil, err
	}
	row := append([]string{rp.Hashing, fmtInt(rp.Rbit), fmtFloat(rp.Budget), fmtInt(m.K), fmtInt(m.N)},
		accuracyRow(m, c.Samples, w.backend.Name())...)
	return [][]string{row}, nil
}

func (c *RbitConfig) finish(*Table) {}

func (c *RbitConfig) figures(t *Table) ([]figure, error) {
	// One line per hashing kind, and per budget when several are swept.
	lt := &Table{Columns: append(t.Columns, "line")}
	for i, r := range t.Rows {
		name := t.Str(i, "hashing")
		if len(c.Budgets) > 1 {
			name += fmt.Sprintf(" @ %.3g%%", budgetPercent(t, i))
		}
		lt.Rows = append(lt.Rows, append(append([]string(nil), r...), name))
	}
	var ticks []float64
	for _, r := range c.Rbits {
		ticks = append(ticks, float64(r))
	}
	xl := "hash bits rbit (log scale)"
	title := fmt.Sprintf(" (budget %s)", budgetsLabel(c.Budgets))
	panels := []plots.Line{
		{Title: "Oracle top-k recall" + title, XLabel: xl, YLabel: "recall of the exact top-k", YMin: 0, YMax: 1.02,
			Series: lt.series("line", "rbit", "recall", nil)},
		{Title: "Attention mass recall" + title, XLabel: xl, YLabel: "dense attention mass kept", YMin: 0, YMax: 1.02,
			Series: lt.series("line", "rbit", "mass", nil)},
		{Title: "Output error vs dense" + title, XLabel: xl, YLabel: "relative L2 error of the output",
			Series: lt.series("line", "rbit", "rel_l2", nil)},
	}
	return linePanels("rbit", panels, ticks, true, 2, "hashing")
}

// budgetsLabel formats budgets for a title: ratios as percentages, 1 as the
// whole cache (a config's budget 1), counts as tokens.
func budgetsLabel(bs []float64) string {
	switch {
	case len(bs) != 1:
		return "see legend"
	case bs[0] < 1:
		return fmt.Sprintf("%.3g%% of N", 100*bs[0])
	case bs[0] == 1:
		return "the whole cache"
	}
	return fmt.Sprintf("%g tokens", bs[0])
}
