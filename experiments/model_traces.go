package experiments

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/hata-go/hata/experiments/synth"
	"github.com/hata-go/hata/model"
)

// ModelTrace is the [trace] table of model_budget and model_rbit: which real
// traces of the small model the ablations run on. The evaluation trace is
// the dense prefill of Tokens tokens of held-out text (BOS, then the bytes
// from Offset); the training trace, made only when hash training or Loki's
// calibration needs it, is the prefill of Tokens tokens of training text
// from TrainOffset. Both are written with model.WriteTraces into
// <results>/trace-eval/ and <results>/trace-train/ (the layer's q, k, v and
// pre-RoPE k) and reused by a resumed run.
type ModelTrace struct {
	// Layer is the layer evaluated. Default 2 (the first sparse layer).
	Layer int `toml:"layer" json:"layer"`
	// Tokens is the prompt length, BOS included. Default 2048.
	Tokens int `toml:"tokens" json:"tokens"`
	// Offset and TrainOffset are byte offsets into the held-out and training
	// texts. Default 0 and 0.
	Offset      int `toml:"offset" json:"offset"`
	TrainOffset int `toml:"train_offset" json:"train_offset"`
	// Positions are the decode query positions (the query at m attends to
	// keys 0..m); empty spreads samples positions over the second half of the
	// prompt, ending at its last token.
	Positions []int `toml:"positions" json:"positions"`
}

func defaultModelTrace() ModelTrace { return ModelTrace{Layer: 2, Tokens: 2048} }

func (t ModelTrace) validate(samples int) error {
	switch {
	case t.Layer < 0:
		return badKey("trace.layer", "%d, want >= 0", t.Layer)
	case t.Tokens < 4 || t.Tokens > maxModelTokens:
		return badKey("trace.tokens", "%d, want in [4, %d]", t.Tokens, maxModelTokens)
	case t.Offset < 0:
		return badKey("trace.offset", "%d, want >= 0", t.Offset)
	case t.TrainOffset < 0:
		return badKey("trace.train_offset", "%d, want >= 0", t.TrainOffset)
	case len(t.Positions) > 0 && len(t.Positions) != samples:
		return badKey("trace.positions", "%d positions for samples = %d", len(t.Positions), samples)
	}
	for i, m := range t.Positions {
		if m < 0 || m >= t.Tokens {
			return badKey("trace.positions", "%d, want in [0, trace.tokens-1 = %d]", m, t.Tokens-1)
		}
		if slices.Contains(t.Positions[:i], m) {
			return badKey("trace.positions", "%d listed twice: a point would average the same step twice", m)
		}
	}
	if half := t.Tokens - t.Tokens/2; len(t.Positions) == 0 && samples > half {
		return badKey("samples", "%d, but the second half of trace.tokens = %d holds %d decode positions; set samples <= %d, or trace.positions", samples, t.Tokens, half, half)
	}
	return nil
}

// modelTraceState is the shared state of model_budget and model_rbit: the
// traces, made once, and the env of the wrapped budget or rbit kind.
type modelTraceState struct {
	once  sync.Once
	err   error
	inner *env
}

// prepareTraces writes the evaluation trace (and the training trace when
// needTrain) of the model into dir unless a complete one (meta.json, written
// last) is there, after checking that a resumed run reads the files the
// first one read.
func prepareTraces(e *env, files ModelFiles, t ModelTrace, needTrain bool, hashFiles []string) error {
	inputs := append([]string{files.Heldout}, hashFiles...)
	if needTrain {
		inputs = append(inputs, files.TrainText)
	}
	if err := checkInputs(e, files.Dir, inputs); err != nil {
		return err
	}
	type job struct {
		dir, text string
		offset    int
	}
	jobs := []job{{filepath.Join(e.dir, "trace-eval"), files.Heldout, t.Offset}}
	if needTrain {
		jobs = append(jobs, job{filepath.Join(e.dir, "trace-train"), files.TrainText, t.TrainOffset})
	}
	var m *model.Model
	for _, j := range jobs {
		if _, err := os.Stat(filepath.Join(j.dir, "meta.json")); err == nil {
			continue
		}
		if m == nil {
			var err error
			if m, err = model.Load(files.Dir); err != nil {
				return err
			}
			if t.Layer >= m.Config.NLayers {
				return fmt.Errorf("trace.layer = %d, the model has layers 0..%d", t.Layer, m.Config.NLayers-1)
			}
		}
		text, err := os.ReadFile(j.text)
		if err != nil {
			if j.text == files.TrainText {
				err = fmt.Errorf("%w (train/prepare_data.sh builds .data/train.txt)", err)
			}
			return err
		}
		if end := j.offset + t.Tokens - 1; end > len(text) {
			return fmt.Errorf("%s: %d bytes, a prompt of %d tokens from offset %d needs %d", j.text, len(text), t.Tokens, j.offset, end)
		}
		fmt.Fprintf(e.stderr, "%s: tracing layer %d of %s on %d tokens of %s ...\n", filepath.Base(e.dir), t.Layer, files.Dir, t.Tokens, j.text)
		if err := e.makeDir(); err != nil {
			return err
		}
		if err := m.WriteTraces(j.dir, string(text[j.offset:j.offset+t.Tokens-1]), []int{t.Layer}); err != nil {
			return err
		}
	}
	return nil
}

// traceStateOf returns the run's modelTraceState with the traces prepared.
func traceStateOf(e *env, prepare func() error) (*modelTraceState, error) {
	st := e.state(func() any { return &modelTraceState{inner: &env{dir: e.dir, stderr: e.stderr, made: e.made}} }).(*modelTraceState)
	st.once.Do(func() { st.err = prepare() })
	return st, st.err
}

// hashLayerFile matches the name of a per-layer hash weights file.
var hashLayerFile = regexp.MustCompile(`hash_weight_layer_(\d+)\.(npy|pt)$`)

// checkWeightsLayer refuses a per-layer weights file of another layer than
// the one evaluated.
func checkWeightsLayer(key, path string, layer int) error {
	if m := hashLayerFile.FindStringSubmatch(path); m != nil {
		if l, _ := strconv.Atoi(m[1]); l != layer {
			return fmt.Errorf("%s = %s holds layer %d's weights, trace.layer is %d", key, path, l, layer)
		}
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// ModelTraceInput is where model_budget and model_rbit take their decode
// steps from, in place of the Input of budget and rbit: the small model's
// checkpoint and texts, the trace of one of its layers, and the number of
// decode positions averaged.
type ModelTraceInput struct {
	// Model is the checkpoint and texts.
	Model ModelFiles `toml:"model" json:"model"`
	// Trace selects the layer, prompt and positions.
	Trace ModelTrace `toml:"trace" json:"trace"`
	// Samples is the number of decode positions averaged. Default 8.
	Samples int `toml:"samples" json:"samples"`
}

func defaultModelTraceInput() ModelTraceInput {
	return ModelTraceInput{Model: defaultModelFiles(), Trace: defaultModelTrace(), Samples: 8}
}

func (in ModelTraceInput) validate() error {
	if err := in.Model.validate(); err != nil {
		return err
	}
	if in.Samples < 1 || in.Samples > 1000 {
		return badKey("samples", "%d, want in [1, 1000]", in.Samples)
	}
	return in.Trace.validate(in.Samples)
}

func (in *ModelTraceInput) samples() int { return in.Samples }

// input returns the trace Input of the accuracy kinds that model_budget and
// model_rbit run, over the trace directories in dir.
func (in ModelTraceInput) input(dir string) Input {
	t := in.Trace
	return Input{Input: "trace", Samples: in.Samples, SampleSeed: defaultInput().SampleSeed, Synth: synth.Default(),
		Trace: TraceInput{Dir: filepath.Join(dir, "trace-eval"), Layer: t.Layer, Positions: t.Positions},
		Train: TrainData{Seed: defaultInput().Train.Seed, Trace: filepath.Join(dir, "trace-train")}}
}

// ModelBudgetConfig is the budget ablation (the paper's Fig. 7, kind budget)
// on real traces of the small model: oracle top-k recall, attention-mass
// recall and output error against dense attention, versus the budget, per
// method, at the decode positions of one layer of a held-out prompt. hata's
// weights are read from hash.weights (e.g. weights/hash/, trained on training
// text) or, when it is empty, trained on the training trace; lsh is the same
// hashing with random weights.
type ModelBudgetConfig struct {
	Common
	ModelTraceInput
	BudgetSweep
}

func defaultModelBudget() *ModelBudgetConfig {
	return &ModelBudgetConfig{Common: Common{Kind: "model_budget"}, ModelTraceInput: defaultModelTraceInput(),
		BudgetSweep: defaultBudget().BudgetSweep}
}

func (c *ModelBudgetConfig) validate() error {
	if err := c.ModelTraceInput.validate(); err != nil {
		return err
	}
	return c.BudgetSweep.validate()
}

// inner is the budget kind this runs, on the trace directories in dir.
func (c *ModelBudgetConfig) inner(dir string) *BudgetConfig {
	return &BudgetConfig{Common: c.Common, Input: c.input(dir), BudgetSweep: c.BudgetSweep}
}

func (c *ModelBudgetConfig) points() []point                    { return c.inner("").points() }
func (c *ModelBudgetConfig) columns() []string                  { return c.inner("").columns() }
func (c *ModelBudgetConfig) finish(t *Table)                    { c.inner("").finish(t) }
func (c *ModelBudgetConfig) figures(t *Table) ([]figure, error) { return c.inner("").figures(t) }

func (c *ModelBudgetConfig) readsFiles() (ModelFiles, bool) {
	return c.Model, readsTrainText(c.Methods, c.Hash.Weights != "", c.Options)
}

func (c *ModelBudgetConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	_, needTrain := c.readsFiles()
	st, err := traceStateOf(e, func() error {
		var hf []string
		if c.Hash.Weights != "" && slices.Contains(c.Methods, "hata") {
			if err := checkWeightsLayer("hash.weights", c.Hash.Weights, c.Trace.Layer); err != nil {
				return err
			}
			hf = []string{c.Hash.Weights}
		}
		return prepareTraces(e, c.Model, c.Trace, needTrain, hf)
	})
	if err != nil {
		return nil, err
	}
	return c.inner(e.dir).run(ctx, st.inner, w, p)
}

// ModelRbitConfig is the hash-width ablation (the paper's Fig. 8, kind rbit)
// on real traces of the small model: the accuracy of hashing with trained
// weights (hata) and random ones (lsh) versus rbit, at one layer of a
// held-out prompt. Trained weights are trained on the training trace (never
// on held-out text) unless weights_by_rbit names a file.
type ModelRbitConfig struct {
	Common
	ModelTraceInput
	RbitSweep
}

func defaultModelRbit() *ModelRbitConfig {
	return &ModelRbitConfig{Common: Common{Kind: "model_rbit"}, ModelTraceInput: defaultModelTraceInput(),
		RbitSweep: defaultRbit().RbitSweep}
}

func (c *ModelRbitConfig) validate() error {
	if err := c.ModelTraceInput.validate(); err != nil {
		return err
	}
	return c.RbitSweep.validate()
}

// inner is the rbit kind this runs, on the trace directories in dir.
func (c *ModelRbitConfig) inner(dir string) *RbitConfig {
	return &RbitConfig{Common: c.Common, Input: c.input(dir), RbitSweep: c.RbitSweep}
}

func (c *ModelRbitConfig) points() []point                    { return c.inner("").points() }
func (c *ModelRbitConfig) columns() []string                  { return c.inner("").columns() }
func (c *ModelRbitConfig) finish(t *Table)                    { c.inner("").finish(t) }
func (c *ModelRbitConfig) figures(t *Table) ([]figure, error) { return c.inner("").figures(t) }

// readsFiles implements fileReader: the training text where an rbit's
// trained weights are not given.
func (c *ModelRbitConfig) readsFiles() (ModelFiles, bool) {
	train := false
	if slices.Contains(c.Hashing, "trained") {
		for _, r := range c.Rbits {
			train = train || c.WeightsByRbit[strconv.Itoa(r)] == ""
		}
	}
	return c.Model, train
}

func (c *ModelRbitConfig) run(ctx context.Context, e *env, w *worker, p point) ([][]string, error) {
	_, needTrain := c.readsFiles()
	st, err := traceStateOf(e, func() error {
		var hf []string
		for _, r := range c.Rbits {
			if f := c.WeightsByRbit[strconv.Itoa(r)]; f != "" && slices.Contains(c.Hashing, "trained") {
				if err := checkWeightsLayer(fmt.Sprintf("weights_by_rbit.%d", r), f, c.Trace.Layer); err != nil {
					return err
				}
				hf = append(hf, f)
			}
		}
		return prepareTraces(e, c.Model, c.Trace, needTrain, hf)
	})
	if err != nil {
		return nil, err
	}
	return c.inner(e.dir).run(ctx, st.inner, w, p)
}
