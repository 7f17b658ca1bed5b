package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

func init() {
	commands["train"] = command{"learn hash weights from attention traces", runTrain}
}

// runTrain implements hata train: for every layer of the traces, sample
// labelled (q, k) pairs from every prompt, fit one W per KV head, and write
// OUT/hash_weight_layer_LL.npy [Hkv,D,Rbit] float32.
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hata train -out DIR [flags] TRACE_DIR...")
		fs.PrintDefaults()
	}
	dirs, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(dirs) == 0:
		return usagef("no trace directories given (layer_LL_{q,k,v}.npy, see README)")
	case *out == "":
		return usagef("-out is required")
	case *rbit < 32 || *rbit%32 != 0:
		return usagef("-rbit %d: want a positive multiple of 32", *rbit)
	case *positions < 1 || cfg.Steps < 1:
		return usagef("-positions and -steps must be >= 1")
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
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Stop = func() bool { return ctx.Err() != nil } // layers already written stay
	for _, l := range layers {
		w, err := trainLayer(l, traces, *rbit, *positions, cfg, stderr)
		if err != nil {
			return err
		}
		path := filepath.Join(*out, fmt.Sprintf("hash_weight_layer_%02d.npy", l))
		if err := tensorio.WriteNPYFloat32(path, []int{w.Hkv, w.D, w.Rbit}, w.W); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s [%d %d %d]\n", path, w.Hkv, w.D, w.Rbit)
	}
	return nil
}

// pickLayers resolves -layers against the layers every trace holds.
func pickLayers(spec string, traces []*tensorio.Trace) ([]int, error) {
	has := func(t *tensorio.Trace, l int) bool {
		for _, x := range t.Layers {
			if x == l {
				return true
			}
		}
		return false
	}
	var want []int
	if spec == "all" {
		want = traces[0].Layers
	} else {
		for _, f := range strings.Split(spec, ",") {
			l, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || l < 0 {
				return nil, usagef("-layers %q: %q is not a layer number", spec, f)
			}
			want = append(want, l)
		}
	}
	for _, l := range want {
		for _, t := range traces {
			if !has(t, l) {
				return nil, fmt.Errorf("trace %s has no layer %d (it has %v)", t.Dir, l, t.Layers)
			}
		}
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("trace %s holds no layers", traces[0].Dir)
	}
	return want, nil
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
		} else if lt.Hq != first.Hq || lt.Hkv != first.Hkv || lt.D != first.D {
			return nil, fmt.Errorf("trace %s layer %d has Hq=%d Hkv=%d D=%d, but the first trace has Hq=%d Hkv=%d D=%d",
				t.Dir, l, lt.Hq, lt.Hkv, lt.D, first.Hq, first.Hkv, first.D)
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
