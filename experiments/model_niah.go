package experiments

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/hata-go/hata/model"
	"github.com/hata-go/hata/plots"
	"gonum.org/v1/plot/vg"
)

// NIAHConfig is the needle-in-a-haystack grid of the paper's Fig. 6 on the
// project's small model (model.NIAH): a five-digit pass key is hidden in
// held-out text at a depth, the prompt ends with the question, and the model
// must continue with the key; accuracy per method and budget over context
// length x needle depth. Every point is one (context, depth) cell: its prompts
// are prefilled densely once and decoded greedily by every method at every
// budget, each generated token through the method's attention in the sparse
// layers.
type NIAHConfig struct {
	Common
	// Model is the checkpoint and texts.
	Model ModelSource `toml:"model" json:"model"`
	// Methods are compared; "dense" is the reference (dense attention in
	// every layer, run once). Default dense hata lsh loki quest streaming h2o
	// topk.
	Methods []string `toml:"methods" json:"methods"`
	// Budgets are ratios of each sparse layer's cache. Default 1.56% and
	// 3.13% (the paper's).
	Budgets []float64 `toml:"budgets" json:"budgets"`
	// Contexts are the prompt lengths in tokens (BOS included), at most the
	// model's trained context. Default 512 1024 2048.
	Contexts []int `toml:"contexts" json:"contexts"`
	// Depths are the needle's depths in [0, 1] (0: the start of the
	// haystack). Default 0 0.25 0.5 0.75 1.
	Depths []float64 `toml:"depths" json:"depths"`
	// Trials are the prompts per cell (random key and haystack offset).
	// Default 2.
	Trials int `toml:"trials" json:"trials"`
	// Seed draws the keys and offsets; a cell's draw depends only on Seed,
	// its context and its depth. Default 1.
	Seed uint64 `toml:"seed" json:"seed"`
	// PrefillAll prefills the whole prompt, so the answer's first token
	// comes from the dense prefill (what the paper's scripts do). Default
	// false: the question's last token is decoded through the method, so
	// every answer token is produced under sparse attention.
	PrefillAll bool `toml:"prefill_all" json:"prefill_all"`
	// Options are the methods' parameters; options.rbit is the width of
	// lsh and of hata's weights.
	Options MethodOptions `toml:"options" json:"options"`
	// Hash is where hata's weights come from.
	Hash ModelHash `toml:"hash" json:"hash"`
}

func (c *NIAHConfig) methodNames() ([]string, bool) { return c.Methods, false }

func defaultNIAH() *NIAHConfig {
	return &NIAHConfig{
		Common: Common{Kind: "niah"}, Model: defaultModelSource(),
		Methods:  []string{"dense", "hata", "lsh", "loki", "quest", "streaming", "h2o", "topk"},
		Budgets:  []float64{0.0156, 0.0313},
		Contexts: []int{512, 1024, 2048},
		Depths:   []float64{0, 0.25, 0.5, 0.75, 1},
		Trials:   2, Seed: 1,
		Options: defaultMethodOptions(), Hash: defaultModelHash(),
	}
}

// niahMinContext is the shortest prompt that holds BOS, the needle, the
// question and one byte of haystack.
var niahMinContext = 2 + len(fmt.Sprintf(model.NIAHNeedle, "00000", "00000")) + len(model.NIAHQuestion)

func (c *NIAHConfig) validate() error {
	if err := c.Model.validate(); err != nil {
		return err
	}
	if err := validateMethods("methods", c.Methods); err != nil {
		return err
	}
	if err := validateRatios("budgets", c.Budgets); err != nil {
		return err
	}
	if err := validateInts("contexts", c.Contexts, niahMinContext, maxModelTokens); err != nil {
		return err
	}
	if len(c.Depths) == 0 {
		return badKey("depths", "empty")
	}
	for i, d := range c.Depths {
		if !(d >= 0 && d <= 1) || slices.Contains(c.Depths[:i], d) {
			return badKey("depths", "%v, want distinct values in [0, 1]", d)
		}
	}
	if c.Trials < 1 || c.Trials > 10000 {
		return badKey("trials", "%d, want in [1, 10000]", c.Trials)
	}
	if err := c.Options.validate(); err != nil {
		return err
	}
	if err := c.Hash.validate(); err != nil {
		return err
	}
	return c.Model.checkHashTraining(c.Hash)
}

// niahPoint is one cell of the grid.
type niahPoint struct {
	Context int     `json:"context"`
	Depth   float64 `json:"depth"`
}

func (c *NIAHConfig) points() []point {
	var ps []point
	for _, cx := range c.Contexts {
		for _, d := range c.Depths {
			ps = append(ps, point{Index: len(ps), Params: niahPoint{cx, d}})
		}
	}
	return ps
}

func (c *NIAHConfig) columns() []string {
	return []string{"method", "budget", "context", "depth", "trials", "correct", "accuracy", "digit_accuracy", "read_frac", "device"}
}

func (c *NIAHConfig) readsFiles() (ModelFiles, bool) {
	return c.Model.ModelFiles, readsTrainText(c.Methods, c.Hash.Dir != "", c.Options)
}

func (c *NIAHConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	np := p.Params.(niahPoint)
	st := modelStateOf(e, c.Model, c.Hash, c.Options, c.Methods)
	m, hay, err := st.load(e)
	if err != nil {
		return nil, err
	}
	if np.Context > m.Config.MaxSeqLen {
		fmt.Fprintf(e.stderr, "%s: context %d is beyond the model's trained %d tokens\n", c.Name, np.Context, m.Config.MaxSeqLen)
	}
	tr := newTracker(c.Model.DenseLayers)
	defer tr.close()
	specs, err := st.specs(ctx, e, w, c.Methods, tr)
	if err != nil {
		return nil, err
	}
	budgets := budgetsOf(c.Budgets)
	seed := mix64(c.Seed ^ mix64(uint64(np.Context)) ^ mix64(math.Float64bits(np.Depth)+1))
	res, err := m.NIAH(ctx, model.NIAHConfig{Haystack: hay, Contexts: []int{np.Context}, Depths: []float64{np.Depth},
		Trials: c.Trials, Methods: specs, Budgets: budgets, DenseLayers: c.Model.denseLayers(), PrefillAll: c.PrefillAll, Seed: seed})
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for _, r := range res {
		rows = append(rows, []string{r.Method, r.Budget, fmtInt(r.Context), fmtFloat(r.Depth), fmtInt(r.Trials), fmtInt(r.Correct),
			fmtFloat(r.Accuracy), fmtFloat(r.DigitAccuracy), fmtFloat(r.AttendedFraction), w.backend.Name()})
	}
	return rows, nil
}

func (c *NIAHConfig) finish(*Table) {}

// figures draws the paper's Fig. 6: a heat map of accuracy over context
// (x) and depth (y) per method and budget (niah), and the same for the
// fraction of key digits reproduced in place (niah_digits; chance is 0.1), a
// finer signal for a model that retrieves poorly.
func (c *NIAHConfig) figures(t *Table) ([]figure, error) {
	type cellKey struct {
		line       string
		cx, depthI int
	}
	var lines []string
	acc, dig := map[cellKey]float64{}, map[cellKey]float64{}
	for i := range t.Rows {
		line := t.Str(i, "method")
		if b := t.Str(i, "budget"); line != "dense" {
			f, _ := strconv.ParseFloat(b, 64)
			line += fmt.Sprintf(" @ %.3g%%", 100*f)
		}
		if !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
		cx := slices.Index(c.Contexts, int(t.Float(i, "context")))
		d := slices.Index(c.Depths, t.Float(i, "depth"))
		if cx < 0 || d < 0 {
			continue
		}
		k := cellKey{line, cx, d}
		acc[k], dig[k] = t.Float(i, "accuracy"), t.Float(i, "digit_accuracy")
	}
	xs := make([]string, len(c.Contexts))
	for i, cx := range c.Contexts {
		xs[i] = strconv.Itoa(cx)
	}
	// Rows bottom to top are the depths from last to first, so the first
	// depth (0%, the start of the haystack) is the top row, as in the paper.
	ys := make([]string, len(c.Depths))
	for i, d := range c.Depths {
		ys[len(ys)-1-i] = fmt.Sprintf("%g%%", 100*d)
	}
	draw := func(name, what string, vals map[cellKey]float64) (figure, error) {
		fig := plots.Figure{Cols: min(4, len(lines)), PanelWidth: plotWidth(len(xs)), PanelHeight: plotHeight(len(ys))}
		for _, line := range lines {
			z := make([][]float64, len(ys))
			for r := range z {
				z[r] = make([]float64, len(xs))
				for col := range z[r] {
					v, ok := vals[cellKey{line, col, len(ys) - 1 - r}]
					if !ok {
						v = math.NaN()
					}
					z[r][col] = v
				}
			}
			p, err := heatmapPanel(line+": "+what, "context (tokens)", "needle depth", xs, ys, z)
			if err != nil {
				return figure{}, err
			}
			fig.Panels = append(fig.Panels, p)
		}
		return figure{Name: name, Fig: fig}, nil
	}
	a, err := draw("niah", "accuracy", acc)
	if err != nil {
		return nil, err
	}
	d, err := draw("niah_digits", "digits right", dig)
	if err != nil {
		return nil, err
	}
	return []figure{a, d}, nil
}

// plotWidth and plotHeight size a heat-map tile for its number of columns
// and rows.
func plotWidth(cols int) vg.Length  { return vg.Length(max(3.2, 1+0.6*float64(cols))) * vg.Inch }
func plotHeight(rows int) vg.Length { return vg.Length(max(2.6, 1.2+0.35*float64(rows))) * vg.Inch }
