package vk

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hata-go/hata/ref"
)

// Methods lists the methods that have GPU kernels, by ref.MethodNames name.
var Methods = []string{"dense", "topk", "hata", "lsh", "loki", "quest", "streaming", "h2o"}

// NewMethod returns the GPU implementation of the method called name, with
// ref.New's contract, for a cache of hkv KV heads of dimension d; dense keeps
// its cache in float32. It is a reftest.Factory:
//
//	reftest.Run(t, ctx.NewMethod, reftest.Config{Names: vk.Methods})
//
// The methods implement io.Closer: Close frees their device memory (the
// context frees whatever is left when it closes); a method prefilled again
// after Close allocates it anew.
func (c *Context) NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	return c.Factory(DenseOptions{})(name, hkv, d, o)
}

// Factory returns a NewMethod whose dense attention uses the options dense
// (for example F16 storage).
func (c *Context) Factory(dense DenseOptions) func(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	return func(name string, hkv, d int, o ref.Options) (ref.Method, error) {
		switch name {
		case "dense":
			if err := checkDim(d, dense.Storage); err != nil {
				return nil, fmt.Errorf("vk dense: %w", err)
			}
			return c.NewDense(dense)
		}
		return c.newSparseMethod(name, hkv, d, o, SparseOptions{Storage: dense.Storage})
	}
}

// BenchMethod returns the method called name with the kernel variant named
// variant ("" for the default kernels), fp16 K/V storage and the kernel
// parameters t.ForMethod (the zero Tuning: the defaults), for the benchmarks: the
// methods that implement PrefillRandom and Timings are timed on caches
// filled on the device. A non-zero field of t that the method does not use is
// an error (Tuning.Check).
func (c *Context) BenchMethod(name, variant string, hkv, d int, t Tuning) (ref.Method, error) {
	if err := CheckVariant(name, variant); err != nil {
		return nil, err
	}
	method := name
	if variant != "" {
		method += "/" + variant
	}
	if err := t.Check(method); err != nil {
		return nil, err
	}
	t = t.ForMethod(method)
	if name != "dense" {
		return c.benchSparse(name, variant, hkv, d, t)
	}
	return c.Factory(t.applyDense(DenseOptions{Storage: F16}))(name, hkv, d, ref.Options{})
}

// CheckVariant reports whether BenchMethod has the kernel variant variant
// of method name ("" is every method's default kernels): hata and lsh have
// fused, twokernel, threekernel, onekernel, naive and halves, the other
// top-k methods halves only, dense none. It needs no device, so a command
// can refuse a variant before it opens one.
func CheckVariant(name, variant string) error {
	have := []string{VariantHalves}
	switch name {
	case "dense":
		have = nil
	case "hata", "lsh":
		have = append(slices.Clone(sparseVariants), VariantHalves)
	}
	if variant == "" || slices.Contains(have, variant) {
		return nil
	}
	if len(have) == 0 {
		return fmt.Errorf("vk: %s has no kernel variant %q (it has none)", name, variant)
	}
	return fmt.Errorf("vk: %s has no kernel variant %q (have %s)", name, variant, strings.Join(have, ", "))
}
