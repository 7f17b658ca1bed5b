package ref

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Windows are the tokens forced into every selection: the first Sink tokens
// (attention sinks) and the last Recent tokens. They count inside the budget k
// (HATA.md, "Budget"); when Sink+Recent >= k the windows alone fill it, sinks
// first. A negative window here counts as none; vk.NewHATA refuses one, and
// the options that take "negative: none" (Options.SinkTokens and the like)
// are resolved before they reach a Windows.
type Windows struct {
	Sink, Recent int
}

// Bounds returns the windows among n tokens with budget k as index ranges:
// tokens [0, sinkEnd) and [recentStart, n) are forced in, sinkEnd + n -
// recentStart <= k of them, sinks first. The GPU kernels take these bounds.
func (w Windows) Bounds(n, k int) (sinkEnd, recentStart int) {
	sinkEnd = max(0, min(w.Sink, n, k))
	recent := max(0, min(w.Recent, k-sinkEnd))
	return sinkEnd, max(n-recent, sinkEnd)
}

// forced returns the ascending token indices the windows force in among n
// tokens with budget k, at most k of them.
func (w Windows) forced(n, k int) []int32 {
	sinkEnd, recentStart := w.Bounds(n, k)
	var f []int32
	for t := range sinkEnd {
		f = append(f, int32(t))
	}
	for t := recentStart; t < n; t++ {
		f = append(f, int32(t))
	}
	return f
}

// SelectSmallest returns the ascending indices of the k smallest scores, ties
// broken by the smaller token index, so that every implementation selects the
// same set. Tokens forced by w are taken first and count inside k. k is
// clamped to [1, len(scores)], as Budget.Tokens resolves budgets; scores must
// not be empty.
func SelectSmallest(scores []int32, k int, w Windows) []int32 {
	return selectBy(len(scores), k, w, func(a, b int32) int {
		return cmp.Or(cmp.Compare(scores[a], scores[b]), cmp.Compare(a, b))
	})
}

// SelectLargest returns the ascending indices of the k largest scores, ties
// broken by the smaller token index. Tokens forced by w are taken first and
// count inside k. NaN scores rank last. k is clamped as SelectSmallest's.
func SelectLargest(scores []float64, k int, w Windows) []int32 {
	return selectBy(len(scores), k, w, func(a, b int32) int {
		sa, sb := scores[a], scores[b]
		switch {
		case sa != sa && sb != sb: // both NaN
		case sa != sa:
			return 1
		case sb != sb:
			return -1
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return cmp.Compare(a, b)
	})
}

// selectBy takes the forced tokens, then the best remaining tokens in the order
// better(a, b) < 0 until k are chosen, and returns them ascending. A plain sort
// is the clearest exact selection; the GPU kernels use a histogram instead.
func selectBy(n, k int, w Windows, better func(a, b int32) int) []int32 {
	k = max(1, min(k, n))
	picked := w.forced(n, k)
	in := make([]bool, n)
	for _, t := range picked {
		in[t] = true
	}
	rest := make([]int32, 0, n-len(picked))
	for t := range n {
		if !in[t] {
			rest = append(rest, int32(t))
		}
	}
	slices.SortFunc(rest, better)
	picked = append(picked, rest[:k-len(picked)]...)
	slices.Sort(picked)
	return picked
}

// CheckSelection reports whether sel has rows rows, each of exactly k unique
// ascending tokens in [0, n): the shape of every selection but MagicPIG's
// (Result.Selected), whatever computed it.
func CheckSelection(sel [][]int32, rows, n, k int) error {
	if len(sel) != rows {
		return fmt.Errorf("selected: %d rows, want B*Hkv = %d", len(sel), rows)
	}
	for r, row := range sel {
		if len(row) != k {
			return fmt.Errorf("selected row %d: %d tokens, want k = %d", r, len(row), k)
		}
		for i, t := range row {
			if t < 0 || int(t) >= n {
				return fmt.Errorf("selected row %d: token %d outside [0, %d)", r, t, n)
			}
			if i > 0 && t <= row[i-1] {
				return fmt.Errorf("selected row %d: not strictly ascending at %d: %d after %d", r, i, t, row[i-1])
			}
		}
	}
	return nil
}

// CheckResult reports whether res is a well-formed decode step of shape s
// with budget k tokens a row: an output of B*Hq*D finite numbers and, where
// the method selects (Selected not nil), CheckSelection's rows. It says
// nothing of whether the numbers are the right ones; a broken kernel's NaN,
// or a select that lost or repeated tokens, is what it catches.
func CheckResult(res *Result, s Shape, k int) error {
	if want := s.B * s.Hq * s.D; len(res.Out) != want {
		return fmt.Errorf("output: %d values, want B*Hq*D = %d", len(res.Out), want)
	}
	for i, x := range res.Out { // [B][Hq][D]
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("output: %v at row %d (b*Hq+h) channel %d", x, i/s.D, i%s.D)
		}
	}
	if res.Selected == nil {
		return nil
	}
	return CheckSelection(res.Selected, s.B*s.Hkv, s.N, k)
}
