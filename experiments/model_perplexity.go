package experiments

import (
	"context"
	"fmt"
	"slices"

	"github.com/hata-go/hata/model"
	"github.com/hata-go/hata/plots"
)

// PerplexityConfig measures what sparse decode attention costs the project's
// small model on held-out text, versus the budget, per method (the stand-in
// for the paper's Tables 1-2, which need 7B-8B models):
//
//   - bits/byte (model.Perplexity): each window is prefilled densely up to
//     prefix, then decoded one token at a time through the method,
//     teacher-forced with the text; agreement is the fraction of those steps
//     whose argmax equals dense attention's;
//   - greedy agreement (model.Agreement): dense attention generates tokens
//     greedily from held-out prompts; the method, fed the same tokens,
//     predicts each next one; first_divergence is the mean index of its
//     first disagreement.
//
// Every point is one method at every budget (the dense reference is
// recomputed inside each point: model.Perplexity needs its argmax).
type PerplexityConfig struct {
	Common
	// Model is the checkpoint and texts.
	Model ModelSource `toml:"model" json:"model"`
	// Methods are compared; "dense" gives the reference row. Default dense
	// hata lsh loki quest streaming h2o topk.
	Methods []string `toml:"methods" json:"methods"`
	// Budgets are ratios of each sparse layer's cache. Default 0.78% 1.56%
	// 3.13% 6.25%.
	Budgets []float64 `toml:"budgets" json:"budgets"`
	// Windows windows of Length tokens (BOS included), evenly spaced over the
	// held-out text; the first Prefix tokens of each are prefilled densely
	// (0: Length/2). Default 2, 1024, 0.
	Windows int `toml:"windows" json:"windows"`
	Length  int `toml:"length" json:"length"`
	Prefix  int `toml:"prefix" json:"prefix"`
	// Prompts held-out prompts of PromptBytes bytes, evenly spaced over the
	// held-out text, each continued for Tokens tokens, measure greedy
	// agreement. Default 4, 600, 32.
	Prompts     int `toml:"prompts" json:"prompts"`
	PromptBytes int `toml:"prompt_bytes" json:"prompt_bytes"`
	Tokens      int `toml:"tokens" json:"tokens"`
	// Options are the methods' parameters; options.rbit is the width of
	// lsh and of hata's weights.
	Options MethodOptions `toml:"options" json:"options"`
	// Hash is where hata's weights come from.
	Hash ModelHash `toml:"hash" json:"hash"`
}

func (c *PerplexityConfig) methodNames() ([]string, bool) { return c.Methods, false }

func defaultPerplexity() *PerplexityConfig {
	return &PerplexityConfig{
		Common: Common{Kind: "perplexity"}, Model: defaultModelSource(),
		Methods: []string{"dense", "hata", "lsh", "loki", "quest", "streaming", "h2o", "topk"},
		Budgets: []float64{0.0078, 0.0156, 0.0313, 0.0625},
		Windows: 2, Length: 1024, Prompts: 4, PromptBytes: 600, Tokens: 32,
		Options: defaultMethodOptions(), Hash: defaultModelHash(),
	}
}

func (c *PerplexityConfig) validate() error {
	if err := c.Model.validate(); err != nil {
		return err
	}
	if err := validateMethods("methods", c.Methods); err != nil {
		return err
	}
	if err := validateRatios("budgets", c.Budgets); err != nil {
		return err
	}
	switch {
	case c.Windows < 1 || c.Windows > 10000:
		return badKey("windows", "%d, want in [1, 10000]", c.Windows)
	case c.Length < 3 || c.Length > maxModelTokens:
		return badKey("length", "%d, want in [3, %d]", c.Length, maxModelTokens)
	case c.Prefix < 0 || c.Prefix > c.Length-2:
		return badKey("prefix", "%d, want in [0, length-2 = %d] (0: length/2)", c.Prefix, c.Length-2)
	case c.Prompts < 0 || c.Prompts > 10000:
		return badKey("prompts", "%d, want in [0, 10000] (0: no greedy agreement)", c.Prompts)
	case c.Prompts > 0 && (c.PromptBytes < 1 || c.PromptBytes > maxModelTokens):
		return badKey("prompt_bytes", "%d, want in [1, %d]", c.PromptBytes, maxModelTokens)
	case c.Prompts > 0 && (c.Tokens < 1 || c.Tokens > maxDecodeTokens):
		return badKey("tokens", "%d, want in [1, %d]", c.Tokens, maxDecodeTokens)
	}
	if err := c.Options.validate(); err != nil {
		return err
	}
	if err := c.Hash.validate(); err != nil {
		return err
	}
	return c.Model.checkHashTraining(c.Hash)
}

// methodPoint is one method at every budget.
type methodPoint struct {
	Method string `json:"method"`
}

func (c *PerplexityConfig) points() []point {
	var ps []point
	for _, m := range c.Methods {
		ps = append(ps, point{Index: len(ps), Params: methodPoint{m}})
	}
	return ps
}

func (c *PerplexityConfig) columns() []string {
	return []string{"method", "budget", "windows", "length", "prefix", "predicted", "bits_per_byte", "perplexity", "agreement",
		"prompts", "tokens", "greedy_agreement", "first_divergence", "read_frac", "device"}
}

func (c *PerplexityConfig) readsFiles() (ModelFiles, bool) {
	return c.Model.ModelFiles, readsTrainText(c.Methods, c.Hash.Dir != "", c.Options)
}

func (c *PerplexityConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	name := p.Params.(methodPoint).Method
	st := modelStateOf(e, c.Model, c.Hash, c.Options, c.Methods)
	m, text, err := st.load(e)
	if err != nil {
		return nil, err
	}
	tr := newTracker(c.Model.DenseLayers)
	defer tr.close()
	specs, err := st.specs(ctx, e, w, []string{name}, tr)
	if err != nil {
		return nil, err
	}
	budgets := budgetsOf(c.Budgets)
	pp, err := m.Perplexity(ctx, model.PerplexityConfig{Text: text, Windows: c.Windows, Length: c.Length, Prefix: c.Prefix,
		Methods: specs, Budgets: budgets, DenseLayers: c.Model.denseLayers()})
	if err != nil {
		return nil, err
	}
	type agree struct{ a, first float64 }
	ag := map[string]agree{}
	if c.Prompts > 0 && name != "dense" {
		if len(text) < c.PromptBytes {
			return nil, fmt.Errorf("held-out text %s: %d bytes, a prompt needs %d", c.Model.Heldout, len(text), c.PromptBytes)
		}
		prompts := make([]string, c.Prompts)
		for i := range prompts {
			off := (2*i + 1) * (len(text) - c.PromptBytes) / (2 * c.Prompts)
			prompts[i] = string(text[off : off+c.PromptBytes])
		}
		rows, err := m.Agreement(ctx, model.AgreementConfig{Prompts: prompts, Tokens: c.Tokens, Methods: specs, Budgets: budgets,
			DenseLayers: c.Model.denseLayers()})
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			ag[r.Budget] = agree{r.Agreement, r.FirstDivergence}
		}
	}
	var rows [][]string
	for _, r := range pp {
		if r.Method != name { // the dense reference of a sparse method's point
			continue
		}
		g, first := "", ""
		if name == "dense" && c.Prompts > 0 {
			g, first = "1", fmtInt(c.Tokens) // dense agrees with itself by definition
		} else if a, ok := ag[r.Budget]; ok {
			g, first = fmtFloat(a.a), fmtFloat(a.first)
		}
		rows = append(rows, []string{r.Method, r.Budget, fmtInt(r.Windows), fmtInt(r.Length), fmtInt(r.Prefix), fmtInt(r.Predicted),
			fmtFloat(r.BitsPerByte), fmtFloat(r.Perplexity), fmtFloat(r.Agreement),
			fmtInt(c.Prompts), fmtInt(c.Tokens), g, first, fmtFloat(r.AttendedFraction), w.backend.Name()})
	}
	return rows, nil
}

func (c *PerplexityConfig) finish(*Table) {}

// figures draws bits/byte, teacher-forced agreement and greedy agreement
// versus the budget, one line per method; dense is the flat line it is.
func (c *PerplexityConfig) figures(t *Table) ([]figure, error) {
	pct := &Table{Columns: append(slices.Clone(t.Columns), "budget_pct")}
	var ticks []float64
	for _, b := range c.Budgets {
		ticks = append(ticks, 100*b)
	}
	for i, r := range t.Rows {
		if t.Str(i, "method") == "dense" { // the reference at every budget of the sweep
			for _, x := range ticks {
				pct.Rows = append(pct.Rows, append(slices.Clone(r), fmtFloat(x)))
			}
			continue
		}
		pct.Rows = append(pct.Rows, append(slices.Clone(r), fmtFloat(100*t.Float(i, "budget"))))
	}
	xl := "token budget (% of each sparse layer's cache, log scale)"
	panels := []plots.Line{
		{Title: "Held-out bits per byte (lower is better)", XLabel: xl, YLabel: "bits/byte, decoded through the method",
			Series: pct.series("method", "budget_pct", "bits_per_byte", nil)},
		{Title: "Top-1 agreement with dense on held-out text", XLabel: xl, YLabel: "fraction of steps, teacher-forced", YMin: 0, YMax: 1.02,
			Series: pct.series("method", "budget_pct", "agreement", nil)},
	}
	if c.Prompts > 0 {
		panels = append(panels, plots.Line{Title: "Greedy agreement with dense generation", XLabel: xl,
			YLabel: fmt.Sprintf("fraction of %d tokens x %d prompts", c.Tokens, c.Prompts), YMin: 0, YMax: 1.02,
			Series: pct.series("method", "budget_pct", "greedy_agreement", nil)})
	}
	return linePanels("perplexity", panels, ticks, true, 2, "method")
}
