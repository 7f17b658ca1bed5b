package model

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

// Layer holds the weights of one decoder layer. PyTorch's nn.Linear stores a
// weight as [out][in], and so do these: y = W x is y[o] = sum_i W[o][i] x[i].
type Layer struct {
	AttnNorm []float32 // input_layernorm: [Dim]
	Wq       []float32 // self_attn.q_proj: [Hq*D][Dim]
	Wk       []float32 // self_attn.k_proj: [Hkv*D][Dim]
	Wv       []float32 // self_attn.v_proj: [Hkv*D][Dim]
	Wo       []float32 // self_attn.o_proj: [Dim][Hq*D]
	FFNNorm  []float32 // post_attention_layernorm: [Dim]
	W1       []float32 // mlp.gate_proj: [Hidden][Dim]
	W3       []float32 // mlp.up_proj: [Hidden][Dim]
	W2       []float32 // mlp.down_proj: [Dim][Hidden]
}

// Model is a loaded checkpoint: its config and weights in float32.
type Model struct {
	Config Config
	Name   string    // the directory it was loaded from, for trace metadata
	Embed  []float32 // model.embed_tokens: [Vocab][Dim]
	Layers []Layer
	Norm   []float32 // model.norm: [Dim]
	Head   []float32 // lm_head: [Vocab][Dim]; aliases Embed when tied
	RoPE   ref.RoPE
}

// tensorSpec names one tensor of the checkpoint, its expected shape and where
// it goes.
type tensorSpec struct {
	name  string
	shape []int
	dst   *[]float32
}

// specs lists every tensor m's config requires, with Hugging Face Llama names.
func (m *Model) specs() []tensorSpec {
	c := m.Config
	q, kv := c.NHeads*c.HeadDim, c.NKVHeads*c.HeadDim
	s := []tensorSpec{
		{"model.embed_tokens.weight", []int{c.VocabSize, c.Dim}, &m.Embed},
		{"model.norm.weight", []int{c.Dim}, &m.Norm},
	}
	if !c.Tied {
		s = append(s, tensorSpec{"lm_head.weight", []int{c.VocabSize, c.Dim}, &m.Head})
	}
	for i := range m.Layers {
		l, p := &m.Layers[i], fmt.Sprintf("model.layers.%d.", i)
		s = append(s,
			tensorSpec{p + "input_layernorm.weight", []int{c.Dim}, &l.AttnNorm},
			tensorSpec{p + "self_attn.q_proj.weight", []int{q, c.Dim}, &l.Wq},
			tensorSpec{p + "self_attn.k_proj.weight", []int{kv, c.Dim}, &l.Wk},
			tensorSpec{p + "self_attn.v_proj.weight", []int{kv, c.Dim}, &l.Wv},
			tensorSpec{p + "self_attn.o_proj.weight", []int{c.Dim, q}, &l.Wo},
			tensorSpec{p + "post_attention_layernorm.weight", []int{c.Dim}, &l.FFNNorm},
			tensorSpec{p + "mlp.gate_proj.weight", []int{c.HiddenDim, c.Dim}, &l.W1},
			tensorSpec{p + "mlp.up_proj.weight", []int{c.HiddenDim, c.Dim}, &l.W3},
			tensorSpec{p + "mlp.down_proj.weight", []int{c.Dim, c.HiddenDim}, &l.W2},
		)
	}
	return s
}

// Load reads the checkpoint in dir: config.json and every *.safetensors file
// there (the tensors may be split across files in any way; a name in two files
// is an error). Every tensor the config requires must be present with exactly
// the shape the config implies, and no other tensor may be; fp16, bf16 and f32
// are converted to float32.
func Load(dir string) (*Model, error) {
	c, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("model %s: no .safetensors files", dir)
	}
	slices.Sort(files)
	where := map[string]*tensorio.SafeTensors{}
	for _, f := range files {
		st, err := tensorio.OpenSafetensors(f)
		if err != nil {
			return nil, err
		}
		for _, n := range st.Names {
			if prev, dup := where[n]; dup {
				return nil, fmt.Errorf("model %s: tensor %q is in both %s and %s", dir, n, prev.Name, f)
			}
			where[n] = st
		}
	}
	m := &Model{Config: c, Name: dir, Layers: make([]Layer, c.NLayers), RoPE: ref.RoPE{D: c.HeadDim, Theta: c.RopeTheta}}
	used := map[string]bool{}
	for _, sp := range m.specs() {
		st, ok := where[sp.name]
		if !ok {
			return nil, fmt.Errorf("model %s: tensor %q [%s] is missing (config %s)", dir, sp.name, dims(sp.shape), filepath.Join(dir, "config.json"))
		}
		shape, dtype, _ := st.Shape(sp.name)
		if !slices.Equal(shape, sp.shape) {
			return nil, fmt.Errorf("model %s: tensor %q has shape [%s], the config implies [%s]", st.Name, sp.name, dims(shape), dims(sp.shape))
		}
		a, err := st.Read(sp.name)
		if err != nil {
			return nil, err
		}
		if a.F32 == nil {
			return nil, fmt.Errorf("model %s: tensor %q has dtype %s, want a floating type", st.Name, sp.name, dtype)
		}
		if err := tensorio.CheckFinite(st.Name+":"+sp.name, a.F32); err != nil {
			return nil, err
		}
		*sp.dst = a.F32
		used[sp.name] = true
	}
	if c.Tied {
		m.Head = m.Embed
	}
	var extra []string
	for n := range where {
		if !used[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return nil, fmt.Errorf("model %s: tensors the config does not describe: %s", dir, strings.Join(extra, ", "))
	}
	return m, nil
}

// dims formats a shape as "a, b, c".
func dims(s []int) string {
	p := make([]string, len(s))
	for i, d := range s {
		p[i] = fmt.Sprint(d)
	}
	return strings.Join(p, ", ")
}
