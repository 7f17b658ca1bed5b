package vk

import (
	"cmp"
	"fmt"

	"github.com/hata-go/hata/ref"
)

// SparseFactory returns a NewMethod (ref.New's signature) whose methods use
// the options o: the top-k methods with o, dense with DenseOptions{Storage:
// o.Storage, HostCache: o.HostCache, PairedKV: o.PairedKV}. It is a
// reftest.Factory:
//
//	reftest.Run(t, ctx.SparseFactory(vk.SparseOptions{Storage: vk.F16}), reftest.Config{FP16: true, ...})
func (c *Context) SparseFactory(o SparseOptions) func(name string, hkv, d int, ro ref.Options) (ref.Method, error) {
	return func(name string, hkv, d int, ro ref.Options) (ref.Method, error) {
		if name == "dense" {
			return c.Factory(DenseOptions{Storage: o.Storage, HostCache: o.HostCache, PairedKV: o.PairedKV})(name, hkv, d, ro)
		}
		return c.newSparseMethod(name, hkv, d, ro, o)
	}
}

// newSparseMethod builds the GPU top-k method called name with ref.New's
// contract (the same options, the same errors for missing or misshapen hash
// weights) for a cache of hkv KV heads of dimension d.
func (c *Context) newSparseMethod(name string, hkv, d int, ro ref.Options, o SparseOptions) (ref.Method, error) {
	switch name {
	case "topk":
		return c.NewTopK(d, o)
	case "hata", "lsh":
		w := ro.W
		if w == nil && name == "hata" {
			return nil, fmt.Errorf("hata: needs trained hash weights (-w W.npy or hash_weight_layer_NN.pt); use lsh for random ones")
		}
		if w == nil {
			var err error
			if w, err = ref.RandomHashWeights(hkv, d, cmp.Or(ro.Rbit, ref.DefaultRbit), ro.Seed); err != nil {
				return nil, err
			}
		}
		if w.Hkv != hkv || w.D != d {
			return nil, fmt.Errorf("%s: hash weights are [Hkv=%d D=%d Rbit=%d], the cache has Hkv=%d D=%d", name, w.Hkv, w.D, w.Rbit, hkv, d)
		}
		return c.NewHATA(name, w, ro.Windows, ro.NormWeighted, o)
	case "loki":
		return c.NewLoki(hkv, d, ro.LokiChannels, ro.LokiBasis, o)
	case "quest":
		return c.NewQuest(d, ro.PageSize, o)
	case "streaming":
		return c.NewStreaming(d, ro.SinkTokens, o)
	case "h2o":
		return c.NewH2O(d, o)
	case "magicpig":
		return nil, fmt.Errorf("vk: magicpig has no GPU kernels (the paper runs it on the CPU too): run it on the CPU (hata attend -device cpu; a config's devices = [\"cpu\"] or [\"auto\"])")
	}
	return nil, fmt.Errorf("vk: method %q has no GPU kernels (have %v)", name, Methods)
}

// benchSparse is BenchMethod for the top-k methods: fp16 K/V, the kernel
// variant (hata, lsh: "fused" or "naive"), the kernel parameters t, and for
// hata random weights of t.Rbit bits, 128 by default (the timing does not
// depend on their values; lsh draws its own of as many bits).
func (c *Context) benchSparse(name, variant string, hkv, d int, t Tuning) (ref.Method, error) {
	if err := checkDim(d, F16); err != nil { // before hash weights of that D are drawn
		return nil, fmt.Errorf("vk %s: %w", name, err)
	}
	if variant == VariantHalves && t.Trace != 0 {
		return nil, fmt.Errorf("vk: %s/%s has no traces: trace each half's kernels without it", name, variant)
	}
	ro := ref.Options{Rbit: cmp.Or(t.Rbit, ref.DefaultRbit)}
	if name == "hata" {
		w, err := ref.RandomHashWeights(hkv, d, ro.Rbit, 1)
		if err != nil {
			return nil, err
		}
		ro.W = w
	}
	if variant == VariantHalves {
		return c.NewHalves(name, hkv, d, ro, t.applySparse(SparseOptions{Storage: F16}))
	}
	return c.newSparseMethod(name, hkv, d, ro, t.applySparse(SparseOptions{Storage: F16, Variant: variant}))
}

// VariantHalves is the benchmarks' variant of every top-k method that runs
// it as Halves: two instances over the two halves of the batch at once, on
// two queues (`hata bench -method hata/halves`).
const VariantHalves = "halves"
