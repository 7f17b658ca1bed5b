package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// GenerateOptions configures Generate.
type GenerateOptions struct {
	DecodeConfig
	// MaxTokens is the number of tokens to generate at most; default 128.
	MaxTokens int
	// Temperature 0 is greedy decoding (ties to the smaller token id); > 0
	// samples from softmax(logits / Temperature) with a PCG stream seeded by
	// Seed, so a run is reproducible.
	Temperature float64
	Seed        uint64
	// PrefillAll prefills the whole prompt, so the first generated token
	// comes from the dense prefill's logits (what the paper's evaluation
	// does). By default the last prompt token is fed through a decode step
	// instead, so every generated token is produced under the Methods.
	PrefillAll bool
}

// GenerateStats reports what Generate did.
type GenerateStats struct {
	PromptTokens    int     // including BOS
	Tokens          int     // generated (EOS not counted)
	PrefillSeconds  float64 // dense prefill of the prompt
	DecodeSeconds   float64 // every decode step
	TokensPerSecond float64 // Tokens / DecodeSeconds
	// AttendedFraction is the mean fraction of each sparse layer's cache the
	// decode steps read (1 for dense attention).
	AttendedFraction float64
	// ContextFull says that generation stopped short of MaxTokens because
	// the sequence reached the model's max_seq_len.
	ContextFull bool
}

// Generate continues prompt (BOS is prepended) until MaxTokens tokens, EOS or
// the model's context, decoding through the Methods of o.DecodeConfig, and
// returns the generated text (bytes; special tokens dropped). Every token the
// model reads sits at a position below Config.MaxSeqLen, the context it was
// trained for, so a prompt of P tokens is continued by at most
// MaxSeqLen - P + 1 tokens (the last one is predicted, never read), as
// llama2.c bounds its steps; a longer prompt is an error. ctx is checked
// before every step.
func (m *Model) Generate(ctx context.Context, prompt string, o GenerateOptions) (string, GenerateStats, error) {
	var st GenerateStats
	maxTok := o.MaxTokens
	if maxTok == 0 {
		maxTok = 128
	}
	if maxTok < 0 || !(o.Temperature >= 0) || math.IsInf(o.Temperature, 0) {
		return "", st, fmt.Errorf("generate: MaxTokens=%d Temperature=%v, want >= 0 and a finite temperature >= 0", o.MaxTokens, o.Temperature)
	}
	toks := m.Encode(prompt)
	st.PromptTokens = len(toks)
	room := m.Config.MaxSeqLen - len(toks) + 1
	if room < 1 {
		return "", st, fmt.Errorf("generate: the prompt is %d tokens (its bytes and BOS), more than the max_seq_len of %d", len(toks), m.Config.MaxSeqLen)
	}
	asked := maxTok
	maxTok = min(maxTok, room)
	pre := toks
	if !o.PrefillAll && len(toks) > 1 {
		pre = toks[:len(toks)-1]
	}
	t0 := time.Now()
	p, err := m.Prefill(pre)
	if err != nil {
		return "", st, err
	}
	sess, err := p.Session(o.DecodeConfig)
	if err != nil {
		return "", st, err
	}
	st.PrefillSeconds = time.Since(t0).Seconds()
	t0 = time.Now()
	logits := p.LastLogits()
	if len(pre) < len(toks) {
		if logits, err = sess.Step(toks[len(toks)-1]); err != nil {
			return "", st, err
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x67656e6572617465)) // "generate"
	var out []int
	for len(out) < maxTok {
		if err := ctx.Err(); err != nil {
			return Decode(out), st, err
		}
		next := sample(logits, o.Temperature, rng, m.Config.BOSTokenID)
		if next == m.Config.EOSTokenID {
			break
		}
		out = append(out, next)
		if len(out) == maxTok {
			break
		}
		if logits, err = sess.Step(next); err != nil {
			return Decode(out), st, err
		}
	}
	st.Tokens = len(out)
	st.ContextFull = len(out) == maxTok && maxTok < asked
	st.DecodeSeconds = time.Since(t0).Seconds()
	if st.DecodeSeconds > 0 {
		st.TokensPerSecond = float64(st.Tokens) / st.DecodeSeconds
	}
	st.AttendedFraction = 1
	if sess.Cached > 0 {
		st.AttendedFraction = sess.Attended / sess.Cached
	}
	return Decode(out), st, nil
}

// greedy is the greedy choice of the next token: the argmax of logits over
// every token but bos (a sequence's start, which a continuation cannot
// contain), ties to the smaller id. Generate at temperature 0, NIAH and
// Agreement decode with it.
func greedy(logits []float32, bos int) int {
	best := -1
	for i, v := range logits {
		if i != bos && (best < 0 || v > logits[best]) {
			best = i
		}
	}
	return best
}

// sample draws the next token, never bos: greedy at temperature 0, else a
// draw from softmax(logits / temperature) over the other tokens.
func sample(logits []float32, temperature float64, rng *rand.Rand, bos int) int {
	best := greedy(logits, bos)
	if temperature == 0 {
		return best
	}
	mx := float64(logits[best])
	p := make([]float64, len(logits))
	var z float64
	for i, v := range logits {
		if i != bos {
			p[i] = math.Exp((float64(v) - mx) / temperature)
			z += p[i]
		}
	}
	u := rng.Float64() * z
	for i, w := range p {
		if u < w {
			return i
		}
		u -= w
	}
	return best
}
