package model

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/hata-go/hata/ref"
)

// An independent float64 forward pass of the checkpoint, written from
// train/train.py's Llama (not from forward.go): its own safetensors reader and
// bf16 conversion, RMSNorm, rotate-half RoPE, GQA causal attention with
// softmax, SwiGLU and the output head, every sum in float64. The float32
// forward passes of this package must agree with it to float32 rounding.

// st64 reads every tensor of the *.safetensors files of dir as float64.
func st64(t *testing.T, dir string) map[string][]float64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil || len(files) == 0 {
		t.Fatalf("safetensors in %s: %v (%d files)", dir, err, len(files))
	}
	out := map[string][]float64{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		hl := binary.LittleEndian.Uint64(b)
		var hdr map[string]json.RawMessage
		if err := json.Unmarshal(b[8:8+hl], &hdr); err != nil {
			t.Fatal(err)
		}
		data := b[8+hl:]
		for name, raw := range hdr {
			if name == "__metadata__" {
				continue
			}
			var e struct {
				DType   string `json:"dtype"`
				Offsets [2]int `json:"data_offsets"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			p := data[e.Offsets[0]:e.Offsets[1]]
			var x []float64
			switch e.DType {
			case "BF16":
				for i := 0; i+1 < len(p); i += 2 {
					bits := uint32(binary.LittleEndian.Uint16(p[i:])) << 16
					x = append(x, float64(math.Float32frombits(bits)))
				}
			case "F32":
				for i := 0; i+3 < len(p); i += 4 {
					x = append(x, float64(math.Float32frombits(binary.LittleEndian.Uint32(p[i:]))))
				}
			default:
				t.Fatalf("%s: %s has dtype %s, this reader knows BF16 and F32", f, name, e.DType)
			}
			out[name] = x
		}
	}
	return out
}

// fwd64 is the float64 forward of tokens: the logits [N][Vocab] and, per
// layer, post-RoPE q [Hq][N][D], post-RoPE k and v [Hkv][N][D].
type fwd64 struct {
	logits  []float64
	q, k, v [][]float64
}

func forward64(t *testing.T, dir string, tokens []int) fwd64 {
	t.Helper()
	var c struct {
		Dim, NLayers, NHeads, NKVHeads, HeadDim, HiddenDim, VocabSize int
		RopeTheta, NormEps                                            float64
		Tied                                                          bool
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	num := func(k string) int { return int(raw[k].(float64)) }
	c.Dim, c.NLayers, c.NHeads, c.NKVHeads = num("dim"), num("n_layers"), num("n_heads"), num("n_kv_heads")
	c.HeadDim, c.HiddenDim, c.VocabSize = num("head_dim"), num("hidden_dim"), num("vocab_size")
	c.RopeTheta, c.NormEps, c.Tied = raw["rope_theta"].(float64), raw["norm_eps"].(float64), raw["tied"].(bool)
	w := st64(t, dir)
	get := func(name string, n int) []float64 {
		x, ok := w[name]
		if !ok || len(x) != n {
			t.Fatalf("tensor %s: present %v, %d values, want %d", name, ok, len(x), n)
		}
		return x
	}
	n, dim, d, hq, hkv, hid, voc := len(tokens), c.Dim, c.HeadDim, c.NHeads, c.NKVHeads, c.HiddenDim, c.VocabSize
	g := hq / hkv
	norm := func(x, wt []float64) []float64 { // RMSNorm of each row of x: [n][dim]
		y := make([]float64, len(x))
		for r := 0; r < len(x)/dim; r++ {
			var ss float64
			for _, v := range x[r*dim : (r+1)*dim] {
				ss += v * v
			}
			s := 1 / math.Sqrt(ss/float64(dim)+c.NormEps)
			for i := range dim {
				y[r*dim+i] = x[r*dim+i] * s * wt[i]
			}
		}
		return y
	}
	lin := func(x, wt []float64, in, outDim int) []float64 { // x: [n][in], wt: [out][in]
		y := make([]float64, n*outDim)
		for r := range n {
			for o := range outDim {
				var s float64
				for i := range in {
					s += x[r*in+i] * wt[o*in+i]
				}
				y[r*outDim+o] = s
			}
		}
		return y
	}
	// rope rotates x: [n][h][D] in place, rotate-half pairs (i, i+D/2).
	rope := func(x []float64, h int) {
		for r := range n {
			for j := range h {
				row := x[(r*h+j)*d : (r*h+j+1)*d]
				for i := range d / 2 {
					a := float64(r) * math.Pow(c.RopeTheta, -float64(2*i)/float64(d))
					x0, x1 := row[i], row[i+d/2]
					row[i] = x0*math.Cos(a) - x1*math.Sin(a)
					row[i+d/2] = x1*math.Cos(a) + x0*math.Sin(a)
				}
			}
		}
	}
	hm := func(x []float64, h int) []float64 { // [n][h][D] -> [h][n][D]
		y := make([]float64, len(x))
		for r := range n {
			for j := range h {
				copy(y[(j*n+r)*d:(j*n+r+1)*d], x[(r*h+j)*d:(r*h+j+1)*d])
			}
		}
		return y
	}
	emb := get("model.embed_tokens.weight", voc*dim)
	x := make([]float64, n*dim)
	for r, tok := range tokens {
		copy(x[r*dim:(r+1)*dim], emb[tok*dim:(tok+1)*dim])
	}
	var f fwd64
	for l := range c.NLayers {
		p := "model.layers." + strconv.Itoa(l) + "."
		h := norm(x, get(p+"input_layernorm.weight", dim))
		q := lin(h, get(p+"self_attn.q_proj.weight", hq*d*dim), dim, hq*d)
		k := lin(h, get(p+"self_attn.k_proj.weight", hkv*d*dim), dim, hkv*d)
		v := lin(h, get(p+"self_attn.v_proj.weight", hkv*d*dim), dim, hkv*d)
		rope(q, hq)
		rope(k, hkv)
		f.q, f.k, f.v = append(f.q, hm(q, hq)), append(f.k, hm(k, hkv)), append(f.v, hm(v, hkv))
		o := make([]float64, n*hq*d) // [n][Hq*D]
		for hh := range hq {
			kv := hh / g
			for r := range n {
				s := make([]float64, r+1)
				m := math.Inf(-1)
				for u := 0; u <= r; u++ {
					var dp float64
					for i := range d {
						dp += q[(r*hq+hh)*d+i] * k[(u*hkv+kv)*d+i]
					}
					s[u] = dp / math.Sqrt(float64(d))
					m = max(m, s[u])
				}
				var z float64
				for u := range s {
					s[u] = math.Exp(s[u] - m)
					z += s[u]
				}
				for u := range s {
					for i := range d {
						o[(r*hq+hh)*d+i] += s[u] / z * v[(u*hkv+kv)*d+i]
					}
				}
			}
		}
		a := lin(o, get(p+"self_attn.o_proj.weight", dim*hq*d), hq*d, dim)
		for i := range x {
			x[i] += a[i]
		}
		h = norm(x, get(p+"post_attention_layernorm.weight", dim))
		gt := lin(h, get(p+"mlp.gate_proj.weight", hid*dim), dim, hid)
		up := lin(h, get(p+"mlp.up_proj.weight", hid*dim), dim, hid)
		for i := range gt {
			gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
		}
		mo := lin(gt, get(p+"mlp.down_proj.weight", dim*hid), hid, dim)
		for i := range x {
			x[i] += mo[i]
		}
	}
	head := emb
	if !c.Tied {
		head = get("lm_head.weight", voc*dim)
	}
	f.logits = lin(norm(x, get("model.norm.weight", dim)), head, dim, voc)
	return f
}

// relDiff64 returns max_i |a[i]-b[i]| / max(1, max_i |b[i]|).
func relDiff64(a []float32, b []float64) float64 {
	scale, worst := 1.0, 0.0
	for i := range b {
		scale = max(scale, math.Abs(b[i]))
		worst = max(worst, math.Abs(float64(a[i])-b[i]))
	}
	return worst / scale
}

// TestForwardFloat64 holds Prefill, the decode path (a dense Session fed
// token by token), ref.Dense at the default DecodeConfig and HATA at k = N,
// and Traces' q, k, v to the float64 forward of train.py's model on the
// committed checkpoint. Tolerance: the float32 passes round every sum of up
// to 1536 terms; over the model's depth that leaves about 1e-6 of the logits'
// scale (measured: 1.1e-6 for the prefill, 6e-7 for the decode paths, 4e-7
// for q, k, v); 1e-5 leaves room for another summation order (FMA) and
// catches errors of the formulas (theta off by 1% moves the logits by 3e-3,
// a RoPE rotation off by 1e-3 by 1e-3, eps x30 by 0.1).
func TestForwardFloat64(t *testing.T) {
	m := testModel(t)
	c := m.Config
	toks := m.Encode(shortPrompt)
	n, v := len(toks), c.VocabSize
	want := forward64(t, weightsDir, toks)
	const tol = 1e-5
	row := func(pos int) []float64 { return want.logits[pos*v : (pos+1)*v] }

	p, err := m.Prefill(toks)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for pos := range n {
		worst = max(worst, relDiff64(p.Logits[pos*v:(pos+1)*v], row(pos)))
	}
	if worst > tol {
		t.Errorf("Prefill logits differ from the float64 forward by %.3g of scale, want <= %g", worst, tol)
	}
	t.Logf("prefill: %d positions, worst %.3g", n, worst)

	tr, err := m.Traces(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range sortedLayers(tr) {
		lt := tr[l]
		dq, dk, dv := relDiff64(lt.Q, want.q[l]), relDiff64(lt.K, want.k[l]), relDiff64(lt.V, want.v[l])
		if max(dq, dk, dv) > tol {
			t.Errorf("layer %d trace: q, k, v differ from the float64 post-RoPE q, k and v by %.3g, %.3g, %.3g of scale", l, dq, dk, dv)
		}
		t.Logf("layer %d trace: q %.3g k %.3g v %.3g", l, dq, dk, dv)
	}

	w, err := ref.RandomHashWeights(c.NKVHeads, c.HeadDim, 128, 7)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  DecodeConfig
	}{
		{"dense every layer", DecodeConfig{DenseLayers: -1}},
		{"default DecodeConfig", DecodeConfig{}},
		{"hata k=N", DecodeConfig{Methods: func(int) (ref.Method, error) { return ref.NewHATA(w, ref.Windows{}, false), nil }, DenseLayers: -1, Budget: ref.Full}},
	}
	const start = 3
	for _, cs := range cases {
		pre, err := m.Prefill(toks[:start])
		if err != nil {
			t.Fatal(err)
		}
		s, err := pre.Session(cs.cfg)
		if err != nil {
			t.Fatal(err)
		}
		worst := relDiff64(pre.LastLogits(), row(start-1))
		for pos := start; pos < n; pos++ {
			got, err := s.Step(toks[pos])
			if err != nil {
				t.Fatal(err)
			}
			worst = max(worst, relDiff64(got, row(pos)))
		}
		if worst > tol {
			t.Errorf("%s: decode logits differ from the float64 forward by %.3g of scale, want <= %g", cs.name, worst, tol)
		}
		t.Logf("%s: positions %d..%d, worst %.3g", cs.name, start-1, n-1, worst)
	}
	if !slices.Equal(toks[:1], []int{c.BOSTokenID}) {
		t.Errorf("Encode starts with %v, want BOS %d", toks[:1], c.BOSTokenID)
	}
}
