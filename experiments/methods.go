package experiments

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hata-go/hata/ref"
)

// MethodOptions are the method parameters of the accuracy experiments, the
// TOML table [options]; they map onto ref.Options.
type MethodOptions struct {
	// Rbit is the hash width of hata and lsh (multiple of 32). Default 128.
	Rbit int `toml:"rbit" json:"rbit"`
	// Sink and Recent are the windows forced into hata's and lsh's selection,
	// inside the budget. Default 0 and 0 (the paper's accuracy runs).
	Sink   int `toml:"sink" json:"sink"`
	Recent int `toml:"recent" json:"recent"`
	// NormWeighted selects the norm-weighted score of the authors' scripts
	// for hata and lsh. Default false (pure Hamming).
	NormWeighted bool `toml:"norm_weighted" json:"norm_weighted"`
	// Seed draws the random projections of lsh and magicpig. Default 1.
	Seed uint64 `toml:"seed" json:"seed"`
	// LokiChannels is the number of leading PCA channels Loki scores.
	// Default 32.
	LokiChannels int `toml:"loki_channels" json:"loki_channels"`
	// LokiBasis is "calibration" (PCA of the training sequence's pre-RoPE
	// keys, as the Loki paper calibrates offline) or "prefill" (fitted on
	// each cache's post-RoPE keys). Default "calibration".
	LokiBasis string `toml:"loki_basis" json:"loki_basis"`
	// PageSize is Quest's page. Default 32.
	PageSize int `toml:"page_size" json:"page_size"`
	// SinkTokens is StreamingLLM's number of sinks. Default 4.
	SinkTokens int `toml:"sink_tokens" json:"sink_tokens"`
	// MagicPIGK and MagicPIGL are MagicPIG's bits per table and tables.
	// Default 10 and 150.
	MagicPIGK int `toml:"magicpig_k" json:"magicpig_k"`
	MagicPIGL int `toml:"magicpig_l" json:"magicpig_l"`
}

func defaultMethodOptions() MethodOptions {
	return MethodOptions{Rbit: 128, Seed: 1, LokiChannels: 32, LokiBasis: "calibration", PageSize: 32,
		SinkTokens: 4, MagicPIGK: 10, MagicPIGL: 150}
}

// MaxMagicPIGTables is the most hash tables options.magicpig_l (and hata
// attend's -magicpig-l) may ask for: far above the paper's 150, low enough
// that MagicPIG's projections and key codes on a trace input, whose shape
// validation does not know, stay small.
const MaxMagicPIGTables = 4096

// validate checks the options (keys under "options.").
func (o MethodOptions) validate() error {
	switch {
	case o.Rbit < 32 || o.Rbit%32 != 0 || o.Rbit > 1024:
		return badKey("options.rbit", "%d, want a multiple of 32 in [32, 1024]", o.Rbit)
	case o.Sink < 0:
		return badKey("options.sink", "%d, want >= 0", o.Sink)
	case o.Recent < 0:
		return badKey("options.recent", "%d, want >= 0", o.Recent)
	case o.LokiChannels < 1:
		return badKey("options.loki_channels", "%d, want >= 1", o.LokiChannels)
	case o.LokiBasis != "calibration" && o.LokiBasis != "prefill":
		return badKey("options.loki_basis", "%q, want \"calibration\" or \"prefill\"", o.LokiBasis)
	case o.PageSize < 1:
		return badKey("options.page_size", "%d, want >= 1", o.PageSize)
	case o.SinkTokens < 0:
		return badKey("options.sink_tokens", "%d, want >= 0", o.SinkTokens)
	case o.MagicPIGK < 1 || o.MagicPIGK > 32:
		return badKey("options.magicpig_k", "%d, want in [1, 32]", o.MagicPIGK)
	case o.MagicPIGL < 1 || o.MagicPIGL > MaxMagicPIGTables:
		return badKey("options.magicpig_l", "%d, want in [1, %d]", o.MagicPIGL, MaxMagicPIGTables)
	}
	return nil
}

// refOptions returns the ref.Options of these settings with hash weights w
// and Loki basis (either may be nil).
func (o MethodOptions) refOptions(w *ref.HashWeights, basis []float64) ref.Options {
	sinks := o.SinkTokens
	if sinks == 0 {
		sinks = -1 // ref reads 0 as "default 4"; 0 here means none
	}
	return ref.Options{
		W: w, Rbit: o.Rbit, Seed: o.Seed, Windows: ref.Windows{Sink: o.Sink, Recent: o.Recent},
		NormWeighted: o.NormWeighted, LokiChannels: o.LokiChannels, LokiBasis: basis,
		PageSize: o.PageSize, SinkTokens: sinks, MagicPIGK: o.MagicPIGK, MagicPIGL: o.MagicPIGL,
	}
}

// validateMethods checks a list of method names (key names the list).
func validateMethods(key string, methods []string) error {
	if len(methods) == 0 {
		return badKey(key, "empty, want some of %s", strings.Join(ref.MethodNames, ", "))
	}
	for i, m := range methods {
		if !slices.Contains(ref.MethodNames, m) {
			return badKey(key, "%q, want one of %s", m, strings.Join(ref.MethodNames, ", "))
		}
		if slices.Contains(methods[:i], m) {
			return badKey(key, "%q listed twice", m)
		}
	}
	return nil
}

// validateBudgets checks a list of budgets: ratios in (0, 1), whole token
// counts >= 2, or 1, the whole cache (on the command line, -budget 1 is one
// token).
func validateBudgets(key string, budgets []float64) error {
	if len(budgets) == 0 {
		return badKey(key, "empty, want ratios in (0, 1), token counts >= 2, or 1 (the whole cache)")
	}
	for i, b := range budgets {
		if b == 1 {
			continue // the whole cache
		}
		if _, err := ref.ParseBudget(b); err != nil {
			return badKey(key, "%v", err)
		}
		if slices.Contains(budgets[:i], b) {
			return badKey(key, "%v listed twice", b)
		}
	}
	return nil
}

// budgetOf converts a config budget to a ref.Budget (1 is the whole cache).
func budgetOf(x float64) ref.Budget {
	if x == 1 {
		return ref.Full
	}
	b, _ := ref.ParseBudget(x) // validated
	return b
}

// budgetsOf converts config budgets with budgetOf.
func budgetsOf(xs []float64) []ref.Budget {
	bs := make([]ref.Budget, len(xs))
	for i, x := range xs {
		bs[i] = budgetOf(x)
	}
	return bs
}

// stateful lists the methods whose Decode changes their state (H2O records
// each call as a step of its history). They are rebuilt for every point, so
// a point's result never depends on which points ran before it on a worker.
var stateful = map[string]bool{"h2o": true}

// worker runs points on one backend and keeps the methods it prefilled, so
// the budgets of one method reuse one prefill (points are enumerated
// method-major).
type worker struct {
	backend Backend
	cache   []cached // most recent last
	max     int
}

type cached struct {
	key string
	m   ref.Method
}

func newWorker(b Backend, capacity int) *worker { return &worker{backend: b, max: max(capacity, 1)} }

// method returns the method cached under key, or builds and prefills one.
func (w *worker) method(key string, reuse bool, build func() (ref.Method, error), kv *ref.KV) (ref.Method, error) {
	if reuse {
		for i, c := range w.cache {
			if c.key == key {
				w.cache = append(append(w.cache[:i:i], w.cache[i+1:]...), c)
				return c.m, nil
			}
		}
	}
	m, err := build()
	if err != nil {
		return nil, err
	}
	if err := m.Prefill(kv); err != nil {
		return nil, fmt.Errorf("%s prefill: %w", m.Name(), err)
	}
	if reuse {
		if len(w.cache) >= w.max {
			w.cache = w.cache[1:]
		}
		w.cache = append(w.cache, cached{key, m})
	}
	return m, nil
}

// metrics are the accuracy measures of one method at one budget, averaged
// over the evaluation steps.
type metrics struct {
	K      int     // budget in tokens at the first step
	N      int     // cached tokens at the first step
	Recall float64 // |selected ∩ oracle top-k| / k (ref.Recall)
	Mass   float64 // dense attention mass on the tokens each head attended to (ref.MassRecall)
	RelL2  float64 // ||out - dense|| / ||dense|| (ref.RelL2)
	Read   float64 // mean selected tokens per row / N (1 for dense)
}

// evaluate runs one method at budget over every evaluation step of in and
// averages the metrics. methodKey names the method's configuration (for the
// worker's cache); build makes a fresh instance.
func evaluate(ctx context.Context, in *inputs, w *worker, name, methodKey string, build func() (ref.Method, error), budget ref.Budget) (metrics, error) {
	var sum metrics
	for i := range in.in.Samples {
		if err := ctx.Err(); err != nil {
			return metrics{}, err
		}
		st, err := in.step(i)
		if err != nil {
			return metrics{}, fmt.Errorf("input step %d: %w", i, err)
		}
		m, err := w.method(fmt.Sprintf("%s#%d", methodKey, i), !stateful[name], build, st.kv)
		if err != nil {
			return metrics{}, err
		}
		res, err := m.Decode(st.q, budget)
		if err != nil {
			return metrics{}, fmt.Errorf("%s decode: %w", name, err)
		}
		var heads [][]int32 // each query head's own tokens, where its row's differ (MagicPIG)
		if hs, ok := m.(ref.HeadSelector); ok {
			if heads, err = hs.HeadSelected(); err != nil {
				return metrics{}, fmt.Errorf("%s step %d: %w", name, i, err)
			}
		}
		one, err := score(st, res, heads, budget)
		if err != nil {
			return metrics{}, fmt.Errorf("%s step %d: %w", name, i, err)
		}
		if i == 0 {
			sum.K, sum.N = one.K, one.N
		}
		sum.Recall += one.Recall
		sum.Mass += one.Mass
		sum.RelL2 += one.RelL2
		sum.Read += one.Read
	}
	n := float64(in.in.Samples)
	sum.Recall, sum.Mass, sum.RelL2, sum.Read = sum.Recall/n, sum.Mass/n, sum.RelL2/n, sum.Read/n
	return sum, nil
}

// score measures one decode result against the dense reference of st. heads,
// when not nil, are the tokens each query head attended to ([B*Hq] rows,
// ref.HeadSelector) where res.Selected is its row's union: the mass is then
// each head's own; the recall and the fraction read stay the row's.
func score(st *evalStep, res *ref.Result, heads [][]int32, budget ref.Budget) (metrics, error) {
	s := st.shape
	k, err := budget.Tokens(s.N)
	if err != nil {
		return metrics{}, err
	}
	out := metrics{K: k, N: s.N, Recall: 1, Mass: 1, Read: 1}
	if out.RelL2, err = ref.RelL2(res.Out, st.dense); err != nil {
		return metrics{}, err
	}
	if res.Selected == nil { // dense attention reads everything
		return out, nil
	}
	oracle, err := st.oracle(budget)
	if err != nil {
		return metrics{}, err
	}
	if out.Recall, err = ref.Recall(res.Selected, oracle); err != nil {
		return metrics{}, err
	}
	mass := res.Selected
	if heads != nil {
		mass = heads
	}
	if out.Mass, err = ref.MassRecall(st.p, mass, s.B, s.Hq, s.Hkv, s.N); err != nil {
		return metrics{}, err
	}
	var read int
	for _, row := range res.Selected {
		read += len(row)
	}
	out.Read = float64(read) / float64(len(res.Selected)*s.N)
	return out, nil
}
