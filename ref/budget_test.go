package ref

import (
	"math"
	"strings"
	"testing"
)

// TestBudgetTokensError checks that Tokens' error for a budget it refuses
// names both fields as set, not String's rendering of one of them (a ratio
// of -0.5 read "budget 0", K=3 with a ratio of 0.5 "budget 0.5").
func TestBudgetTokensError(t *testing.T) {
	for _, c := range []struct {
		b    Budget
		want string
	}{
		{Budget{}, "K=0 Ratio=0"},
		{Budget{K: -1}, "K=-1 Ratio=0"},
		{Budget{Ratio: -0.5}, "K=0 Ratio=-0.5"},
		{Budget{Ratio: 1.5}, "K=0 Ratio=1.5"},
		{Budget{Ratio: math.NaN()}, "K=0 Ratio=NaN"},
		{Budget{K: 3, Ratio: 0.5}, "K=3 Ratio=0.5"},
	} {
		_, err := c.b.Tokens(10)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Budget{K: %d, Ratio: %g}.Tokens(10) = %v, want an error naming %q", c.b.K, c.b.Ratio, err, c.want)
		}
	}
}
