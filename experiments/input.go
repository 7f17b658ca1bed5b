package experiments

import (
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/hata-go/hata/experiments/synth"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

// Input is where the accuracy experiments take their decode steps from: the
// synthetic generator (package synth) or a trace directory of a real model
// (tensorio.ReadTrace).
type Input struct {
	// Input is "synth" (default) or "trace".
	Input string `toml:"input" json:"input"`
	// Samples is the number of decode steps every point averages over.
	// Default 4.
	Samples int `toml:"samples" json:"samples"`
	// SampleSeed is the synthetic seed of the first evaluation step; step i
	// uses SampleSeed+i. Default 1000.
	SampleSeed uint64 `toml:"sample_seed" json:"sample_seed"`
	// Synth configures the generator (see synth.Config for every knob).
	Synth synth.Config `toml:"synth" json:"synth"`
	// Trace configures a trace input.
	Trace TraceInput `toml:"trace" json:"trace"`
	// Train is the data that hash training and Loki's calibration use.
	Train TrainData `toml:"train" json:"train"`
}

// checkWeightsFile checks, when the config loads, that the hash weights file
// path (key names it; "" is none) holds rbit bits and, with the synthetic
// input, synth's KV heads and head dimension, so that a mismatch is a key
// error and not a failure of every hata point after the others ran. A trace
// input's shape is known only once the trace is read; the run checks it
// then.
func (in *Input) checkWeightsFile(key, path string, rbit int) error {
	if path == "" {
		return nil
	}
	w, err := tensorio.ReadHashWeights(path)
	if err != nil {
		return badKey(key, "%v", err)
	}
	if w.Rbit != rbit {
		return badKey(key, "%s has rbit %d, the experiment uses %d", path, w.Rbit, rbit)
	}
	if s := in.Synth; in.Input == "synth" && (w.Hkv != s.Hkv || w.D != s.D) {
		return badKey(key, "%s is [Hkv=%d D=%d Rbit=%d], the synthetic layer has synth.hkv=%d synth.d=%d", path, w.Hkv, w.D, w.Rbit, s.Hkv, s.D)
	}
	return nil
}

// TraceInput selects the decode steps of a trace: the query at position m
// attends to the keys 0..m of the same layer (B = 1, N = m+1).
type TraceInput struct {
	// Dir is the trace directory (or .safetensors file). Required when
	// input = "trace".
	Dir string `toml:"dir" json:"dir"`
	// Layer is the layer to evaluate. Default 2 (the first sparse layer; 0
	// and 1 stay dense).
	Layer int `toml:"layer" json:"layer"`
	// Positions are the decode query positions; empty spreads Samples
	// positions evenly over the second half of the trace, ending at N-1.
	// Each step attends to its own m+1 keys, so a row's n and k columns
	// are those of the first position's step.
	Positions []int `toml:"positions" json:"positions"`
}

// TrainData is the data hash training and Loki's PCA are fitted on.
type TrainData struct {
	// Seed is the synthetic sample seed of the training sequence (B = 1,
	// queries at every position). It must differ from the evaluation seeds,
	// so the evaluation is held out. Default 1.
	Seed uint64 `toml:"seed" json:"seed"`
	// N is the length of the synthetic training sequence; 0 means synth.n.
	N int `toml:"n" json:"n"`
	// Trace is the trace directory whose layer trains the hash with a trace
	// input; empty means trace.dir itself (then training sees the evaluated
	// positions: say so when reporting).
	Trace string `toml:"trace" json:"trace"`
}

// defaultInput returns the documented defaults of Input.
func defaultInput() Input {
	return Input{Input: "synth", Samples: 4, SampleSeed: 1000, Synth: synth.Default(),
		Trace: TraceInput{Layer: 2}, Train: TrainData{Seed: 1}}
}

// validate checks the input keys.
func (in *Input) validate() error {
	switch in.Input {
	case "synth":
		if err := in.Synth.Validate(); err != nil {
			return prefixKey("synth", err)
		}
		if in.Train.Seed >= in.SampleSeed && in.Train.Seed < in.SampleSeed+uint64(in.Samples) {
			return badKey("train.seed", "%d is one of the evaluation seeds sample_seed..sample_seed+samples-1 = %d..%d",
				in.Train.Seed, in.SampleSeed, in.SampleSeed+uint64(in.Samples)-1)
		}
		if in.Train.N < 0 {
			return badKey("train.n", "%d, want >= 0", in.Train.N)
		}
		if in.Train.N > 0 { // the training sequence: synth's settings, one row of train.n tokens (buildTrain)
			c := in.Synth
			c.B, c.N = 1, in.Train.N
			if err := c.Validate(); err != nil {
				return badKey("train.n", "%d: the training sequence (synth's settings with n = train.n): %v", in.Train.N, err)
			}
		}
	case "trace":
		if in.Trace.Dir == "" {
			return badKey("trace.dir", "required with input = \"trace\"")
		}
		if in.Trace.Layer < 0 {
			return badKey("trace.layer", "%d, want >= 0", in.Trace.Layer)
		}
		for _, m := range in.Trace.Positions {
			if m < 0 {
				return badKey("trace.positions", "%d, want >= 0", m)
			}
		}
		if len(in.Trace.Positions) > 0 && len(in.Trace.Positions) != in.Samples {
			return badKey("trace.positions", "%d positions for samples = %d", len(in.Trace.Positions), in.Samples)
		}
		for i, m := range in.Trace.Positions {
			if slices.Contains(in.Trace.Positions[:i], m) {
				return badKey("trace.positions", "%d listed twice: a point would average the same step twice", m)
			}
		}
	default:
		return badKey("input", "%q, want \"synth\" or \"trace\"", in.Input)
	}
	if in.Samples < 1 || in.Samples > 1000 {
		return badKey("samples", "%d, want in [1, 1000]", in.Samples)
	}
	return nil
}

// synthFactors are the dimensions of a synthetic input, as factors of its
// tensors: batch, query heads, KV heads, tokens, head dimension, and the
// tokens of the training sequence (train.n, or synth.n when that is 0).
func (in *Input) synthFactors() (b, hq, hkv, n, d, nt factor) {
	s := in.Synth
	b, hq, hkv = factor{"synth.b", s.B, 1}, factor{"synth.hq", s.Hq, 32}, factor{"synth.hkv", s.Hkv, 8}
	n, d = factor{"synth.n", s.N, 4096}, factor{"synth.d", s.D, 128}
	nt = n
	if in.Train.N > 0 {
		nt = factor{"train.n", in.Train.N, 4096}
	}
	return b, hq, hkv, n, d, nt
}

// checkSizes checks the sizes of the large host tensors that a point of an
// accuracy kind makes on a synthetic input (see MaxTensorBytes): those of
// every such point (the cache, queries and probabilities of a step, the
// generator's key subspace, the training sequence's queries) and those of
// the methods it runs. rbit is the widest hash of the sweep and the key that
// sets it; training says whether hata's weights are trained here (with hash's
// keys). A trace input's sizes are the trace's: it has nothing to check here.
func (in *Input) checkSizes(methods []string, opts MethodOptions, rbit factor, training bool, hash HashSource) error {
	if in.Input != "synth" {
		return nil
	}
	b, hq, hkv, n, d, nt := in.synthFactors()
	ts := []tensor{
		{"the K cache [B][Hkv][N][D] of float32", 32, []factor{b, hkv, n, d}},
		{"the queries [B][Hq][D] of float32", 32, []factor{b, hq, d}},
		{"the attention probabilities [B][Hq][N] of float64", 64, []factor{b, hq, n}},
		{"the key subspace [Hkv][D][Rank] of float64", 64, []factor{hkv, d, {"synth.rank", in.Synth.Rank, 64}}},
		{"the training sequence's queries [Hq][N][D] of float32", 32, []factor{hq, nt, d}},
	}
	if slices.Contains(methods, "hata") || slices.Contains(methods, "lsh") {
		ts = append(ts, tensor{"the key codes [B][Hkv][N][Rbit] of bits", 1, []factor{b, hkv, n, rbit}})
	}
	if training {
		ts = append(ts,
			hashPairs(hq, nt, hash.Positions),
			tensor{"hash training's relaxed codes [N][Rbit] of float64", 64, []factor{nt, rbit}})
	}
	if slices.Contains(methods, "magicpig") {
		l := factor{"options.magicpig_l", opts.MagicPIGL, 150}
		ts = append(ts,
			tensor{"MagicPIG's key codes [B][Hkv][N][L] of uint32", 32, []factor{b, hkv, n, l}},
			tensor{"MagicPIG's projections [D][L][K] of float32", 32, []factor{d, l, {"options.magicpig_k", opts.MagicPIGK, 10}}})
	}
	if slices.Contains(methods, "loki") {
		c := factor{"options.loki_channels", opts.LokiChannels, 32}
		if c.n > d.n {
			c = d // Loki scores at most D channels
		}
		ts = append(ts,
			tensor{"Loki's basis [Hkv][D][D] of float64", 64, []factor{hkv, d, d}},
			tensor{"Loki's rotated keys [B][Hkv][N][C] of float64", 64, []factor{b, hkv, n, c}})
	}
	return checkTensors(ts...)
}

// evalStep is one decode step with its dense reference.
type evalStep struct {
	q     []float32 // q: [B][Hq][D], post-RoPE
	kv    *ref.KV   // the cache, N tokens
	shape ref.Shape
	dense []float32 // dense: [B][Hq][D], dense attention
	p     []float64 // p: [B][Hq][N], dense softmax weights
	gp    []float64 // gp: [B][Hkv][N], p summed over each group
}

// trainSet is one sequence to fit hash weights and Loki's PCA on.
type trainSet struct {
	shape ref.Shape // B = 1, N tokens
	q     []float32 // q: [Hq][N][D], post-RoPE query of every position
	k     []float32 // k: [Hkv][N][D], post-RoPE
	kpre  []float32 // kpre: [Hkv][N][D], pre-RoPE; nil when the trace lacks it
}

// inputs builds and caches the steps and training data of an Input; every
// method is safe for concurrent use and builds each item once.
type inputs struct {
	in Input

	modelOnce sync.Once
	model     *synth.Model
	modelErr  error

	traceOnce sync.Once
	trace     *tensorio.LayerTrace
	traceErr  error

	mu    sync.Mutex
	steps []*stepCell

	trainOnce sync.Once
	train     *trainSet
	trainErr  error
}

type stepCell struct {
	once sync.Once
	step *evalStep
	err  error
}

func newInputs(in Input) *inputs {
	return &inputs{in: in, steps: make([]*stepCell, in.Samples)}
}

func (s *inputs) synthModel() (*synth.Model, error) {
	s.modelOnce.Do(func() { s.model, s.modelErr = synth.New(s.in.Synth) })
	return s.model, s.modelErr
}

func (s *inputs) layer() (*tensorio.LayerTrace, error) {
	s.traceOnce.Do(func() { s.trace, s.traceErr = readLayer(s.in.Trace.Dir, s.in.Trace.Layer) })
	return s.trace, s.traceErr
}

// readLayer reads one layer of the trace in dir.
func readLayer(dir string, layer int) (*tensorio.LayerTrace, error) {
	t, err := tensorio.ReadTrace(dir)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(t.Layers, layer) {
		return nil, fmt.Errorf("trace %s has no layer %d (layers %v)", dir, layer, t.Layers)
	}
	return t.Layer(layer)
}

// positions returns the decode positions of a trace of n tokens, or an
// error where they are not samples distinct positions of it: a point would
// average the same step twice and report more samples than it has.
func (s *inputs) positions(n int) ([]int, error) {
	if len(s.in.Trace.Positions) > 0 {
		for _, m := range s.in.Trace.Positions {
			if m >= n {
				return nil, fmt.Errorf("trace.positions: %d, but the trace has N=%d tokens", m, n)
			}
		}
		return s.in.Trace.Positions, nil
	}
	if half := n - n/2; s.in.Samples > half {
		return nil, fmt.Errorf("samples = %d: the second half of the trace's %d tokens holds %d decode positions; set samples <= %d, or trace.positions", s.in.Samples, n, half, half)
	}
	pos := make([]int, s.in.Samples)
	for i := range pos {
		// Evenly over [n/2, n), the last at n-1.
		pos[i] = n/2 + (i+1)*(n-n/2)/len(pos) - 1
	}
	return pos, nil
}

// step returns evaluation step i.
func (s *inputs) step(i int) (*evalStep, error) {
	s.mu.Lock()
	if s.steps[i] == nil {
		s.steps[i] = &stepCell{}
	}
	c := s.steps[i]
	s.mu.Unlock()
	c.once.Do(func() { c.step, c.err = s.buildStep(i) })
	return c.step, c.err
}

// release drops the cached steps (their memory) once a run is over.
func (s *inputs) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.steps)
}

func (s *inputs) buildStep(i int) (*evalStep, error) {
	var q []float32
	var kv *ref.KV
	switch s.in.Input {
	case "synth":
		m, err := s.synthModel()
		if err != nil {
			return nil, err
		}
		smp := m.Sample(s.in.SampleSeed + uint64(i))
		if kv, err = smp.KV(); err != nil {
			return nil, err
		}
		q = smp.Q
	case "trace":
		lt, err := s.layer()
		if err != nil {
			return nil, err
		}
		ps, err := s.positions(lt.N)
		if err != nil {
			return nil, err
		}
		pos := ps[i]
		n, d := pos+1, lt.D
		q = make([]float32, lt.Hq*d) // q: [1][Hq][D], the query at pos
		for h := range lt.Hq {
			copy(q[h*d:(h+1)*d], lt.Q[(h*lt.N+pos)*d:])
		}
		k := make([]float32, 0, lt.Hkv*n*d) // k, v: [1][Hkv][n][D], keys 0..pos
		v := make([]float32, 0, lt.Hkv*n*d)
		for h := range lt.Hkv {
			k = append(k, lt.K[h*lt.N*d:(h*lt.N+n)*d]...)
			v = append(v, lt.V[h*lt.N*d:(h*lt.N+n)*d]...)
		}
		if kv, err = ref.NewKV(1, lt.Hkv, n, d, k, v); err != nil {
			return nil, err
		}
	}
	st := &evalStep{q: q, kv: kv, shape: kv.Shape(len(q) / (kv.B * kv.D))}
	var err error
	if st.dense, err = ref.Dense(q, kv); err != nil {
		return nil, fmt.Errorf("dense reference: %w", err)
	}
	if st.p, err = ref.Probabilities(q, kv); err != nil {
		return nil, err
	}
	if st.gp, err = ref.GroupProbabilities(q, kv); err != nil {
		return nil, err
	}
	return st, nil
}

// oracle returns the exact top-k selection of step st at budget (the topk
// method's selection, from the cached group probabilities).
func (st *evalStep) oracle(budget ref.Budget) ([][]int32, error) {
	k, err := budget.Tokens(st.kv.N)
	if err != nil {
		return nil, err
	}
	n := st.kv.N
	sel := make([][]int32, st.kv.B*st.kv.Hkv)
	for r := range sel {
		sel[r] = ref.SelectLargest(st.gp[r*n:(r+1)*n], k, ref.Windows{})
	}
	return sel, nil
}

// trainingSet returns the training sequence: a synthetic sample of seed
// train.seed (B = 1, N = train.n) with a query at every position, or the
// trace layer of train.trace (default trace.dir).
func (s *inputs) trainingSet() (*trainSet, error) {
	s.trainOnce.Do(func() { s.train, s.trainErr = s.buildTrain() })
	return s.train, s.trainErr
}

func (s *inputs) buildTrain() (*trainSet, error) {
	switch s.in.Input {
	case "synth":
		c := s.in.Synth
		c.B = 1
		if s.in.Train.N > 0 {
			c.N = s.in.Train.N
		}
		m, err := synth.New(c) // the same layer structure: it does not depend on B or N
		if err != nil {
			return nil, err
		}
		smp := m.Sample(s.in.Train.Seed)
		return &trainSet{shape: smp.Shape, q: m.TraceQueries(smp), k: smp.K, kpre: smp.Kpre}, nil
	default:
		dir := s.in.Train.Trace
		var lt *tensorio.LayerTrace
		var err error
		if dir == "" {
			lt, err = s.layer()
		} else {
			lt, err = readLayer(dir, s.in.Trace.Layer)
		}
		if err != nil {
			return nil, err
		}
		return &trainSet{shape: ref.Shape{B: 1, Hq: lt.Hq, Hkv: lt.Hkv, N: lt.N, D: lt.D}, q: lt.Q, k: lt.K, kpre: lt.KPre}, nil
	}
}

// lokiBasis fits Loki's PCA basis on the training sequence's pre-RoPE keys
// (post-RoPE when the trace has none), as the Loki paper calibrates offline.
func (t *trainSet) lokiBasis(stderr io.Writer) ([]float64, error) {
	k := t.kpre
	if k == nil {
		fmt.Fprintln(stderr, "experiments: the training trace has no pre-RoPE keys; Loki's basis is fitted on post-RoPE keys")
		k = t.k
	}
	s := t.shape
	kv, err := ref.NewKV(1, s.Hkv, s.N, s.D, k, make([]float32, len(k)))
	if err != nil {
		return nil, err
	}
	return ref.FitLokiBasis(kv)
}
