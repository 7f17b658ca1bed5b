package ref

import (
	"cmp"
	"fmt"
	"strings"
)

// MethodNames lists every method New knows, in the order of the paper's tables.
var MethodNames = []string{"dense", "topk", "hata", "lsh", "loki", "quest", "streaming", "h2o", "magicpig"}

// DefaultRbit is the hash width, in bits, wherever none is given: the
// paper's 128 (HATA.md), near-lossless in its Fig. 8.
const DefaultRbit = 128

// Options configures the methods New builds. The zero value of every field
// means the documented default.
type Options struct {
	// Hashing (hata, lsh).
	W            *HashWeights // hata: the trained weights, [Hkv][D][Rbit], required; lsh: optional random ones
	Rbit         int          // lsh: bits of the random projection; default DefaultRbit
	Seed         uint64       // lsh, magicpig: seed of the random projections
	Windows      Windows      // hata, lsh: sink/recent tokens forced in, inside k
	NormWeighted bool         // hata, lsh: the norm-weighted score variant

	// Loki.
	LokiChannels int // leading PCA channels scored; default 32 (of D = 128)
	// LokiBasis is the PCA basis per KV head, [Hkv][D][D] with the principal
	// directions as columns in decreasing variance (FitLokiBasis on pre-RoPE
	// keys makes the one the paper prefers). Nil: fitted at Prefill on the keys
	// of the cache it is given (post-RoPE in normal use).
	LokiBasis []float64

	// Quest.
	PageSize int // tokens per page; default 32

	// StreamingLLM (H2O has no parameter: heavy hitters and recent tokens
	// share the budget half and half).
	SinkTokens int // streaming: attention sinks kept; default 4, negative: none

	// MagicPIG.
	MagicPIGK       int // bits per table, 1..32; default 10
	MagicPIGL       int // tables; default 150
	MagicPIGMinHits int // tables a key must collide in to be sampled; default 2 (the authors' code)
	MagicPIGSink    int // first tokens attended exactly; default 4, negative: none
	MagicPIGLocal   int // last tokens attended exactly; default 64, negative: none
}

// New returns the method called name (one of MethodNames) for a cache of hkv
// KV heads of dimension d.
func New(name string, hkv, d int, o Options) (Method, error) {
	switch name {
	case "dense":
		return NewDense(), nil
	case "topk":
		return NewTopK(), nil
	case "hata":
		if o.W == nil {
			return nil, fmt.Errorf("hata: needs trained hash weights (-w W.npy or hash_weight_layer_NN.pt); use lsh for random ones")
		}
		if o.W.Hkv != hkv || o.W.D != d {
			return nil, fmt.Errorf("hata: hash weights are [Hkv=%d D=%d Rbit=%d], the cache has Hkv=%d D=%d", o.W.Hkv, o.W.D, o.W.Rbit, hkv, d)
		}
		return NewHATA(o.W, o.Windows, o.NormWeighted), nil
	case "lsh":
		if o.W != nil { // caller-drawn random weights (the acceptance suite's exact ones)
			if o.W.Hkv != hkv || o.W.D != d {
				return nil, fmt.Errorf("lsh: hash weights are [Hkv=%d D=%d Rbit=%d], the cache has Hkv=%d D=%d", o.W.Hkv, o.W.D, o.W.Rbit, hkv, d)
			}
			return &HATA{W: o.W, Windows: o.Windows, NormWeighted: o.NormWeighted, name: "lsh"}, nil
		}
		m, err := NewLSH(hkv, d, cmp.Or(o.Rbit, DefaultRbit), o.Seed, o.Windows)
		if err != nil {
			return nil, err
		}
		m.NormWeighted = o.NormWeighted
		return m, nil
	}
	return newBaseline(name, hkv, d, o)
}

// newBaseline builds the baselines that live in files of their own.
func newBaseline(name string, hkv, d int, o Options) (Method, error) {
	// The constructors that can fail are checked here, so that a failure is a
	// nil Method and not a Method holding a nil pointer.
	var m Method
	var err error
	switch name {
	case "loki":
		m, err = NewLoki(hkv, d, o.LokiChannels, o.LokiBasis)
	case "quest":
		m, err = NewQuest(o.PageSize)
	case "streaming":
		return NewStreaming(o.SinkTokens), nil
	case "h2o":
		return NewH2O(), nil
	case "magicpig":
		m, err = NewMagicPIG(d, MagicPIGConfig{
			K: o.MagicPIGK, L: o.MagicPIGL, MinHits: o.MagicPIGMinHits,
			Sink: o.MagicPIGSink, Local: o.MagicPIGLocal, Seed: o.Seed,
		})
	default:
		return nil, fmt.Errorf("unknown method %q: want one of %s", name, strings.Join(MethodNames, ", "))
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}
