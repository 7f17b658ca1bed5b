package vk

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// hataCase is one shape of the HATA kernel tests.
type hataCase struct {
	b, hkv, g, n, d, rbit int
	storage               Storage
	variant               string
	win                   ref.Windows
	budget                ref.Budget
	chunk                 int // ScoreChunk and SelectChunk; 0: defaults
}

func (c hataCase) String() string {
	return fmt.Sprintf("B=%d Hkv=%d G=%d N=%d D=%d rbit=%d %s %s windows %+v budget %v chunk %d",
		c.b, c.hkv, c.g, c.n, c.d, c.rbit, c.storage, c.variant, c.win, c.budget, c.chunk)
}

// gpuScores reads back the Hamming scores of the last decode: [rows][N];
// where that step used one-byte keys (SparseOptions.KeyBytes), min(S, 255).
func gpuScores(t *testing.T, m *HATA) [][]int32 {
	t.Helper()
	buf := m.scratch["scores"]
	out := make([][]int32, m.rows())
	key16 := m.opt.Variant != VariantNaive && (m.lastHq/m.hkv)*m.w.Rbit <= 65535
	key8 := m.lastKeyThr.Buf != nil
	words := m.rows() * m.cap
	switch {
	case key8:
		words /= 4
	case key16:
		words /= 2
	}
	w, err := m.readWords(buf, 0, words)
	if err != nil {
		t.Fatal(err)
	}
	for r := range out {
		out[r] = make([]int32, m.n)
		for i := range m.n {
			j := r*m.cap + i
			switch {
			case key8:
				out[r][i] = int32(w[j/4] >> (8 * (j % 4)) & 0xff)
			case key16:
				out[r][i] = int32(w[j/2] >> (16 * (j % 2)) & 0xffff)
			default:
				out[r][i] = int32(w[j])
			}
		}
	}
	return out
}

// runHATACase prefills ref and the GPU with the same dyadic cache, decodes,
// appends twice (decoding after each), and compares query codes, key codes
// and scores bit for bit, the selection exactly, and the output within
// reftest's tolerance.
func runHATACase(t *testing.T, ctx *Context, c hataCase, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 21))
	w := reftest.DyadicHashWeights(rng, c.hkv, c.d, c.rbit)
	want := ref.NewHATA(w, c.win, false)
	got, err := ctx.NewHATA("hata", w, c.win, false, SparseOptions{Storage: c.storage, Variant: c.variant, ScoreChunk: c.chunk, SelectChunk: c.chunk, Reserve: 1})
	if err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	defer got.Close()
	kv := reftest.DyadicKV(rng, ref.Shape{B: c.b, Hq: c.hkv * c.g, Hkv: c.hkv, N: c.n, D: c.d}, c.storage == F16)
	if err := want.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	if err := got.Prefill(kv); err != nil {
		t.Fatalf("%v: Prefill: %v", c, err)
	}
	cache := kv.Clone()
	for step := 0; step < 3; step++ {
		where := fmt.Sprintf("%v step %d (N=%d, Cap=%d)", c, step, cache.N, got.cap)
		q := reftest.Dyadic(rng, c.b*c.hkv*c.g*c.d)
		rw, err := want.Decode(q, c.budget)
		if err != nil {
			t.Fatal(err)
		}
		rg, err := got.Decode(q, c.budget)
		if err != nil {
			t.Fatalf("%s: Decode: %v", where, err)
		}
		wq, wk, _ := want.Codes()
		gq, gk, err := got.Codes()
		if err != nil {
			t.Fatalf("%s: Codes: %v", where, err)
		}
		if d := cmp.Diff(wq, gq); d != "" {
			t.Fatalf("%s: query codes differ from ref.HashWeights.EncodeQueries (-ref +got):\n%s", where, d)
		}
		if d := cmp.Diff(wk, gk); d != "" {
			t.Fatalf("%s: key codes differ from ref.HashWeights.EncodeKeys (-ref +got):\n%s", where, d)
		}
		kc := w.EncodeKeys(cache)
		wantS := ref.HammingScores(wq, kc, c.b, c.hkv*c.g, c.hkv, cache.N, w.Words())
		if got.lastKeyThr.Buf != nil { // one-byte keys
			for _, r := range wantS {
				for i := range r {
					r[i] = min(r[i], 255)
				}
			}
		}
		if d := cmp.Diff(wantS, gpuScores(t, got)); d != "" {
			t.Fatalf("%s: scores differ from ref.HammingScores (-ref +got):\n%s", where, d)
		}
		if d := cmp.Diff(rw.Selected, rg.Selected); d != "" {
			t.Fatalf("%s: selection differs from ref (-ref +got):\n%s", where, d)
		}
		want64, err := ref.Sparse(q, cache, rg.Selected)
		if err != nil {
			t.Fatal(err)
		}
		if err := reftest.CheckClose(rg.Out, want64, sparse32(t, q, cache, rg.Selected), c.d); err != nil {
			t.Errorf("%s: output: %v", where, err)
		}
		k, v := reftest.Dyadic(rng, c.b*c.hkv*c.d), reftest.Dyadic(rng, c.b*c.hkv*c.d)
		for _, a := range []interface{ Append(k, v []float32) error }{want, got, cache} {
			if err := a.Append(k, v); err != nil {
				t.Fatalf("%s: Append: %v", where, err)
			}
		}
	}
}

// TestHATAKernels holds each HATA kernel to ref bit for bit: the query and
// key codes (prefill, append, and the re-encode when the cache grows: the
// capacity is reserved tight), the GQA-summed Hamming scores (uint16 fused,
// one byte, min(S, 255), where the select's plan and select_groups run,
// uint32 naive), the selection with and without windows, for rbit 32 to 256
// (codes padded to 4 words), group sizes 1 to 8, N = 1, 7, 63 (the capacity
// edge), (1<<12)+11 and 40011, and scores chunks of 62 and 20480 tokens.
func TestHATAKernels(t *testing.T) {
	ctx := device(t)
	cases := []hataCase{
		{b: 1, hkv: 1, g: 1, n: 1, d: 64, rbit: 128, budget: ref.Budget{K: 1}},
		{b: 1, hkv: 2, g: 4, n: 7, d: 64, rbit: 32, budget: ref.Budget{K: 3}},
		{b: 2, hkv: 2, g: 2, n: 63, d: 64, rbit: 96, budget: ref.Budget{K: 10}, storage: F16},
		{b: 1, hkv: 1, g: 8, n: 300, d: 128, rbit: 256, budget: ref.Budget{Ratio: 0.1}, chunk: 62},
		{b: 1, hkv: 2, g: 3, n: 300, d: 64, rbit: 160, budget: ref.Budget{K: 33}, variant: VariantNaive, chunk: 62},
		{b: 2, hkv: 1, g: 4, n: 1<<12 + 11, d: 64, rbit: 128, budget: ref.Budget{Ratio: 0.0156}, storage: F16},
		{b: 1, hkv: 2, g: 4, n: 1<<12 + 11, d: 64, rbit: 64, budget: ref.Budget{K: 100}, variant: VariantNaive},
		// windows: none, inside k, filling k, larger than N
		{b: 2, hkv: 2, g: 2, n: 75, d: 64, rbit: 128, budget: ref.Budget{K: 20}, win: ref.Windows{Sink: 4, Recent: 8}},
		{b: 1, hkv: 2, g: 2, n: 75, d: 64, rbit: 128, budget: ref.Budget{K: 9}, win: ref.Windows{Sink: 4, Recent: 8}, variant: VariantNaive},
		{b: 1, hkv: 1, g: 4, n: 300, d: 64, rbit: 128, budget: ref.Budget{K: 64}, win: ref.Windows{Sink: 64, Recent: 32}, chunk: 62},
		{b: 1, hkv: 1, g: 1, n: 5, d: 64, rbit: 128, budget: ref.Full, win: ref.Windows{Sink: 9, Recent: 9}},
		// windows spanning several chunks at both ends (the fused select counts
		// each chunk's forced tokens from the window bounds)
		{b: 2, hkv: 1, g: 4, n: 500, d: 64, rbit: 128, budget: ref.Budget{K: 200}, win: ref.Windows{Sink: 70, Recent: 100}, chunk: 62},
		{b: 1, hkv: 1, g: 2, n: 40, d: 64, rbit: 128, budget: ref.Budget{K: 6}, win: ref.Windows{Recent: 3}, storage: F16},
		// rows of 18 chunks, whose counts the select sums over the chunks
		// before its own: select_groups (2 groups a lane), select_write_cum
		{b: 1, hkv: 1, g: 2, n: 17*2056 + 5, d: 64, rbit: 128, budget: ref.Budget{Ratio: 0.0156}, win: ref.Windows{Sink: 3, Recent: 9}, chunk: 2056, storage: F16},
		{b: 2, hkv: 1, g: 4, n: 1100, d: 64, rbit: 128, budget: ref.Budget{K: 70}, win: ref.Windows{Sink: 2}, chunk: 62},
		// chunks of two of select_groups' tiles (256 lanes x 64 tokens), the second cut short
		{b: 1, hkv: 1, g: 2, n: 40011, d: 64, rbit: 128, budget: ref.Budget{Ratio: 0.0156}, win: ref.Windows{Sink: 4, Recent: 64}, chunk: 20480, storage: F16},
	}
	for i, c := range cases {
		if c.variant == "" {
			c.variant = VariantFused
		}
		runHATACase(t, ctx, c, uint64(i+1))
	}
}

// TestHATAWideScores forces the radix path of the fused variant: G*rbit >=
// 4096 does not fit a one-pass histogram, so the uint16 scores go through
// two 8-bit passes; there with 16 heads a group, and with the widest codes
// a benchmark may time (vk.MaxTuningRbit, 32 words: hata_score's query
// codes in 8 uvec4 a head), and those codes one pass fits at G = 2.
func TestHATAWideScores(t *testing.T) {
	ctx := device(t)
	runHATACase(t, ctx, hataCase{b: 1, hkv: 1, g: 16, n: 200, d: 64, rbit: 256, budget: ref.Budget{K: 17}, variant: VariantFused}, 99)
	runHATACase(t, ctx, hataCase{b: 1, hkv: 2, g: 4, n: 300, d: 64, rbit: MaxTuningRbit, budget: ref.Budget{K: 17}, variant: VariantFused, chunk: 62}, 98)
	runHATACase(t, ctx, hataCase{b: 2, hkv: 1, g: 2, n: 300, d: 64, rbit: MaxTuningRbit, budget: ref.Budget{Ratio: 0.1}, variant: VariantFused}, 97)
}

// TestHATANarrowCodes holds the key codes of 32 and 64 bits, four and two
// to a uvec4 in the cache (keyCodeStride), to ref bit for bit in every
// kernel variant: codes, scores, selection and output, over rows of several
// chunks whose last is cut short at an odd token (the pair it ends with is
// half past the chunk), with windows, and with chunks over 2048 tokens,
// where the select's plan and one-byte keys run.
func TestHATANarrowCodes(t *testing.T) {
	ctx := device(t)
	for _, rbit := range []int{32, 64} {
		if ks := keyCodeStride(rbit / 32); ks != rbit/32 {
			t.Fatalf("rbit %d: key codes %d words apart, want %d", rbit, ks, rbit/32)
		}
		for i, v := range []string{VariantFused, VariantNaive, VariantTwoKernel, VariantThreeKernel, VariantOneKernel} {
			seed := uint64(100*rbit + i)
			runHATACase(t, ctx, hataCase{b: 2, hkv: 2, g: 4, n: 3*62 + 1, d: 64, rbit: rbit, budget: ref.Budget{K: 19},
				win: ref.Windows{Sink: 3, Recent: 5}, variant: v, chunk: 62, storage: F16}, seed)
			runHATACase(t, ctx, hataCase{b: 1, hkv: 2, g: 2, n: 3*2056 + 7, d: 64, rbit: rbit, budget: ref.Budget{Ratio: 0.0156},
				variant: v, chunk: 2056}, seed+50)
		}
	}
}

// TestHATANormWeighted checks the norm-weighted variant (GPU scores, host
// ranking) against ref's: the same selection, and the output, after a
// prefill and after each of two rounds of appends.
func TestHATANormWeighted(t *testing.T) {
	ctx := device(t)
	for i, name := range []string{"hata", "lsh"} {
		rng := rand.New(rand.NewPCG(uint64(i), 5))
		s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 90, D: 64}
		w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
		o := ref.Options{W: w, NormWeighted: true, Windows: ref.Windows{Sink: 1, Recent: 2}}
		want, err := ref.New(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ctx.NewMethod(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		defer got.(*HATA).Close()
		kv := reftest.DyadicKV(rng, s, false)
		for _, m := range []ref.Method{want, got} {
			if err := m.Prefill(kv); err != nil {
				t.Fatal(err)
			}
		}
		// Two rounds of appends, each followed by the same decodes: an
		// appended key's norm weighs its score as a prefilled one's does.
		for step := range 3 {
			for _, b := range []ref.Budget{{K: 1}, {K: 13}, ref.Full} {
				q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
				rw, _ := want.Decode(q, b)
				rg, err := got.Decode(q, b)
				if err != nil {
					t.Fatalf("%s step %d budget %v: %v", name, step, b, err)
				}
				if d := cmp.Diff(rw.Selected, rg.Selected); d != "" {
					t.Errorf("%s norm-weighted step %d budget %v: selection differs (-ref +got):\n%s", name, step, b, d)
				}
				if err := reftest.CheckClose(rg.Out, rw.Out, sparse32(t, q, kv, rg.Selected), s.D); err != nil {
					t.Errorf("%s norm-weighted step %d budget %v: output: %v", name, step, b, err)
				}
			}
			// Four keys of larger norms, so that they rank by it: two of
			// them before the recent window, which would force them in.
			for range 4 {
				k := reftest.Dyadic(rng, s.B*s.Hkv*s.D)
				for i := range k {
					k[i] *= 4
				}
				v := reftest.Dyadic(rng, s.B*s.Hkv*s.D)
				for _, a := range []interface{ Append(k, v []float32) error }{want, got, kv} {
					if err := a.Append(k, v); err != nil {
						t.Fatalf("%s step %d: Append: %v", name, step, err)
					}
				}
			}
		}
	}
}

// TestHATAVariantsAgree runs the three kernel chains on one cache and checks that
// they select the same tokens and produce the same output (both are held to
// ref elsewhere; this checks them against each other on a larger shape).
func TestHATAVariantsAgree(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(8, 8))
	s := ref.Shape{B: 2, Hq: 8, Hkv: 2, N: 2000, D: 128}
	w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
	kv := reftest.DyadicKV(rng, s, true)
	q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
	var res []*ref.Result
	for _, v := range []string{VariantFused, VariantNaive, VariantTwoKernel, VariantThreeKernel, VariantOneKernel} {
		m, err := ctx.NewHATA("hata", w, ref.Windows{}, false, SparseOptions{Storage: F16, Variant: v})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		r, err := m.Decode(q, ref.Budget{Ratio: 0.0156})
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	for i, v := range []string{VariantNaive, VariantTwoKernel, VariantThreeKernel, VariantOneKernel} {
		if d := cmp.Diff(res[0].Selected, res[i+1].Selected); d != "" {
			t.Errorf("fused and %s select differently (-fused +%s):\n%s", v, v, d)
		}
		if err := reftest.CheckClose(res[i+1].Out, res[0].Out, sparse32(t, q, kv, res[0].Selected), s.D); err != nil {
			t.Errorf("%s output vs fused: %v", v, err)
		}
	}
}

// stepHATA decodes one step of budget b with a fresh dyadic query of hq
// heads on ref's want and on the GPU's m, both prefilled with kv, and holds
// m to want (decodeStep: the selection exactly, the output to ref's sparse
// attention over it).
func stepHATA(t *testing.T, rng *rand.Rand, where string, kv *ref.KV, hq int, b ref.Budget, want ref.Method, m *HATA) {
	t.Helper()
	decodeStep(t, where, "hata", reftest.Dyadic(rng, kv.B*hq*kv.D), kv, b, want, m, true)
}

// prefilledHATAs returns the GPU's HATA with windows win and options o and
// ref's, both prefilled with kv (the caller closes the GPU one).
func prefilledHATAs(t *testing.T, ctx *Context, w *ref.HashWeights, win ref.Windows, o SparseOptions, kv *ref.KV) (*HATA, *ref.HATA) {
	t.Helper()
	m, err := ctx.NewHATA("hata", w, win, false, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	want := ref.NewHATA(w, win, false)
	if err := want.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	return m, want
}

// TestSparseTiles runs the attention with the GPU's tiles of 2 and 4
// entries per slot (lavapipe's default is 1), indexed and gathered, over
// splits of every length from 1 to over a tile, its merge folded into the
// last split of a row or (MergeSeparate, and always when gathered) a
// dispatch of its own, against ref. Then, at G = 2 and 1 (one and two xor
// rounds of split_softmax's RS_ONE maxima, with and without lanes holding
// the same logit), with the logits of every other head far below zero
// (-105 to -135) and the rest a little above: a tile's entries past its
// split's end are zero vectors whose logit is 0, and a max that took them
// in would underflow every weight of the tile, as would one taken from
// another head's lanes, so the output would be NaN or zero instead of
// ref's.
func TestSparseTiles(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(4, 4))
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 300, D: 64}
	w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
	kv := reftest.DyadicKV(rng, s, true)
	for _, c := range []struct {
		variant string
		merge   MergeMode
	}{{VariantFused, MergeFold}, {VariantFused, MergeSeparate}, {VariantNaive, MergeFold}} {
		for _, tile := range []int{2, 4} {
			for _, splits := range []int{1, 3, 40} {
				m, want := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16, Variant: c.variant, Split: SplitPolicy{Splits: splits}, Tile: tile, Merge: c.merge}, kv)
				for _, b := range []ref.Budget{{K: 1}, {K: 37}, ref.Full} {
					where := fmt.Sprintf("tile %d %s merge mode %d S=%d budget %v", tile, c.variant, c.merge, splits, b)
					stepHATA(t, rng, where, kv, s.Hq, b, want, m)
					if merged := slices.ContainsFunc(m.Timings().Stages, func(st Stage) bool { return st.Name == "merge" }); merged != (c.merge == MergeSeparate || c.variant == VariantNaive) {
						t.Errorf("%s: stages %v", where, stageNames(m.Timings()))
					}
				}
				m.Close()
			}
		}
	}
	// Keys of 1.75, 2 or 2.25 in every element (with the queries below of
	// -7.5, q.k/8 in [-135, -105]), and with mixed each token's sign drawn
	// (logits in [-135, 135]: a max over part of a tile's tokens would
	// overflow the others' weights).
	far := func(mixed bool) *ref.KV {
		f := &ref.KV{B: kv.B, Hkv: kv.Hkv, N: kv.N, D: kv.D, K: make([][]float32, len(kv.K)), V: kv.V}
		for r := range f.K {
			f.K[r] = make([]float32, len(kv.K[r])) // [N][D]
			for tok := range kv.N {
				sign := float32(1)
				if mixed && rng.IntN(2) == 0 {
					sign = -1
				}
				for e := range s.D {
					f.K[r][tok*s.D+e] = sign * (2 + float32(rng.IntN(3)-1)/4)
				}
			}
		}
		return f
	}
	for _, c := range []struct {
		hq    int
		mixed bool
	}{{s.Hq, false}, {s.Hkv, false}, {s.Hq, true}, {s.Hkv, true}} { // G = 2, and 1
		hq, neg := c.hq, far(c.mixed)
		// [B][hq][D]: even heads' logits in [-135, -105], odd heads' in
		// [3.5, 4.5], so that a head's weights taken against another head's
		// max overflow or underflow too.
		q := make([]float32, s.B*hq*s.D)
		for i := range q {
			q[i] = -7.5
			if i/s.D%2 == 1 {
				q[i] = 0.25
			}
		}
		for _, tile := range []int{2, 4} {
			for _, splits := range []int{3, 40} {
				m, want := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16, Split: SplitPolicy{Splits: splits}, Tile: tile}, neg)
				for _, b := range []ref.Budget{{K: 37}, ref.Full} {
					decodeStep(t, fmt.Sprintf("logits far apart, G=%d mixed signs %v tile %d S=%d budget %v", hq/s.Hkv, c.mixed, tile, splits, b), "hata", q, neg, b, want, m, true)
				}
				m.Close()
			}
		}
	}
}

// chunkedHATAInputs is the chunk tests' fixture (TestHATAOneKernelChunks,
// TestHATASelectPlan): dyadic hash weights, keys and values of two batches
// of 2 KV heads with 4 query heads each, 9001 tokens of dimension 64, from
// the PCG seeded (6, seed), which the tests go on drawing queries from.
func chunkedHATAInputs(seed uint64) (*rand.Rand, ref.Shape, *ref.HashWeights, *ref.KV) {
	rng := rand.New(rand.NewPCG(6, seed))
	s := ref.Shape{B: 2, Hq: 8, Hkv: 2, N: 9001, D: 64}
	return rng, s, reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128), reftest.DyadicKV(rng, s, true)
}

// TestHATAOneKernelChunks holds hata/onekernel to ref with score and select
// items of many sizes: many per row (their counts carried across chunks by
// the cumulative histograms), chunks of more tiles than select_chunk loads
// ahead, a last chunk cut short, windows forced in, and every tile length of
// the attention (Tile 4), with budgets from one token to all of them; and
// the fused chain's two selects over the same chunks: select_groups (whole
// chunks per tile, 8-token groups; chunks longer than one of select_write's
// tiles of 2048 tokens, with 2, 3 and 4 groups per lane of 256 and 4 of
// 512 (groupsWorkgroup: chunks of 8193-16384), 8 of 256 in two tiles
// (chunks of 32768), a chunk's tile cut short) and select_write (2048
// tokens and fewer), each in the workgroup the default gives it.
func TestHATAOneKernelChunks(t *testing.T) {
	ctx := device(t)
	rng, s, w, kv := chunkedHATAInputs(9)
	for _, c := range []struct {
		variant string
		chunk   int
		win     ref.Windows
		sel     string // the fused chain's select kernel
		selWG   uint32 // its workgroup (groupsWorkgroup)
	}{
		{VariantOneKernel, 64, ref.Windows{}, "", 0},
		{VariantOneKernel, 1000, ref.Windows{Sink: 3, Recent: 70}, "", 0},
		{VariantOneKernel, 8192, ref.Windows{Sink: 1}, "", 0},
		{VariantFused, 16384, ref.Windows{Sink: 3, Recent: 70}, "select_groups", 512}, // 4 groups a lane of 512 (8 of 256), the row one chunk cut short
		{VariantFused, 16384, ref.Windows{Sink: 13, Recent: 8000}, "select_groups", 512},
		{VariantFused, 32768, ref.Windows{Sink: 2, Recent: 9}, "select_groups", 256}, // 8 groups a lane of 256, two tiles
		{VariantFused, 8192, ref.Windows{Sink: 1}, "select_groups", 256},
		{VariantFused, 6000, ref.Windows{Sink: 2, Recent: 40}, "select_groups", 256}, // 3 groups per lane
		{VariantFused, 4096, ref.Windows{Sink: 5, Recent: 33}, "select_groups", 256},
		{VariantFused, 2056, ref.Windows{Recent: 9}, "select_groups", 256},
		{VariantFused, 2048, ref.Windows{Sink: 1}, "select_write_cum", 256},
		{VariantFused, 62, ref.Windows{Sink: 3, Recent: 70}, "select_write_cum", 256},
	} {
		m, want := prefilledHATAs(t, ctx, w, c.win, SparseOptions{Storage: F16, Variant: c.variant, ScoreChunk: c.chunk, Tile: 4}, kv)
		where := fmt.Sprintf("%s chunk %d windows %+v", c.variant, c.chunk, c.win)
		for _, b := range []ref.Budget{{K: 1}, {K: 140}, {Ratio: 0.0156}, ref.Full} {
			stepHATA(t, rng, fmt.Sprintf("%s budget %v", where, b), kv, s.Hq, b, want, m)
			tm := m.Timings()
			if oneStep := slices.ContainsFunc(tm.Stages, func(st Stage) bool { return st.Name == "step" }); oneStep != (c.variant == VariantOneKernel) {
				t.Fatalf("%s: stages %v", where, stageNames(tm))
			}
		}
		if c.sel != "" {
			ran := builtShaders(m.sparseCore)
			for _, name := range []string{"select_groups", "select_write_cum", "select_write"} {
				if ran[name] != (name == c.sel) {
					t.Errorf("%s: %s ran: %v, want %v", where, name, ran[name], name == c.sel)
				}
			}
			want := c.selWG
			if !workgroupFits(ctx.Info, int(want)) {
				want = selectWorkgroup // a device without 512 lanes keeps 256
			}
			for k := range m.sets {
				if k.k.spec.Shader == c.sel && k.k.Workgroup() != want {
					t.Errorf("%s: %s in workgroups of %d, want %d", where, c.sel, k.k.Workgroup(), want)
				}
			}
		}
		m.Close()
	}
}

// TestHATASelectPlanBetween holds to ref the steps of one HATA whose select
// plan goes off and on between steps (white box: its options change, as
// PlanAuto's rule does when a prefill changes the chunks). Every plan step
// leaves its row counters zero, so they are zeroed only where they move; a
// step without the plan over more chunks (the first, which sizes the
// buffer, so that the plan's counters stay where they are) writes its chunk
// histograms over them. The counters land on bins 0 to rows-1 of one
// chunk's cumulative histogram (the layouts are multiples of the bins),
// which the steps without the plan fill: one token there scores 0, its key
// the query of all G heads of row 0. The next plan step must zero the
// counters again, or a row's "last" workgroup resolves its plan before the
// others' histograms are in.
func TestHATASelectPlanBetween(t *testing.T) {
	ctx := device(t)
	rng, s, w, kv := chunkedHATAInputs(11)
	win := ref.Windows{Sink: 3, Recent: 70}
	m, want := prefilledHATAs(t, ctx, w, win, SparseOptions{Storage: F16}, kv)
	defer m.Close()
	rows, planChunks := s.B*s.Hkv, (s.N+4095)/4096
	for i, c := range []struct {
		mode  PlanMode
		chunk int
	}{{PlanOff, 512}, {PlanOn, 4096}, {PlanOff, 512}, {PlanOn, 4096}, {PlanOn, 4096}, {PlanOff, 4096}, {PlanOn, 4096}} {
		m.opt.SelectPlan, m.opt.ScoreChunk = c.mode, c.chunk
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		if c.mode == PlanOff && c.chunk < 4096 {
			// Row 0's counter is word rows*bins*(1+planChunks) of the
			// histogram buffer: bin 0 of chunk rows*planChunks of the
			// row-major [rows][chunks] cumulative histograms that follow
			// the rows' histograms. Its first token scores 0.
			chunks := (s.N + c.chunk - 1) / c.chunk
			at := rows * planChunks
			if at/chunks != 0 {
				t.Fatalf("row 0's counter is not in row 0's chunk histograms (chunk %d of %d)", at, chunks)
			}
			tok := at % chunks * c.chunk
			for g := range s.Hq / s.Hkv {
				copy(q[g*s.D:(g+1)*s.D], kv.K[0][tok*s.D:(tok+1)*s.D])
			}
		}
		decodeStep(t, fmt.Sprintf("step %d, plan mode %d, chunk %d", i, c.mode, c.chunk), "hata", q, kv, ref.Budget{K: 140}, want, m, true)
	}
}

// TestHATASelectPlan holds the select's plan (SparseOptions.SelectPlan:
// hata_score's last workgroup of each row resolves the threshold and every
// chunk's first output slot) to ref: over chunks of both selects
// (select_groups from 2056 tokens, select_write_cum below), more chunks per
// row than the score workgroup has lanes (its plan loop's second pass), a
// last chunk cut short, windows that force tokens in (one budget taking
// exactly the forced ones, so that the plan has no threshold to search),
// several steps on one cache (ctr left zero by each), a shorter cache in
// the same buffers (ctr moved onto words that held other counts), and the
// fused and threekernel chains; PlanAuto's rule (a plan with select_groups
// only) and PlanOff; and checks which score kernel ran.
func TestHATASelectPlan(t *testing.T) {
	ctx := device(t)
	rng, s, w, kv := chunkedHATAInputs(10)
	for _, c := range []struct {
		variant string
		chunk   int
		win     ref.Windows
		mode    PlanMode
		plan    bool // the plan runs
		selWG   int  // SelectWorkgroup; 0: the default
	}{
		{VariantFused, 16384, ref.Windows{Sink: 3, Recent: 70}, PlanOn, true, 0},
		{VariantFused, 4096, ref.Windows{Sink: 5, Recent: 33}, PlanOn, true, 0},
		{VariantFused, 2056, ref.Windows{}, PlanOn, true, 0},
		{VariantFused, 2048, ref.Windows{Sink: 1}, PlanOn, true, 0},
		{VariantFused, 62, ref.Windows{Sink: 3, Recent: 70}, PlanOn, true, 0},
		{VariantFused, 16, ref.Windows{Sink: 2, Recent: 9}, PlanOn, true, 0}, // 563 chunks a row
		{VariantThreeKernel, 4096, ref.Windows{Sink: 3, Recent: 70}, PlanOn, true, 0},
		{VariantFused, 2056, ref.Windows{Sink: 1}, PlanAuto, true, 0},
		{VariantFused, 2048, ref.Windows{Sink: 1}, PlanAuto, false, 0},
		{VariantFused, 4096, ref.Windows{Sink: 5, Recent: 33}, PlanOff, false, 0},
		// Other select workgroups: select_groups in tiles of 4096 tokens
		// (64 lanes, 8 groups each: four tiles a chunk) and of 8192 (512
		// lanes, 2 groups), select_write_cum in tiles of 4096 (512 lanes).
		{VariantFused, 16384, ref.Windows{Sink: 3, Recent: 70}, PlanOn, true, 64},
		{VariantFused, 4096, ref.Windows{Sink: 5, Recent: 33}, PlanOn, true, 512},
		{VariantFused, 2048, ref.Windows{Sink: 1}, PlanOff, false, 512},
	} {
		m, want := prefilledHATAs(t, ctx, w, c.win, SparseOptions{Storage: F16, Variant: c.variant, ScoreChunk: c.chunk, SelectPlan: c.mode, SelectWorkgroup: c.selWG}, kv)
		where := fmt.Sprintf("plan mode %d %s chunk %d windows %+v select workgroup %d", c.mode, c.variant, c.chunk, c.win, c.selWG)
		for _, b := range []ref.Budget{{K: 1}, {K: max(1, c.win.Sink+c.win.Recent)}, {K: 140}, {Ratio: 0.0156}, ref.Full} {
			stepHATA(t, rng, fmt.Sprintf("%s budget %v", where, b), kv, s.Hq, b, want, m)
		}
		// A shorter cache in the same buffers: fewer chunks, so the plan's
		// counters move to words the longer one's chunk histograms held.
		short := reftest.DyadicKV(rng, ref.Shape{B: s.B, Hq: s.Hq, Hkv: s.Hkv, N: 5003, D: s.D}, true)
		if err := m.Prefill(short); err != nil {
			t.Fatal(err)
		}
		if err := want.Prefill(short); err != nil {
			t.Fatal(err)
		}
		for _, b := range []ref.Budget{{K: 140}, {Ratio: 0.0156}} {
			stepHATA(t, rng, fmt.Sprintf("%s N 5003 budget %v", where, b), short, s.Hq, b, want, m)
		}
		planned, scored := 0, 0
		for k := range m.sets {
			if sp := k.k.spec; sp.Shader == "hata_score" || sp.Shader == "hata_score_k8" {
				scored++
				if len(sp.Spec) > 8 && sp.Spec[8] == 1 {
					planned++
				}
			}
		}
		if scored == 0 || (planned > 0) != c.plan || c.plan && planned != scored {
			t.Errorf("%s: %d of %d score kernels planned, want the plan %v", where, planned, scored, c.plan)
		}
		m.Close()
	}
}

// TestHATAZeroScores holds HATA to ref where the threshold is the score 0:
// every third token's key is the query (the same in the G heads of its
// group), so its code is theirs and S = 0, and a budget below a third of
// the tokens takes only zero scores (T = 0, the lowest bin, in every
// select's search and counts), ties to the smaller index; a budget past it
// (T > 0) for contrast, and one of all but 50 tokens, whose threshold is
// among the scores of the keys that are the query negated (the next token
// after each of the others: S near G*rbit, one-byte keys run again). Over the fused chain with the select's plan and
// one-byte or uint16 keys (select_groups), without the plan
// (select_write_cum), the onekernel variant and the naive chain, with and
// without windows.
func TestHATAZeroScores(t *testing.T) {
	ctx := device(t)
	rng, s, w, kv := chunkedHATAInputs(12)
	q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
	g := s.Hq / s.Hkv
	for r := range s.B * s.Hkv { // the G heads of row r: its first head's query
		head := q[r*g*s.D : (r*g+1)*s.D]
		for h := 1; h < g; h++ {
			copy(q[(r*g+h)*s.D:(r*g+h+1)*s.D], head)
		}
		for tok := 0; tok < s.N; tok += 3 {
			copy(kv.K[r][tok*s.D:(tok+1)*s.D], head)
			if tok+1 < s.N { // the next key the query negated: S near its top, G*rbit
				for d, v := range head {
					kv.K[r][(tok+1)*s.D+d] = -v
				}
			}
		}
	}
	wq := w.EncodeQueries(q, s.B, s.Hq)
	for r, row := range ref.HammingScores(wq, w.EncodeKeys(kv), s.B, s.Hq, s.Hkv, s.N, w.Words()) {
		zeros := 0
		for _, v := range row {
			if v == 0 {
				zeros++
			}
		}
		if zeros < (s.N+2)/3 {
			t.Fatalf("row %d: %d zero scores, want at least %d (every third token's key is the query)", r, zeros, (s.N+2)/3)
		}
	}
	for _, c := range []struct {
		o   SparseOptions
		win ref.Windows
	}{
		{SparseOptions{Storage: F16, ScoreChunk: 4096}, ref.Windows{}},
		{SparseOptions{Storage: F16, ScoreChunk: 4096}, ref.Windows{Sink: 3, Recent: 70}},
		{SparseOptions{Storage: F16, ScoreChunk: 4096, KeyBytes: 2}, ref.Windows{Sink: 1}},
		{SparseOptions{Storage: F16, ScoreChunk: 2048}, ref.Windows{Recent: 5}},
		{SparseOptions{Storage: F16, Variant: VariantOneKernel}, ref.Windows{}},
		{SparseOptions{Storage: F16, Variant: VariantNaive}, ref.Windows{Sink: 2}},
	} {
		m, want := prefilledHATAs(t, ctx, w, c.win, c.o, kv)
		for _, b := range []ref.Budget{{K: 1}, {K: 100}, {K: 2000}, {K: 4000}, {K: s.N - 50}} {
			decodeStep(t, fmt.Sprintf("zero scores %s chunk %d keybytes %d windows %+v budget %v", c.o.Variant, c.o.ScoreChunk, c.o.KeyBytes, c.win, b), "hata", q, kv, b, want, m, true)
		}
		if k8 := c.o.Variant == "" && c.o.ScoreChunk == 4096 && c.o.KeyBytes == 0; k8 && m.KeyFallbacks() != 1 || !k8 && m.KeyFallbacks() != 0 {
			t.Errorf("zero scores %+v: %d steps run again with uint16 keys, want 1 with one-byte keys (the last budget's), else 0", c.o, m.KeyFallbacks())
		}
		m.Close()
	}
}

// TestHATAOneByteKeys holds HATA with one-byte keys (SparseOptions.KeyBytes
// = 1: hata_score_k8's min(S, 255), four a word, and select_groups_k8) to
// ref over chunks of 4096 tokens and of 2056 (neither a whole number of the
// score kernel's rounds of four tokens a lane), a last chunk cut short and
// windows: exact with them where every row's threshold stays below 255 (no
// step run again), and where it reaches 255 (every token, or most) exact
// because the step is run again with uint16 keys (KeyFallbacks counts it).
// The threekernel variant (its score kernel encodes) takes them too; chunks
// of 2048 tokens (select_write_cum) and the twokernel variant keep uint16
// keys; traced (where the device has the clock) the _trace entry points
// run; by default (KeyBytes 0) a cache keeps uint16 keys from its first
// step run again until its next prefill, and KeyBytes 2 never takes one-byte
// keys; a KeyBytes of 3 is an error.
func TestHATAOneByteKeys(t *testing.T) {
	ctx := device(t)
	rng, s, w, kv := chunkedHATAInputs(11)
	for _, c := range []struct {
		variant string
		chunk   int
		win     ref.Windows
		k8      bool // the one-byte kernels run
	}{
		{VariantFused, 4096, ref.Windows{}, true},
		{VariantFused, 2056, ref.Windows{Sink: 3, Recent: 70}, true},
		{VariantThreeKernel, 4096, ref.Windows{Sink: 1}, true},
		{VariantFused, 2048, ref.Windows{}, false},
		{VariantTwoKernel, 4096, ref.Windows{}, false},
	} {
		m, want := prefilledHATAs(t, ctx, w, c.win, SparseOptions{Storage: F16, Variant: c.variant, ScoreChunk: c.chunk, KeyBytes: 1}, kv)
		where := fmt.Sprintf("one-byte keys %s chunk %d windows %+v", c.variant, c.chunk, c.win)
		for _, b := range []ref.Budget{{K: 1}, {K: 20}, {Ratio: 0.0156}} {
			stepHATA(t, rng, fmt.Sprintf("%s budget %v", where, b), kv, s.Hq, b, want, m)
			if n := m.KeyFallbacks(); n != 0 {
				t.Errorf("%s budget %v: %d steps run again, want none (thresholds far below 255)", where, b, n)
			}
		}
		for i, b := range []ref.Budget{{Ratio: 0.9}, ref.Full} {
			stepHATA(t, rng, fmt.Sprintf("%s budget %v", where, b), kv, s.Hq, b, want, m)
			if n, wantN := m.KeyFallbacks(), i+1; c.k8 && n != wantN {
				t.Errorf("%s budget %v: %d steps run again, want %d (a threshold at 255 or more)", where, b, n, wantN)
			}
		}
		ran := builtShaders(m.sparseCore)
		if ran["hata_score_k8"] != c.k8 || ran["select_groups_k8"] != c.k8 {
			t.Errorf("%s: kernels %v, want the one-byte ones %v", where, ran, c.k8)
		}
		if !c.k8 && m.KeyFallbacks() != 0 {
			t.Errorf("%s: %d steps run again without one-byte keys", where, m.KeyFallbacks())
		}
		m.Close()
	}
	// The default (KeyBytes 0): one-byte keys until a step is run again,
	// uint16 keys for every later step of the cache, one-byte keys again
	// after the next prefill; KeyBytes 2: uint16 keys on every step.
	for _, kb := range []int{0, 2} {
		m, want := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16, ScoreChunk: 4096, KeyBytes: kb}, kv)
		for i, c := range []struct {
			b       ref.Budget
			k8      bool // the step ran (last) with one-byte keys
			prefill bool // the cache is prefilled again first
		}{
			{ref.Budget{K: 20}, kb == 0, false},
			{ref.Full, false, false}, // run again (KeyBytes 0)
			{ref.Budget{K: 20}, false, false},
			{ref.Full, false, false},
			{ref.Budget{K: 20}, kb == 0, true},
		} {
			where := fmt.Sprintf("KeyBytes %d step %d budget %v", kb, i, c.b)
			if c.prefill {
				if err := m.Prefill(kv); err != nil {
					t.Fatal(err)
				}
			}
			stepHATA(t, rng, where, kv, s.Hq, c.b, want, m)
			if got := m.lastKeyThr.Buf != nil; got != c.k8 {
				t.Errorf("%s: one-byte keys %v, want %v", where, got, c.k8)
			}
			wantN := 0
			if kb == 0 {
				wantN = min(i, 1)
			}
			if n := m.KeyFallbacks(); n != wantN {
				t.Errorf("%s: %d steps run again, want %d", where, n, wantN)
			}
		}
		m.Close()
	}
	if ctx.Info.ShaderClock { // the traced entry points, where the device has the clock
		m, want := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16, ScoreChunk: 4096, KeyBytes: 1, Trace: true}, kv)
		stepHATA(t, rng, "one-byte keys traced", kv, s.Hq, ref.Budget{K: 20}, want, m)
		ran := builtShaders(m.sparseCore)
		if !ran["hata_score_k8_trace"] || !ran["select_groups_k8_trace"] {
			t.Errorf("one-byte keys traced: kernels %v, want hata_score_k8_trace and select_groups_k8_trace", ran)
		}
		m.Close()
	}
	if _, err := ctx.SparseFactory(SparseOptions{KeyBytes: 3})("hata", 2, 64, ref.Options{W: w}); err == nil || !strings.Contains(err.Error(), "key bytes 3") {
		t.Errorf("KeyBytes 3: %v, want an error naming it", err)
	}
}

// TestHATAZeroProjections holds every chain's query encode to ref where
// projections are exactly 0, which must give bit 0 (HATA.md: strictly
// positive): one query head is the zero vector (every bit 0), another the
// unit vector e_0, whose projection on column j is W[0][j], zero for the
// dyadic grid's zero entries, and one key is the zero vector. The encode
// runs in hata_encode_q (fused, naive), inside the score kernel (twokernel,
// threekernel) and inside hata_step (onekernel); its codes (ref.Coder) and
// the selection must equal ref's.
func TestHATAZeroProjections(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(8, 41))
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 300, D: 64}
	w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
	zeros := 0
	for j := range w.Rbit {
		if w.W[j] == 0 { // W[head 0][0][j]: e_0's projection on column j
			zeros++
		}
	}
	if zeros == 0 {
		t.Fatal("no zero in W[0][0][:]: e_0 projects to no exact 0 and the test cannot fail")
	}
	kv := reftest.DyadicKV(rng, s, true)
	clear(kv.K[0][5*s.D : 6*s.D]) // token 5 of row 0: the zero key
	q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
	clear(q[0:s.D]) // head 0: the zero vector
	clear(q[s.D : 2*s.D])
	q[s.D] = 1 // head 1: e_0
	wantQ := w.EncodeQueries(q, s.B, s.Hq)
	wantK := slices.Concat(w.EncodeKeys(kv)...) // [B*Hkv][N][words], flat as Codes gives them
	for _, v := range []string{VariantFused, VariantNaive, VariantTwoKernel, VariantThreeKernel, VariantOneKernel} {
		m, want := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16, Variant: v}, kv)
		decodeStep(t, "zero projections "+v, "hata", q, kv, ref.Budget{K: 20}, want, m, true)
		gotQ, gotK, err := m.Codes()
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(wantQ, gotQ); d != "" {
			t.Errorf("%s: query codes differ from ref (-ref +got):\n%s", v, d)
		}
		if d := cmp.Diff(wantK, gotK); d != "" {
			t.Errorf("%s: key codes differ from ref (-ref +got):\n%s", v, d)
		}
		m.Close()
	}
}

// TestHATAPlanSmallScoreWorkgroup holds the fused chain with the select's
// plan on (SparseOptions.SelectPlan = PlanOn) and a score workgroup of 32
// lanes to ref: at G=7 and rbit 128 the histogram has 897 bins, more than
// the plan's search in hata_score (16 bins a lane, 512) holds, so the plan
// must give way to the select's own search. Before, the selection came back
// out of order (TestFuzzDiff seed 30060).
func TestHATAPlanSmallScoreWorkgroup(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(30060, 7))
	s := ref.Shape{B: 1, Hq: 7, Hkv: 1, N: 257, D: 16}
	w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
	want := ref.NewHATA(w, ref.Windows{}, false)
	got, err := ctx.NewHATA("hata", w, ref.Windows{}, false, SparseOptions{Storage: F16, ScoreWorkgroup: 32, SelectPlan: PlanOn})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	kv := reftest.DyadicKV(rng, s, true)
	for _, m := range []ref.Method{want, got} {
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []int{1, 2, 30} {
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		decodeStep(t, fmt.Sprintf("k=%d", k), "hata", q, kv, ref.Budget{K: k}, want, got, true)
	}
}
