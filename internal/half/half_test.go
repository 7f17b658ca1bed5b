package half

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// TestToFloat32 checks every half against its value computed from the
// definition: (-1)^s * 2^(e-15) * (1 + m/1024), or m * 2^-24 when e = 0.
func TestToFloat32(t *testing.T) {
	for h := range 1 << 16 {
		s, e, m := h>>15, (h>>10)&0x1f, h&0x3ff
		got := ToFloat32(uint16(h))
		var want float64
		switch e {
		case 0x1f:
			if m != 0 {
				if !math.IsNaN(float64(got)) {
					t.Fatalf("ToFloat32(%#04x) = %v, want NaN", h, got)
				}
				continue
			}
			want = math.Inf(1)
		case 0:
			want = float64(m) * math.Ldexp(1, -24)
		default:
			want = math.Ldexp(1+float64(m)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (s == 1) {
			t.Fatalf("ToFloat32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

// TestFromFloat32 checks the rounding against a brute-force nearest search
// over all finite halves (ties to the even bit pattern), on every half, every
// midpoint between neighbours and its float32 neighbours, and random floats.
func TestFromFloat32(t *testing.T) {
	var finite []uint16 // non-negative finite halves, ascending in value
	for h := range 0x7c00 {
		finite = append(finite, uint16(h))
	}
	nearest := func(f float32) uint16 {
		a := math.Abs(float64(f))
		if a >= 65520 {
			return 0x7c00
		}
		i := sort.Search(len(finite), func(i int) bool { return float64(ToFloat32(finite[i])) >= a })
		best := finite[min(i, len(finite)-1)]
		if i > 0 {
			lo, hi := float64(ToFloat32(finite[i-1])), float64(ToFloat32(best))
			if a-lo < hi-a || (a-lo == hi-a && finite[i-1]&1 == 0) {
				best = finite[i-1]
			}
		}
		return best
	}
	check := func(f float32) {
		want := nearest(f)
		if math.Signbit(float64(f)) {
			want |= 0x8000
		}
		if got := FromFloat32(f); got != want {
			t.Fatalf("FromFloat32(%v = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
	for i := 0; i+1 < len(finite); i++ {
		lo, hi := ToFloat32(finite[i]), ToFloat32(finite[i+1])
		mid := float32((float64(lo) + float64(hi)) / 2)
		for _, f := range []float32{lo, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9), -mid} {
			check(f)
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 200000 {
		check(math.Float32frombits(rng.Uint32() & 0xc7ffffff)) // magnitudes below 2^16
	}
	for _, f := range []float32{65504, 65519.99, 65520, 1e30, float32(math.Inf(1))} {
		check(f)
	}
	if h := FromFloat32(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("FromFloat32(NaN) = %#04x, want a NaN", h)
	}
}
