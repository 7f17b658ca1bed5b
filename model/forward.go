package model

import (
	"fmt"

	"github.com/hata-go/hata/ref"
)

// PaperDenseLayers is the number of leading layers the paper keeps dense at
// decode (as Quest does): their attention is never sparse.
const PaperDenseLayers = 2

// Factory builds the attention Method of one layer. It is called once per
// layer per sequence, so a Method may keep per-sequence state (HATA's code
// cache, H2O's history).
type Factory func(layer int) (ref.Method, error)

// DecodeConfig says how the decode steps of a sequence attend.
type DecodeConfig struct {
	// Methods builds the Method of every layer from DenseLayers on; nil means
	// dense attention (ref.NewDense) in every layer.
	Methods Factory
	// DenseLayers is the number of leading layers that use dense attention
	// whatever Methods is: 0 means the paper's PaperDenseLayers (2), a negative
	// value none.
	DenseLayers int
	// Budget is passed to every Decode; the zero value means ref.Full.
	Budget ref.Budget
}

// Dense resolves c.DenseLayers: the number of leading layers kept dense.
func (c DecodeConfig) Dense() int {
	switch {
	case c.DenseLayers == 0:
		return PaperDenseLayers
	case c.DenseLayers < 0:
		return 0
	}
	return c.DenseLayers
}

// budget resolves c.Budget.
func (c DecodeConfig) budget() ref.Budget {
	if c.Budget == (ref.Budget{}) {
		return ref.Full
	}
	return c.Budget
}

// Prefilled is the result of a dense prefill: the logits of every prompt
// position and the cache of every layer. One Prefilled can start any number of
// decode Sessions (one per method, say): each Session's Methods copy the cache.
type Prefilled struct {
	Model  *Model
	Tokens []int     // the prompt
	Logits []float32 // Logits: [N][Vocab], position t predicts token t+1
	KV     []*ref.KV // per layer: B=1, post-RoPE keys and values, N tokens
}

// traceHook receives, for every layer of a prefill, the post-RoPE queries q:
// [Hq][N][D], the pre-RoPE keys kpre: [Hkv][N][D] and the post-RoPE keys and
// values k, v: [Hkv][N][D]. The slices are the hook's to keep.
type traceHook func(layer int, q, kpre, k, v []float32)

// Prefill runs the prompt through the model with dense causal attention and
// returns the logits of every position and each layer's KV cache. tokens must
// be non-empty (they normally start with BOS) and in the vocabulary.
func (m *Model) Prefill(tokens []int) (*Prefilled, error) {
	return m.prefill(tokens, nil)
}

func (m *Model) prefill(tokens []int, hook traceHook) (*Prefilled, error) {
	c := m.Config
	n, dim, d, hq, hkv := len(tokens), c.Dim, c.HeadDim, c.NHeads, c.NKVHeads
	if n == 0 {
		return nil, fmt.Errorf("prefill: no tokens")
	}
	for i, t := range tokens {
		if t < 0 || t >= c.VocabSize {
			return nil, fmt.Errorf("prefill: token %d at position %d is outside the vocabulary [0, %d)", t, i, c.VocabSize)
		}
	}
	x := make([]float32, n*dim)           // x: [N][Dim], the residual stream
	xb := make([]float32, n*dim)          // xb: [N][Dim], normed
	q := make([]float32, n*hq*d)          // q: [N][Hq*D], token-major as q_proj writes it
	k := make([]float32, n*hkv*d)         // k: [N][Hkv*D]
	v := make([]float32, n*hkv*d)         // v: [N][Hkv*D]
	att := make([]float32, n*hq*d)        // att: [N][Hq*D], attention output
	hb := make([]float32, n*c.HiddenDim)  // hb: [N][Hidden], gate then silu(gate)*up
	hb2 := make([]float32, n*c.HiddenDim) // hb2: [N][Hidden], up
	for t, tok := range tokens {          // x = embed_tokens(idx)
		copy(x[t*dim:(t+1)*dim], m.Embed[tok*dim:(tok+1)*dim])
	}
	p := &Prefilled{Model: m, Tokens: append([]int(nil), tokens...), KV: make([]*ref.KV, c.NLayers)}
	for l := range m.Layers {
		w := &m.Layers[l]
		// h = input_layernorm(x); q, k, v = q_proj(h), k_proj(h), v_proj(h)
		for t := range n {
			rmsnorm(xb[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], w.AttnNorm, c.NormEps)
		}
		matmul(q, xb, w.Wq, n, dim, hq*d)
		matmul(k, xb, w.Wk, n, dim, hkv*d)
		matmul(v, xb, w.Wv, n, dim, hkv*d)
		var kpre []float32 // kpre: [Hkv][N][D], only for traces
		if hook != nil {
			kpre = headMajor(k, n, hkv, d)
		}
		// q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
		if err := m.rope(q, n, hq, 0); err != nil {
			return nil, err
		}
		if err := m.rope(k, n, hkv, 0); err != nil {
			return nil, err
		}
		qh := headMajor(q, n, hq, d)  // qh: [Hq][N][D]
		kh := headMajor(k, n, hkv, d) // kh: [Hkv][N][D]
		vh := headMajor(v, n, hkv, d) // vh: [Hkv][N][D]
		// o = scaled_dot_product_attention(q, k, v, is_causal=True)
		causalAttention(att, qh, kh, vh, hq, hkv, n, d)
		kv, err := ref.NewKV(1, hkv, n, d, kh, vh)
		if err != nil {
			return nil, err
		}
		p.KV[l] = kv
		if hook != nil {
			hook(l, qh, kpre, kh, vh)
		}
		// x = x + o_proj(o)
		matmul(xb, att, w.Wo, n, hq*d, dim)
		add(x, xb)
		// x = x + down_proj(silu(gate_proj(h)) * up_proj(h)), h = post_attention_layernorm(x)
		for t := range n {
			rmsnorm(xb[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], w.FFNNorm, c.NormEps)
		}
		matmul(hb, xb, w.W1, n, dim, c.HiddenDim)
		matmul(hb2, xb, w.W3, n, dim, c.HiddenDim)
		swiglu(hb, hb2)
		matmul(xb, hb, w.W2, n, c.HiddenDim, dim)
		add(x, xb)
	}
	// logits = lm_head(norm(x))
	for t := range n {
		rmsnorm(xb[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], m.Norm, c.NormEps)
	}
	p.Logits = make([]float32, n*c.VocabSize)
	matmul(p.Logits, xb, m.Head, n, dim, c.VocabSize)
	return p, nil
}

// rope rotates every head of x: [N][H][D] in place, token t at position
// pos0+t, with ref.RoPE (non-interleaved, Hugging Face layout).
func (m *Model) rope(x []float32, n, h, pos0 int) error {
	d := m.Config.HeadDim
	errs := make([]error, n)
	parallelRange(n, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			for j := range h {
				off := (t*h + j) * d
				if err := m.RoPE.Apply(x[off:off+d], pos0+t); err != nil {
					errs[t] = err
					return
				}
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// headMajor transposes x: [N][H][D] into [H][N][D].
func headMajor(x []float32, n, h, d int) []float32 {
	y := make([]float32, len(x)) // y: [H][N][D]
	for t := range n {
		for j := range h {
			copy(y[(j*n+t)*d:(j*n+t+1)*d], x[(t*h+j)*d:(t*h+j+1)*d])
		}
	}
	return y
}

// add computes x += y elementwise.
func add(x, y []float32) {
	for i := range x {
		x[i] += y[i]
	}
}

// LastLogits returns the logits of the last prompt position: [Vocab].
func (p *Prefilled) LastLogits() []float32 {
	v := p.Model.Config.VocabSize
	return p.Logits[len(p.Logits)-v:]
}

// Session is one sequence being decoded: a Method per layer holding that
// layer's cache, and the next position.
type Session struct {
	Model   *Model
	Methods []ref.Method // per layer
	Pos     int          // tokens in the cache; the next token's position
	budget  ref.Budget
	// Attended sums, over every Step and every layer from DenseLayers on, the
	// tokens read per (KV head) row: the selection's size for sparse methods,
	// the cache size for dense ones. Cached sums the cache sizes of the same
	// (step, layer) pairs, and SparseSteps counts them, so Attended/Cached is
	// the fraction of the cache the sparse layers actually read.
	Attended, Cached float64
	SparseSteps      int64
	denseFrom        int // layers below this use dense attention

	x, xb   []float32 // [Dim]
	q, k, v []float32 // q: [Hq*D]; k, v: [Hkv*D]
	hb, hb2 []float32 // [Hidden]
	logits  []float32 // [Vocab]
}

// Session starts a decode session on the prefilled cache: it builds the Method
// of every layer (dense for the first cfg.DenseLayers) and hands each the
// layer's cache through Prefill.
func (p *Prefilled) Session(cfg DecodeConfig) (*Session, error) {
	c := p.Model.Config
	s := &Session{
		Model: p.Model, Methods: make([]ref.Method, c.NLayers), Pos: len(p.Tokens),
		budget: cfg.budget(), denseFrom: cfg.Dense(),
		x: make([]float32, c.Dim), xb: make([]float32, c.Dim),
		q: make([]float32, c.NHeads*c.HeadDim), k: make([]float32, c.NKVHeads*c.HeadDim), v: make([]float32, c.NKVHeads*c.HeadDim),
		hb: make([]float32, c.HiddenDim), hb2: make([]float32, c.HiddenDim), logits: make([]float32, c.VocabSize),
	}
	for l := range s.Methods {
		var meth ref.Method
		if l < s.denseFrom || cfg.Methods == nil {
			meth = ref.NewDense()
		} else {
			var err error
			if meth, err = cfg.Methods(l); err != nil {
				return nil, fmt.Errorf("layer %d: %w", l, err)
			}
		}
		if err := meth.Prefill(p.KV[l]); err != nil {
			return nil, fmt.Errorf("layer %d: %s prefill: %w", l, meth.Name(), err)
		}
		s.Methods[l] = meth
	}
	return s, nil
}

// Step feeds one token at position s.Pos and returns the logits that predict
// the next one: [Vocab], valid until the next Step. In every layer the token's
// k and v are appended to the Method first, then its q attends (so the token
// sees itself, as in the prefill's causal attention).
func (s *Session) Step(token int) ([]float32, error) {
	m := s.Model
	c := m.Config
	dim, d, hq, hkv := c.Dim, c.HeadDim, c.NHeads, c.NKVHeads
	if token < 0 || token >= c.VocabSize {
		return nil, fmt.Errorf("step: token %d is outside the vocabulary [0, %d)", token, c.VocabSize)
	}
	copy(s.x, m.Embed[token*dim:(token+1)*dim])
	for l := range m.Layers {
		w := &m.Layers[l]
		rmsnorm(s.xb, s.x, w.AttnNorm, c.NormEps)
		matmul(s.q, s.xb, w.Wq, 1, dim, hq*d)
		matmul(s.k, s.xb, w.Wk, 1, dim, hkv*d)
		matmul(s.v, s.xb, w.Wv, 1, dim, hkv*d)
		if err := m.rope(s.q, 1, hq, s.Pos); err != nil {
			return nil, err
		}
		if err := m.rope(s.k, 1, hkv, s.Pos); err != nil {
			return nil, err
		}
		meth := s.Methods[l]
		if err := meth.Append(s.k, s.v); err != nil { // k, v: [B=1][Hkv][D]
			return nil, fmt.Errorf("layer %d: %s append: %w", l, meth.Name(), err)
		}
		res, err := meth.Decode(s.q, s.budget) // q: [B=1][Hq][D]
		if err != nil {
			return nil, fmt.Errorf("layer %d: %s decode at position %d: %w", l, meth.Name(), s.Pos, err)
		}
		if len(res.Out) != hq*d {
			return nil, fmt.Errorf("layer %d: %s decode returned %d values, want Hq*D = %d", l, meth.Name(), len(res.Out), hq*d)
		}
		if l >= s.denseFrom {
			s.SparseSteps++
			s.Cached += float64(s.Pos + 1)
			if res.Selected == nil {
				s.Attended += float64(s.Pos + 1)
			} else {
				var sum int
				for _, row := range res.Selected {
					sum += len(row)
				}
				s.Attended += float64(sum) / float64(len(res.Selected))
			}
		}
		matmul(s.xb, res.Out, w.Wo, 1, hq*d, dim) // res.Out: [B=1][Hq][D] = o_proj's [Hq*D]
		add(s.x, s.xb)
		rmsnorm(s.xb, s.x, w.FFNNorm, c.NormEps)
		matmul(s.hb, s.xb, w.W1, 1, dim, c.HiddenDim)
		matmul(s.hb2, s.xb, w.W3, 1, dim, c.HiddenDim)
		swiglu(s.hb, s.hb2)
		matmul(s.xb, s.hb, w.W2, 1, c.HiddenDim, dim)
		add(s.x, s.xb)
	}
	rmsnorm(s.xb, s.x, m.Norm, c.NormEps)
	matmul(s.logits, s.xb, m.Head, 1, dim, c.VocabSize)
	s.Pos++
	return s.logits, nil
}
