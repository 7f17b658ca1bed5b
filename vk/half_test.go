package vk

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/hata-go/hata/ref/reftest"
)

// TestHalf checks the float16 conversion: every half survives a round trip,
// and float32 values (boundaries, ties, subnormals, overflow, random bit
// patterns) round like reftest's independent implementation.
func TestHalf(t *testing.T) {
	for h := range 1 << 16 {
		f := halfFloat(uint16(h))
		if f != reftest.HalfToFloat(uint16(h)) && !math.IsNaN(float64(f)) {
			t.Fatalf("halfFloat(%#04x) = %v, reftest says %v", h, f, reftest.HalfToFloat(uint16(h)))
		}
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(halfFloat(halfBits(f)))) {
				t.Fatalf("NaN %#04x does not stay NaN", h)
			}
			continue
		}
		if got := halfBits(f); got != uint16(h) {
			t.Fatalf("halfBits(halfFloat(%#04x) = %v) = %#04x", h, f, got)
		}
	}
	check := func(f float32) {
		t.Helper()
		if got, want := halfBits(f), reftest.FloatToHalf(f); got != want {
			t.Fatalf("halfBits(%v = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
	for _, f := range []float32{0, 1, -1, 65504, 65519.99, 65520, 1e9, float32(math.Inf(1)),
		1.0 / (1 << 14), 1.0 / (1 << 24), 1.0 / (1 << 25), 3.0 / (1 << 26), 1.0 / (1 << 26), 1 + 1.0/2048, 1 + 3.0/2048} {
		check(f)
		check(-f)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		f := math.Float32frombits(rng.Uint32())
		if !math.IsNaN(float64(f)) {
			check(f)
		}
		check(float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(50)-30)))
	}
}
