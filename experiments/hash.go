package experiments

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

// HashSource says where hata's trained weights come from: a file, or
// training on the input's training sequence (ref.Samples + ref.TrainLayer).
// Trained weights are cached in the results directory (W.npy, or
// W_rbit<r>.npy in the rbit ablation), so a resumed run does not retrain.
type HashSource struct {
	// Weights is a weights file, [Hkv][D][Rbit]: .npy, or a PyTorch .pt such
	// as the authors' hash_weight_layer_LL.pt. Empty: train. Default empty.
	Weights string `toml:"weights" json:"weights"`
	// Positions is the number of query positions drawn per KV head from the
	// training sequence (each gives G*(m+1) labelled pairs). Default 8.
	Positions int `toml:"positions" json:"positions"`
	// Steps is the number of full-batch SGD steps. Default 300 (HATA.md).
	Steps int `toml:"steps" json:"steps"`
	// LR is the learning rate. Default 0.1 (HATA.md); the other
	// hyperparameters are ref.DefaultTrainConfig's.
	LR float64 `toml:"lr" json:"lr"`
	// Seed draws the query positions and W's initialisation. Default 1.
	Seed uint64 `toml:"seed" json:"seed"`
}

func defaultHashSource() HashSource {
	d := ref.DefaultTrainConfig()
	return HashSource{Positions: 8, Steps: d.Steps, LR: d.LR, Seed: 1}
}

// MaxHashPositions is the most query positions per KV head that
// hash.positions (and hata train's -positions) may ask for (the paper's
// setting is 8). Each gives about G*N labelled pairs: where the training
// sequence's shape is known when the config loads (a synthetic input), the
// pairs' size (hashPairs) is checked against MaxTensorBytes then; otherwise
// trainWeights checks it before drawing them.
const MaxHashPositions = 1 << 16

// validate checks the training keys and that hash.weights exists.
func (h HashSource) validate() error {
	switch {
	case h.Positions < 1 || h.Positions > MaxHashPositions:
		return badKey("hash.positions", "%d, want in [1, %d]", h.Positions, MaxHashPositions)
	case h.Steps < 0 || h.Steps > 100000:
		return badKey("hash.steps", "%d, want in [0, 100000]", h.Steps)
	case !(h.LR > 0 && h.LR < 100):
		return badKey("hash.lr", "%v, want in (0, 100)", h.LR)
	}
	if h.Weights != "" {
		if _, err := os.Stat(h.Weights); err != nil {
			return badKey("hash.weights", "%v", err)
		}
	}
	return nil
}

// trainConfig returns ref's training configuration for steps steps.
func (h HashSource) trainConfig(steps int) ref.TrainConfig {
	c := ref.DefaultTrainConfig()
	c.Steps, c.LR, c.Seed = steps, h.LR, h.Seed
	return c
}

// accState is the shared state of an accuracy experiment: its inputs, the
// hash weights per file name and Loki's calibrated basis.
type accState struct {
	in   *inputs
	opts MethodOptions
	hash HashSource

	mu      sync.Mutex
	weights map[string]*weightsCell

	lokiOnce  sync.Once
	lokiBasis []float64
	lokiErr   error
}

type weightsCell struct {
	once sync.Once
	w    *ref.HashWeights
	err  error
}

func newAccState(in Input, opts MethodOptions, hash HashSource) *accState {
	return &accState{in: newInputs(in), opts: opts, hash: hash, weights: map[string]*weightsCell{}}
}

// methodOptions returns the ref.Options of method: with hata's weights of
// rbit bits (loaded or trained) and Loki's calibrated basis when needed.
func (s *accState) methodOptions(ctx context.Context, e *env, method string, rbit int) (ref.Options, error) {
	o := s.opts
	o.Rbit = rbit
	var w *ref.HashWeights
	var basis []float64
	var err error
	switch {
	case method == "hata":
		file := "W.npy"
		if rbit != s.opts.Rbit {
			file = fmt.Sprintf("W_rbit%d.npy", rbit)
		}
		if w, err = s.hashWeights(ctx, e, file, s.hash.Weights, rbit); err != nil {
			return ref.Options{}, err
		}
	case method == "loki" && o.LokiBasis == "calibration":
		s.lokiOnce.Do(func() {
			var t *trainSet
			if t, s.lokiErr = s.in.trainingSet(); s.lokiErr == nil {
				s.lokiBasis, s.lokiErr = t.lokiBasis(e.stderr)
			}
		})
		if s.lokiErr != nil {
			return ref.Options{}, fmt.Errorf("loki calibration: %w", s.lokiErr)
		}
		basis = s.lokiBasis
	}
	return o.refOptions(w, basis), nil
}

// hashWeights returns the weights of rbit bits: read from path when set,
// else from the cache file <dir>/<file>, else trained and cached there.
// Every file is read or trained once per run.
func (s *accState) hashWeights(ctx context.Context, e *env, file, path string, rbit int) (*ref.HashWeights, error) {
	s.mu.Lock()
	c, ok := s.weights[file]
	if !ok {
		c = &weightsCell{}
		s.weights[file] = c
	}
	s.mu.Unlock()
	c.once.Do(func() { c.w, c.err = s.loadOrTrain(ctx, e, file, path, rbit) })
	return c.w, c.err
}

func (s *accState) loadOrTrain(ctx context.Context, e *env, file, path string, rbit int) (*ref.HashWeights, error) {
	if path != "" {
		w, err := tensorio.ReadHashWeights(path)
		if err != nil {
			return nil, err
		}
		if w.Rbit != rbit {
			return nil, fmt.Errorf("hash weights %s have rbit %d, the experiment uses %d", path, w.Rbit, rbit)
		}
		return w, nil
	}
	cache := filepath.Join(e.dir, file)
	if w, err := tensorio.ReadHashWeights(cache); err == nil {
		if w.Rbit != rbit {
			return nil, fmt.Errorf("%s has rbit %d, want %d: remove it to retrain", cache, w.Rbit, rbit)
		}
		return w, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cached hash weights: %w (remove the file to retrain)", err)
	}
	t, err := s.in.trainingSet()
	if err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	fmt.Fprintf(e.stderr, "%s: training %d-bit hash weights (%d KV heads, %d steps) ...\n", filepath.Base(e.dir), rbit, t.shape.Hkv, s.hash.Steps)
	w, err := trainWeights(ctx, t, s.hash, rbit, s.hash.Steps, nil)
	if err != nil {
		return nil, err
	}
	if err := e.makeDir(); err != nil {
		return nil, err
	}
	if err := tensorio.WriteNPYFloat32(cache, []int{w.Hkv, w.D, w.Rbit}, w.W); err != nil {
		return nil, err
	}
	return w, nil
}

// hashPairs is the tensor of labelled pairs that training the hash draws
// from a sequence of hq query heads and n tokens at positions query
// positions: 16 bytes each.
func hashPairs(hq, n factor, positions int) tensor {
	return tensor{"hash training's pairs [Hq][hash.positions][N] of 16 bytes", 128,
		[]factor{hq, {"hash.positions", positions, 8}, n}}
}

// trainWeights trains a layer's weights on t: per KV head, ref.Samples draws
// h.Positions query positions (rng seeded by h.Seed and the head), and
// ref.TrainLayer runs steps SGD steps. progress receives the loss terms at
// each step, averaged over the KV heads, once every head has reached it. The
// run stops at the next step (with ctx's error) once ctx is cancelled.
func trainWeights(ctx context.Context, t *trainSet, h HashSource, rbit, steps int, progress func(step int, terms ref.LossTerms)) (*ref.HashWeights, error) {
	if err := hashPairs(factor{"Hq", t.shape.Hq, 32}, factor{"N", t.shape.N, 4096}, h.Positions).check(); err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	sets := make([]*ref.TrainPairs, t.shape.Hkv)
	for g := range sets {
		rng := rand.New(rand.NewPCG(h.Seed, uint64(g)))
		p, err := ref.Samples(t.q, t.k, t.shape, g, h.Positions, rng)
		if err != nil {
			return nil, fmt.Errorf("training pairs of KV head %d: %w", g, err)
		}
		sets[g] = p
	}
	sums := make([]ref.LossTerms, steps+1)
	var cancelled error
	cb := func(head, step int, lt ref.LossTerms) {
		if step == 0 && cancelled == nil {
			cancelled = ctx.Err()
		}
		if step < len(sums) {
			sums[step].Similarity += lt.Similarity
			sums[step].Balance += lt.Balance
			sums[step].Decorrelation += lt.Decorrelation
			sums[step].Total += lt.Total
		}
	}
	cfg := h.trainConfig(steps)
	cfg.Stop = func() bool { return ctx.Err() != nil }
	w, err := ref.TrainLayer(sets, rbit, cfg, cb)
	if errors.Is(err, ref.ErrStopped) {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if cancelled != nil {
		return nil, cancelled
	}
	if progress != nil {
		n := float64(len(sets))
		for i, s := range sums {
			progress(i, ref.LossTerms{Similarity: s.Similarity / n, Balance: s.Balance / n,
				Decorrelation: s.Decorrelation / n, Total: s.Total / n})
		}
	}
	return w, nil
}
