package vk

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// The randomized differential test's environment (TestFuzzDiff). Unset, the
// test skips: it is for audits, not for make test.
//
//	HATA_VK_FUZZ=N          run N random configurations
//	HATA_VK_FUZZ_SEED=S     the first configuration's seed (default 1); the
//	                        i-th runs seed S+i, so a failure's seed (in its
//	                        subtest's name) reproduces it alone with
//	                        HATA_VK_FUZZ=1 HATA_VK_FUZZ_SEED=seed (and the
//	                        same HATA_VK_FUZZ_METHODS, which the draw reads)
//	HATA_VK_FUZZ_TIME=D     stop starting configurations after the duration D
//	HATA_VK_FUZZ_METHODS=.. only these methods (comma-separated; a hata or lsh
//	                        entry may name its variant: hata/naive)
//
// On lavapipe most of the time goes to compiling each new specialization of
// a kernel (seconds each; the context keeps them, so later configurations
// run faster): on two shared cores, with GALLIVM_PERF=nopt (LLVM's
// optimisation passes off, which halves the compile), 7-13 configurations a
// minute. For example, in vk/:
//
//	GALLIVM_PERF=nopt HATA_VK_FUZZ=100000 HATA_VK_FUZZ_TIME=20m go test -run TestFuzzDiff -timeout 30m
const (
	envFuzz        = "HATA_VK_FUZZ"
	envFuzzSeed    = "HATA_VK_FUZZ_SEED"
	envFuzzTime    = "HATA_VK_FUZZ_TIME"
	envFuzzMethods = "HATA_VK_FUZZ_METHODS"
)

// fuzzMethods are the methods TestFuzzDiff draws from (dense too), with
// weights: the hashing methods have the most kernel paths.
var fuzzMethods = []struct {
	name   string
	weight int
}{
	{"dense", 1}, {"topk", 2}, {"hata", 6}, {"lsh", 3}, {"loki", 2}, {"quest", 3}, {"streaming", 1}, {"h2o", 2},
}

// fuzzVariants are the kernel chains of hata and lsh.
var fuzzVariants = []string{VariantFused, VariantNaive, VariantTwoKernel, VariantThreeKernel, VariantOneKernel}

// fuzzNs are cache lengths at and around the kernels' chunk, page and
// workgroup boundaries; a draw takes one of them or any N in 1..300.
var fuzzNs = []int{1, 2, 7, 8, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257}

// fuzzConfig is one random configuration of TestFuzzDiff.
type fuzzConfig struct {
	seed          uint64
	name          string
	variant       string // hata, lsh
	halves        bool   // run as Halves
	s             ref.Shape
	rbit          int
	storage       Storage
	ro            ref.Options
	so            SparseOptions
	do            DenseOptions
	budgets       [][]ref.Budget // per step
	appends       int
	appendsBefore []int // appends before each decode round's step (index 0 unused)
	// reprefill, where its N is not 0, is the shape of a second Prefill of
	// the same methods after the steps (a new B and N), decoded at
	// rebudgets, appended to, and decoded again.
	reprefill ref.Shape
	rebudgets []ref.Budget
}

func (c fuzzConfig) String() string {
	v := c.key()
	var opt string
	if c.name == "dense" {
		opt = fmt.Sprintf("%+v", c.do)
	} else {
		opt = fmt.Sprintf("%+v", c.so)
	}
	re := ""
	if c.reprefill.N > 0 {
		re = fmt.Sprintf(" reprefill B=%d N=%d budgets %v", c.reprefill.B, c.reprefill.N, c.rebudgets)
	}
	return fmt.Sprintf("seed %d: %s B=%d Hkv=%d G=%d N=%d D=%d rbit=%d %s windows %+v page %d sink %d normw %v appends %v budgets %v%s opts %s",
		c.seed, v, c.s.B, c.s.Hkv, c.s.Hq/c.s.Hkv, c.s.N, c.s.D, c.rbit, c.storage, c.ro.Windows, c.ro.PageSize, c.ro.SinkTokens, c.ro.NormWeighted, c.appendsBefore, c.budgets, re, opt)
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

// drawFuzzConfig draws the configuration of seed, among methods (nil: all).
func drawFuzzConfig(seed uint64, methods []string) fuzzConfig {
	rng := rand.New(rand.NewPCG(seed, 0xf022))
	c := fuzzConfig{seed: seed}
	if len(methods) > 0 {
		c.name = pick(rng, methods...)
		c.name, c.variant, _ = strings.Cut(c.name, "/")
	} else {
		total := 0
		for _, m := range fuzzMethods {
			total += m.weight
		}
		x := rng.IntN(total)
		for _, m := range fuzzMethods {
			if x < m.weight {
				c.name = m.name
				break
			}
			x -= m.weight
		}
	}
	c.storage = pick(rng, F32, F16)
	hkv := 1 + rng.IntN(4)
	g := 1 + rng.IntN(8)
	n := 1 + rng.IntN(300)
	if rng.IntN(2) == 0 {
		n = pick(rng, fuzzNs...)
	}
	d := pick(rng, 8, 16, 32, 64, 128)
	c.s = ref.Shape{B: 1 + rng.IntN(3), Hq: hkv * g, Hkv: hkv, N: n, D: d}

	hashing := c.name == "hata" || c.name == "lsh"
	if hashing {
		if c.variant == "" {
			c.variant = pick(rng, fuzzVariants...)
		}
		c.rbit = pick(rng, 32, 64, 96, 128, 128, 160, 256)
		if rng.IntN(2) == 0 {
			c.ro.Windows = ref.Windows{Sink: pick(rng, 0, 1, 2, 4, 7, 8, 33, 64, n, n+3), Recent: pick(rng, 0, 1, 3, 8, 31, 32, n)}
		}
		c.ro.NormWeighted = rng.IntN(8) == 0
	}
	c.ro.Seed = seed
	switch c.name {
	case "quest":
		c.ro.PageSize = pick(rng, 0, 1, 2, 3, 4, 5, 7, 8, 16, 31, 32, 33, 64)
	case "streaming":
		c.ro.SinkTokens = pick(rng, -1, 0, 1, 2, 4, 9)
	case "loki":
		c.ro.LokiChannels = pick(rng, 0, 0, 1, 4, 8, 16, 33)
	}
	c.halves = c.name != "dense" && rng.IntN(10) == 0

	// Options: each knob at its default two times in three.
	o := SparseOptions{Storage: c.storage, Variant: c.variant, LokiF32Keys: true}
	maybe := func(xs ...int) int {
		if rng.IntN(3) != 0 {
			return 0
		}
		return pick(rng, xs...)
	}
	o.Reserve = maybe(1, 2, 3, 5, 64)
	o.ScoreChunk = maybe(2, 6, 8, 16, 30, 32, 62, 64, 100, 128, 256, 2056)
	o.SelectChunk = maybe(8, 16, 32, 64, 100, 128, 256, 4096)
	o.KeyBytes = maybe(1, 2)
	o.Warm = WarmMode(maybe(1, 2, 3))
	o.SelectPlan = PlanMode(maybe(1, 2))
	o.RowSelect = RowSelectMode(maybe(1, 2))
	o.Merge = MergeMode(maybe(1, 2))
	o.Tile = maybe(1, 2, 3, 4, 8, 16)
	o.Workgroup = maybe(8, 16, 32, 64, 128, 256)
	// sparse_split's TPT divides the row's 16-byte vectors (fp16: 8-byte
	// ones), D/4 either way, and fits lavapipe's subgroups of 8; each lane
	// holds at most 16 of a row's values, since fewer lanes a token hold the
	// whole row and G heads' sums in each, and NVIDIA's driver took over
	// two minutes to compile one lane a token at D=64, G=7 (run 427).
	var lanes []int
	for l := max(1, d/16); l <= min(8, d/4); l *= 2 {
		lanes = append(lanes, l)
	}
	o.LanesPerToken = maybe(lanes...)
	o.ScoreWorkgroup = maybe(32, 64, 128, 256)
	o.SelectWorkgroup = maybe(128, 256, 512)
	o.ProjWorkgroup = maybe(32, 64, 128, 256, 512, 1024)
	o.QueueGroups = maybe(1, 2, 3)
	o.Prefetch = PrefetchMode(maybe(1, 2))
	o.Split.Splits = maybe(1, 2, 3, 5, 16)
	o.Split.MinTokens = maybe(1, 4, 16, 64)
	o.Split.FillTokens = maybe(1, 8, 16)
	o.Split.FillMaxSplits = maybe(1, 2, 7, 32)
	c.so = o
	c.do = DenseOptions{Storage: c.storage, Reserve: o.Reserve, Tile: o.Tile, Workgroup: o.Workgroup, LanesPerToken: o.LanesPerToken, Split: o.Split, Merge: o.Merge, Pieces: PiecesMode(maybe(1, 2))}

	c.appends = pick(rng, 0, 1, 2, 3, 5, 9)
	for i := 0; i <= c.appends; i++ {
		nb := 1 + rng.IntN(2)
		var bs []ref.Budget
		for range nb {
			switch rng.IntN(4) {
			case 0:
				bs = append(bs, ref.Budget{K: 1 + rng.IntN(n+2)})
			case 1:
				bs = append(bs, ref.Budget{K: pick(rng, 1, 2, 7, 8, 9, 31, 32, 33, 64, 65, n, n-1, n+1)})
			case 2:
				bs = append(bs, ref.Budget{Ratio: pick(rng, 0.0156, 0.1, 0.25, 0.5, 0.9, rng.Float64())})
			default:
				bs = append(bs, ref.Full)
			}
		}
		for j := range bs {
			if bs[j].K < 1 && bs[j].Ratio == 0 {
				bs[j] = ref.Budget{K: 1}
			}
		}
		c.budgets = append(c.budgets, bs)
	}
	// Some steps append several tokens in a row before decoding.
	c.appendsBefore = make([]int, c.appends+1)
	for i := range c.appendsBefore {
		c.appendsBefore[i] = 1
		if i > 0 && rng.IntN(4) == 0 {
			c.appendsBefore[i] = 1 + rng.IntN(3)
		}
	}
	// Drawn last, so that the draws above stay what they were before it.
	if rng.IntN(4) == 0 {
		c.reprefill = c.s
		c.reprefill.B = 1 + rng.IntN(3)
		c.reprefill.N = pick(rng, 1+rng.IntN(300), pick(rng, fuzzNs...))
		c.rebudgets = []ref.Budget{{K: 1 + rng.IntN(c.reprefill.N+1)}, {K: 1 + rng.IntN(c.reprefill.N+1)}}
	}
	return c
}

// fuzzStats counts what TestFuzzDiff ran.
type fuzzStats struct {
	ran, refused, failed map[string]int
	steps                int
	inexact              map[string]int // float-scored selections that differ from ref's in near-ties
	refusals             map[string]int
}

// key names the method, its variant and whether it runs as Halves:
// hata/naive/halves.
func (c fuzzConfig) key() string {
	k := c.name
	if c.variant != "" {
		k += "/" + c.variant
	}
	if c.halves {
		k += "/halves"
	}
	return k
}

// TestFuzzDiff draws random small configurations (method, kernel variant,
// shape, budgets, windows, page sizes, storage, kernel options, appends that
// grow the capacity) and holds vk to ref on each, as the other differential
// tests do: integer stages exactly (hash codes, the selections of hata, lsh,
// streaming and h2o), the float-scored methods' selections up to near-ties,
// the output within reftest's tolerance. It runs only with HATA_VK_FUZZ set
// (see envFuzz); each configuration is a subtest named by its seed.
func TestFuzzDiff(t *testing.T) {
	env := os.Getenv(envFuzz)
	if env == "" {
		t.Skipf("%s is not set", envFuzz)
	}
	count, err := strconv.Atoi(env)
	if err != nil || count < 1 {
		t.Fatalf("%s=%q: want a count", envFuzz, env)
	}
	base := uint64(1)
	if s := os.Getenv(envFuzzSeed); s != "" {
		if base, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envFuzzSeed, s, err)
		}
	}
	var deadline time.Time
	if s := os.Getenv(envFuzzTime); s != "" {
		dur, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", envFuzzTime, s, err)
		}
		deadline = time.Now().Add(dur)
	}
	var methods []string
	if s := os.Getenv(envFuzzMethods); s != "" {
		methods = strings.Split(s, ",")
	}
	ctx := device(t)
	st := fuzzStats{ran: map[string]int{}, refused: map[string]int{}, failed: map[string]int{}, inexact: map[string]int{}, refusals: map[string]int{}}
	for i := range count {
		if !deadline.IsZero() && time.Now().After(deadline) {
			t.Logf("time is up after %d configurations", i)
			break
		}
		c := drawFuzzConfig(base+uint64(i), methods)
		fmt.Fprintf(os.Stderr, "fuzz: %v\n", c)
		ok := t.Run(fmt.Sprintf("seed=%d/%s", c.seed, strings.ReplaceAll(c.key(), "/", "-")), func(t *testing.T) {
			runFuzzConfig(t, ctx, c, &st)
		})
		if !ok {
			st.failed[c.key()]++
			fmt.Fprintf(os.Stderr, "fuzz: FAIL seed %d: %v\n", c.seed, c)
		}
	}
	keys := make([]string, 0, len(st.ran))
	for k := range st.ran {
		keys = append(keys, k)
	}
	for k := range st.refused {
		if st.ran[k] == 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	total := 0
	for _, k := range keys {
		total += st.ran[k]
		fmt.Fprintf(&b, "  %-22s ran %4d refused %3d failed %3d near-tie differences %d\n", k, st.ran[k], st.refused[k], st.failed[k], st.inexact[k])
	}
	ctx.mu.Lock()
	kernels := len(ctx.kernels)
	ctx.mu.Unlock()
	fmt.Fprintf(os.Stderr, "fuzz summary: %d configurations compared, %d decode steps, %d kernels built\n%s", total, st.steps, kernels, b.String())
	for r, n := range st.refusals {
		fmt.Fprintf(os.Stderr, "fuzz refusal x%d: %s\n", n, r)
	}
}

// runFuzzConfig runs one configuration: both sides prefilled with the same
// dyadic cache, decoded at each step's budgets, appended to between steps.
func runFuzzConfig(t *testing.T, ctx *Context, c fuzzConfig, st *fuzzStats) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%v: panic: %v\n%s", c, r, debug.Stack())
		}
	}()
	s := c.s
	rng := rand.New(rand.NewPCG(c.seed, 0xda7a))
	ro := c.ro
	if c.name == "hata" || (c.name == "lsh" && rng.IntN(2) == 0) {
		ro.W = reftest.DyadicHashWeights(rng, s.Hkv, s.D, c.rbit)
	} else if c.name == "lsh" {
		ro.Rbit = c.rbit // random weights drawn from ro.Seed on both sides
	}
	want, err := ref.New(c.name, s.Hkv, s.D, ro)
	if err != nil {
		t.Fatalf("%v: ref.New: %v", c, err)
	}
	var got ref.Method
	switch {
	case c.name == "dense":
		got, err = ctx.Factory(c.do)(c.name, s.Hkv, s.D, ro)
	case c.halves:
		got, err = ctx.NewHalves(c.name, s.Hkv, s.D, ro, c.so)
	default:
		got, err = ctx.SparseFactory(c.so)(c.name, s.Hkv, s.D, ro)
	}
	if err != nil {
		st.refused[c.key()]++
		st.refusals[refusalKind(err)]++
		t.Skipf("%v: refused: %v", c, err)
	}
	if cl, ok := got.(io.Closer); ok {
		defer cl.Close()
	}
	kv := reftest.DyadicKV(rng, s, c.storage == F16)
	if err := want.Prefill(kv); err != nil {
		t.Fatalf("%v: ref Prefill: %v", c, err)
	}
	if err := got.Prefill(kv); err != nil {
		st.refused[c.key()]++
		st.refusals[refusalKind(err)]++
		t.Skipf("%v: Prefill refused: %v", c, err)
	}
	st.ran[c.key()]++
	if !fuzzSteps(t, c, st, rng, want, got, kv, c.budgets, c.appendsBefore) || c.reprefill.N == 0 {
		return
	}
	s = c.reprefill
	kv = reftest.DyadicKV(rng, s, c.storage == F16)
	for _, m := range []ref.Method{want, got} {
		if err := m.Prefill(kv); err != nil {
			t.Fatalf("%v: second Prefill (B=%d N=%d) of %s: %v", c, s.B, s.N, m.Name(), err)
		}
	}
	fuzzSteps(t, c, st, rng, want, got, kv, [][]ref.Budget{c.rebudgets[:1], c.rebudgets[1:]}, []int{0, 1})
}

// fuzzSteps decodes want and got, prefilled with kv, at budgets[i] in
// step i, appending appendsBefore[i] tokens before step i > 0, and holds
// got to want at every decode. It reports whether the steps ran to the
// end and passed.
func fuzzSteps(t *testing.T, c fuzzConfig, st *fuzzStats, rng *rand.Rand, want, got ref.Method, kv *ref.KV, budgets [][]ref.Budget, appendsBefore []int) bool {
	t.Helper()
	s := kv.Shape(kv.Hkv * (c.s.Hq / c.s.Hkv))
	cache := kv.Clone()
	for step := 0; step < len(budgets); step++ {
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		for _, b := range budgets[step] {
			where := fmt.Sprintf("%v: step %d (N=%d) budget %v", c, step, cache.N, b)
			rw, err := want.Decode(q, b)
			if err != nil {
				t.Fatalf("%s: ref Decode: %v", where, err)
			}
			rg, err := got.Decode(q, b)
			if err != nil && decodeRefusal(err) {
				st.refused[c.key()]++
				st.refusals[refusalKind(err)]++
				t.Skipf("%s: Decode refused a knob at this shape: %v", where, err)
			}
			if err != nil {
				t.Fatalf("%s: Decode: %v", where, err)
			}
			st.steps++
			if c.name == "dense" {
				checkOutput(t, where, q, cache, rg)
				continue
			}
			exact := exactSelection[c.name]
			if !exact && !cmp.Equal(rw.Selected, rg.Selected) {
				st.inexact[c.key()]++
			}
			checkStep(t, where, c.name, q, cache, b, want, got, rw, rg, exact)
			if err := reftest.CheckCodes(want, got); err != nil {
				t.Errorf("%s: %v", where, err)
			}
			if t.Failed() {
				return false
			}
			if c.name == "h2o" && !cmp.Equal(rw.Selected, rg.Selected) {
				return false // the histories part; later steps are not comparable
			}
		}
		if step == len(budgets)-1 {
			break
		}
		for range appendsBefore[step+1] {
			k := reftest.Dyadic(rng, s.B*s.Hkv*s.D)
			v := reftest.Dyadic(rng, s.B*s.Hkv*s.D)
			if c.storage == F16 {
				reftest.RoundHalf(k)
				reftest.RoundHalf(v)
			}
			for i, a := range []interface{ Append(k, v []float32) error }{want, got, cache} {
				if err := a.Append(k, v); err != nil {
					t.Fatalf("%v: step %d: Append (%d): %v", c, step, i, err)
				}
			}
		}
	}
	return true
}

// decodeRefusal reports whether a Decode error is a knob that the
// documented rules refuse at the step's shape (SparseOptions.SelectWorkgroup:
// at least a sixteenth of the select's bins; LanesPerToken dividing D's
// vectors; a dense Workgroup a multiple of the device's largest subgroup,
// which dense checks at its first step: 16 passes on lavapipe's 8 and is
// refused on the H200's 32, run 428), not a failure.
func decodeRefusal(err error) bool {
	s := err.Error()
	return strings.Contains(s, "select workgroup") && strings.Contains(s, "bins") ||
		strings.Contains(s, "lanes per token") ||
		strings.Contains(s, "is not a multiple of the largest subgroup size")
}

// refusalKind strips the numbers from a constructor's error, so that
// refusals of one kind count together.
func refusalKind(err error) string {
	s := err.Error()
	var b strings.Builder
	digit := false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if !digit {
				b.WriteByte('#')
			}
			digit = true
			continue
		}
		digit = false
		b.WriteRune(r)
	}
	if len(b.String()) > 200 {
		return b.String()[:200]
	}
	return b.String()
}
