package model

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

// shortPrompt is a fixed prompt of about 60 tokens for the equivalence tests.
const shortPrompt = "The pass key is 31415. Remember it. Fellow citizens, the state of our Union"

// maxRelDiff returns max_i |a[i]-b[i]| / max(1, max_i |b[i]|).
func maxRelDiff(a, b []float32) float64 {
	scale, worst := 1.0, 0.0
	for i := range b {
		scale = max(scale, math.Abs(float64(b[i])))
		worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst / scale
}

// TestPrefillMatchesDecode decodes a prompt one token at a time with dense
// Methods in every layer and compares each step's logits with the prefill's
// logits of the same position. The prefill attends in float32 (scores and
// values) and the decode through ref.Dense in float64, so they agree to
// float32 rounding of the attention outputs: 1e-4 of the logits' scale.
func TestPrefillMatchesDecode(t *testing.T) {
	m := testModel(t)
	toks := m.Encode(shortPrompt)
	full, err := m.Prefill(toks)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := m.Prefill(toks[:1])
	if err != nil {
		t.Fatal(err)
	}
	s, err := pre.Session(DecodeConfig{DenseLayers: -1})
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.VocabSize
	worst := 0.0
	for pos := 1; pos < len(toks); pos++ {
		got, err := s.Step(toks[pos])
		if err != nil {
			t.Fatal(err)
		}
		want := full.Logits[pos*v : (pos+1)*v]
		if d := maxRelDiff(got, want); d > 1e-4 {
			t.Errorf("position %d: decode logits differ from prefill by %.3g of scale, want <= 1e-4", pos, d)
		} else {
			worst = max(worst, d)
		}
	}
	t.Logf("%d positions, worst relative difference %.3g", len(toks)-1, worst)
}

// TestPrefillAttentionMatchesRef holds the prefill's float32 causal attention
// to ref.Prefill (float64) on the model's own layer-0 tensors.
func TestPrefillAttentionMatchesRef(t *testing.T) {
	m := testModel(t)
	c := m.Config
	toks := m.Encode(shortPrompt)
	tr, err := m.Traces(toks, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	l := tr[0]
	n, d := l.N, l.D
	want, err := ref.Prefill(l.Q, 1, c.NHeads, c.NKVHeads, n, d, l.K, l.V) // want: [Hq][N][D]
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n*c.NHeads*d) // got: [N][Hq*D]
	causalAttention(got, l.Q, l.K, l.V, c.NHeads, c.NKVHeads, n, d)
	if diff := maxRelDiff(headMajor(got, n, c.NHeads, d), want); diff > 1e-5 {
		t.Errorf("causal attention differs from ref.Prefill by %.3g of scale, want <= 1e-5", diff)
	}
}

// TestHATAFullBudgetEqualsDense runs decode with HATA (random weights) in
// every layer at k = N: it must select every token and give exactly dense
// attention's logits. At a budget of 4 tokens it must give different logits
// and read 4 tokens per row.
func TestHATAFullBudgetEqualsDense(t *testing.T) {
	m := testModel(t)
	toks := m.Encode(shortPrompt)
	pre, err := m.Prefill(toks[:len(toks)-8])
	if err != nil {
		t.Fatal(err)
	}
	w, err := ref.RandomHashWeights(m.Config.NKVHeads, m.Config.HeadDim, 128, 7)
	if err != nil {
		t.Fatal(err)
	}
	hata := func(int) (ref.Method, error) { return ref.NewHATA(w, ref.Windows{}, false), nil }
	dense, err := pre.Session(DecodeConfig{DenseLayers: -1})
	if err != nil {
		t.Fatal(err)
	}
	full, err := pre.Session(DecodeConfig{Methods: hata, DenseLayers: -1, Budget: ref.Full})
	if err != nil {
		t.Fatal(err)
	}
	small, err := pre.Session(DecodeConfig{Methods: hata, DenseLayers: -1, Budget: ref.Budget{K: 4}})
	if err != nil {
		t.Fatal(err)
	}
	differs := false
	for _, tok := range toks[len(toks)-8:] {
		want, err := dense.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		got, err := full.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("position %d: hata at k=N logit %d = %v, dense %v", dense.Pos-1, i, got[i], want[i])
			}
		}
		sm, err := small.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		differs = differs || maxRelDiff(sm, want) > 1e-4
	}
	if !differs {
		t.Error("hata at k=4 gave dense attention's logits at every step")
	}
	if f := full.Attended / full.Cached; f != 1 {
		t.Errorf("hata at k=N read %.4f of the cache, want 1", f)
	}
	if a := small.Attended / float64(small.SparseSteps); a != 4 {
		t.Errorf("hata at k=4 read %.3f tokens per row and step, want 4", a)
	}
}

// TestTraces checks the shapes of a trace, that K is RoPE of KPre position by
// position, and that it holds the cache the prefill hands to the Methods.
func TestTraces(t *testing.T) {
	m := testModel(t)
	c := m.Config
	toks := m.Encode(shortPrompt)
	tr, err := m.Traces(toks, []int{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 2 || tr[1] == nil || tr[3] == nil {
		t.Fatalf("Traces(layers 1, 3) returned layers %v", sortedLayers(tr))
	}
	pre, err := m.Prefill(toks)
	if err != nil {
		t.Fatal(err)
	}
	n, d := len(toks), c.HeadDim
	for _, l := range []int{1, 3} {
		lt := tr[l]
		if err := lt.Validate(); err != nil {
			t.Fatalf("layer %d: %v", l, err)
		}
		if lt.Hq != c.NHeads || lt.Hkv != c.NKVHeads || lt.N != n || lt.D != d || lt.KPre == nil {
			t.Fatalf("layer %d: trace Hq=%d Hkv=%d N=%d D=%d kpre=%v, want %d %d %d %d with kpre", l, lt.Hq, lt.Hkv, lt.N, lt.D, lt.KPre != nil, c.NHeads, c.NKVHeads, n, d)
		}
		for h := range c.NKVHeads {
			for pos := range n {
				x := append([]float32(nil), lt.KPre[(h*n+pos)*d:(h*n+pos+1)*d]...)
				if err := m.RoPE.Apply(x, pos); err != nil {
					t.Fatal(err)
				}
				if diff := maxRelDiff(x, lt.K[(h*n+pos)*d:(h*n+pos+1)*d]); diff != 0 {
					t.Fatalf("layer %d head %d position %d: K differs from RoPE(KPre) by %.3g", l, h, pos, diff)
				}
			}
		}
		k, v := pre.KV[l].Flat()
		if maxRelDiff(k, lt.K) != 0 || maxRelDiff(v, lt.V) != 0 {
			t.Errorf("layer %d: trace K, V differ from the prefill's cache", l)
		}
	}
	dir := t.TempDir()
	if err := m.WriteTraces(dir, shortPrompt, []int{2}); err != nil {
		t.Fatal(err)
	}
	back, err := tensorio.ReadTrace(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Layers) != 1 || back.Layers[0] != 2 || back.Meta == nil || back.Meta.Prompt != shortPrompt || back.Meta.PromptBytes != nil {
		t.Errorf("ReadTrace of WriteTraces: layers %v meta %+v", back.Layers, back.Meta)
	}
	// A prompt cut mid-character, as the experiments' windows of held-out
	// text can be, keeps its bytes in meta.json, as hata traces's do
	// (TestTracesBytePrompt).
	cut := "caf\xc3"
	dir = t.TempDir()
	if err := m.WriteTraces(dir, cut, []int{2}); err != nil {
		t.Fatal(err)
	}
	if back, err = tensorio.ReadTrace(dir); err != nil {
		t.Fatal(err)
	}
	if back.Meta == nil || string(back.Meta.PromptBytes) != cut {
		t.Errorf("WriteTraces of %q: meta %+v, want prompt_bytes the prompt's bytes", cut, back.Meta)
	}
}

// TestGenerate checks that greedy generation is deterministic, that sampling
// is reproducible from its seed, and that the stats add up.
func TestGenerate(t *testing.T) {
	m := testModel(t)
	ctx := context.Background()
	o := GenerateOptions{MaxTokens: 12}
	a, st, err := m.Generate(ctx, "Fellow citizens", o)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := m.Generate(ctx, "Fellow citizens", o)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(a) != 12 || st.Tokens != 12 || st.PromptTokens != 16 || !(st.TokensPerSecond > 0) || st.AttendedFraction != 1 {
		t.Errorf("greedy: %q then %q, stats %+v; want equal 12-byte texts, 16 prompt tokens, 12 tokens, tokens/s > 0, attended 1", a, b, st)
	}
	o.Temperature, o.Seed = 1, 3
	s1, _, err := m.Generate(ctx, "Fellow citizens", o)
	if err != nil {
		t.Fatal(err)
	}
	s2, _, err := m.Generate(ctx, "Fellow citizens", o)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 {
		t.Errorf("sampling with seed 3 gave %q then %q", s1, s2)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := m.Generate(cctx, "x", o); err == nil {
		t.Error("Generate with a cancelled context: no error")
	}
}

// TestGenerateContext checks that generation stops at the model's
// max_seq_len: a prompt of P tokens is continued by at most max_seq_len-P+1
// tokens, the stats say so, and a prompt past max_seq_len is an error.
func TestGenerateContext(t *testing.T) {
	m := *testModel(t) // a copy: its Config is changed below
	ctx := context.Background()
	o := GenerateOptions{MaxTokens: 12} // greedy: 12 bytes without EOS (TestGenerate)
	for _, c := range []struct {
		maxSeqLen, want int
		full            bool
	}{
		{16 + 11, 12, false}, // room for 12: not cut
		{16 + 4, 5, true},
		{16, 1, true},
	} {
		m.Config.MaxSeqLen = c.maxSeqLen
		text, st, err := m.Generate(ctx, "Fellow citizens", o)
		if err != nil {
			t.Fatalf("max_seq_len %d: %v", c.maxSeqLen, err)
		}
		if len(text) != c.want || st.Tokens != c.want || st.ContextFull != c.full {
			t.Errorf("max_seq_len %d, a 16-token prompt: %q, %d tokens, ContextFull %v; want %d tokens, ContextFull %v",
				c.maxSeqLen, text, st.Tokens, st.ContextFull, c.want, c.full)
		}
	}
	m.Config.MaxSeqLen = 15
	if _, _, err := m.Generate(ctx, "Fellow citizens", o); err == nil || !strings.Contains(err.Error(), "max_seq_len of 15") {
		t.Errorf("a 16-token prompt at max_seq_len 15: %v, want an error naming max_seq_len", err)
	}
}

// TestNIAHPrompt checks the prompt's length, the needle's place at a word
// boundary and the question at the end.
func TestNIAHPrompt(t *testing.T) {
	hay := []byte(strings.Repeat("alpha beta gamma delta ", 40))
	for _, depth := range []float64{0, 0.5, 1} {
		p, err := NIAHPrompt(hay, 300, depth, "12345")
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 300 {
			t.Fatalf("depth %v: %d tokens, want 300", depth, len(p))
		}
		s := Decode(p[1:])
		i := strings.Index(s, " The pass key is 12345.")
		if !strings.HasSuffix(s, NIAHQuestion) || i < 0 {
			t.Fatalf("depth %v: prompt %q lacks the needle or the question", depth, s)
		}
		if i > 0 && s[i-1] != ' ' {
			t.Errorf("depth %v: needle at byte %d, not after a space: %q", depth, i, s[max(0, i-10):i+5])
		}
		hayLen := 300 - 1 - len(" The pass key is 12345. Remember it. 12345 is the pass key. ") - len(NIAHQuestion)
		if f := float64(i) / float64(hayLen); f < depth-0.05 || f > depth+0.05 {
			t.Errorf("depth %v: needle at %.3f of the haystack", depth, f)
		}
	}
	if _, err := NIAHPrompt(hay[:50], 300, 0.5, "12345"); err == nil {
		t.Error("NIAHPrompt with a short haystack: no error")
	}
}

// TestEvalRunnersTiny runs the three evaluations at test size and checks
// what must hold whatever the model: dense agrees with itself, HATA at the
// full budget scores exactly as dense, budgets read the fraction they say,
// and the rows are complete.
func TestEvalRunnersTiny(t *testing.T) {
	m := testModel(t)
	ctx := context.Background()
	hay, err := os.ReadFile(filepath.Join("..", "train", "heldout.txt"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := ref.RandomHashWeights(m.Config.NKVHeads, m.Config.HeadDim, 128, 1)
	if err != nil {
		t.Fatal(err)
	}
	ws := map[int]*ref.HashWeights{}
	for l := range m.Config.NLayers {
		ws[l] = w
	}
	methods := []MethodSpec{Dense,
		{Name: "hata", Factory: m.RefFactory("hata", ref.Options{}, ws)},
		{Name: "topk", Factory: m.RefFactory("topk", ref.Options{}, nil)},
	}
	budgets := []ref.Budget{ref.Full, {Ratio: 0.0625}}

	pp, err := m.Perplexity(ctx, PerplexityConfig{Text: hay, Length: 80, Prefix: 48, Methods: methods, Budgets: budgets})
	if err != nil {
		t.Fatal(err)
	}
	if len(pp) != 5 {
		t.Fatalf("perplexity: %d rows, want 5 (dense + 2 methods x 2 budgets)", len(pp))
	}
	dense := pp[0]
	if dense.Method != "dense" || dense.Agreement != 1 || dense.Predicted != 31 || !(dense.BitsPerByte > 0.1 && dense.BitsPerByte < 8) {
		t.Errorf("dense row %+v: want agreement 1, 31 predictions, 0.1 < bits/byte < 8", dense)
	}
	for _, r := range pp[1:] {
		t.Logf("perplexity %s@%s: %.4f bits/byte, agreement %.3f, read %.3f", r.Method, r.Budget, r.BitsPerByte, r.Agreement, r.AttendedFraction)
		if r.Budget == "1" && (r.NLL != dense.NLL || r.Agreement != 1) {
			t.Errorf("%s at the full budget: NLL %v agreement %v, dense NLL %v", r.Method, r.NLL, r.Agreement, dense.NLL)
		}
		if r.Budget == "0.0625" && !(r.AttendedFraction > 0.04 && r.AttendedFraction < 0.07) {
			t.Errorf("%s at budget 0.0625 read %.4f of the cache", r.Method, r.AttendedFraction)
		}
	}

	nh, err := m.NIAH(ctx, NIAHConfig{Haystack: hay, Contexts: []int{160}, Depths: []float64{0.5}, Trials: 1, Methods: methods, Budgets: budgets, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(nh) != 5 {
		t.Fatalf("niah: %d rows, want 5", len(nh))
	}
	for _, r := range nh {
		if r.Trials != 1 || r.Context != 160 || r.Accuracy < 0 || r.Accuracy > 1 || r.DigitAccuracy < 0 || r.DigitAccuracy > 1 {
			t.Errorf("niah row %+v out of range", r)
		}
		if r.Budget == "1" && (r.Accuracy != nh[0].Accuracy || r.DigitAccuracy != nh[0].DigitAccuracy) {
			t.Errorf("niah %s at the full budget: %+v, dense %+v", r.Method, r, nh[0])
		}
	}

	ag, err := m.Agreement(ctx, AgreementConfig{Prompts: []string{"Fellow citizens of the Senate"}, Tokens: 6, Methods: methods, Budgets: budgets})
	if err != nil {
		t.Fatal(err)
	}
	if len(ag) != 4 {
		t.Fatalf("agreement: %d rows, want 4", len(ag))
	}
	for _, r := range ag {
		if r.Budget == "1" && (r.Agreement != 1 || r.FirstDivergence != 6) {
			t.Errorf("agreement %s at the full budget: %+v, want 1 and 6", r.Method, r)
		}
	}
}

// TestLoadErrors checks that a checkpoint whose tensors do not fit its config
// is refused with an error naming the file, the tensor and both shapes, and
// that missing and unexpected tensors are named.
func TestLoadErrors(t *testing.T) {
	cfg := `{"dim": 4, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "head_dim": 2, "hidden_dim": 6,
		"vocab_size": 258, "rope_theta": 10000, "max_seq_len": 16, "norm_eps": 1e-5, "tied": true,
		"tokenizer": "bytes", "bos_token_id": 256, "eos_token_id": 257}`
	arr := func(shape ...int) *tensorio.Array {
		n := 1
		for _, s := range shape {
			n *= s
		}
		return &tensorio.Array{Shape: shape, Dtype: tensorio.Float32, F32: make([]float32, n)}
	}
	good := map[string]*tensorio.Array{
		"model.embed_tokens.weight":                      arr(258, 4),
		"model.norm.weight":                              arr(4),
		"model.layers.0.input_layernorm.weight":          arr(4),
		"model.layers.0.self_attn.q_proj.weight":         arr(4, 4),
		"model.layers.0.self_attn.k_proj.weight":         arr(2, 4),
		"model.layers.0.self_attn.v_proj.weight":         arr(2, 4),
		"model.layers.0.self_attn.o_proj.weight":         arr(4, 4),
		"model.layers.0.post_attention_layernorm.weight": arr(4),
		"model.layers.0.mlp.gate_proj.weight":            arr(6, 4),
		"model.layers.0.mlp.up_proj.weight":              arr(6, 4),
		"model.layers.0.mlp.down_proj.weight":            arr(4, 6),
	}
	write := func(ts map[string]*tensorio.Array) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := tensorio.WriteSafetensors(filepath.Join(dir, "w.safetensors"), ts); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if _, err := Load(write(good)); err != nil {
		t.Fatalf("Load of a well-formed tiny checkpoint: %v", err)
	}
	with := func(k string, a *tensorio.Array) map[string]*tensorio.Array {
		c := map[string]*tensorio.Array{}
		for n, v := range good {
			c[n] = v
		}
		if a == nil {
			delete(c, k)
		} else {
			c[k] = a
		}
		return c
	}
	for _, tc := range []struct {
		ts   map[string]*tensorio.Array
		want []string
	}{
		{with("model.layers.0.self_attn.k_proj.weight", arr(4, 4)), []string{"w.safetensors", "k_proj", "[4, 4]", "[2, 4]"}},
		{with("model.layers.0.mlp.up_proj.weight", nil), []string{"up_proj", "missing"}},
		{with("lm_head.weight", arr(258, 4)), []string{"lm_head.weight", "does not describe"}},
	} {
		_, err := Load(write(tc.ts))
		if err == nil {
			t.Errorf("Load: no error, want one naming %v", tc.want)
			continue
		}
		for _, s := range tc.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Load error %q does not mention %q", err, s)
			}
		}
	}
}

// TestConfigArchitectureDType: config.json's architecture and dtype, where
// present, must be ones this package runs; an unknown one is an error that
// names the file and the value, not a model run as if it were a llama. So is
// every other field out of its range.
func TestConfigArchitectureDType(t *testing.T) {
	base := `"dim": 4, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "head_dim": 2, "hidden_dim": 6,
		"vocab_size": 258, "rope_theta": 10000, "max_seq_len": 16, "norm_eps": 1e-5, "tied": true,
		"tokenizer": "bytes", "bos_token_id": 256, "eos_token_id": 257`
	for _, c := range []struct {
		extra string
		want  string // "" where it loads
	}{
		{``, ""},
		{`, "architecture": "llama", "dtype": "bfloat16"`, ""},
		{`, "dtype": "float32"`, ""},
		{`, "architecture": "mistral"`, `architecture "mistral"`},
		{`, "dtype": "int4"`, `dtype "int4"`},
		// Every other check (a later key replaces the base's).
		{`, "dim": 0`, "dim=0"},
		{`, "n_layers": 0`, "n_layers=0"},
		{`, "hidden_dim": -1`, "hidden_dim=-1"},
		{`, "n_kv_heads": 0`, "n_kv_heads=0"},
		{`, "n_heads": 3, "n_kv_heads": 2`, "n_heads=3 n_kv_heads=2"},
		{`, "head_dim": 3`, "head_dim=3"},
		{`, "rope_theta": 1`, "rope_theta=1"},
		{`, "norm_eps": 0`, "norm_eps=0"},
		{`, "tokenizer": "sentencepiece"`, `tokenizer "sentencepiece"`},
		{`, "vocab_size": 200`, "vocab_size=200"},
		{`, "bos_token_id": 258`, "bos=258"},
		{`, "eos_token_id": 65`, "eos=65"},
		{`, "max_seq_len": 0`, "max_seq_len=0"},
	} {
		path := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(path, []byte("{"+base+c.extra+"}"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("config with%s: %v", c.extra, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path)):
			t.Errorf("config with%s: %v, want an error naming %s and %s", c.extra, err, path, c.want)
		}
	}
}

// TestTrainHashRoundTrip trains a layer's hash weights on a short sequence for
// a few steps, saves and reloads them, and checks shapes and contents.
func TestTrainHashRoundTrip(t *testing.T) {
	m := testModel(t)
	cfg := ref.DefaultTrainConfig()
	cfg.Steps = 3
	ws, err := m.TrainHash([][]int{m.Encode(shortPrompt)}, []int{4}, HashTraining{Rbit: 64, Positions: 2, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	w := ws[4]
	if len(ws) != 1 || w == nil || w.Hkv != m.Config.NKVHeads || w.D != m.Config.HeadDim || w.Rbit != 64 {
		t.Fatalf("TrainHash(layer 4, rbit 64) = %v", ws)
	}
	dir := t.TempDir()
	if err := SaveHashWeights(dir, ws); err != nil {
		t.Fatal(err)
	}
	back, err := m.LoadHashWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 1 || back[4] == nil || maxRelDiff(back[4].W, w.W) != 0 {
		t.Errorf("LoadHashWeights after SaveHashWeights: layers %v, weights differ", sortedLayers(back))
	}
	bad := map[int]*ref.HashWeights{9: w}
	if err := SaveHashWeights(dir, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadHashWeights(dir); err == nil || !strings.Contains(err.Error(), "layer 9") {
		t.Errorf("LoadHashWeights with a layer-9 file: error %v, want one naming layer 9", err)
	}
}

// TestTrainHashAnswers checks that answer sequences change what TrainHash
// learns (their samples are added to the random positions' ones), that the
// result is deterministic, and that bad answer settings are refused.
func TestTrainHashAnswers(t *testing.T) {
	m := testModel(t)
	cfg := ref.DefaultTrainConfig()
	cfg.Steps = 3
	seqs := [][]int{m.Encode(shortPrompt)}
	answer := m.Encode(shortPrompt + " 12345")
	base, err := m.TrainHash(seqs, []int{4}, HashTraining{Rbit: 64, Positions: 2, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	o := HashTraining{Rbit: 64, Positions: 2, Config: cfg, AnswerSeqs: [][]int{answer}, AnswerLen: 5}
	a1, err := m.TrainHash(seqs, []int{4}, o)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := m.TrainHash(seqs, []int{4}, o)
	if err != nil {
		t.Fatal(err)
	}
	if maxRelDiff(a1[4].W, a2[4].W) != 0 {
		t.Error("TrainHash with answer sequences is not deterministic")
	}
	if maxRelDiff(a1[4].W, base[4].W) == 0 {
		t.Error("answer sequences did not change the trained weights")
	}
	for _, bad := range []HashTraining{
		{Rbit: 64, Config: cfg, AnswerSeqs: [][]int{answer}},                             // no AnswerLen
		{Rbit: 64, Config: cfg, AnswerSeqs: [][]int{answer[:4]}, AnswerLen: len(answer)}, // too short
	} {
		if _, err := m.TrainHash(seqs, []int{4}, bad); err == nil || !strings.Contains(err.Error(), "answer") {
			t.Errorf("TrainHash(%+v): error %v, want one about the answer sequences", bad.AnswerLen, err)
		}
	}
}

// TestSampleNeverBOS: the sampler never draws the BOS token, which a
// continuation cannot contain (the helper audit's 16 tokens counted, 15
// printed), greedy or at any temperature.
func TestSampleNeverBOS(t *testing.T) {
	logits := []float32{0.5, 1, 0.25, 9} // token 3 is BOS and the most likely
	rng := rand.New(rand.NewPCG(1, 1))
	if got := sample(logits, 0, rng, 3); got != 1 {
		t.Errorf("greedy with BOS the argmax: %d, want 1", got)
	}
	for _, temp := range []float64{1, 1e6} {
		for range 2000 {
			if got := sample(logits, temp, rng, 3); got == 3 {
				t.Fatalf("temperature %g drew BOS", temp)
			}
		}
	}
}

// TestGreedyNeverBOS: NIAH's and Agreement's greedy decoding never picks
// the BOS token, as Generate's sampler does not (TestSampleNeverBOS). The
// model is the committed one with lm_head's BOS row set to twice the row of
// dense's first greedy token, so that BOS is the argmax of the first step's
// logits and every other logit is as it was: greedyFrom must decode the
// unchanged model's tokens, and Agreement must find topk at the full budget
// (dense attention) agreeing with dense at every step.
func TestGreedyNeverBOS(t *testing.T) {
	m := testModel(t)
	bos, d := m.Config.BOSTokenID, m.Config.Dim
	prompt := m.Encode("Fellow citizens of the Senate")
	pre, err := m.prefillFor(prompt, false)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := m.greedyFrom(pre, prompt, DecodeConfig{}, 6)
	if err != nil {
		t.Fatal(err)
	}

	b := *m // lm_head's own copy: when tied it aliases the embedding
	b.Head = append([]float32(nil), m.Head...)
	for i := range d {
		b.Head[bos*d+i] = 2 * m.Head[want[0]*d+i]
	}
	all, err := b.prefillFor(prompt, true)
	if err != nil {
		t.Fatal(err)
	}
	if first := all.LastLogits(); argmax(first) != bos {
		t.Fatalf("the first logits' argmax is %d (logit %v), want BOS %d (logit %v): the test does not test", argmax(first), first[argmax(first)], bos, first[bos])
	}
	pre, err = b.prefillFor(prompt, false)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := b.greedyFrom(pre, prompt, DecodeConfig{}, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !equalInts(got, want) {
		t.Errorf("greedy tokens with BOS the argmax: %v, want %v (BOS is %d)", got, want, bos)
	}
	ag, err := b.Agreement(context.Background(), AgreementConfig{Prompts: []string{"Fellow citizens of the Senate"}, Tokens: 6,
		Methods: []MethodSpec{{Name: "topk", Factory: b.RefFactory("topk", ref.Options{}, nil)}}, Budgets: []ref.Budget{ref.Full}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ag) != 1 || ag[0].Agreement != 1 || ag[0].FirstDivergence != 6 {
		t.Errorf("agreement of topk at the full budget with BOS the argmax: %+v, want 1 and 6", ag)
	}
}
