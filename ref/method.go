package ref

// Method is one way to pick keys and attend, driven one decode step at a time.
// ref implements it plainly for every method; package vk implements it with
// GPU kernels; package reftest holds any implementation to this package's.
//
// The life of a Method over one sequence:
//
//	m.Prefill(kv)              // the cache of the prompt; side state is built here
//	for each generated token {
//	    res := m.Decode(q, b)  // q: [B][Hq][D] attends over the cached tokens
//	    m.Append(k, v)         // the token's own k, v: [B][Hkv][D] enter the cache
//	}
//
// Decode may be called several times between appends (with different budgets,
// for example); only H2O keeps history across calls, and it records each call as
// one step of that history.
//
// Values are not checked for being finite (but Loki's, whose basis needs
// finite keys): a NaN in q makes its head's output NaN, and a NaN key makes
// dense attention's output NaN for its group and the selecting methods'
// scores NaN, so that their selection is not the one the finite keys would
// give. ref and vk agree on such inputs; tensorio.CheckFinite is the check
// the command line runs on the tensors it reads.
type Method interface {
	// Name is the method's command-line name: dense, topk, hata, lsh, loki,
	// quest, streaming, h2o or magicpig.
	Name() string
	// Prefill takes a copy of kv and builds the method's side state from it
	// (key codes, page bounds, projections, ...). It replaces any earlier state.
	Prefill(kv *KV) error
	// Append adds one token to every (batch, KV head) row: k, v [B][Hkv][D].
	Append(k, v []float32) error
	// Decode attends the queries q: [B][Hq][D] over the cache, reading at most
	// budget.Tokens(N) tokens per (batch, KV head).
	Decode(q []float32, budget Budget) (*Result, error)
}

// Result is the outcome of one decode step.
type Result struct {
	// Out is the attention output: [B][Hq][D].
	Out []float32
	// Selected lists, per (batch, KV head) row b*Hkv+h, the ascending token
	// indices the row's query heads attended to. Nil for dense attention.
	// Every method but MagicPIG selects exactly budget.Tokens(N) tokens per row.
	Selected [][]int32
}

// HeadSelector is implemented by the methods whose query heads attend to
// different tokens of their row (MagicPIG: each head its own samples).
// Result.Selected is then each row's union of its heads' sets, the tokens
// whose keys and values the row reads.
type HeadSelector interface {
	// HeadSelected returns the tokens each query head attended to in the
	// last Decode: [B*Hq] rows b*Hq+h, ascending.
	HeadSelected() ([][]int32, error)
}

// Coder is implemented by the hashing methods (hata, lsh): the binary codes
// behind the last Decode.
type Coder interface {
	// Codes returns the query codes of the last Decode, [B][Hq][Rbit/32], and
	// the key codes of the cache, [B][Hkv][N][Rbit/32]. Bit j of a code lives in
	// word j/32 at bit j%32.
	Codes() (qcodes, kcodes []uint32, err error)
}

// Scorer is implemented by the methods that rank tokens by a float score (topk,
// loki, quest, h2o). The acceptance suite uses it to tell a selection that
// differs from ref's because of a near-tie (allowed, within rounding) from one
// that is wrong.
type Scorer interface {
	// Scores returns the score of every cached token behind the last Decode's
	// selection, per (batch, KV head) row: [B*Hkv] rows of [N]. Larger is
	// better; tokens forced in by a window may carry any score.
	Scores() ([][]float64, error)
}
