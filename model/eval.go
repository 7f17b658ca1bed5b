package model

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/hata-go/hata/ref"
)

// MethodSpec is one attention method under evaluation: a label for the rows
// and the Factory that builds it per layer. A nil Factory is dense attention,
// which is run once, at the full budget, whatever the budgets are.
type MethodSpec struct {
	Name    string
	Factory Factory
}

// Dense is the dense-attention MethodSpec, the reference of every evaluation.
var Dense = MethodSpec{Name: "dense"}

// runs lists the (method, budget) pairs of an evaluation: dense once, every
// other method at every budget.
func runs(methods []MethodSpec, budgets []ref.Budget) ([]MethodSpec, []ref.Budget, error) {
	var ms []MethodSpec
	var bs []ref.Budget
	for _, m := range methods {
		if m.Factory == nil {
			ms, bs = append(ms, m), append(bs, ref.Full)
			continue
		}
		if len(budgets) == 0 {
			return nil, nil, fmt.Errorf("method %s: no budgets", m.Name)
		}
		for _, b := range budgets {
			if _, err := b.Tokens(1); err != nil {
				return nil, nil, fmt.Errorf("method %s: %w", m.Name, err)
			}
			ms, bs = append(ms, m), append(bs, b)
		}
	}
	if len(ms) == 0 {
		return nil, nil, fmt.Errorf("no methods")
	}
	return ms, bs, nil
}

// NIAHNeedle and NIAHQuestion are the pass-key needle-in-a-haystack texts
// (train/train.py's niah_prompt builds the same prompt): the needle is
// inserted into held-out text at a depth, the question ends the prompt, and
// the model must continue with " " and the five digits.
const (
	NIAHNeedle   = " The pass key is %s. Remember it. %s is the pass key. "
	NIAHQuestion = " What is the pass key? The pass key is"
)

// NIAHPrompt returns the tokens of a pass-key prompt of exactly ctx tokens:
// BOS, haystack bytes with the needle inserted at the first word boundary at
// or after depth*len(haystack), then the question. hay must hold enough bytes.
func NIAHPrompt(hay []byte, ctx int, depth float64, key string) ([]int, error) {
	nd := fmt.Sprintf(NIAHNeedle, key, key)
	n := ctx - 1 - len(nd) - len(NIAHQuestion)
	if n < 0 || len(hay) < n || !(depth >= 0 && depth <= 1) {
		return nil, fmt.Errorf("niah prompt: context %d, depth %v, %d haystack bytes: want context > %d, depth in [0, 1], >= %d bytes",
			ctx, depth, len(hay), 1+len(nd)+len(NIAHQuestion), n)
	}
	h := hay[:n]
	p := int(depth * float64(n))
	if p > 0 && p < n {
		if j := bytes.IndexByte(h[p:], ' '); j < 0 {
			p = n
		} else {
			p += j + 1
		}
	}
	t := make([]int, 0, ctx)
	t = append(t, -1) // BOS, set by the caller's model
	t = append(t, EncodeBytes(h[:p])...)
	t = append(t, EncodeBytes([]byte(nd))...)
	t = append(t, EncodeBytes(h[p:])...)
	t = append(t, EncodeBytes([]byte(NIAHQuestion))...)
	return t, nil
}

// NIAHConfig configures a needle-in-a-haystack run (the paper's Fig. 6).
type NIAHConfig struct {
	Haystack []byte       // held-out text (train/heldout.txt)
	Contexts []int        // prompt lengths in tokens, BOS included
	Depths   []float64    // needle depths in [0, 1]
	Trials   int          // prompts per (context, depth); default 1
	Methods  []MethodSpec // include Dense for the reference
	Budgets  []ref.Budget // e.g. ratios 0.0156 and 0.0313
	// DenseLayers and PrefillAll as in DecodeConfig and GenerateOptions.
	DenseLayers int
	PrefillAll  bool
	Seed        uint64 // draws the haystack offsets and the keys
}

// NIAHRow is the result of one (method, budget, context, depth) cell.
type NIAHRow struct {
	Method   string
	Budget   string  // "1" for dense (the full budget)
	Context  int     // prompt tokens
	Depth    float64 // needle depth
	Trials   int
	Correct  int     // prompts whose greedy continuation is exactly " " + key
	Accuracy float64 // Correct / Trials
	// DigitAccuracy is the fraction of the key's digits reproduced at their
	// place, a finer signal than Accuracy for a weak model.
	DigitAccuracy float64
	// AttendedFraction is the mean fraction of the sparse layers' caches
	// the decode steps read.
	AttendedFraction float64
}

// NIAH runs the pass-key retrieval grid: for every context length, depth and
// trial it builds a prompt with a random five-digit key, prefills it densely
// once, and for every (method, budget) decodes six tokens greedily (each
// generated token through the Methods) and compares them with " " + key.
func (m *Model) NIAH(ctx context.Context, c NIAHConfig) ([]NIAHRow, error) {
	ms, bs, err := runs(c.Methods, c.Budgets)
	if err != nil {
		return nil, fmt.Errorf("niah: %w", err)
	}
	trials := max(c.Trials, 1)
	rng := rand.New(rand.NewPCG(c.Seed, 0x6e696168)) // "niah"
	var rows []NIAHRow
	for _, cx := range c.Contexts {
		for _, depth := range c.Depths {
			cell := make([]NIAHRow, len(ms))
			for i := range cell {
				cell[i] = NIAHRow{Method: ms[i].Name, Budget: bs[i].String(), Context: cx, Depth: depth, Trials: trials}
			}
			for range trials {
				key := strconv.Itoa(10000 + rng.IntN(90000))
				span := len(c.Haystack) - cx
				if span <= 0 {
					return nil, fmt.Errorf("niah: haystack of %d bytes is too short for context %d", len(c.Haystack), cx)
				}
				off := rng.IntN(span)
				prompt, err := NIAHPrompt(c.Haystack[off:], cx, depth, key)
				if err != nil {
					return nil, err
				}
				prompt[0] = m.Config.BOSTokenID
				want := " " + key
				pre, err := m.prefillFor(prompt, c.PrefillAll)
				if err != nil {
					return nil, err
				}
				for i := range ms {
					if err := ctx.Err(); err != nil {
						return nil, err
					}
					got, frac, err := m.greedyFrom(pre, prompt, DecodeConfig{Methods: ms[i].Factory, DenseLayers: c.DenseLayers, Budget: bs[i]}, len(want))
					if err != nil {
						return nil, fmt.Errorf("niah %s budget %s context %d depth %v: %w", ms[i].Name, bs[i], cx, depth, err)
					}
					s := Decode(got)
					if s == want {
						cell[i].Correct++
					}
					for j := 1; j < len(want) && j < len(s); j++ {
						if s[j] == want[j] {
							cell[i].DigitAccuracy++
						}
					}
					cell[i].AttendedFraction += frac
				}
			}
			for i := range cell {
				cell[i].Accuracy = float64(cell[i].Correct) / float64(trials)
				cell[i].DigitAccuracy /= float64(trials * 5)
				cell[i].AttendedFraction /= float64(trials)
			}
			rows = append(rows, cell...)
		}
	}
	return rows, nil
}

// prefillFor prefills prompt, all of it when all is set, else all but the
// last token (which the sessions then feed through a decode step).
func (m *Model) prefillFor(prompt []int, all bool) (*Prefilled, error) {
	if all || len(prompt) < 2 {
		return m.Prefill(prompt)
	}
	return m.Prefill(prompt[:len(prompt)-1])
}

// greedyFrom decodes steps tokens greedily (greedy: never BOS, as Generate)
// from a prefill of prompt (or of all of prompt but its last token, which is
// then stepped first) under cfg, and returns them with the fraction of the
// sparse caches read.
func (m *Model) greedyFrom(pre *Prefilled, prompt []int, cfg DecodeConfig, steps int) ([]int, float64, error) {
	s, err := pre.Session(cfg)
	if err != nil {
		return nil, 0, err
	}
	logits := pre.LastLogits()
	if len(pre.Tokens) < len(prompt) {
		if logits, err = s.Step(prompt[len(prompt)-1]); err != nil {
			return nil, 0, err
		}
	}
	out := make([]int, 0, steps)
	for len(out) < steps {
		out = append(out, greedy(logits, m.Config.BOSTokenID))
		if len(out) == steps {
			break
		}
		if logits, err = s.Step(out[len(out)-1]); err != nil {
			return nil, 0, err
		}
	}
	frac := 1.0
	if s.Cached > 0 {
		frac = s.Attended / s.Cached
	}
	return out, frac, nil
}

// PerplexityConfig configures a perplexity run on held-out text.
type PerplexityConfig struct {
	Text    []byte // held-out text
	Windows int    // windows, evenly spaced over Text; default 1
	Length  int    // tokens per window, BOS included
	// Prefix is the number of tokens of each window prefilled densely; every
	// later token is fed through a decode step and the next token's
	// log-likelihood is read from that step's logits, so what is measured is
	// the sparse attention of decode. Default Length/2.
	Prefix      int
	Methods     []MethodSpec
	Budgets     []ref.Budget
	DenseLayers int
}

// PerplexityRow is the result of one (method, budget).
type PerplexityRow struct {
	Method      string
	Budget      string
	Length      int // tokens per window
	Prefix      int // densely prefilled tokens per window
	Windows     int
	Predicted   int     // next-token predictions scored, over all windows
	NLL         float64 // mean negative log-likelihood, nats per token (= per byte)
	BitsPerByte float64 // NLL / ln 2
	Perplexity  float64 // exp(NLL)
	// Agreement is the fraction of decode steps whose argmax equals dense
	// attention's on the same text (teacher-forced top-1 agreement).
	Agreement        float64
	AttendedFraction float64
}

// Perplexity scores held-out text under every (method, budget): each window
// is prefilled densely up to Prefix, then decoded one token at a time through
// the Methods, teacher-forced with the text.
func (m *Model) Perplexity(ctx context.Context, c PerplexityConfig) ([]PerplexityRow, error) {
	ms, bs, err := runs(append([]MethodSpec{Dense}, withoutDense(c.Methods)...), c.Budgets)
	if err != nil {
		return nil, fmt.Errorf("perplexity: %w", err)
	}
	windows := max(c.Windows, 1)
	prefix := c.Prefix
	if prefix == 0 {
		prefix = c.Length / 2
	}
	if c.Length < 3 || prefix < 1 || prefix > c.Length-2 || len(c.Text) < c.Length {
		return nil, fmt.Errorf("perplexity: length %d, prefix %d, %d bytes of text: want 1 <= prefix <= length-2 and text >= length", c.Length, prefix, len(c.Text))
	}
	rows := make([]PerplexityRow, len(ms))
	for i := range rows {
		rows[i] = PerplexityRow{Method: ms[i].Name, Budget: bs[i].String(), Length: c.Length, Prefix: prefix, Windows: windows}
	}
	for w := range windows {
		off := 0
		if windows > 1 {
			off = w * (len(c.Text) - (c.Length - 1)) / windows
		}
		toks := append([]int{m.Config.BOSTokenID}, EncodeBytes(c.Text[off:off+c.Length-1])...)
		pre, err := m.Prefill(toks[:prefix])
		if err != nil {
			return nil, err
		}
		var denseArg []int // dense argmax per decode step
		for i := range ms {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			s, err := pre.Session(DecodeConfig{Methods: ms[i].Factory, DenseLayers: c.DenseLayers, Budget: bs[i]})
			if err != nil {
				return nil, fmt.Errorf("perplexity %s budget %s: %w", ms[i].Name, bs[i], err)
			}
			for t := prefix; t < c.Length-1; t++ {
				logits, err := s.Step(toks[t])
				if err != nil {
					return nil, fmt.Errorf("perplexity %s budget %s: %w", ms[i].Name, bs[i], err)
				}
				rows[i].NLL += nll(logits, toks[t+1])
				rows[i].Predicted++
				a := argmax(logits)
				if i == 0 {
					denseArg = append(denseArg, a)
				}
				if a == denseArg[t-prefix] {
					rows[i].Agreement++
				}
			}
			if s.Cached > 0 {
				rows[i].AttendedFraction += s.Attended / s.Cached / float64(windows)
			} else {
				rows[i].AttendedFraction += 1 / float64(windows)
			}
		}
	}
	for i := range rows {
		r := &rows[i]
		r.NLL /= float64(r.Predicted)
		r.Agreement /= float64(r.Predicted)
		r.BitsPerByte = r.NLL / math.Ln2
		r.Perplexity = math.Exp(r.NLL)
	}
	return rows, nil
}

// withoutDense drops the dense specs (Perplexity runs dense first itself).
func withoutDense(ms []MethodSpec) []MethodSpec {
	var out []MethodSpec
	for _, m := range ms {
		if m.Factory != nil {
			out = append(out, m)
		}
	}
	return out
}

// nll returns -log softmax(logits)[tok], in float64.
func nll(logits []float32, tok int) float64 {
	mx := float64(logits[argmax(logits)])
	var z float64
	for _, v := range logits {
		z += math.Exp(float64(v) - mx)
	}
	return -(float64(logits[tok]) - mx - math.Log(z))
}

// AgreementConfig configures a greedy-agreement run.
type AgreementConfig struct {
	Prompts     []string // BOS is prepended to each
	Tokens      int      // tokens generated per prompt
	Methods     []MethodSpec
	Budgets     []ref.Budget
	DenseLayers int
}

// AgreementRow is the result of one (method, budget).
type AgreementRow struct {
	Method  string
	Budget  string
	Prompts int
	Tokens  int // per prompt
	// Agreement is the fraction of steps whose greedy token equals dense
	// attention's, with the method fed dense's greedy continuation
	// (teacher-forced).
	Agreement float64
	// FirstDivergence is the mean index of the first generated token that
	// differs from dense's (Tokens when none does): the length of the common
	// prefix of free-running greedy generation.
	FirstDivergence float64
}

// Agreement measures how closely greedy generation under each (method,
// budget) follows greedy generation with dense attention. Every generated
// token is produced by a decode step (the last prompt token is stepped),
// except the first one of an empty prompt (BOS alone, which the dense
// prefill reads), which both sides take from the prefill's logits.
func (m *Model) Agreement(ctx context.Context, c AgreementConfig) ([]AgreementRow, error) {
	ms, bs, err := runs(withoutDense(c.Methods), c.Budgets)
	if err != nil {
		return nil, fmt.Errorf("agreement: %w", err)
	}
	if c.Tokens < 1 || len(c.Prompts) == 0 {
		return nil, fmt.Errorf("agreement: %d prompts, %d tokens: want >= 1 of each", len(c.Prompts), c.Tokens)
	}
	rows := make([]AgreementRow, len(ms))
	for i := range rows {
		rows[i] = AgreementRow{Method: ms[i].Name, Budget: bs[i].String(), Prompts: len(c.Prompts), Tokens: c.Tokens}
	}
	for _, p := range c.Prompts {
		prompt := m.Encode(p)
		pre, err := m.prefillFor(prompt, false)
		if err != nil {
			return nil, err
		}
		denseToks, _, err := m.greedyFrom(pre, prompt, DecodeConfig{DenseLayers: c.DenseLayers}, c.Tokens)
		if err != nil {
			return nil, err
		}
		forced := append(append([]int(nil), prompt...), denseToks...)
		for i := range ms {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			s, err := pre.Session(DecodeConfig{Methods: ms[i].Factory, DenseLayers: c.DenseLayers, Budget: bs[i]})
			if err != nil {
				return nil, fmt.Errorf("agreement %s budget %s: %w", ms[i].Name, bs[i], err)
			}
			first := c.Tokens
			for j := range c.Tokens {
				// Step j feeds the token at position s.Pos: the last prompt
				// token first, unless the prefill already read it (a prompt
				// of BOS alone, which prefillFor prefills whole), where the
				// first prediction is the prefill's, as greedyFrom's is.
				var logits []float32
				if j == 0 && len(pre.Tokens) == len(prompt) {
					logits = pre.LastLogits()
				} else if logits, err = s.Step(forced[s.Pos]); err != nil {
					return nil, fmt.Errorf("agreement %s budget %s: %w", ms[i].Name, bs[i], err)
				}
				if greedy(logits, m.Config.BOSTokenID) == denseToks[j] {
					rows[i].Agreement++
				} else if first == c.Tokens {
					first = j
				}
			}
			rows[i].FirstDivergence += float64(first)
		}
	}
	for i := range rows {
		rows[i].Agreement /= float64(len(c.Prompts) * c.Tokens)
		rows[i].FirstDivergence /= float64(len(c.Prompts))
	}
	return rows, nil
}
