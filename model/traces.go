package model

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/hata-go/hata/tensorio"
)

// Traces runs a dense prefill of tokens and returns, for every layer in
// layers (nil: all), what the attention saw: post-RoPE queries Q [Hq][N][D],
// post-RoPE keys K, values V and pre-RoPE keys KPre [Hkv][N][D]. These are the
// inputs of hash training (ref.Samples, ref.TrainLayer), of Loki's PCA (KPre)
// and of the trace-driven accuracy experiments; tensorio.WriteTrace stores
// them as layer_LL_{q,k,v,kpre}.npy.
func (m *Model) Traces(tokens []int, layers []int) (map[int]*tensorio.LayerTrace, error) {
	c := m.Config
	want := map[int]bool{}
	if layers == nil {
		for l := range c.NLayers {
			want[l] = true
		}
	}
	for _, l := range layers {
		if l < 0 || l >= c.NLayers {
			return nil, fmt.Errorf("traces: layer %d, the model has layers 0..%d", l, c.NLayers-1)
		}
		want[l] = true
	}
	out := map[int]*tensorio.LayerTrace{}
	_, err := m.prefill(tokens, func(l int, q, kpre, k, v []float32) {
		if want[l] {
			out[l] = &tensorio.LayerTrace{Hq: c.NHeads, Hkv: c.NKVHeads, N: len(tokens), D: c.HeadDim, Q: q, K: k, V: v, KPre: kpre}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WriteTraces writes the traces of prompt (BOS prepended) for layers (nil: all)
// into dir with tensorio.WriteTrace, with meta.json as TraceMeta gives it.
func (m *Model) WriteTraces(dir, prompt string, layers []int) error {
	tr, err := m.Traces(m.Encode(prompt), layers)
	if err != nil {
		return err
	}
	return tensorio.WriteTrace(dir, m.TraceMeta(prompt), tr)
}

// TraceMeta returns the meta.json of a trace of prompt: the model, the
// prompt, and RoPE's theta; where the prompt is not valid UTF-8 (the model
// reads bytes: a window of text cut mid-character, a binary file), its
// bytes too, which the JSON string would replace with U+FFFD.
func (m *Model) TraceMeta(prompt string) *tensorio.TraceMeta {
	meta := &tensorio.TraceMeta{Model: m.Name, Prompt: prompt, RopeTheta: m.Config.RopeTheta}
	if !utf8.ValidString(prompt) {
		meta.PromptBytes = []byte(prompt)
	}
	return meta
}

// sortedLayers returns the keys of a trace map in order.
func sortedLayers[T any](m map[int]T) []int {
	ls := make([]int, 0, len(m))
	for l := range m {
		ls = append(ls, l)
	}
	slices.Sort(ls)
	return ls
}
