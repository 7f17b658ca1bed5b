package ref

import "testing"

// TestRandomHashWeightsBadShape checks that RandomHashWeights (and NewLSH
// through it) refuses every shape NewHashWeights refuses with its error,
// before allocating: a negative rbit panicked in make.
func TestRandomHashWeightsBadShape(t *testing.T) {
	for _, s := range [][3]int{{1, 4, -32}, {1, -4, 32}, {-1, -4, 32}, {0, 4, 32}, {1, 4, 0}, {1, 4, 48}} {
		if w, err := RandomHashWeights(s[0], s[1], s[2], 1); err == nil {
			t.Errorf("RandomHashWeights(hkv=%d, d=%d, rbit=%d) = [%d][%d][%d] weights, want an error", s[0], s[1], s[2], w.Hkv, w.D, w.Rbit)
		}
		if _, err := NewLSH(s[0], s[1], s[2], 1, Windows{}); err == nil {
			t.Errorf("NewLSH(hkv=%d, d=%d, rbit=%d): nil error", s[0], s[1], s[2])
		}
	}
}
