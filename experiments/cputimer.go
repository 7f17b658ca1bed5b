package experiments

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

// Time implements Timer with wall-clock medians on the CPU (Timing.Clock is
// "cpu-wallclock", never a GPU timestamp): it makes Gaussian inputs of shape
// (seeded, so every run times the same data), prefills method, runs one
// warm-up decode and then reps timed ones. Hashing methods use random
// weights of tuning.Rbit bits, 128 by default (timing does not depend on
// their values). For hata and lsh the four stages of HATA.md's decode step
// are also timed one by one with the ref functions they are made of, each
// after a warm-up run of its own. Its
// bytes are MustMove's over an fp16 cache, as the GPU timer's are (ref
// computes in float32; the row's GB/s is what a GPU would need). The CPU
// backend has no kernel variants or kernel parameters: a "/variant" suffix is
// an error, and so is a non-zero field of tuning other than Rbit.
func (CPU) Time(method string, shape ref.Shape, budget ref.Budget, reps int, tuning vk.Tuning) (Timing, error) {
	name, variant, _ := strings.Cut(method, "/")
	if variant != "" {
		return Timing{}, fmt.Errorf("cpu timer: %q: the CPU backend has no kernel variants", method)
	}
	if err := tuning.Check(method); err != nil {
		return Timing{}, fmt.Errorf("cpu timer: %w", err)
	}
	rbit := cmp.Or(tuning.Rbit, ref.DefaultRbit)
	if tuning != (vk.Tuning{Rbit: tuning.Rbit}) {
		return Timing{}, fmt.Errorf("cpu timer: %s: the CPU backend has no kernel parameters to tune (%s)", method, tuning)
	}
	if err := shape.Validate(); err != nil {
		return Timing{}, fmt.Errorf("cpu timer: %w", err)
	}
	if reps < 1 {
		return Timing{}, fmt.Errorf("cpu timer: reps=%d, want >= 1", reps)
	}
	k, err := budget.Tokens(shape.N)
	if err != nil {
		return Timing{}, fmt.Errorf("cpu timer: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(shape.N), uint64(shape.B)))
	gauss := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	s := shape
	q := gauss(s.B * s.Hq * s.D)                                                                   // q: [B][Hq][D]
	kv, err := ref.NewKV(s.B, s.Hkv, s.N, s.D, gauss(s.B*s.Hkv*s.N*s.D), gauss(s.B*s.Hkv*s.N*s.D)) // K, V: [B][Hkv][N][D]
	if err != nil {
		return Timing{}, fmt.Errorf("cpu timer: %w", err)
	}
	opts := ref.Options{Rbit: rbit, Seed: 1}
	var w *ref.HashWeights
	if name == "hata" || name == "lsh" {
		if w, err = ref.RandomHashWeights(s.Hkv, s.D, rbit, 1); err != nil {
			return Timing{}, fmt.Errorf("cpu timer: %w", err)
		}
		opts.W = w
	}
	m, err := ref.New(name, s.Hkv, s.D, opts)
	if err != nil {
		return Timing{}, fmt.Errorf("cpu timer: %w", err)
	}
	if err := m.Prefill(kv); err != nil {
		return Timing{}, fmt.Errorf("cpu timer: %s prefill: %w", name, err)
	}
	step := func() error { _, err := m.Decode(q, budget); return err }
	total, err := medianTime(reps, step) // after a warm-up step
	if err != nil {
		return Timing{}, fmt.Errorf("cpu timer: %s decode: %w", name, err)
	}
	t := Timing{Clock: "cpu-wallclock", Median: total, Bytes: MustMove(name, s, Traffic{K: k, ElemSize: 2, Rbit: rbit})}
	if w != nil {
		if t.Stages, err = hataStages(w, q, kv, s, k, reps); err != nil {
			return Timing{}, fmt.Errorf("cpu timer: %s stages: %w", name, err)
		}
	}
	return t, nil
}

// hataStages times HATA's decode stages one by one with the ref functions:
// encode (EncodeQueries), score (HammingScores), select (SelectSmallest on
// every row) and attend (Sparse).
func hataStages(w *ref.HashWeights, q []float32, kv *ref.KV, s ref.Shape, k, reps int) (map[string]time.Duration, error) {
	kcodes := w.EncodeKeys(kv)
	var qcodes []uint32
	var scores [][]int32
	var selected [][]int32
	st := map[string]time.Duration{}
	var err error
	if st["encode"], err = medianTime(reps, func() error { qcodes = w.EncodeQueries(q, s.B, s.Hq); return nil }); err != nil {
		return nil, err
	}
	if st["score"], err = medianTime(reps, func() error {
		scores = ref.HammingScores(qcodes, kcodes, s.B, s.Hq, s.Hkv, s.N, w.Words())
		return nil
	}); err != nil {
		return nil, err
	}
	if st["select"], err = medianTime(reps, func() error {
		selected = make([][]int32, len(scores))
		for r := range scores {
			selected[r] = ref.SelectSmallest(scores[r], k, ref.Windows{})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if st["attend"], err = medianTime(reps, func() error { _, err := ref.Sparse(q, kv, selected); return err }); err != nil {
		return nil, err
	}
	return st, nil
}

// medianTime runs f once untimed (its first run pays for allocations and
// cold caches the others do not), then reps times, and returns the median
// wall-clock duration.
func medianTime(reps int, f func() error) (time.Duration, error) {
	if err := f(); err != nil {
		return 0, err
	}
	ts := make([]time.Duration, reps)
	for i := range ts {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ts[i] = time.Since(start)
	}
	slices.Sort(ts)
	if reps%2 == 1 {
		return ts[reps/2], nil
	}
	return (ts[reps/2-1] + ts[reps/2]) / 2, nil
}
