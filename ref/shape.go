package ref

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// Shape is the size of one decode step of one attention layer.
type Shape struct {
	B   int // batch
	Hq  int // query heads
	Hkv int // key/value heads; Hq must be a multiple of Hkv
	N   int // cached tokens
	D   int // head dimension
}

// Group returns G = Hq/Hkv, the number of query heads that share one KV head.
// Hkv must be positive (Validate checks it).
func (s Shape) Group() int { return s.Hq / s.Hkv }

// Validate reports whether s describes a decode step that can be computed.
func (s Shape) Validate() error {
	switch {
	case s.B < 1:
		return fmt.Errorf("shape: batch B=%d, want >= 1", s.B)
	case s.Hq < 1 || s.Hkv < 1:
		return fmt.Errorf("shape: heads Hq=%d Hkv=%d, want >= 1", s.Hq, s.Hkv)
	case s.Hq%s.Hkv != 0:
		return fmt.Errorf("shape: Hq=%d is not a multiple of Hkv=%d", s.Hq, s.Hkv)
	case s.N < 1:
		return fmt.Errorf("shape: N=%d cached tokens, want >= 1", s.N)
	case s.D < 1:
		return fmt.Errorf("shape: head dim D=%d, want >= 1", s.D)
	}
	return nil
}

// String formats s as B=.. Hq=.. Hkv=.. N=.. D=.., for test and error messages.
func (s Shape) String() string {
	return fmt.Sprintf("B=%d Hq=%d Hkv=%d N=%d D=%d", s.B, s.Hq, s.Hkv, s.N, s.D)
}

// Budget is the number of tokens a top-k method may attend to per (batch, KV
// head): an absolute count K, or a Ratio of the cached tokens. Exactly one of
// the two is set.
type Budget struct {
	K     int     // absolute budget, >= 1
	Ratio float64 // fraction of N in (0, 1]
}

// ParseBudget turns the command line's -budget X into a Budget: X >= 1 is an
// absolute k (it must be an integer), 0 < X < 1 a ratio of N.
func ParseBudget(x float64) (Budget, error) {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0) || x <= 0:
		return Budget{}, fmt.Errorf("budget %v: want k >= 1 or a ratio in (0, 1)", x)
	case x < 1:
		return Budget{Ratio: x}, nil
	case x != math.Trunc(x):
		return Budget{}, fmt.Errorf("budget %v: an absolute budget must be a whole number of tokens", x)
	case x > math.MaxInt32:
		return Budget{}, fmt.Errorf("budget %v: an absolute budget of at most %d tokens", x, math.MaxInt32)
	}
	return Budget{K: int(x)}, nil
}

// Tokens resolves the budget for n cached tokens:
//
//	k = K                 for an absolute budget
//	k = floor(n * Ratio)  for a ratio
//
// then caps k at n and raises it to at least 1 (HATA.md, "Budget"); n must be
// at least 1. The product is exact, of n and Ratio as the shortest decimal
// that reads back as it (what was written: 0.29 of 100 tokens is 29, where
// float64's product, 28.999999999999996, floors to 28).
func (b Budget) Tokens(n int) (int, error) {
	var k int
	switch {
	case n < 1:
		return 0, fmt.Errorf("budget %v of %d cached tokens: want at least one token", b, n)
	case b.K > 0 && b.Ratio == 0:
		k = b.K
	case b.K == 0 && b.Ratio > 0 && b.Ratio <= 1:
		k = floorRatio(n, b.Ratio)
	default: // both fields named: String shows only one of them
		return 0, fmt.Errorf("budget K=%d Ratio=%g: set exactly one of K >= 1 and Ratio in (0, 1]", b.K, b.Ratio)
	}
	return max(1, min(k, n)), nil
}

// floorRatio returns floor(n*r) exactly, for r as the shortest decimal that
// float64 reads back as r.
func floorRatio(n int, r float64) int {
	q, ok := new(big.Rat).SetString(strconv.FormatFloat(r, 'g', -1, 64))
	if !ok { // not reached: FormatFloat's forms all parse
		return int(math.Floor(float64(n) * r))
	}
	q.Mul(q, new(big.Rat).SetInt64(int64(n)))
	return int(new(big.Int).Quo(q.Num(), q.Denom()).Int64())
}

// String formats the budget as the command line takes it.
func (b Budget) String() string {
	if b.Ratio > 0 {
		return fmt.Sprintf("%g", b.Ratio)
	}
	return fmt.Sprintf("%d", b.K)
}

// Full is the budget that keeps every token: with it every top-k method must
// equal dense attention.
var Full = Budget{Ratio: 1}
