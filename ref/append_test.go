package ref

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAppendMatchesPrefill checks every method's Append against a Prefill of
// the longer cache: a method that prefilled N tokens and appended tokens N
// to N+2 one decode step at a time (HATA, LSH and MagicPIG encode the new
// key, Quest widens its last page or opens one) decodes exactly as the same
// method prefilled with all N+3. Loki is given its basis, which Prefill
// would otherwise fit on the cache at hand. MagicPIG is left out: it centres
// appended keys with the mean of the prefilled ones (MagicPIG.Prefill), so
// its codes after an append are, by design, not those of a longer prefill.
// H2O is run without prompt queries, so that its history starts at zero in
// both. Decode is not called between the appends, since H2O's history and
// the Coders' last codes depend on it.
func TestAppendMatchesPrefill(t *testing.T) {
	for _, s := range []Shape{
		{B: 1, Hq: 2, Hkv: 1, N: 1, D: 8},
		{B: 2, Hq: 4, Hkv: 2, N: 63, D: 16}, // Quest's pages of 32 and 5: the appends open a page
	} {
		const extra = 3
		long := s
		long.N += extra
		q, kvLong := randomStep(t, long, 41)
		kvShort := truncateKV(kvLong, s.N)
		w, err := RandomHashWeights(s.Hkv, s.D, 64, 42)
		if err != nil {
			t.Fatal(err)
		}
		basis, err := FitLokiBasis(kvLong)
		if err != nil {
			t.Fatal(err)
		}
		opts := map[string]Options{
			"hata":               {W: w},
			"hata normweighted":  {W: w, NormWeighted: true},
			"hata windows":       {W: w, Windows: Windows{Sink: 1, Recent: 2}},
			"lsh":                {Rbit: 32, Seed: 7},
			"loki":               {LokiChannels: 4, LokiBasis: basis},
			"quest":              {},
			"quest P=5":          {PageSize: 5},
			"streaming":          {},
			"dense":              {},
			"topk":               {},
			"h2o":                {},
			"streaming no sinks": {SinkTokens: -1},
		}
		for label, o := range opts {
			name, _, _ := strings.Cut(label, " ")
			where := fmt.Sprintf("%s %v", label, s)
			appended, err := New(name, s.Hkv, s.D, o)
			if err != nil {
				t.Fatalf("%s: New: %v", where, err)
			}
			prefilled, err := New(name, s.Hkv, s.D, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := appended.Prefill(kvShort); err != nil {
				t.Fatalf("%s: Prefill: %v", where, err)
			}
			for i := range extra {
				k, v := tokenOf(kvLong, s.N+i)
				if err := appended.Append(k, v); err != nil {
					t.Fatalf("%s: Append of token %d: %v", where, s.N+i, err)
				}
			}
			if err := prefilled.Prefill(kvLong); err != nil {
				t.Fatalf("%s: Prefill: %v", where, err)
			}
			for _, b := range []Budget{{K: 1}, {K: 3}, {Ratio: 0.5}, Full} {
				want, err := prefilled.Decode(q, b)
				if err != nil {
					t.Fatalf("%s budget %v: Decode after Prefill: %v", where, b, err)
				}
				got, err := appended.Decode(q, b)
				if err != nil {
					t.Fatalf("%s budget %v: Decode after Append: %v", where, b, err)
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("%s budget %v: after %d appends the step differs from a prefill of N+%d (-prefill +append):\n%s",
						where, b, extra, extra, d)
				}
				if c, ok := appended.(Coder); ok {
					wq, wk, _ := prefilled.(Coder).Codes()
					gq, gk, err := c.Codes()
					if err != nil {
						t.Fatal(err)
					}
					if d := cmp.Diff(wq, gq); d != "" {
						t.Errorf("%s budget %v: query codes differ (-prefill +append):\n%s", where, b, d)
					}
					if d := cmp.Diff(wk, gk); d != "" {
						t.Errorf("%s budget %v: key codes differ (-prefill +append):\n%s", where, b, d)
					}
				}
			}
		}
	}
}

// truncateKV returns a copy of kv's first n tokens of every row.
func truncateKV(kv *KV, n int) *KV {
	c := &KV{B: kv.B, Hkv: kv.Hkv, D: kv.D, N: n, K: make([][]float32, len(kv.K)), V: make([][]float32, len(kv.V))}
	for r := range kv.K {
		c.K[r] = append([]float32(nil), kv.K[r][:n*kv.D]...)
		c.V[r] = append([]float32(nil), kv.V[r][:n*kv.D]...)
	}
	return c
}

// tokenOf returns token t of every row of kv as Append takes it: k, v:
// [B][Hkv][D].
func tokenOf(kv *KV, t int) (k, v []float32) {
	for r := range kv.K {
		k = append(k, kv.K[r][t*kv.D:(t+1)*kv.D]...)
		v = append(v, kv.V[r][t*kv.D:(t+1)*kv.D]...)
	}
	return k, v
}
