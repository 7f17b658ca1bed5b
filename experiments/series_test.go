package experiments

import (
	"slices"
	"testing"
)

// TestSeriesSortedByX checks that a line's points are in the order of their
// x values, not of the rows: a sweep listed out of order (budgets = [0.1,
// 0.03, 0.05], rbits = [128, 32], ns = [32768, 8192]) draws each line left
// to right through its points, where the rows' order would draw it back and
// forth across the panel.
func TestSeriesSortedByX(t *testing.T) {
	tb := &Table{Columns: []string{"method", "x", "y"}, Rows: [][]string{
		{"a", "10", "0.3"}, {"b", "10", "0.6"},
		{"a", "3", "0.1"}, {"b", "3", "0.4"},
		{"a", "5", "0.2"}, {"b", "5", "0.5"},
	}}
	s := tb.series("method", "x", "y", nil)
	if len(s) != 2 || s[0].Name != "a" || s[1].Name != "b" {
		t.Fatalf("series %+v, want a and b in order of first appearance", s)
	}
	for i, want := range [][2][]float64{{{3, 5, 10}, {0.1, 0.2, 0.3}}, {{3, 5, 10}, {0.4, 0.5, 0.6}}} {
		if !slices.Equal(s[i].X, want[0]) || !slices.Equal(s[i].Y, want[1]) {
			t.Errorf("series %s: x %v y %v, want x %v y %v (each y beside its own x, in order of x)", s[i].Name, s[i].X, s[i].Y, want[0], want[1])
		}
	}
}
