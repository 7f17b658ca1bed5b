package vk

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestScoresAfterAppend checks that Scores (ref.Scorer) returns the scores
// behind the last Decode's selection, [B*Hkv] rows of the N tokens that
// Decode saw, as ref's methods do, after Appends that came since: one that
// leaves the capacity as it is (Scores once returned a row of N+1 scores,
// the last one stale) and ones that double it (where it once indexed past
// the scores it read back: a panic).
func TestScoresAfterAppend(t *testing.T) {
	ctx := device(t)
	for i, name := range []string{"topk", "loki", "quest"} {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 63, D: 32}
		o := ref.Options{Seed: 3, PageSize: 7}
		want, err := ref.New(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ctx.SparseFactory(SparseOptions{Reserve: 1, LokiF32Keys: true})(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		kv := reftest.DyadicKV(rng, s, false)
		for _, m := range []ref.Method{want, got} {
			if err := m.Prefill(kv); err != nil {
				t.Fatalf("%s: Prefill: %v", name, err)
			}
		}
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		for _, m := range []ref.Method{want, got} {
			if _, err := m.Decode(q, ref.Budget{K: 9}); err != nil {
				t.Fatalf("%s: Decode: %v", name, err)
			}
		}
		check := func(when string) {
			t.Helper()
			ws, err := want.(ref.Scorer).Scores()
			if err != nil {
				t.Fatal(err)
			}
			gs, err := func() (gs [][]float64, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return got.(ref.Scorer).Scores()
			}()
			if err != nil {
				t.Errorf("%s: Scores %s: %v", name, when, err)
			} else if err := closeScores(gs, ws); err != nil {
				t.Errorf("%s: Scores %s: %v", name, when, err)
			}
		}
		check("after the decode (N=63, Cap=64)")
		for n := 64; n <= 65; n++ {
			k, v := reftest.Dyadic(rng, s.B*s.Hkv*s.D), reftest.Dyadic(rng, s.B*s.Hkv*s.D)
			for _, m := range []ref.Method{want, got} {
				if err := m.Append(k, v); err != nil {
					t.Fatalf("%s: Append to N=%d: %v", name, n, err)
				}
			}
			check(fmt.Sprintf("after appends to N=%d (Cap=%d)", n, coreOf(got).cap))
		}
		got.(io.Closer).Close()
	}
}
