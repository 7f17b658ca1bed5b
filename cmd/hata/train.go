package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hata-go/hata/experiments"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
	"github.com/hata-go/hata/vk"
)

func init() {
	commands["train"] = command{"learn hash weights from attention traces", runTrain}
}

// runTrain implements hata train: for every layer of the traces, sample
// labelled (q, k) pairs from every prompt, fit one W per KV head, and write
// OUT/hash_weight_layer_LL.npy [Hkv,D,Rbit] float32. Every input is checked
// before training, and the files are written only once every layer is
// trained, all or none (an interrupted run writes nothing).
func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata train", flag.ContinueOnError)
	out := fs.String("out", "", "output directory for hash_weight_layer_LL.npy (required)")
	layersFlag := fs.String("layers", "all", "layers to train: all, or a comma list such as 2,3,16")
	rbit := fs.Int("rbit", ref.DefaultRbit, "hash bits, a multiple of 32")
	positions := fs.Int("positions", 8, "query positions sampled per prompt (HATA.md: m uniform in [N/2, N))")
	cfg := ref.DefaultTrainConfig()
	fs.IntVar(&cfg.Steps, "steps", cfg.Steps, "full-batch SGD steps")
	fs.Float64Var(&cfg.LR, "lr", cfg.LR, "learning rate")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the pair sampling and of W's N(0,1) initialisation")
	usageLine(fs, stderr, "usage: hata train -out DIR [flags] TRACE_DIR...")
	dirs, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(dirs) == 0:
		return usagef("no trace directories given (layer_LL_{q,k,v}.npy, see README)")
	case *out == "":
		return usagef("-out is required")
	case *rbit < 32 || *rbit%32 != 0 || *rbit > vk.MaxTuningRbit:
		return usagef("-rbit %d: want a multiple of 32 in [32, %d]", *rbit, vk.MaxTuningRbit)
	case *positions < 1 || *positions > experiments.MaxHashPositions || cfg.Steps < 1:
		return usagef("-positions %d, -steps %d: want -positions in [1, %d] and -steps >= 1", *positions, cfg.Steps, experiments.MaxHashPositions)
	case !(cfg.LR > 0) || math.IsInf(cfg.LR, 0):
		return usagef("-lr %v: want a finite learning rate > 0", cfg.LR)
	}
	traces := make([]*tensorio.Trace, len(dirs))
	for i, d := range dirs {
		if traces[i], err = tensorio.ReadTrace(d); err != nil {
			return err
		}
	}
	layers, err := pickLayers(*layersFlag, traces)
	if err != nil {
		return err
	}
	paths := make([]string, len(layers))
	for i, l := range layers {
		paths[i] = filepath.Join(*out, fmt.Sprintf("hash_weight_layer_%02d.npy", l))
	}
	if err := checkTrainOut(*out, paths); err != nil {
		return err
	}
	for _, l := range layers { // every tensor read and checked before hours of training
		if err := checkLayer(l, traces); err != nil {
			return err
		}
	}
	ctx, stop := interruptible()
	defer stop()
	cfg.Stop = func() bool { return ctx.Err() != nil }
	ws := make([]*ref.HashWeights, len(layers))
	for i, l := range layers {
		if ws[i], err = trainLayer(l, traces, *rbit, *positions, cfg, stderr); err != nil {
			if errors.Is(err, ref.ErrStopped) {
				return fmt.Errorf("layer %d: %w: nothing written to %s", l, err, *out)
			}
			return err
		}
	}
	undo, err := makeDirs(*out)
	if err != nil {
		return fmt.Errorf("-out %s: %w", *out, err)
	}
	var st staged
	for i, w := range ws {
		if err = st.float32(paths[i], []int{w.Hkv, w.D, w.Rbit}, w.W); err != nil {
			break
		}
	}
	if err == nil {
		err = st.commit()
	}
	if err != nil {
		st.abort()
		undo()
		return err
	}
	for i, w := range ws {
		fmt.Fprintf(stdout, "%s [%d %d %d]\n", paths[i], w.Hkv, w.D, w.Rbit)
	}
	return nil
}

// checkTrainOut checks, before any training, that the weight files can be
// written: out is a directory or does not exist yet, no file of paths (in
// out) is a directory, and out (or the directory it will be made in) can be
// written.
func checkTrainOut(out string, paths []string) error {
	info, err := os.Stat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return checkWritable("-out", out, out) // before the training, which can take hours
	case err != nil:
		return fmt.Errorf("-out %s: %w", out, err)
	case !info.IsDir():
		return usagef("-out %s: exists and is not a directory", out)
	}
	for _, p := range paths {
		if err := checkDestination("-out", p); err != nil {
			return err
		}
	}
	return checkWritable("-out", out, out)
}

// makeDirs makes dir and any missing parents, like os.MkdirAll, and returns
// a function that removes the directories it made, if they are still empty.
func makeDirs(dir string) (undo func(), err error) {
	var made []string // innermost first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		made = append(made, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	undo = func() {
		for _, d := range made {
			os.Remove(d)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

// pickLayers resolves -layers against the layers every trace holds.
func pickLayers(spec string, traces []*tensorio.Trace) ([]int, error) {
	var want []int
	if spec == "all" {
		want = traces[0].Layers
	} else {
		for _, f := range strings.Split(spec, ",") {
			l, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || l < 0 {
				return nil, usagef("-layers %q: %q is not a layer number", spec, f)
			}
			if !slices.Contains(want, l) { // -layers 2,2 trains layer 2 once
				want = append(want, l)
			}
		}
	}
	for _, l := range want {
		for _, t := range traces {
			if !slices.Contains(t.Layers, l) {
				return nil, fmt.Errorf("trace %s has no layer %d (it has %v)", t.Dir, l, t.Layers)
			}
		}
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("trace %s holds no layers", traces[0].Dir)
	}
	return want, nil
}

// checkLayer loads layer l of every trace, one at a time, which checks its
// tensors, and checks that every trace has the first one's heads and head
// dimension.
func checkLayer(l int, traces []*tensorio.Trace) error {
	var first *tensorio.LayerTrace
	for _, t := range traces {
		lt, err := t.Layer(l)
		if err != nil {
			return err
		}
		if first == nil {
			first = lt
		} else if err := sameHeads(l, t, lt, first); err != nil {
			return err
		}
	}
	return nil
}

// sameHeads reports, as an error naming trace t, whether its layer l (lt) has
// other heads or another head dimension than the first trace's (first).
func sameHeads(l int, t *tensorio.Trace, lt, first *tensorio.LayerTrace) error {
	if lt.Hq != first.Hq || lt.Hkv != first.Hkv || lt.D != first.D {
		return fmt.Errorf("trace %s layer %d has Hq=%d Hkv=%d D=%d, but the first trace has Hq=%d Hkv=%d D=%d",
			t.Dir, l, lt.Hq, lt.Hkv, lt.D, first.Hq, first.Hkv, first.D)
	}
	return nil
}

// trainLayer pools the pairs of every prompt for each KV head of layer l and
// trains the layer's W, reporting progress on stderr.
func trainLayer(l int, traces []*tensorio.Trace, rbit, positions int, cfg ref.TrainConfig, stderr io.Writer) (*ref.HashWeights, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(l)))
	var sets []*ref.TrainPairs // sets: [Hkv]
	var first *tensorio.LayerTrace
	for _, t := range traces {
		lt, err := t.Layer(l)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = lt
			sets = make([]*ref.TrainPairs, lt.Hkv)
		} else if err := sameHeads(l, t, lt, first); err != nil {
			return nil, err
		}
		s := ref.Shape{B: 1, Hq: lt.Hq, Hkv: lt.Hkv, N: lt.N, D: lt.D}
		for h := range lt.Hkv {
			p, err := ref.Samples(lt.Q, lt.K, s, h, positions, rng)
			if err != nil {
				return nil, fmt.Errorf("trace %s layer %d: %w", t.Dir, l, err)
			}
			if sets[h] == nil {
				sets[h] = p
			} else if err := sets[h].Append(p); err != nil {
				return nil, err
			}
		}
	}
	start := time.Now()
	last := time.Time{}
	return ref.TrainLayer(sets, rbit, cfg, func(head, step int, t ref.LossTerms) {
		if time.Since(last) < 2*time.Second && step != cfg.Steps {
			return
		}
		last = time.Now()
		fmt.Fprintf(stderr, "layer %d head %d/%d step %d/%d loss %.5g (similarity %.4g balance %.4g decorrelation %.4g) %s\n",
			l, head+1, len(sets), step, cfg.Steps, t.Total, t.Similarity, t.Balance, t.Decorrelation, time.Since(start).Round(time.Second))
	})
}
