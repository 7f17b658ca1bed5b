package synth

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/hata-go/hata/ref"
	"gonum.org/v1/gonum/mat"
)

// small is a fast configuration that keeps every modelled property.
func small() Config {
	c := Default()
	c.B, c.Hq, c.Hkv, c.N, c.D = 2, 8, 2, 1024, 64
	return c
}

func mustModel(t *testing.T, c Config) *Model {
	t.Helper()
	m, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	return m
}

func TestDeterminism(t *testing.T) {
	c := small()
	a, b := mustModel(t, c).Sample(7), mustModel(t, c).Sample(7)
	if !slices.Equal(a.Q, b.Q) || !slices.Equal(a.K, b.K) || !slices.Equal(a.V, b.V) || !slices.Equal(a.Kpre, b.Kpre) {
		t.Fatalf("two models of the same config gave different samples for seed 7")
	}
	m := mustModel(t, c)
	if ta, tb := m.TraceQueries(a), m.TraceQueries(b); !slices.Equal(ta, tb) {
		t.Fatalf("TraceQueries differ for the same sample")
	}
	if d := m.Sample(8); slices.Equal(d.K, a.K) || slices.Equal(d.Q, a.Q) {
		t.Errorf("samples 7 and 8 are identical; want independent sequences")
	}
	c2 := c
	c2.Seed = 2
	if e := mustModel(t, c2).Sample(7); slices.Equal(e.K, a.K) {
		t.Errorf("models of seeds 1 and 2 gave identical keys")
	}
}

func TestShapesAndRoPE(t *testing.T) {
	c := small()
	m := mustModel(t, c)
	s := m.Sample(3)
	if got, want := len(s.K), c.B*c.Hkv*c.N*c.D; got != want || len(s.V) != want || len(s.Kpre) != want {
		t.Fatalf("len(K, V, Kpre) = %d, %d, %d; want %d", len(s.K), len(s.V), len(s.Kpre), want)
	}
	if got, want := len(s.Q), c.B*c.Hq*c.D; got != want {
		t.Fatalf("len(Q) = %d, want %d", got, want)
	}
	// K is RoPE_t(Kpre) bit for bit, for every row and a spread of positions.
	for row := range c.B * c.Hkv {
		for _, tok := range []int{0, 1, 3, 100, 511, c.N - 1} {
			off := (row*c.N + tok) * c.D
			x := append([]float32(nil), s.Kpre[off:off+c.D]...)
			if err := m.RoPE().Apply(x, tok); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(x, s.K[off:off+c.D]) {
				t.Fatalf("row %d token %d: K != RoPE(Kpre)", row, tok)
			}
		}
	}
	tq := m.TraceQueries(s)
	if got, want := len(tq), c.B*c.Hq*c.N*c.D; got != want {
		t.Fatalf("len(TraceQueries) = %d, want %d", got, want)
	}
}

// probs returns the dense attention probabilities [B][Hq][N] of s.
func probs(t *testing.T, s *Sample) []float64 {
	t.Helper()
	kv, err := s.KV()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ref.Probabilities(s.Q, kv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNeedlesInOracleTopK(t *testing.T) {
	c := small()
	c.NeedlePositions = []float64{0.05, 0.3, 0.61, 0.97}
	m := mustModel(t, c)
	for seed := uint64(1); seed <= 3; seed++ {
		s := m.Sample(seed)
		kv, err := s.KV()
		if err != nil {
			t.Fatal(err)
		}
		// 2% of N: 20 tokens, which the 4 sinks, 4 needles and recent tokens share.
		sel, err := ref.OracleSelection(s.Q, kv, ref.Budget{Ratio: 0.02})
		if err != nil {
			t.Fatal(err)
		}
		for r, row := range sel {
			for _, nd := range s.Needles {
				if _, ok := slices.BinarySearch(row, int32(nd)); !ok {
					t.Errorf("seed %d row %d: needle at %d not in the oracle top-%d %v", seed, r, nd, len(row), row)
				}
			}
			for _, sk := range s.Sinks {
				if _, ok := slices.BinarySearch(row, int32(sk)); !ok {
					t.Errorf("seed %d row %d: sink %d not in the oracle top-%d", seed, r, sk, len(row))
				}
			}
		}
	}
}

func TestSinksAndRecencyGetAttention(t *testing.T) {
	c := small()
	m := mustModel(t, c)
	s := m.Sample(5)
	p := probs(t, s)
	n, heads := c.N, c.B*c.Hq
	var sink, recent, middle float64
	for bh := range heads {
		row := p[bh*n : (bh+1)*n]
		for _, t := range s.Sinks {
			sink += row[t]
		}
		for t := n - 8; t < n; t++ {
			recent += row[t]
		}
		for t := n/2 - 64; t < n/2+64; t++ {
			if !slices.Contains(s.Needles, t) {
				middle += row[t]
			}
		}
	}
	t.Logf("attention mass: %.3f on the %d sinks, %.4f on the last 8 tokens", sink/float64(heads), len(s.Sinks), recent/float64(heads))
	sink /= float64(heads * len(s.Sinks))
	recent /= float64(heads * 8)
	middle /= float64(heads * 127)
	uniform := 1 / float64(n)
	// A sink's logit is raised by SinkBoost = 8: e^8 ≈ 3000 times an average
	// token's weight before normalisation; ask for 100x the uniform share.
	if sink < 100*uniform {
		t.Errorf("mean attention per sink = %.4g, want >= 100/N = %.4g", sink, 100*uniform)
	}
	if recent < 2*middle {
		t.Errorf("mean attention on the last 8 tokens = %.4g, want >= 2x the middle's %.4g", recent, middle)
	}
	// With sinks off the sink tokens are ordinary.
	c.Sinks = 0
	p0 := probs(t, mustModel(t, c).Sample(5))
	var first float64
	for bh := range heads {
		first += p0[bh*n]
	}
	if first /= float64(heads); first > 20*uniform {
		t.Errorf("sinks=0: attention on token 0 = %.4g, want ordinary (< 20/N)", first)
	}
}

func TestLogitScale(t *testing.T) {
	c := small()
	c.Sinks, c.Needles, c.RecencyBoost = 0, 0, 0
	s := mustModel(t, c).Sample(9)
	kv, _ := s.KV()
	for b := range c.B {
		for h := range c.Hq {
			var sum, sum2 float64
			q := s.Q[(b*c.Hq+h)*c.D : (b*c.Hq+h+1)*c.D]
			for tok := range c.N {
				l := dot(q, kv.Key(b, h/(c.Hq/c.Hkv), tok)) / math.Sqrt(float64(c.D))
				sum += l
				sum2 += l * l
			}
			mean := sum / float64(c.N)
			std := math.Sqrt(sum2/float64(c.N) - mean*mean)
			if math.Abs(std-c.LogitStd) > 1e-3*c.LogitStd {
				t.Errorf("b %d head %d: logit std %.5f, want logit_std = %v (exact with recency off)", b, h, std, c.LogitStd)
			}
		}
	}
}

func TestGQACorrelation(t *testing.T) {
	c := small()
	c.Hq, c.Hkv, c.B = 8, 2, 1
	m := mustModel(t, c)
	tq := m.TraceQueries(m.Sample(2)) // [1][Hq][N][D]
	n, d, grp := c.N, c.D, c.Hq/c.Hkv
	// Correlation of pre-bias content is hard to isolate after RoPE; compare
	// the cosine of heads at the same position: same group vs other group.
	cos := func(h1, h2 int) float64 {
		var s float64
		for tok := 0; tok < n; tok += 4 {
			a := tq[(h1*n+tok)*d : (h1*n+tok+1)*d]
			b := tq[(h2*n+tok)*d : (h2*n+tok+1)*d]
			s += dot(a, b) / math.Sqrt(dot(a, a)*dot(b, b))
		}
		return s / float64(n/4)
	}
	same, other := cos(0, 1), cos(0, grp)
	if same < other+0.2 {
		t.Errorf("mean cosine of heads 0,1 (same group) = %.3f, heads 0,%d (other group) = %.3f; want same >= other+0.2", same, grp, other)
	}
}

func TestLowRankAndOutliers(t *testing.T) {
	c := small()
	c.B, c.Rank = 1, 24
	m := mustModel(t, c)
	s := m.Sample(4)
	n, d := c.N, c.D
	// Centred covariance of pre-RoPE keys of KV head 0, ordinary tokens only.
	var rows [][]float64
	for tok := c.Sinks; tok < n; tok++ {
		if slices.Contains(s.Needles, tok) {
			continue
		}
		r := make([]float64, d)
		for i := range d {
			r[i] = float64(s.Kpre[tok*d+i])
		}
		rows = append(rows, r)
	}
	mean := make([]float64, d)
	for _, r := range rows {
		for i := range d {
			mean[i] += r[i] / float64(len(rows))
		}
	}
	cov := mat.NewSymDense(d, nil)
	for _, r := range rows {
		for i := range d {
			for j := i; j < d; j++ {
				cov.SetSym(i, j, cov.At(i, j)+(r[i]-mean[i])*(r[j]-mean[j]))
			}
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(cov, false) {
		t.Fatal("eigendecomposition failed")
	}
	ev := eig.Values(nil) // ascending
	var total, top float64
	for i, v := range ev {
		total += v
		if i >= d-c.Rank {
			top += v
		}
	}
	if frac := top / total; frac < 0.9 {
		t.Errorf("top %d principal components explain %.3f of the key variance, want >= 0.9 (rank %d)", c.Rank, frac, c.Rank)
	}
	// Outlier channels: mean |k| at least 3x the median channel's.
	absMean := make([]float64, d)
	for i := range d {
		absMean[i] = math.Abs(mean[i])
	}
	sorted := slices.Clone(absMean)
	slices.Sort(sorted)
	med := sorted[d/2]
	for _, ch := range m.OutlierChannels() {
		if absMean[ch] < 3*med+1 {
			t.Errorf("outlier channel %d: mean |k| = %.3f, want >= 3x the median %.3f (+1)", ch, absMean[ch], med)
		}
	}
}

func TestValidateNamesKey(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		key  string
	}{
		{func(c *Config) { c.Hkv = 3 }, "hkv"},
		{func(c *Config) { c.D = 7 }, "d"},
		{func(c *Config) { c.GroupCorr = 1.5 }, "group_corr"},
		{func(c *Config) { c.NeedlePositions = []float64{0.5} }, "needle_positions"},
		{func(c *Config) { c.Needles = 2; c.NeedlePositions = []float64{0.5, 0.5} }, "needle_positions"},
		{func(c *Config) { c.LogitStd = math.NaN() }, "logit_std"},
	} {
		c := Default()
		tc.edit(&c)
		err := c.Validate()
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("Validate() = %v, want a KeyError for %q", err, tc.key)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}
