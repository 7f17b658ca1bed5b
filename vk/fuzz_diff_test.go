package vk

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
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
//	                        same HATA_VK_FUZZ_METHODS, which the draw reads,
//	                        on a device of the same subgroup sizes, which
//	                        bound the workgroups and lanes a token drawn)
//	HATA_VK_FUZZ_TIME=D     stop starting configurations after the duration D
//	HATA_VK_FUZZ_METHODS=.. only these methods (comma-separated; a hata or lsh
//	                        entry may name its variant: hata/naive)
//
// What a configuration draws (drawFuzzConfig): the method (dense too), hata's
// and lsh's kernel variant and hash width (32-256 bits, and one in five 384,
// 512 or 1024, where G*rbit+1 > 4096 histogram bins sends the select to its
// radix passes), whether it runs as Halves, the shape (N at and around the
// kernels' chunk, page and workgroup boundaries), the storage, windows, page
// size, sink tokens, Loki's channels, the norm-weighted score, budgets per
// step, appends between steps (growing the capacity) and a second prefill;
// every kernel knob of SparseOptions and DenseOptions, each at its default
// two times in three, PrefetchStride among them; the cache in host memory
// one time in four (HostCache), and paired one time in three where the
// method reads a paired cache (PairedKV); the attention 1-4 cache rows a
// dispatch one time in four where it is a dispatch of its own (AttendRows);
// Trace one time in six
// (then the traces must read back well formed: checkTraces); Loki's rotated
// keys in float16 (the default) or float32 (LokiF32Keys), and one Loki
// configuration in four keys of magnitude 2^14 to 2^15, whose rotations pass
// float16's range, so that Loki must store them in float32 (the queries
// scaled by 2^-14, keeping the logits of the usual size); and the inputs:
// dyadic (reftest.Dyadic: every product and sum exact in float32) two times
// in three, else normal draws (q ~ N(0, 4), K, V ~ N(0, 1), hata's weights
// N(0, 1)), held to ref as checkFuzzStep says.
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
	// normal draws the inputs from normal distributions (fuzzInputs), whose
	// products are not exact in float32; otherwise they are dyadic.
	normal bool
	// bigKeys (loki, D >= 16) draws keys of magnitude 2^14 to 2^15: every
	// key's norm is at least 2^16, so some rotated channel may pass
	// float16's largest value, and Loki stores its rotated keys in float32.
	// The queries are scaled by 2^-14 (exactly), so that the logits q·k
	// stay of the usual size: at logits of 10^5 float32's rounding alone
	// moves a probability by 4e-4 (seed 63 before the scaling), beyond
	// closeScores' tolerance, and the softmax is one-hot.
	bigKeys bool
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
	inputs := "dyadic"
	if c.normal {
		inputs = "normal"
	}
	if c.bigKeys {
		inputs += ", keys of 2^14-2^15"
	}
	return fmt.Sprintf("seed %d: %s B=%d Hkv=%d G=%d N=%d D=%d rbit=%d %s inputs %s windows %+v page %d sink %d normw %v appends %v budgets %v%s opts %s",
		c.seed, v, c.s.B, c.s.Hkv, c.s.Hq/c.s.Hkv, c.s.N, c.s.D, c.rbit, c.storage, inputs, c.ro.Windows, c.ro.PageSize, c.ro.SinkTokens, c.ro.NormWeighted, c.appendsBefore, c.budgets, re, opt)
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

// fuzzDevice is what the draws of workgroup sizes and lanes a token
// respect of the device: a knob drawn outside it would be refused, not
// tested (run 430: 32 of 371 configurations on the H200, most for a
// workgroup of 8 or 16 lanes against its subgroups of 32).
type fuzzDevice struct {
	minSubgroup, maxSubgroup int // the subgroup sizes a kernel may run with
	maxInvocations           int // maxComputeWorkGroupInvocations
}

// fuzzDeviceOf returns what the draws respect of info.
func fuzzDeviceOf(info DeviceInfo) fuzzDevice {
	return fuzzDevice{minSubgroup: int(max(info.MinSubgroupSize, 1)), maxSubgroup: int(max(info.MaxSubgroupSize, 1)),
		maxInvocations: int(info.Limits.MaxComputeWorkGroupInvocations)}
}

// workgroups returns those of xs that are multiples of the largest subgroup
// size and within the invocations (checkWorkgroup's rule). On lavapipe
// (subgroups of 8) it keeps every size the draws offer, so that a seed
// draws there what it drew before the draws knew the device.
func (d fuzzDevice) workgroups(xs ...int) []int {
	var ok []int
	for _, x := range xs {
		if x%d.maxSubgroup == 0 && x <= d.maxInvocations {
			ok = append(ok, x)
		}
	}
	return ok
}

// drawFuzzConfig draws the configuration of seed, among methods (nil: all),
// with workgroup sizes and lanes a token that dev runs.
func drawFuzzConfig(seed uint64, methods []string, dev fuzzDevice) fuzzConfig {
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
		if rng.IntN(3) != 0 || len(xs) == 0 {
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
	o.Workgroup = maybe(dev.workgroups(8, 16, 32, 64, 128, 256)...)
	// sparse_split's TPT divides the row's 16-byte vectors (fp16: 8-byte
	// ones), D/4 either way, and fits the smallest subgroup (lavapipe's 8);
	// each lane holds at most 16 of a row's values, since fewer lanes a
	// token hold the whole row and G heads' sums in each, and NVIDIA's
	// driver took over two minutes to compile one lane a token at D=64, G=7
	// (run 427).
	var lanes []int
	for l := max(1, d/16); l <= min(dev.minSubgroup, d/4); l *= 2 {
		lanes = append(lanes, l)
	}
	o.LanesPerToken = maybe(lanes...)
	o.ScoreWorkgroup = maybe(dev.workgroups(32, 64, 128, 256)...)
	o.SelectWorkgroup = maybe(dev.workgroups(128, 256, 512)...)
	o.ProjWorkgroup = maybe(dev.workgroups(32, 64, 128, 256, 512, 1024)...)
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
	// Drawn after everything above, so that an older seed's draws stay
	// what they were (but for Loki's rotated keys, float32 in every
	// configuration before these draws).
	c.normal = rng.IntN(3) == 0
	if hashing && rng.IntN(5) == 0 {
		// Wide codes: at G >= 4 (1024) or 8 (512) the select's histogram
		// passes 4096 bins and the radix select runs.
		c.rbit = pick(rng, 384, 512, 1024, 1024)
	}
	if c.name == "loki" {
		c.so.LokiF32Keys = rng.IntN(3) == 0
		c.bigKeys = d >= 16 && rng.IntN(4) == 0
	}
	if rng.IntN(6) == 0 {
		c.so.Trace, c.do.Trace = true, true
	}
	if rng.IntN(3) == 0 {
		// The translation prefetch runs only over plain allocations by
		// default, and the cache's are dedicated: turn it on where a
		// stride is drawn.
		c.so.PrefetchStride = uint64(pick(rng, 64, 128, 4096, 1<<16, 1<<20, 1<<30))
		c.so.Prefetch = PrefetchOn
	}
	// Drawn after everything above (session 44): the cache in host memory,
	// and paired where the method read a paired cache then (dense, and
	// hata's and lsh's fused chain).
	if rng.IntN(4) == 0 {
		c.so.HostCache, c.do.HostCache = true, true
	}
	fused := c.variant == "" || c.variant == VariantFused
	early := c.name == "dense" || (c.name == "hata" || c.name == "lsh") && fused && !c.halves
	if early && rng.IntN(3) == 0 {
		c.so.PairedKV, c.do.PairedKV = true, true
	}
	// Drawn after everything above (session 45): the attention a few cache
	// rows at a time, where it is a dispatch of its own.
	inside := c.variant == VariantTwoKernel || c.variant == VariantOneKernel
	if c.name != "dense" && !inside && rng.IntN(4) == 0 {
		c.so.AttendRows = 1 + rng.IntN(4)
	}
	// Drawn after everything above (session 46): paired for the fused
	// chains that read a paired cache since then (every other top-k
	// method's, and every one run as Halves).
	if !early && fused && rng.IntN(3) == 0 {
		c.so.PairedKV, c.do.PairedKV = true, true
	}
	return c
}

// fuzzStats counts what TestFuzzDiff ran.
type fuzzStats struct {
	ran, refused, failed map[string]int
	steps                int
	inexact              map[string]int // float-scored selections that differ from ref's in near-ties
	nearZero             map[string]int // hash code bits that differ from ref's within float32's rounding of 0
	refusals             map[string]int
}

// key names the method, its variant, whether it runs as Halves, and the
// inputs where they are not dyadic: hata/naive/halves/normal,
// loki/bigkeys.
func (c fuzzConfig) key() string {
	k := c.name
	if c.variant != "" {
		k += "/" + c.variant
	}
	if c.halves {
		k += "/halves"
	}
	if c.normal {
		k += "/normal"
	}
	if c.bigKeys {
		k += "/bigkeys"
	}
	return k
}

// TestFuzzDiff draws random small configurations (method, kernel variant,
// shape, budgets, windows, page sizes, storage, kernel options, appends that
// grow the capacity, dyadic or normal inputs; the list is above envFuzz)
// and holds vk to ref on each, as the other differential tests do: integer
// stages exactly (hash codes, the selections of hata, lsh, streaming and
// h2o; on normal inputs a code bit may differ only within float32's
// rounding of 0, the selection then held exactly to the rule over the
// GPU's own codes), the float-scored methods' selections up to near-ties
// (Loki's float16 keys by ref's arithmetic over the device's own), the
// output within reftest's tolerance, traces well formed (fuzzRun.check).
// It runs only with HATA_VK_FUZZ set (see envFuzz); each configuration is
// a subtest named by its seed and key.
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
	dev := fuzzDeviceOf(ctx.Info)
	st := fuzzStats{ran: map[string]int{}, refused: map[string]int{}, failed: map[string]int{}, inexact: map[string]int{}, nearZero: map[string]int{}, refusals: map[string]int{}}
	for i := range count {
		if !deadline.IsZero() && time.Now().After(deadline) {
			t.Logf("time is up after %d configurations", i)
			break
		}
		c := drawFuzzConfig(base+uint64(i), methods, dev)
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
		fmt.Fprintf(&b, "  %-29s ran %4d refused %3d failed %3d near-tie differences %d near-zero code bits %d\n", k, st.ran[k], st.refused[k], st.failed[k], st.inexact[k], st.nearZero[k])
	}
	ctx.mu.Lock()
	kernels := len(ctx.kernels)
	ctx.mu.Unlock()
	fmt.Fprintf(os.Stderr, "fuzz summary: %d configurations compared, %d decode steps, %d kernels built\n%s", total, st.steps, kernels, b.String())
	for r, n := range st.refusals {
		fmt.Fprintf(os.Stderr, "fuzz refusal x%d: %s\n", n, r)
	}
}

// fuzzRun is one configuration's run: ref's method and the GPU's, and what
// checking their steps needs.
type fuzzRun struct {
	c         fuzzConfig
	st        *fuzzStats
	rng       *rand.Rand // the inputs' draws, from the seed
	want, got ref.Method
	// exactCodes (hata, lsh) holds that every projection x·W is exact in
	// float32 (dyadic inputs and weights): the codes must equal ref's bit
	// for bit.
	exactCodes bool
	basis      []float64 // loki: the basis both sides fit at the last prefill (ref.FitLokiBasis)
}

// runFuzzConfig runs one configuration: both sides prefilled with the same
// cache (fuzzRun.kv), decoded at each step's budgets, appended to between
// steps.
func runFuzzConfig(t *testing.T, ctx *Context, c fuzzConfig, st *fuzzStats) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%v: panic: %v\n%s", c, r, debug.Stack())
		}
	}()
	s := c.s
	r := &fuzzRun{c: c, st: st, rng: rand.New(rand.NewPCG(c.seed, 0xda7a)), exactCodes: !c.normal}
	ro := c.ro
	if c.name == "hata" || (c.name == "lsh" && r.rng.IntN(2) == 0) {
		ro.W = reftest.DyadicHashWeights(r.rng, s.Hkv, s.D, c.rbit)
		if c.normal {
			w, err := ref.NewHashWeights(s.Hkv, s.D, c.rbit, normal(r.rng, s.Hkv*s.D*c.rbit, 1))
			if err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			ro.W = w
		}
	} else if c.name == "lsh" {
		ro.Rbit = c.rbit     // random weights drawn from ro.Seed on both sides
		r.exactCodes = false // N(0, 1) weights: x·W rounds in float32
	}
	var err error
	if r.want, err = ref.New(c.name, s.Hkv, s.D, ro); err != nil {
		t.Fatalf("%v: ref.New: %v", c, err)
	}
	switch {
	case c.name == "dense":
		r.got, err = ctx.Factory(c.do)(c.name, s.Hkv, s.D, ro)
	case c.halves:
		r.got, err = ctx.NewHalves(c.name, s.Hkv, s.D, ro, c.so)
	default:
		r.got, err = ctx.SparseFactory(c.so)(c.name, s.Hkv, s.D, ro)
	}
	if err != nil {
		st.refused[c.key()]++
		st.refusals[refusalKind(err)]++
		t.Skipf("%v: refused: %v", c, err)
	}
	if cl, ok := r.got.(io.Closer); ok {
		defer cl.Close()
	}
	kv := r.kv(s)
	if err := r.want.Prefill(kv); err != nil {
		t.Fatalf("%v: ref Prefill: %v", c, err)
	}
	if err := r.got.Prefill(kv); err != nil {
		st.refused[c.key()]++
		st.refusals[refusalKind(err)]++
		t.Skipf("%v: Prefill refused: %v", c, err)
	}
	st.ran[c.key()]++
	if !r.steps(t, kv, c.budgets, c.appendsBefore) || c.reprefill.N == 0 {
		return
	}
	s = c.reprefill
	kv = r.kv(s)
	for _, m := range []ref.Method{r.want, r.got} {
		if err := m.Prefill(kv); err != nil {
			t.Fatalf("%v: second Prefill (B=%d N=%d) of %s: %v", c, s.B, s.N, m.Name(), err)
		}
	}
	r.steps(t, kv, [][]ref.Budget{c.rebudgets[:1], c.rebudgets[1:]}, []int{0, 1})
}

// values returns n inputs of the configuration's kind: dyadic
// (reftest.Dyadic), or normal draws of standard deviation sigma.
func (r *fuzzRun) values(n int, sigma float64) []float32 {
	if r.c.normal {
		return normal(r.rng, n, sigma)
	}
	return reftest.Dyadic(r.rng, n)
}

// keysValues returns n entries of keys and of values (the keys drawn
// first, as reftest.DyadicKV draws them), rounded to float16 for a cache
// stored in it. Big keys (fuzzConfig.bigKeys) are ±(2^14 + j 2^10), j in
// 0..16: exact in float16, and of norm at least 2^14 sqrt(D) >= 2^16.
func (r *fuzzRun) keysValues(n int) (k, v []float32) {
	if r.c.bigKeys {
		k = make([]float32, n)
		for i := range k {
			k[i] = float32(1<<14 + r.rng.IntN(17)<<10)
			if r.rng.IntN(2) == 0 {
				k[i] = -k[i]
			}
		}
	} else {
		k = r.values(n, 1)
	}
	v = r.values(n, 1)
	if r.c.storage == F16 {
		reftest.RoundHalf(k)
		reftest.RoundHalf(v)
	}
	return k, v
}

// kv returns a cache of shape s drawn by keysValues.
func (r *fuzzRun) kv(s ref.Shape) *ref.KV {
	k, v := r.keysValues(s.B * s.Hkv * s.N * s.D)
	kv, err := ref.NewKV(s.B, s.Hkv, s.N, s.D, k, v)
	if err != nil {
		panic(err) // the shape is the draw's own
	}
	return kv
}

// steps decodes want and got, prefilled with kv, at budgets[i] in step i,
// appending appendsBefore[i] tokens before step i > 0, and holds got to
// want at every decode (check). It reports whether the steps ran to the
// end and passed.
func (r *fuzzRun) steps(t *testing.T, kv *ref.KV, budgets [][]ref.Budget, appendsBefore []int) bool {
	t.Helper()
	c := r.c
	s := kv.Shape(kv.Hkv * (c.s.Hq / c.s.Hkv))
	cache := kv.Clone()
	if c.name == "loki" {
		var err error
		if r.basis, err = ref.FitLokiBasis(kv); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
	}
	for step := 0; step < len(budgets); step++ {
		q := r.values(s.B*s.Hq*s.D, 2)
		if c.bigKeys {
			for i := range q {
				q[i] *= 1.0 / (1 << 14) // logits of the usual size (fuzzConfig.bigKeys)
			}
		}
		for _, b := range budgets[step] {
			where := fmt.Sprintf("%v: step %d (N=%d) budget %v", c, step, cache.N, b)
			rw, err := r.want.Decode(q, b)
			if err != nil {
				t.Fatalf("%s: ref Decode: %v", where, err)
			}
			rg, err := r.got.Decode(q, b)
			if err != nil && decodeRefusal(err) {
				r.st.refused[c.key()]++
				r.st.refusals[refusalKind(err)]++
				t.Skipf("%s: Decode refused a knob at this shape: %v", where, err)
			}
			if err != nil {
				t.Fatalf("%s: Decode: %v", where, err)
			}
			r.st.steps++
			r.check(t, where, q, cache, b, rw, rg)
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
			k, v := r.keysValues(s.B * s.Hkv * s.D)
			for i, a := range []interface{ Append(k, v []float32) error }{r.want, r.got, cache} {
				if err := a.Append(k, v); err != nil {
					t.Fatalf("%v: step %d: Append (%d): %v", c, step, i, err)
				}
			}
		}
	}
	return true
}

// check holds one decode step of got (rg) over cache to want's (rw), as
// exactly as the configuration's arithmetic allows:
//
//	dense          the output (checkOutput)
//	hata, lsh      where every projection x·W is exact in float32 (dyadic
//	               inputs and weights), checkStep: the codes bit for bit,
//	               the selection exactly; otherwise checkHashStep: a bit
//	               may differ only where ref's projection is within
//	               float32's rounding of 0, and the selection must be the
//	               selection rule's over the GPU's own codes, exactly
//	loki           with float16 rotated keys, checkLokiHalfStep: ref's
//	               arithmetic over the device's own keys; with float32
//	               ones, checkStep: selection up to near-ties
//	the others     checkStep: streaming's selection exactly, h2o's too on
//	               dyadic inputs (its logits are then exact), topk's,
//	               quest's and h2o's on normal inputs up to near-ties
//
// and where the method was built with Trace, its traces (checkTraces).
func (r *fuzzRun) check(t *testing.T, where string, q []float32, cache *ref.KV, b ref.Budget, rw, rg *ref.Result) {
	t.Helper()
	c := r.c
	switch {
	case c.name == "dense":
		checkOutput(t, where, q, cache, rg)
	case (c.name == "hata" || c.name == "lsh") && !r.exactCodes:
		r.checkHashStep(t, where, q, cache, b, rg)
	case c.name == "loki" && r.lokiHalfKeys(t, where):
		r.checkLokiHalfStep(t, where, q, cache, b, rg)
	default:
		exact := exactSelection[c.name] && !(c.name == "h2o" && c.normal)
		if !exact && !cmp.Equal(rw.Selected, rg.Selected) {
			r.st.inexact[c.key()]++
		}
		checkStep(t, where, c.name, q, cache, b, r.want, r.got, rw, rg, exact)
		if err := reftest.CheckCodes(r.want, r.got); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	if c.so.Trace {
		if err := checkTraces(r.got, c.variant); err != nil {
			t.Errorf("%s: traces: %v", where, err)
		}
	}
}

// checkHashStep holds a hata or lsh step whose projections x·W round in
// float32 (normal inputs, or lsh's N(0, 1) weights) to ref's: the GPU's
// codes equal ref's in every bit but those whose projection lies within
// float32's rounding of 0 (nearZeroBits; ref.HashWeights.Encode allows
// them), and its selection is exactly the selection rule's (Hamming,
// smallest first, or norm-weighted, largest first; ties to the smaller
// index; windows forced in) applied to its own codes, which are ref's
// wherever no bit is that close to 0. The output as checkOutput.
func (r *fuzzRun) checkHashStep(t *testing.T, where string, q []float32, cache *ref.KV, b ref.Budget, rg *ref.Result) {
	t.Helper()
	k, _ := b.Tokens(cache.N)
	rows, d := cache.B*cache.Hkv, cache.D
	if err := ref.CheckSelection(rg.Selected, rows, cache.N, k); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	w := r.want.(*ref.HATA).W
	wq, wk, err := r.want.(ref.Coder).Codes()
	if err != nil {
		t.Fatalf("%s: ref's Codes: %v", where, err)
	}
	gq, gk, err := r.got.(ref.Coder).Codes()
	if err != nil {
		t.Fatalf("%s: Codes: %v", where, err)
	}
	nw, hq := w.Words(), len(q)/(cache.B*d)
	g := hq / cache.Hkv
	if len(gq) != len(wq) || len(gk) != len(wk) {
		t.Fatalf("%s: %d query and %d key code words, ref has %d and %d", where, len(gq), len(gk), len(wq), len(wk))
	}
	for v := range cache.B * hq {
		n, err := nearZeroBits(w, v%hq/g, q[v*d:(v+1)*d], wq[v*nw:(v+1)*nw], gq[v*nw:(v+1)*nw])
		if err != nil {
			t.Fatalf("%s: query head %d (b*Hq+h): %v", where, v, err)
		}
		r.st.nearZero[r.c.key()] += n
	}
	for row := range rows {
		for tk := range cache.N {
			o := (row*cache.N + tk) * nw
			n, err := nearZeroBits(w, row%cache.Hkv, cache.K[row][tk*d:(tk+1)*d], wk[o:o+nw], gk[o:o+nw])
			if err != nil {
				t.Fatalf("%s: key row %d (b*Hkv+h) token %d: %v", where, row, tk, err)
			}
			r.st.nearZero[r.c.key()] += n
		}
	}
	krows := make([][]uint32, rows) // [B*Hkv] rows of [N][Rbit/32]
	for row := range krows {
		krows[row] = gk[row*cache.N*nw : (row+1)*cache.N*nw]
	}
	want := make([][]int32, rows)
	for row, s := range ref.HammingScores(gq, krows, cache.B, hq, cache.Hkv, cache.N, nw) {
		if !r.c.ro.NormWeighted {
			want[row] = ref.SelectSmallest(s, k, r.c.ro.Windows)
			continue
		}
		x := make([]float64, len(s)) // ||k_t|| (G - 2 S_t/Rbit), as ref.HATA ranks
		for tk := range s {
			x[tk] = norm64(cache.K[row][tk*d:(tk+1)*d]) * (float64(g) - 2*float64(s[tk])/float64(w.Rbit))
		}
		want[row] = ref.SelectLargest(x, k, r.c.ro.Windows)
	}
	if diff := cmp.Diff(want, rg.Selected); diff != "" {
		t.Errorf("%s: selection differs from the selection rule's over the GPU's own codes (-rule +got):\n%s", where, diff)
	}
	checkOutput(t, where, q, cache, rg)
}

// nearZeroBits compares got's code of x: [D] under KV head h's projection
// with want's (ref's) and returns how many bits differ: a bit j may, only
// where ref's float64 projection p_j = sum_i x_i W[h][i][j] is within
// twice the bound on a float32 sum's error in any order,
//
//	|p_j| <= 2 gamma_D sum_i |x_i W[h][i][j]|,  gamma_D = D u / (1 - D u), u = 2^-24,
//
// where the GPU's float32 sum may take either sign or be 0.
func nearZeroBits(w *ref.HashWeights, h int, x []float32, want, got []uint32) (int, error) {
	m := w.W[h*w.D*w.Rbit : (h+1)*w.D*w.Rbit] // m: [D][Rbit]
	const u = 1.0 / (1 << 24)
	gamma := float64(w.D) * u / (1 - float64(w.D)*u)
	n := 0
	for j := range w.Rbit {
		bit := uint32(1) << (j % 32)
		if want[j/32]&bit == got[j/32]&bit {
			continue
		}
		var p, mag float64
		for i := range w.D {
			y := float64(x[i]) * float64(m[i*w.Rbit+j])
			p += y
			mag += math.Abs(y)
		}
		if bound := 2 * gamma * mag; math.Abs(p) > bound {
			return n, fmt.Errorf("bit %d is %d, ref's %d, whose projection %.9g is beyond float32's rounding of 0 (%.3g)", j, got[j/32]&bit>>(j%32), want[j/32]&bit>>(j%32), p, bound)
		}
		n++
	}
	return n, nil
}

// lokiInstances returns got's vk.Loki instances: itself, or Halves' one
// or two (first half first).
func lokiInstances(got ref.Method) []*Loki {
	switch m := got.(type) {
	case *Loki:
		return []*Loki{m}
	case *Halves:
		var ms []*Loki
		for _, x := range m.ms {
			if x != nil {
				ms = append(ms, x.(*Loki))
			}
		}
		return ms
	}
	return nil
}

// lokiHalfKeys reports whether got (loki) stores its rotated keys in
// float16, and fails the test unless that is what SparseOptions.LokiF32Keys
// and the storage rule choose: float32 where asked for or where a rotated
// channel may pass float16's range (big keys, whose norms of 2^16 or more
// do at D >= 16 under an orthonormal basis), float16 for the others (norms
// far below it).
func (r *fuzzRun) lokiHalfKeys(t *testing.T, where string) bool {
	t.Helper()
	want := F16
	if r.c.so.LokiF32Keys || r.c.bigKeys {
		want = F32
	}
	ms := lokiInstances(r.got)
	if len(ms) == 0 {
		t.Fatalf("%s: %T is not vk's Loki", where, r.got)
	}
	for i, m := range ms {
		if m.keys != want {
			t.Fatalf("%s: instance %d holds its rotated keys in %s, want %s", where, i, m.keys, want)
		}
	}
	return want == F16
}

// checkLokiHalfStep holds a Loki step with float16 rotated keys as
// TestLokiHalfKeys does: the device's keys are ref's float64 rotation
// within one float16 step (checkRotated), and its selection and scores are
// ref.Loki's arithmetic over those very keys (ref.LokiScores; checkScored:
// up to near-ties); the output as checkOutput.
func (r *fuzzRun) checkLokiHalfStep(t *testing.T, where string, q []float32, cache *ref.KV, b ref.Budget, rg *ref.Result) {
	t.Helper()
	ms := lokiInstances(r.got)
	ch := ms[0].channels
	var rk [][]float64 // [B*Hkv] rows of [N][ch]
	for _, m := range ms {
		rk = append(rk, readHalfKeys(t, m, ch)...)
	}
	checkRotated(t, where, cache, r.basis, ch, rk)
	k, _ := b.Tokens(cache.N)
	if err := ref.CheckSelection(rg.Selected, cache.B*cache.Hkv, cache.N, k); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	scores := ref.LokiScores(q, cache, r.basis, ch, rk)
	want := make([][]int32, len(scores))
	for row, s := range scores {
		want[row] = ref.SelectLargest(s, k, ref.Windows{})
	}
	if !cmp.Equal(want, rg.Selected) {
		r.st.inexact[r.c.key()]++
	}
	checkScored(t, where, want, scores, rg, r.got)
	checkOutput(t, where, q, cache, rg)
}

// tracer is a method that reports its traced kernels' clock readings
// (SparseOptions.Trace, DenseOptions.Trace): every top-k method's and
// Dense's, not Halves'.
type tracer interface {
	Traces() ([]KernelTrace, error)
}

// checkTraces reports whether the last step of got, built with Trace,
// left well-formed traces: at least one traced kernel, each of whose
// workgroups wrote its readings in order with time passing from its start
// to its end (KernelTrace.Summary). Halves has none to check; hata's and
// lsh's variants whose own kernel attends (twokernel, onekernel) are not
// traced (SparseOptions.Trace), and their Traces may say that no traced
// step has run.
func checkTraces(got ref.Method, variant string) error {
	tr, ok := got.(tracer)
	if !ok {
		return nil
	}
	trs, err := tr.Traces()
	if err != nil && (variant == VariantTwoKernel || variant == VariantOneKernel) && strings.Contains(err.Error(), "no traced step has run") {
		return nil
	}
	if err != nil {
		return err
	}
	if len(trs) == 0 {
		return fmt.Errorf("no traced kernel")
	}
	for _, k := range trs {
		if _, err := k.Summary(); err != nil {
			return err
		}
	}
	return nil
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

// TestFuzzDraws checks the draws against the devices they are made for (no
// device needed): on lavapipe's subgroups of 8 the draws still offer
// workgroups of 8 and 16 and lanes a token up to 8, on the H200's 32 no
// workgroup knob is drawn off a multiple of 32, on subgroups of 4 to 64
// (an AMD GPU's range) none off a multiple of 64 and no lanes a token past
// 4, and a seed draws the same configuration twice.
func TestFuzzDraws(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dev        fuzzDevice
		wantSmall  bool // some workgroup of 8 or 16 drawn
		wantLanes8 bool // some 8 lanes a token drawn
	}{
		{"lavapipe", fuzzDevice{8, 8, 1024}, true, true},
		{"H200", fuzzDevice{32, 32, 1024}, false, true},
		{"4-64 lanes", fuzzDevice{4, 64, 1024}, false, false},
	} {
		small, lanes8 := false, false
		for seed := uint64(1); seed <= 3000; seed++ {
			c := drawFuzzConfig(seed, nil, tc.dev)
			if !reflect.DeepEqual(c, drawFuzzConfig(seed, nil, tc.dev)) {
				t.Fatalf("%s: seed %d drew two configurations", tc.name, seed)
			}
			o := c.so
			for _, w := range []struct {
				what string
				v    int
			}{{"Workgroup", o.Workgroup}, {"ScoreWorkgroup", o.ScoreWorkgroup}, {"SelectWorkgroup", o.SelectWorkgroup},
				{"ProjWorkgroup", o.ProjWorkgroup}, {"dense Workgroup", c.do.Workgroup}} {
				if w.v%tc.dev.maxSubgroup != 0 || w.v > tc.dev.maxInvocations {
					t.Fatalf("%s: seed %d drew %s %d", tc.name, seed, w.what, w.v)
				}
			}
			if o.LanesPerToken > tc.dev.minSubgroup {
				t.Fatalf("%s: seed %d drew %d lanes a token", tc.name, seed, o.LanesPerToken)
			}
			small = small || o.Workgroup == 8 || o.Workgroup == 16
			lanes8 = lanes8 || o.LanesPerToken == 8
		}
		if small != tc.wantSmall || lanes8 != tc.wantLanes8 {
			t.Errorf("%s: workgroups of 8 or 16 drawn %v, want %v; 8 lanes a token drawn %v, want %v",
				tc.name, small, tc.wantSmall, lanes8, tc.wantLanes8)
		}
	}
}
