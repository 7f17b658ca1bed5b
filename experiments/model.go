package experiments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hata-go/hata/model"
	"github.com/hata-go/hata/ref"
)

// The model kinds run the project's small trained model (package model,
// weights/) with the attention of its sparse layers built by the worker's
// backend: niah (the paper's Fig. 6), perplexity (the stand-in for its
// Tables 1-2), throughput (decode tokens/s of the whole model), and
// model_budget / model_rbit (Figs. 7 and 8 on the model's own traces).
// This file holds what they share: the [model] and [hash] tables, the loaded
// model, its hash weights and Loki bases, and the check that a resumed run
// still reads the same checkpoint and texts.

// ModelFiles are the files a model kind reads. Paths are relative to the
// working directory (the repository root for the shipped configs).
type ModelFiles struct {
	// Dir is the checkpoint directory (config.json and safetensors). Default
	// "weights". Dropping a better checkpoint there and re-running a config
	// under a new name (or after removing its results) is all it takes.
	Dir string `toml:"dir" json:"dir"`
	// Heldout is the held-out text: the NIAH haystack, the perplexity text
	// and the evaluation prompts. Default "train/heldout.txt".
	Heldout string `toml:"heldout" json:"heldout"`
	// TrainText is the training text that hash training and Loki's
	// calibration read, never the held-out text. Default ".data/train.txt"
	// (git-ignored; train/prepare_data.sh builds it). Read only when needed.
	TrainText string `toml:"train_text" json:"train_text"`
}

// ModelSource is the [model] table of niah, perplexity and throughput.
type ModelSource struct {
	ModelFiles
	// DenseLayers is the number of leading layers that stay dense at decode.
	// Default 2 (the paper's, as in Quest); 0 makes every layer sparse.
	DenseLayers int `toml:"dense_layers" json:"dense_layers"`
	// TrainWindows windows of TrainTokens tokens (BOS included), evenly
	// spaced over the training text, train the hash (when hash.dir is empty)
	// and calibrate Loki (options.loki_basis = "calibration"). Default 4 and
	// 1024, the setting weights/hash/ was trained with.
	TrainWindows int `toml:"train_windows" json:"train_windows"`
	TrainTokens  int `toml:"train_tokens" json:"train_tokens"`
}

func defaultModelFiles() ModelFiles {
	return ModelFiles{Dir: "weights", Heldout: "train/heldout.txt", TrainText: ".data/train.txt"}
}

func defaultModelSource() ModelSource {
	return ModelSource{ModelFiles: defaultModelFiles(), DenseLayers: model.PaperDenseLayers, TrainWindows: 4, TrainTokens: 1024}
}

// validate checks the file keys (the files themselves are read at run time,
// relative to the working directory).
func (f ModelFiles) validate() error {
	switch {
	case f.Dir == "":
		return badKey("model.dir", "empty, want the checkpoint directory")
	case f.Heldout == "":
		return badKey("model.heldout", "empty, want the held-out text")
	case f.TrainText == "":
		return badKey("model.train_text", "empty, want the training text")
	case f.TrainText == f.Heldout:
		return badKey("model.train_text", "%q is the held-out text: hash training and calibration must not see it", f.TrainText)
	}
	return nil
}

func (s ModelSource) validate() error {
	if err := s.ModelFiles.validate(); err != nil {
		return err
	}
	switch {
	case s.DenseLayers < 0:
		return badKey("model.dense_layers", "%d, want >= 0", s.DenseLayers)
	case s.TrainWindows < 1 || s.TrainWindows > 1000:
		return badKey("model.train_windows", "%d, want in [1, 1000]", s.TrainWindows)
	case s.TrainTokens < 16 || s.TrainTokens > maxModelTokens:
		return badKey("model.train_tokens", "%d, want in [16, %d]", s.TrainTokens, maxModelTokens)
	}
	return nil
}

// maxModelTokens is the longest sequence a model kind may prefill or decode
// (contexts, trace.tokens, length, prompt_bytes, model.train_tokens): 1M
// tokens, 256 times the small model's trained context. The model's own
// dimensions are only known once its checkpoint is read, when the run
// starts; at 1M tokens the small model's largest prefill tensor (its MLP's
// activations) takes 6 GiB.
const maxModelTokens = 1 << 20

// maxDecodeTokens is the most tokens a model kind may decode one step at a
// time after a prompt (tokens, warmup).
const maxDecodeTokens = 100000

// checkHashTraining checks, when hata's weights are trained here (hash.dir
// empty), the size of one KV head's training pairs: at least
// model.train_windows × hash.positions × model.train_tokens pairs of 16
// bytes (times the model's query heads per KV head, which the checkpoint
// says).
func (s ModelSource) checkHashTraining(h ModelHash) error {
	if h.Dir != "" {
		return nil
	}
	return tensor{"hash training's pairs of one KV head [windows][positions][tokens] of 16 bytes (at least)", 128, []factor{
		{"model.train_windows", s.TrainWindows, 4}, {"hash.positions", h.Positions, 8}, {"model.train_tokens", s.TrainTokens, 1024}}}.check()
}

// denseLayers is DenseLayers in model.DecodeConfig's convention (0 there
// means the paper's 2, a negative value none).
func (s ModelSource) denseLayers() int {
	if s.DenseLayers == 0 {
		return -1
	}
	return s.DenseLayers
}

// ModelHash is the [hash] table of niah, perplexity and throughput: where
// hata's per-layer hash weights come from. Their width is options.rbit, the
// width of lsh's random projections too, so trained and random hashing are
// compared at equal bits.
type ModelHash struct {
	// Dir holds hash_weight_layer_LL.npy (or .pt) for every sparse layer.
	// Default "weights/hash" (trained on training text by train/evalcpu).
	// Empty: train them here, on model.train_windows windows of the training
	// text, with the keys below, and cache them in <results>/hash/ so that a
	// resumed run does not retrain.
	Dir string `toml:"dir" json:"dir"`
	// Positions are the query positions drawn per KV head and window.
	// Default 8.
	Positions int `toml:"positions" json:"positions"`
	// Steps and LR are the SGD steps and learning rate. Default 300 and 0.1
	// (HATA.md); the other hyperparameters are ref.DefaultTrainConfig's.
	Steps int     `toml:"steps" json:"steps"`
	LR    float64 `toml:"lr" json:"lr"`
	// Seed draws the positions and the initial W. Default 1.
	Seed uint64 `toml:"seed" json:"seed"`
}

func defaultModelHash() ModelHash {
	d := ref.DefaultTrainConfig()
	return ModelHash{Dir: "weights/hash", Positions: 8, Steps: d.Steps, LR: d.LR, Seed: 1}
}

func (h ModelHash) validate() error {
	return HashSource{Positions: h.Positions, Steps: h.Steps, LR: h.LR}.validate()
}

// modelState is the shared state of a niah, perplexity or throughput run:
// the model and held-out text, loaded once, the hash weights and Loki bases,
// built once, and the dense prefills throughput reuses across methods.
type modelState struct {
	src     ModelSource
	hash    ModelHash
	opts    MethodOptions
	methods []string

	loadOnce sync.Once
	m        *model.Model
	heldout  []byte
	loadErr  error

	hashOnce sync.Once
	ws       map[int]*ref.HashWeights
	hashErr  error

	lokiOnce sync.Once
	loki     map[int][]float64 // per layer: [Hkv][D][D]
	lokiErr  error

	mu       sync.Mutex
	prefills map[int]*prefillCell // throughput: by context length
}

type prefillCell struct {
	once    sync.Once
	pre     *model.Prefilled
	seconds float64
	err     error
}

// modelStateOf returns the run's modelState, made on first use.
func modelStateOf(e *env, src ModelSource, hash ModelHash, opts MethodOptions, methods []string) *modelState {
	return e.state(func() any {
		return &modelState{src: src, hash: hash, opts: opts, methods: methods, prefills: map[int]*prefillCell{}}
	}).(*modelState)
}

// needsTrainText reports whether the run reads the training text: to train
// hata's hash or to calibrate Loki.
func (s *modelState) needsTrainText() bool {
	return readsTrainText(s.methods, s.hash.Dir != "", s.opts)
}

// readsTrainText reports whether a model kind running methods reads the
// training text: hata without weights given (haveWeights) trains its hash on
// it, and Loki with loki_basis = "calibration" fits its basis on it.
func readsTrainText(methods []string, haveWeights bool, opts MethodOptions) bool {
	return slices.Contains(methods, "hata") && !haveWeights ||
		slices.Contains(methods, "loki") && opts.LokiBasis == "calibration"
}

// fileReader is implemented by the model kinds: the files their points read
// (the checkpoint, the held-out text, and the training text where train is
// set), which RunContext checks before any point runs.
type fileReader interface {
	readsFiles() (f ModelFiles, train bool)
}

// check returns an error naming the first of the files a model kind reads
// (the training text only where train is set) that cannot be opened, and
// what makes it: every point would fail on it.
func (f ModelFiles) check(train bool) error {
	files := []struct{ key, path, hint string }{
		{"model.dir", filepath.Join(f.Dir, "config.json"), "the checkpoint: weights/ in the repository, or train/train.py's output"},
		{"model.heldout", f.Heldout, "the held-out text: train/heldout.txt in the repository"},
	}
	if train {
		files = append(files, struct{ key, path, hint string }{"model.train_text", f.TrainText,
			"the training text: `make data` builds it with train/prepare_data.sh; hata with trained weights (hash.dir or hash.weights) and loki_basis = \"prefill\" do not read it"})
	}
	for _, x := range files {
		if _, err := os.Stat(x.path); err != nil {
			return fmt.Errorf("%s: %w (%s)", x.key, err, x.hint)
		}
	}
	return nil
}

// load reads the model and the held-out text, once, after checking that a
// resumed run reads the same files as the run that started the directory.
func (s *modelState) load(e *env) (*model.Model, []byte, error) {
	s.loadOnce.Do(func() {
		files := []string{s.src.Heldout}
		if s.hash.Dir != "" && slices.Contains(s.methods, "hata") {
			files = append(files, hashFiles(s.hash.Dir)...)
		}
		if s.needsTrainText() {
			files = append(files, s.src.TrainText)
		}
		if s.loadErr = checkInputs(e, s.src.Dir, files); s.loadErr != nil {
			return
		}
		if s.m, s.loadErr = model.Load(s.src.Dir); s.loadErr != nil {
			return
		}
		if s.src.DenseLayers > s.m.Config.NLayers {
			s.loadErr = fmt.Errorf("model.dense_layers = %d, the model has %d layers", s.src.DenseLayers, s.m.Config.NLayers)
			return
		}
		s.heldout, s.loadErr = os.ReadFile(s.src.Heldout)
	})
	return s.m, s.heldout, s.loadErr
}

// sparseLayers returns the layers whose attention the methods replace.
func (s *modelState) sparseLayers() []int {
	var ls []int
	for l := s.src.DenseLayers; l < s.m.Config.NLayers; l++ {
		ls = append(ls, l)
	}
	return ls
}

// trainWindows returns the training sequences: TrainWindows windows of
// TrainTokens tokens (BOS, then bytes) evenly spaced over the training text.
func (s *modelState) trainWindows() ([][]int, error) {
	text, err := os.ReadFile(s.src.TrainText)
	if err != nil {
		return nil, fmt.Errorf("training text: %w (train/prepare_data.sh builds .data/train.txt)", err)
	}
	n, length := s.src.TrainWindows, s.src.TrainTokens
	if len(text) < length-1 {
		return nil, fmt.Errorf("training text %s: %d bytes, a window needs %d", s.src.TrainText, len(text), length-1)
	}
	seqs := make([][]int, n)
	for i := range seqs {
		off := (2*i + 1) * (len(text) - (length - 1)) / (2 * n)
		seqs[i] = append([]int{s.m.Config.BOSTokenID}, model.EncodeBytes(text[off:off+length-1])...)
	}
	return seqs, nil
}

// hashWeights returns hata's weights per sparse layer: read from hash.dir,
// or read back from <results>/hash/, or trained on the training text and
// cached there.
func (s *modelState) hashWeights(ctx context.Context, e *env) (map[int]*ref.HashWeights, error) {
	s.hashOnce.Do(func() { s.ws, s.hashErr = s.loadOrTrainHash(ctx, e) })
	return s.ws, s.hashErr
}

func (s *modelState) loadOrTrainHash(ctx context.Context, e *env) (map[int]*ref.HashWeights, error) {
	check := func(dir string, ws map[int]*ref.HashWeights) error {
		for _, l := range s.sparseLayers() {
			w, ok := ws[l]
			if !ok {
				return fmt.Errorf("hash weights %s: no hash_weight_layer_%02d for sparse layer %d", dir, l, l)
			}
			if w.Rbit != s.opts.Rbit {
				return fmt.Errorf("hash weights %s: layer %d has rbit %d, options.rbit is %d (lsh's width; set it to match)", dir, l, w.Rbit, s.opts.Rbit)
			}
		}
		return nil
	}
	if s.hash.Dir != "" {
		ws, err := s.m.LoadHashWeights(s.hash.Dir)
		if err != nil {
			return nil, err
		}
		return ws, check(s.hash.Dir, ws)
	}
	cache := filepath.Join(e.dir, "hash")
	if _, err := os.Stat(cache); err == nil {
		ws, err := s.m.LoadHashWeights(cache)
		if err != nil {
			return nil, fmt.Errorf("cached hash weights: %w (remove %s to retrain)", err, cache)
		}
		return ws, check(cache, ws)
	}
	seqs, err := s.trainWindows()
	if err != nil {
		return nil, err
	}
	layers := s.sparseLayers()
	fmt.Fprintf(e.stderr, "%s: training %d-bit hash weights for layers %v on %d windows of %s (%d steps) ...\n",
		filepath.Base(e.dir), s.opts.Rbit, layers, len(seqs), s.src.TrainText, s.hash.Steps)
	cfg := ref.DefaultTrainConfig()
	cfg.Steps, cfg.LR, cfg.Seed = s.hash.Steps, s.hash.LR, s.hash.Seed
	cfg.Stop = func() bool { return ctx.Err() != nil }
	ws, err := s.m.TrainHash(seqs, layers, model.HashTraining{Rbit: s.opts.Rbit, Positions: s.hash.Positions, Seed: s.hash.Seed, Config: cfg})
	if errors.Is(err, ref.ErrStopped) {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	// Written into a temporary directory renamed into place, so an
	// interrupted run leaves the cache whole or absent.
	if err := e.makeDir(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(e.dir, tempPrefix+"hash-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := model.SaveHashWeights(tmp, ws); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, cache); err != nil {
		return nil, err
	}
	return ws, nil
}

// lokiBases returns Loki's PCA basis per sparse layer, fitted on the pre-RoPE
// keys of the training windows (the Loki paper's offline calibration).
func (s *modelState) lokiBases(e *env) (map[int][]float64, error) {
	s.lokiOnce.Do(func() {
		seqs, err := s.trainWindows()
		if err != nil {
			s.lokiErr = err
			return
		}
		layers := s.sparseLayers()
		fmt.Fprintf(e.stderr, "%s: calibrating Loki on %d windows of %s ...\n", filepath.Base(e.dir), len(seqs), s.src.TrainText)
		c := s.m.Config
		keys := map[int][]float32{} // per layer: [B=windows][Hkv][N][D], pre-RoPE
		for _, seq := range seqs {
			tr, err := s.m.Traces(seq, layers)
			if err != nil {
				s.lokiErr = err
				return
			}
			for _, l := range layers {
				keys[l] = append(keys[l], tr[l].KPre...)
			}
		}
		s.loki = map[int][]float64{}
		for _, l := range layers {
			kv, err := ref.NewKV(len(seqs), c.NKVHeads, len(seqs[0]), c.HeadDim, keys[l], make([]float32, len(keys[l])))
			if err != nil {
				s.lokiErr = err
				return
			}
			if s.loki[l], err = ref.FitLokiBasis(kv); err != nil {
				s.lokiErr = fmt.Errorf("loki calibration, layer %d: %w", l, err)
				return
			}
		}
	})
	return s.loki, s.lokiErr
}

// factory returns the per-layer Factory of method name on the worker's
// backend (model.MethodFactory over Backend.NewMethod), with hata's weights
// and Loki's calibrated bases when the method needs them. Methods it builds
// are registered with tr, which closes them.
func (s *modelState) factory(ctx context.Context, e *env, w *worker, name string, tr *tracker) (model.Factory, error) {
	o := s.opts.refOptions(nil, nil)
	var ws map[int]*ref.HashWeights
	switch {
	case name == "hata":
		var err error
		if ws, err = s.hashWeights(ctx, e); err != nil {
			return nil, err
		}
	case name == "loki" && s.opts.LokiBasis == "calibration":
		bases, err := s.lokiBases(e)
		if err != nil {
			return nil, err
		}
		return tr.track(func(layer int) (ref.Method, error) {
			lo := o
			lo.LokiBasis = bases[layer]
			return s.m.MethodFactory(w.backend.NewMethod, name, lo, nil)(layer)
		}), nil
	}
	return tr.track(s.m.MethodFactory(w.backend.NewMethod, name, o, ws)), nil
}

// specs returns the MethodSpecs of names: model.Dense (the reference, dense
// attention of package model in every layer) for "dense", a backend Factory
// for the others.
func (s *modelState) specs(ctx context.Context, e *env, w *worker, names []string, tr *tracker) ([]model.MethodSpec, error) {
	var out []model.MethodSpec
	for _, n := range names {
		if n == "dense" {
			out = append(out, model.Dense)
			continue
		}
		f, err := s.factory(ctx, e, w, n, tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, model.MethodSpec{Name: n, Factory: f})
	}
	return out, nil
}

// tracker closes the methods a point builds. The model's runners decode one
// session at a time, and a session builds its layers in order, so when a
// Factory is asked for the first sparse layer the methods of the previous
// session are done: they are closed then (a GPU method frees its buffers),
// and the rest when the point ends.
type tracker struct {
	first int // the first sparse layer
	open  []ref.Method
}

func newTracker(firstSparse int) *tracker { return &tracker{first: firstSparse} }

// track wraps f so that its methods are closed by the tracker.
func (t *tracker) track(f model.Factory) model.Factory {
	return func(layer int) (ref.Method, error) {
		if layer <= t.first {
			t.close()
		}
		m, err := f(layer)
		if err == nil {
			t.open = append(t.open, m)
		}
		return m, err
	}
}

// close closes every open method that holds resources.
func (t *tracker) close() {
	for _, m := range t.open {
		closeMethod(m)
	}
	t.open = t.open[:0]
}

// hashFiles lists the hash weight files of dir (none when it cannot be read:
// loading them reports the error).
func hashFiles(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "hash_weight_layer_*"))
	return files
}

// inputsFile records the SHA-256 of every file a model run read.
const inputsFile = "inputs.json"

// checkInputs guards a model run's results against a changed checkpoint or
// text: on the first run it records the SHA-256 of the checkpoint's files
// (config.json and *.safetensors of modelDir) and of files in
// <dir>/inputs.json (e's results directory); a later run (a resume) whose
// files hash differently is refused, since its points would mix two models.
// The config's identity cannot see this: the paths stay the same when a
// better checkpoint is dropped in.
func checkInputs(e *env, modelDir string, files []string) error {
	dir := e.dir
	shards, err := filepath.Glob(filepath.Join(modelDir, "*.safetensors"))
	if err != nil {
		return err
	}
	all := append([]string{filepath.Join(modelDir, "config.json")}, shards...)
	all = append(all, files...)
	sums := map[string]string{}
	for _, f := range all {
		sum, err := sha256File(f)
		if err != nil {
			return fmt.Errorf("model input: %w", err)
		}
		sums[filepath.ToSlash(f)] = sum
	}
	_, was, err := readInputsFile(dir)
	var notRead *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist): // the first run
		b, err := json.MarshalIndent(sums, "", "  ")
		if err != nil {
			return err
		}
		if err := e.makeDir(); err != nil {
			return err
		}
		return writeFileAtomic(filepath.Join(dir, inputsFile), append(b, '\n'))
	case errors.As(err, &notRead):
		return err
	case err != nil: // read, but it does not parse
		return fmt.Errorf("%w (remove it to accept the current files)", err)
	}
	var diff []string
	for f, sum := range sums {
		if w, ok := was[f]; !ok || w != sum {
			diff = append(diff, f)
		}
	}
	for f := range was {
		if _, ok := sums[f]; !ok {
			diff = append(diff, f)
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		return fmt.Errorf("%s was computed from other files than these (%s changed): its points would mix two models or texts; "+
			"give this run another name (-set name=...) or remove %s", dir, strings.Join(diff, ", "), dir)
	}
	return nil
}

// readInputsFile reads dir's inputs.json (checkInputs' record: file ->
// SHA-256), returning its bytes as written and the sums. A directory without
// one gives an error wrapping fs.ErrNotExist; the file's read errors are
// os.ReadFile's (*fs.PathError), and one that does not parse is an error
// naming the file.
func readInputsFile(dir string) (raw []byte, sums map[string]string, err error) {
	path := filepath.Join(dir, inputsFile)
	if raw, err = os.ReadFile(path); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(raw, &sums); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, sums, nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// validateRatios checks budgets that are ratios of the cache in (0, 1] (the
// model's cache grows as it decodes, so an absolute k would mean a different
// fraction at every step).
func validateRatios(key string, budgets []float64) error {
	if err := validateBudgets(key, budgets); err != nil {
		return err
	}
	for _, b := range budgets {
		if b > 1 {
			return badKey(key, "%v: the model kinds take ratios of the cache in (0, 1]", b)
		}
	}
	return nil
}

// mix64 is SplitMix64's finaliser: a seed derived from a point's parameters,
// so that a cell draws the same prompts whatever the rest of the grid is.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
