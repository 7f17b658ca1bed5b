package experiments

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/hata-go/hata/plots"
	"github.com/hata-go/hata/ref"
)

// TrainingConfig is the training curve of the hash weights: the loss terms at
// every SGD step (averaged over the KV heads) and, every EvalEvery steps,
// HATA's held-out recall with the weights of that step, on the evaluation
// steps of the input (seeds other than the training sequence's).
//
// Points are checkpoints t = 0, EvalEvery, 2*EvalEvery, ..., hash.steps. A
// point trains t steps from the seed (training is deterministic, so the
// first t steps of any run are the same) and emits the loss rows of the steps
// after the previous checkpoint up to t, with the held-out metrics on row t.
// A sweep of T steps with checkpoints every E costs about T^2/(2E) steps in
// all, and resumes at checkpoint granularity.
type TrainingConfig struct {
	Common
	Input
	// Rbits are the hash widths trained. Default 128.
	Rbits []int `toml:"rbits" json:"rbits"`
	// EvalEvery is the checkpoint interval in steps. Default 30.
	EvalEvery int `toml:"eval_every" json:"eval_every"`
	// Budget is the budget of the held-out evaluation. Default 1.56%.
	Budget float64 `toml:"budget" json:"budget"`
	// Options are hata's parameters (options.rbit is ignored).
	Options MethodOptions `toml:"options" json:"options"`
	// Hash is the training setup (steps, lr, positions, seed); hash.weights
	// may not be set.
	Hash HashSource `toml:"hash" json:"hash"`
}

func defaultTraining() *TrainingConfig {
	return &TrainingConfig{
		Common: Common{Kind: "training"}, Input: defaultInput(),
		Rbits: []int{128}, EvalEvery: 30, Budget: 0.0156,
		Options: defaultMethodOptions(), Hash: defaultHashSource(),
	}
}

func (c *TrainingConfig) validate() error {
	if err := c.Input.validate(); err != nil {
		return err
	}
	if len(c.Rbits) == 0 {
		return badKey("rbits", "empty")
	}
	for i, r := range c.Rbits {
		if r < 32 || r%32 != 0 || r > 1024 || slices.Contains(c.Rbits[:i], r) {
			return badKey("rbits", "%d, want distinct multiples of 32 in [32, 1024]", r)
		}
	}
	if c.EvalEvery < 1 {
		return badKey("eval_every", "%d, want >= 1", c.EvalEvery)
	}
	if err := validateBudgets("budget", []float64{c.Budget}); err != nil {
		return err
	}
	if err := c.Options.validate(); err != nil {
		return err
	}
	if c.Hash.Weights != "" {
		return badKey("hash.weights", "the training curve trains; it takes no weights file")
	}
	if err := c.Hash.validate(); err != nil {
		return err
	}
	rbit := factor{"rbits", slices.Max(c.Rbits), 128}
	return c.Input.checkSizes([]string{"hata"}, c.Options, rbit, true, c.Hash)
}

// trainingPoint is one checkpoint of one rbit: train Step steps, report the
// steps after Prev.
type trainingPoint struct {
	Rbit int `json:"rbit"`
	Prev int `json:"prev"` // -1 for the first checkpoint
	Step int `json:"step"`
}

// checkpoints returns 0, e, 2e, ..., steps (steps included).
func checkpoints(steps, e int) []int {
	var cs []int
	for t := 0; t < steps; t += e {
		cs = append(cs, t)
	}
	return append(cs, steps)
}

func (c *TrainingConfig) points() []point {
	var ps []point
	for _, r := range c.Rbits {
		prev := -1
		for _, t := range checkpoints(c.Hash.Steps, c.EvalEvery) {
			ps = append(ps, point{Index: len(ps), Params: trainingPoint{Rbit: r, Prev: prev, Step: t}})
			prev = t
		}
	}
	return ps
}

func (c *TrainingConfig) columns() []string {
	return []string{"rbit", "step", "loss", "similarity", "balance", "decorrelation", "recall", "mass", "rel_l2", "device"}
}

func (c *TrainingConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	tp := p.Params.(trainingPoint)
	st := accuracyState(e, c.Input, c.Options, c.Hash)
	train, err := st.in.trainingSet()
	if err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	losses := make([]ref.LossTerms, tp.Step+1)
	wts, err := trainWeights(ctx, train, c.Hash, tp.Rbit, tp.Step, func(step int, t ref.LossTerms) {
		if step <= tp.Step {
			losses[step] = t
		}
	})
	if err != nil {
		return nil, err
	}
	step, err := st.in.step(0)
	if err != nil {
		return nil, err
	}
	opts := c.Options.refOptions(wts, nil)
	build := func() (ref.Method, error) { return w.backend.NewMethod("hata", step.shape.Hkv, step.shape.D, opts) }
	key := fmt.Sprintf("hata-r%d-step%d", tp.Rbit, tp.Step)
	m, err := evaluate(ctx, st.in, w, "hata", key, build, budgetOf(c.Budget))
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for s := tp.Prev + 1; s <= tp.Step; s++ {
		l := losses[s]
		row := []string{fmtInt(tp.Rbit), fmtInt(s), fmtFloat(l.Total), fmtFloat(l.Similarity), fmtFloat(l.Balance), fmtFloat(l.Decorrelation), "", "", "", w.backend.Name()}
		if s == tp.Step {
			row[6], row[7], row[8] = fmtFloat(m.Recall), fmtFloat(m.Mass), fmtFloat(m.RelL2)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (c *TrainingConfig) finish(*Table) {}

func (c *TrainingConfig) figures(t *Table) ([]figure, error) {
	// One line per rbit in every panel; the loss terms on a log axis when
	// they are all positive (the decorrelation term falls by orders of
	// magnitude), the held-out metrics at the checkpoints.
	lt := &Table{Columns: append(slices.Clone(t.Columns), "line")}
	for i, r := range t.Rows {
		lt.Rows = append(lt.Rows, append(slices.Clone(r), "rbit "+t.Str(i, "rbit")))
	}
	evaluated := func(i int) bool { return lt.Str(i, "recall") != "" }
	var panels []plots.Line
	for _, term := range []struct{ col, title string }{
		{"loss", "Training loss (sum of the terms)"}, {"similarity", "Similarity term"},
		{"balance", "Bit-balance term"}, {"decorrelation", "Decorrelation term"},
	} {
		series := lt.series("line", "step", term.col, nil)
		panels = append(panels, plots.Line{Title: term.title + ", mean over KV heads", XLabel: "SGD step",
			YLabel: "weighted loss term" + logNote(series), LogY: positive(series), NoMarkers: true, Series: series})
	}
	budget := budgetsLabel([]float64{c.Budget})
	panels = append(panels,
		plots.Line{Title: "Held-out oracle top-k recall (budget " + budget + ")", XLabel: "SGD step", YLabel: "recall of the exact top-k",
			YMin: 0, YMax: 1.02, Series: lt.series("line", "step", "recall", evaluated)},
		plots.Line{Title: "Held-out attention mass (budget " + budget + ")", XLabel: "SGD step", YLabel: "dense attention mass kept",
			YMin: 0, YMax: 1.02, Series: lt.series("line", "step", "mass", evaluated)})
	return linePanels("training", panels, nil, false, 3, "hash bits")
}

// positive reports whether every finite y of the series is > 0, so a log
// axis can show them.
func positive(series []plots.Series) bool {
	n := 0
	for _, s := range series {
		for _, y := range s.Y {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			if y <= 0 {
				return false
			}
			n++
		}
	}
	return n > 0
}

// logNote marks a y label whose axis positive() makes logarithmic.
func logNote(series []plots.Series) string {
	if positive(series) {
		return " (log scale)"
	}
	return ""
}
