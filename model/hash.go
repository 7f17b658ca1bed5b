package model

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

// HashTraining configures TrainHash.
type HashTraining struct {
	Rbit      int             // hash bits; default 128
	Positions int             // query positions drawn per KV head per sequence; default 8
	Seed      uint64          // seed of the positions (and of W's initialisation via Config.Seed)
	Config    ref.TrainConfig // zero value: ref.DefaultTrainConfig()
	// AnswerSeqs are further sequences (token ids, BOS first) that end in
	// an answer of AnswerLen tokens found earlier in them, such as a pass
	// key asked for at the end: their samples are the AnswerLen query
	// positions that predict the answer's tokens (N-1-AnswerLen .. N-2),
	// where the model retrieves, instead of Positions random ones.
	AnswerSeqs [][]int
	AnswerLen  int
}

// TrainHash learns HATA's hash weights for each layer in layers from the
// prefill traces of the training sequences seqs (token ids, BOS first): per
// layer and KV head, ref.Samples draws o.Positions query positions of every
// sequence and labels their keys by the true post-RoPE scores, the pairs of
// all sequences are pooled, and ref.TrainLayer fits W: [Hkv][D][Rbit]. The
// sequences should come from training text, never from the held-out text the
// evaluations use.
func (m *Model) TrainHash(seqs [][]int, layers []int, o HashTraining) (map[int]*ref.HashWeights, error) {
	c := m.Config
	if o.Rbit == 0 {
		o.Rbit = ref.DefaultRbit
	}
	if o.Positions == 0 {
		o.Positions = 8
	}
	if o.Config.Steps == 0 && o.Config.LR == 0 { // the zero value: the defaults
		o.Config = ref.DefaultTrainConfig()
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("train hash: no training sequences")
	}
	if len(o.AnswerSeqs) > 0 && o.AnswerLen < 1 {
		return nil, fmt.Errorf("train hash: %d answer sequences with AnswerLen %d, want >= 1", len(o.AnswerSeqs), o.AnswerLen)
	}
	sets := map[int][]*ref.TrainPairs{} // per layer, per KV head
	all := append(slices.Clone(seqs), o.AnswerSeqs...)
	for si, toks := range all {
		answer := si >= len(seqs)
		if answer && len(toks) < o.AnswerLen+2 {
			return nil, fmt.Errorf("train hash: answer sequence %d: %d tokens, want more than the answer's %d + 1", si-len(seqs), len(toks), o.AnswerLen)
		}
		tr, err := m.Traces(toks, layers)
		if err != nil {
			return nil, fmt.Errorf("train hash: sequence %d: %w", si, err)
		}
		for _, l := range sortedLayers(tr) {
			t := tr[l]
			if sets[l] == nil {
				sets[l] = make([]*ref.TrainPairs, c.NKVHeads)
			}
			shape := ref.Shape{B: 1, Hq: t.Hq, Hkv: t.Hkv, N: t.N, D: t.D}
			for g := range c.NKVHeads {
				var p *ref.TrainPairs
				var err error
				if answer {
					ms := make([]int, o.AnswerLen)
					for i := range ms {
						ms[i] = t.N - 1 - o.AnswerLen + i
					}
					p, err = ref.SamplesAt(t.Q, t.K, shape, g, ms)
				} else {
					rng := rand.New(rand.NewPCG(o.Seed, uint64(l)<<32|uint64(si)<<8|uint64(g)))
					p, err = ref.Samples(t.Q, t.K, shape, g, o.Positions, rng)
				}
				if err != nil {
					return nil, fmt.Errorf("train hash: layer %d KV head %d: %w", l, g, err)
				}
				if sets[l][g] == nil {
					sets[l][g] = p
				} else if err := sets[l][g].Append(p); err != nil {
					return nil, err
				}
			}
		}
	}
	out := map[int]*ref.HashWeights{}
	for _, l := range sortedLayers(sets) {
		cfg := o.Config
		cfg.Seed = o.Config.Seed + uint64(l)
		w, err := ref.TrainLayer(sets[l], o.Rbit, cfg, nil)
		if err != nil {
			return nil, fmt.Errorf("train hash: layer %d: %w", l, err)
		}
		out[l] = w
	}
	return out, nil
}

// NewMethodFunc builds a method by name for a cache of hkv KV heads of
// dimension d: ref.New, or a GPU backend's equivalent.
type NewMethodFunc func(name string, hkv, d int, o ref.Options) (ref.Method, error)

// RefFactory returns a Factory that builds ref's method name (one of
// ref.MethodNames) for each layer with the options o: MethodFactory on the CPU
// reference.
func (m *Model) RefFactory(name string, o ref.Options, w map[int]*ref.HashWeights) Factory {
	return m.MethodFactory(ref.New, name, o, w)
}

// MethodFactory returns a Factory that builds method name with newMethod for
// each layer with the options o. For hata the weights of layer l are w[l] (an
// error if missing); for lsh without o.W, each layer draws its own random
// projection from o.Seed + layer.
func (m *Model) MethodFactory(newMethod NewMethodFunc, name string, o ref.Options, w map[int]*ref.HashWeights) Factory {
	c := m.Config
	return func(layer int) (ref.Method, error) {
		lo := o
		switch name {
		case "hata":
			lo.W = w[layer]
			if lo.W == nil {
				return nil, fmt.Errorf("hata: no hash weights for layer %d", layer)
			}
		case "lsh":
			if lo.W == nil {
				lo.Seed = o.Seed + uint64(layer)
			}
		}
		return newMethod(name, c.NKVHeads, c.HeadDim, lo)
	}
}

// hashFile is the name of layer l's hash weights, as `hata train` writes them.
func hashFile(l int) string { return fmt.Sprintf("hash_weight_layer_%02d.npy", l) }

// SaveHashWeights writes ws into dir as hash_weight_layer_LL.npy, [Hkv][D][Rbit]
// float32, the layout `hata train` writes and tensorio.ReadHashWeights reads.
func SaveHashWeights(dir string, ws map[int]*ref.HashWeights) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, l := range sortedLayers(ws) {
		w := ws[l]
		if err := tensorio.WriteNPYFloat32(filepath.Join(dir, hashFile(l)), []int{w.Hkv, w.D, w.Rbit}, w.W); err != nil {
			return err
		}
	}
	return nil
}

// LoadHashWeights reads every hash_weight_layer_LL.npy (or .pt) in dir and
// checks each against the model: LL a layer of it, [Hkv][D] its KV heads and
// head dimension. It returns the weights by layer.
func (m *Model) LoadHashWeights(dir string) (map[int]*ref.HashWeights, error) {
	c := m.Config
	files, err := filepath.Glob(filepath.Join(dir, "hash_weight_layer_*"))
	if err != nil {
		return nil, err
	}
	out := map[int]*ref.HashWeights{}
	for _, f := range files {
		base := filepath.Base(f)
		var l int
		var ext string
		if n, err := fmt.Sscanf(base, "hash_weight_layer_%d.%s", &l, &ext); n != 2 || err != nil || (ext != "npy" && ext != "pt") {
			continue
		}
		if l < 0 || l >= c.NLayers {
			return nil, fmt.Errorf("%s: layer %d, the model has layers 0..%d", f, l, c.NLayers-1)
		}
		if _, dup := out[l]; dup {
			return nil, fmt.Errorf("%s: a second file for layer %d", f, l)
		}
		w, err := tensorio.ReadHashWeights(f)
		if err != nil {
			return nil, err
		}
		if w.Hkv != c.NKVHeads || w.D != c.HeadDim {
			return nil, fmt.Errorf("%s: hash weights [%d, %d, %d], the model has Hkv=%d D=%d", f, w.Hkv, w.D, w.Rbit, c.NKVHeads, c.HeadDim)
		}
		out[l] = w
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no hash_weight_layer_LL.npy files", dir)
	}
	return out, nil
}
