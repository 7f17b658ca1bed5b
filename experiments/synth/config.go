package synth

import (
	"fmt"
	"math"
)

// Config sets the shape and the modelled properties of a synthetic layer. The
// TOML key of each field is given by its tag; Default gives the documented
// defaults, and a config file overrides only the keys it names.
type Config struct {
	// Seed draws the layer's structure (subspace, biases, directions) and the
	// calibration sequence. Default 1. Sample seeds are separate.
	Seed uint64 `toml:"seed" json:"seed"`

	// B is the batch: independent sequences per decode step. Default 1.
	B int `toml:"b" json:"b"`
	// Hq is the number of query heads. Default 32 (Llama-3.1-8B).
	Hq int `toml:"hq" json:"hq"`
	// Hkv is the number of KV heads; Hq must be a multiple. Default 8.
	Hkv int `toml:"hkv" json:"hkv"`
	// N is the number of cached tokens; the decode query is at position N.
	// Default 4096.
	N int `toml:"n" json:"n"`
	// D is the head dimension, even. Default 128.
	D int `toml:"d" json:"d"`

	// Theta is the RoPE base. Default 500000 (Llama-3).
	Theta float64 `toml:"theta" json:"theta"`
	// Llama3 applies Llama-3.1's RoPE frequency scaling (ref.Llama31).
	// Default true.
	Llama3 bool `toml:"llama3" json:"llama3"`

	// Rank is the dimension of the key subspace per KV head. Default 64 (with
	// RankDecay 0.98 the leading 32 of 128 channels hold about 80% of the
	// content variance, as Loki reports for real keys).
	Rank int `toml:"rank" json:"rank"`
	// RankDecay is the ratio of successive component scales: component j of
	// the content has standard deviation RankDecay^j. Default 0.98.
	RankDecay float64 `toml:"rank_decay" json:"rank_decay"`
	// LowFreqTilt tilts the key subspace towards the slowly rotating RoPE
	// pairs, where real models keep semantic content: channel pair p gets
	// weight ((p+1)/(D/2))^LowFreqTilt in the draw of the basis. 0 spreads
	// it evenly. Default 1.
	LowFreqTilt float64 `toml:"low_freq_tilt" json:"low_freq_tilt"`
	// Noise is the standard deviation of the isotropic noise added to every
	// channel of keys and query content. Default 0.05.
	Noise float64 `toml:"noise" json:"noise"`

	// OutlierPairs is the number of lowest-frequency RoPE channel pairs that
	// carry the key bias (2*OutlierPairs outlier channels). Default 2.
	OutlierPairs int `toml:"outlier_pairs" json:"outlier_pairs"`
	// OutlierScale is the magnitude of the key bias on each outlier channel,
	// in units of the largest content component. Default 3.
	OutlierScale float64 `toml:"outlier_scale" json:"outlier_scale"`
	// QueryBias is the norm of the query bias (in the outlier channels)
	// relative to the expected norm of the query content. Default 1.
	QueryBias float64 `toml:"query_bias" json:"query_bias"`

	// KeyNorm scales every key so that the mean key norm is about KeyNorm
	// (queries follow, so the logits do not change). Only magnitude-sensitive
	// steps see it, such as the sigmoid relaxation of hash training (sigma =
	// 0.1 assumes the magnitudes of real model activations). 0 leaves the
	// unit-scale structure as is. Default 16, an assumption of the order of
	// magnitude of Llama keys, not a measured value.
	KeyNorm float64 `toml:"key_norm" json:"key_norm"`

	// Sinks is the number of attention-sink tokens at positions 0..Sinks-1.
	// Default 4.
	Sinks int `toml:"sinks" json:"sinks"`
	// SinkBoost sets a sink's logit q·k/sqrt(D) for the decode query
	// (averaged over the group's heads) to the mean logit of the ordinary
	// tokens plus SinkBoost. Default 8.
	SinkBoost float64 `toml:"sink_boost" json:"sink_boost"`

	// Needles is the number of keys per (batch, KV head) aligned with the
	// group's decode query. Default 4.
	Needles int `toml:"needles" json:"needles"`
	// NeedlePositions places the needles at floor(f*N) for each fraction f in
	// [0, 1); empty spreads them evenly at (i+0.5)/Needles. When set, its
	// length must equal Needles. Default empty.
	NeedlePositions []float64 `toml:"needle_positions" json:"needle_positions"`
	// NeedleBoost sets a needle's logit for the decode query (averaged over
	// the group's heads) to the mean logit of the ordinary tokens plus
	// NeedleBoost. Default 7.
	NeedleBoost float64 `toml:"needle_boost" json:"needle_boost"`

	// RecencyWindow selects the RoPE pairs whose wavelength is at most this
	// many tokens for the shared recency component. 0 turns recency off.
	// Default 256.
	RecencyWindow int `toml:"recency_window" json:"recency_window"`
	// RecencyBoost is the logit the recency component adds to the token at
	// distance 1 from the query. Default 2.
	RecencyBoost float64 `toml:"recency_boost" json:"recency_boost"`

	// GroupCorr is the correlation of the content of query heads of one GQA
	// group, in [0, 1]. Default 0.8.
	GroupCorr float64 `toml:"group_corr" json:"group_corr"`
	// LogitStd is the standard deviation of a decode query head's logits
	// q·k/sqrt(D) over the ordinary tokens (exact, before the recency
	// component); trace queries get it in root mean square. Default 1.5.
	LogitStd float64 `toml:"logit_std" json:"logit_std"`
}

// Default returns the documented defaults: a Llama-3.1-8B-shaped layer
// (Hq 32, Hkv 8, D 128) over 4096 tokens.
func Default() Config {
	return Config{
		Seed: 1, B: 1, Hq: 32, Hkv: 8, N: 4096, D: 128,
		Theta: 500000, Llama3: true,
		Rank: 64, RankDecay: 0.98, LowFreqTilt: 1, Noise: 0.05,
		OutlierPairs: 2, OutlierScale: 3, QueryBias: 1, KeyNorm: 16,
		Sinks: 4, SinkBoost: 8,
		Needles: 4, NeedleBoost: 7,
		RecencyWindow: 256, RecencyBoost: 2,
		GroupCorr: 0.8, LogitStd: 1.5,
	}
}

// KeyError reports a Config value out of its range. Key is the TOML key.
type KeyError struct {
	Key     string
	Problem string
}

// Error formats the error as key: problem.
func (e *KeyError) Error() string { return e.Key + ": " + e.Problem }

// ConfigKey returns the TOML key at fault, for callers that report file lines.
func (e *KeyError) ConfigKey() string { return e.Key }

func bad(key, format string, args ...any) error {
	return &KeyError{Key: key, Problem: fmt.Sprintf(format, args...)}
}

// finite reports whether every x is a finite number.
func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// MaxNeedles is the most needles a layer may have: far more than any
// retrieval test plants, few enough that Validate's check of their positions
// stays cheap whatever N is.
const MaxNeedles = 1 << 16

// Validate reports the first value out of range, as a *KeyError naming its key.
func (c Config) Validate() error {
	switch {
	case c.B < 1:
		return bad("b", "%d, want >= 1", c.B)
	case c.Hq < 1:
		return bad("hq", "%d, want >= 1", c.Hq)
	case c.Hkv < 1 || c.Hq%c.Hkv != 0:
		return bad("hkv", "%d, want >= 1 and a divisor of hq=%d", c.Hkv, c.Hq)
	case c.D < 4 || c.D%2 != 0:
		return bad("d", "%d, want an even number >= 4", c.D)
	case c.N < 1:
		return bad("n", "%d, want >= 1", c.N)
	case !finite(c.Theta) || c.Theta <= 1:
		return bad("theta", "%v, want > 1", c.Theta)
	case c.Rank < 1 || c.Rank > c.D:
		return bad("rank", "%d, want in [1, d=%d]", c.Rank, c.D)
	case !finite(c.RankDecay) || c.RankDecay <= 0 || c.RankDecay > 1:
		return bad("rank_decay", "%v, want in (0, 1]", c.RankDecay)
	case !finite(c.LowFreqTilt) || c.LowFreqTilt < 0 || c.LowFreqTilt > 8:
		return bad("low_freq_tilt", "%v, want in [0, 8]", c.LowFreqTilt)
	case !finite(c.Noise) || c.Noise < 0:
		return bad("noise", "%v, want >= 0", c.Noise)
	case c.OutlierPairs < 0 || c.OutlierPairs > c.D/4:
		return bad("outlier_pairs", "%d, want in [0, d/4=%d]", c.OutlierPairs, c.D/4)
	case !finite(c.OutlierScale) || c.OutlierScale < 0:
		return bad("outlier_scale", "%v, want >= 0", c.OutlierScale)
	case !finite(c.QueryBias) || c.QueryBias < 0:
		return bad("query_bias", "%v, want >= 0", c.QueryBias)
	case !finite(c.KeyNorm) || c.KeyNorm < 0:
		return bad("key_norm", "%v, want >= 0", c.KeyNorm)
	case c.Sinks < 0 || c.Sinks > c.N:
		return bad("sinks", "%d, want in [0, n=%d]", c.Sinks, c.N)
	case c.Sinks > 0 && (c.OutlierPairs == 0 || c.QueryBias == 0):
		return bad("sinks", "%d sinks need outlier_pairs >= 1 and query_bias > 0 (the sink direction lives there)", c.Sinks)
	case !finite(c.SinkBoost) || c.SinkBoost < 0:
		return bad("sink_boost", "%v, want >= 0", c.SinkBoost)
	case c.Needles < 0 || c.Needles > c.N-c.Sinks: // sinks <= n: no overflow
		return bad("needles", "%d, want >= 0 and sinks+needles <= n=%d", c.Needles, c.N)
	case c.Needles > MaxNeedles:
		return bad("needles", "%d, want at most %d", c.Needles, MaxNeedles)
	case len(c.NeedlePositions) != 0 && len(c.NeedlePositions) != c.Needles:
		return bad("needle_positions", "%d positions for %d needles", len(c.NeedlePositions), c.Needles)
	case !finite(c.NeedleBoost) || c.NeedleBoost < 0:
		return bad("needle_boost", "%v, want >= 0", c.NeedleBoost)
	case c.RecencyWindow < 0:
		return bad("recency_window", "%d, want >= 0", c.RecencyWindow)
	case !finite(c.RecencyBoost) || c.RecencyBoost < 0:
		return bad("recency_boost", "%v, want >= 0", c.RecencyBoost)
	case !finite(c.GroupCorr) || c.GroupCorr < 0 || c.GroupCorr > 1:
		return bad("group_corr", "%v, want in [0, 1]", c.GroupCorr)
	case !finite(c.LogitStd) || c.LogitStd <= 0:
		return bad("logit_std", "%v, want > 0", c.LogitStd)
	}
	for _, f := range c.NeedlePositions {
		if !finite(f) || f < 0 || f >= 1 {
			return bad("needle_positions", "%v, want fractions in [0, 1)", f)
		}
	}
	if _, err := c.needlePositions(); err != nil {
		return err
	}
	return nil
}

// needlePositions returns the token positions of the needles, distinct and
// outside the sinks.
func (c Config) needlePositions() ([]int, error) {
	pos := make([]int, c.Needles)
	seen := map[int]bool{}
	for i := range pos {
		f := (float64(i) + 0.5) / float64(c.Needles)
		if len(c.NeedlePositions) > 0 {
			f = c.NeedlePositions[i]
		}
		pos[i] = min(int(math.Floor(f*float64(c.N))), c.N-1)
		// Unset positions spread the needles evenly: then the fault is
		// needles, n or sinks, keys the user wrote, not the one left out.
		key, spread := "needle_positions", ""
		if len(c.NeedlePositions) == 0 {
			key, spread = "needles", fmt.Sprintf(" (%d needles spread evenly over n=%d tokens: fewer needles, a larger n or fewer sinks)", c.Needles, c.N)
		}
		if pos[i] < c.Sinks {
			return nil, bad(key, "needle %d at token %d falls among the %d sinks%s", i, pos[i], c.Sinks, spread)
		}
		if seen[pos[i]] {
			return nil, bad(key, "two needles at token %d (n=%d)%s", pos[i], c.N, spread)
		}
		seen[pos[i]] = true
	}
	return pos, nil
}
