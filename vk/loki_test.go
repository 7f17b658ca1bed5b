package vk

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestLokiHalfKeys holds Loki with float16 rotated keys (the default; not
// SparseOptions.LokiF32Keys) to a reference built on the device's own rotated keys: the keys must
// be ref's float64 rotation (ref.FitLokiBasis's basis) rounded to float16,
// within one float16 step (the device rotates in float32, so a value next to
// a rounding boundary may round the other way); the scores and the selection
// are then ref.Loki's arithmetic (ref.LokiScores) over those very keys,
// checked as the acceptance suite checks float32 ones (checkScored: near-ties
// at 1e-5, scores within 1e-5 of the row's largest); the output is ref's
// attention over the selection. Each case prefills, then appends three
// tokens. The acceptance suite itself runs Loki with float32 keys, whose
// scores it holds to ref.Loki's directly.
func TestLokiHalfKeys(t *testing.T) {
	ctx := device(t)
	for i, c := range []struct {
		b, hkv, g, n, d, channels int
		st                        Storage
		budget                    ref.Budget
		chunk                     int // ScoreChunk; 0: the default
	}{
		{1, 2, 4, 300, 64, 0, F16, ref.Budget{K: 20}, 0},
		{2, 1, 4, 523, 128, 0, F32, ref.Budget{K: 33}, 64},
		{1, 2, 2, 4107, 64, 24, F16, ref.Budget{Ratio: 0.0156}, 0},
		{2, 2, 1, 1000, 128, 0, F16, ref.Budget{K: 100}, 128},
	} {
		name := fmt.Sprintf("B=%d Hkv=%d G=%d N=%d D=%d c=%d %s budget %v chunk %d", c.b, c.hkv, c.g, c.n, c.d, c.channels, c.st, c.budget, c.chunk)
		rng := rand.New(rand.NewPCG(uint64(i), 41))
		kv := reftest.DyadicKV(rng, ref.Shape{B: c.b, Hkv: c.hkv, N: c.n, D: c.d}, c.st == F16)
		m, err := ctx.NewLoki(c.hkv, c.d, c.channels, nil, SparseOptions{Storage: c.st, ScoreChunk: c.chunk, Reserve: 1})
		if err != nil {
			t.Fatal(err)
		}
		if m.keys != F16 {
			t.Fatalf("%s: rotated keys in %s by default, want f16", name, m.keys)
		}
		if err := m.Prefill(kv); err != nil {
			t.Fatalf("%s: Prefill: %v", name, err)
		}
		basis, err := ref.FitLokiBasis(kv) // the prefill's, which m keeps
		if err != nil {
			t.Fatal(err)
		}
		// Three appended tokens, rotated as they enter (the cache grows once
		// with Reserve 1, and every rotated key is rebuilt).
		for range 3 {
			k, v := reftest.Dyadic(rng, c.b*c.hkv*c.d), reftest.Dyadic(rng, c.b*c.hkv*c.d)
			if c.st == F16 {
				reftest.RoundHalf(k)
				reftest.RoundHalf(v)
			}
			if err := m.Append(k, v); err != nil {
				t.Fatalf("%s: Append: %v", name, err)
			}
			if err := kv.Append(k, v); err != nil {
				t.Fatal(err)
			}
		}
		hq := c.hkv * c.g
		q := reftest.Dyadic(rng, c.b*hq*c.d)
		rg, err := m.Decode(q, c.budget)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		ch := m.channels
		rk := readHalfKeys(t, m, ch)
		checkRotated(t, name, kv, basis, ch, rk)
		k, _ := c.budget.Tokens(kv.N)
		scores := ref.LokiScores(q, kv, basis, ch, rk)
		want := make([][]int32, len(scores))
		for r, row := range scores {
			want[r] = ref.SelectLargest(row, k, ref.Windows{})
		}
		if err := ref.CheckSelection(rg.Selected, c.b*c.hkv, kv.N, k); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkScored(t, name, want, scores, rg, m)
		checkOutput(t, name, q, kv, rg)
		m.Close()
	}
}

// readHalfKeys reads m's float16 rotated keys back: [rows][N*ch] float64, the
// first ch of each token's cp channels.
func readHalfKeys(t *testing.T, m *Loki, ch int) [][]float64 {
	t.Helper()
	rows, n := m.rows(), m.n
	var raw []byte // every run of rows, in row order
	for _, run := range m.sideRuns("rotated keys", m.rkRow()) {
		part := make([]byte, run.k.Size)
		if err := m.ctx.Read(run.k.Buf, run.k.Off, part); err != nil {
			t.Fatal(err)
		}
		raw = append(raw, part...)
	}
	rk := make([][]float64, rows)
	for r := range rows {
		rk[r] = make([]float64, n*ch)
		for tk := range n {
			for j := range ch {
				e := 2 * ((r*m.cap+tk)*m.cp + j)
				rk[r][tk*ch+j] = float64(halfFloat(uint16(raw[e]) | uint16(raw[e+1])<<8))
			}
		}
	}
	return rk
}

// checkRotated holds the device's float16 rotated keys rk to the float64
// rotation of kv's keys by basis: within one float16 step of it (plus a
// float32 rounding allowance of the rotation's terms).
func checkRotated(t *testing.T, name string, kv *ref.KV, basis []float64, ch int, rk [][]float64) {
	t.Helper()
	d := kv.D
	for r := range rk {
		p := basis[(r%kv.Hkv)*d*d : (r%kv.Hkv+1)*d*d] // p: [D][D]
		for tk := range kv.N {
			x := kv.K[r][tk*d : (tk+1)*d]
			for j := range ch {
				var s, mag float64
				for i := range d {
					s += float64(x[i]) * p[i*d+j]
					mag += math.Abs(float64(x[i]) * p[i*d+j])
				}
				got := rk[r][tk*ch+j]
				if tol := halfStep(s) + 1e-6*mag; !(math.Abs(got-s) <= tol) {
					t.Fatalf("%s: rotated key row %d token %d channel %d: %.9g on the device, float64 rotation %.9g (tolerance %.3g)", name, r, tk, j, got, s, tol)
				}
			}
		}
	}
}

// halfStep returns the spacing of float16 values at |x| (the subnormal
// spacing below the smallest normal).
func halfStep(x float64) float64 {
	a := math.Abs(x)
	if a < 0x1p-14 {
		return 0x1p-24
	}
	_, e := math.Frexp(a) // a = f * 2^e, f in [0.5, 1)
	return math.Ldexp(1, e-11)
}

// TestLokiLargeKeys: keys whose rotated channels pass float16's range
// (entries of ±2^17 in a float32 cache, so norms of 2^19) are rotated into
// float32 keys at Prefill, where float16 would hold only Inf and the
// selection would fall to the lowest token indices; Loki then selects as
// ref.Loki does. A key appended later past that range, into a cache of
// float16 keys, is clamped to ±65504 by the rotation: the step stays
// finite and well formed.
func TestLokiLargeKeys(t *testing.T) {
	ctx := device(t)
	const hkv, g, n, d, c = 1, 2, 32, 16, 8
	rng := rand.New(rand.NewPCG(3, 3))
	basis := make([]float64, hkv*d*d) // the identity: the rotated keys are the first c channels, exactly
	for i := range d {
		basis[i*d+i] = 1
	}
	big := func(m int) []float32 {
		x := make([]float32, m)
		for i := range x {
			x[i] = float32(1 << 17)
			if rng.IntN(2) == 0 {
				x[i] = -x[i]
			}
		}
		return x
	}
	kv, err := ref.NewKV(1, hkv, n, d, big(n*d), reftest.Dyadic(rng, n*d))
	if err != nil {
		t.Fatal(err)
	}
	q := reftest.Dyadic(rng, hkv*g*d)
	m, err := ctx.NewLoki(hkv, d, c, basis, SparseOptions{Storage: F32, Reserve: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want, err := ref.NewLoki(hkv, d, c, basis)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []ref.Method{m, want} {
		if err := x.Prefill(kv); err != nil {
			t.Fatal(err)
		}
	}
	if m.keys != F32 {
		t.Errorf("rotated keys of norm 2^19 in %s, want f32", m.keys)
	}
	// step decodes q on both and holds the GPU's selection to ref's and its
	// output to attention over its selection of cache.
	budget := ref.Budget{K: 4}
	step := func(where string, cache *ref.KV) {
		t.Helper()
		rw, err := want.Decode(q, budget)
		if err != nil {
			t.Fatal(err)
		}
		rg, err := m.Decode(q, budget)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(rw.Selected, rg.Selected); d != "" {
			t.Errorf("%s: selection differs from ref.Loki's (-ref +got):\n%s", where, d)
		}
		checkOutput(t, where, q, cache, rg)
	}
	step("large keys", kv)

	// Ordinary keys choose float16 again; then keys past its range are
	// appended. Clamped, each still ranks where ref's float64 puts it (far
	// above or below every ordinary key, by the sign of q·k), where Inf
	// would have made the scores NaN.
	small := reftest.DyadicKV(rng, ref.Shape{B: 1, Hkv: hkv, N: n, D: d}, false)
	for _, x := range []ref.Method{m, want} {
		if err := x.Prefill(small); err != nil {
			t.Fatal(err)
		}
	}
	if m.keys != F16 {
		t.Errorf("ordinary keys after large ones in %s, want f16", m.keys)
	}
	for i := range 3 {
		k, v := big(d), reftest.Dyadic(rng, d)
		for _, x := range []interface{ Append(k, v []float32) error }{m, want, small} {
			if err := x.Append(k, v); err != nil {
				t.Fatal(err)
			}
		}
		step(fmt.Sprintf("float16 keys after %d appended past their range", i+1), small)
	}
}
