package vk

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestWarmSameResults holds HATA's steps with the warm workgroups beside
// the score (SparseOptions.Warm = WarmOn) and beside the select's write
// (WarmLate) to the same steps without them, bit for bit, and to ref: with
// the select's plan and one-byte keys (select_groups_k8), without the plan
// (select_write_cum searching a zero histogram, which takes every token of
// its chunk), with it over select_write_cum, in the threekernel variant,
// with the merge apart (the split and the merge warmed) and folded (the
// split, on a counter of its own; with two splits it folds every other
// step), the cache in one buffer and in two, with windows whose tokens the
// warm select writes, over three steps at each of three budgets (the later
// steps reuse the warm buffers; the budgets take the default splits from 2
// to 1 and back, so that the folded warm split's counter, 1 after three
// steps, must start again at 0). Each case also checks how many warm
// dispatches the step recorded, so that a case that warms nothing fails,
// and after each folded step the warm split's counter. Run with
// HATA_VK_VALIDATE=1 it also shows that the warm dispatches share no
// buffer range with the score's level or the select's write that either
// writes.
func TestWarmSameResults(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(61, 3))
	sh := ref.Shape{B: 2, Hq: 8, Hkv: 2, N: 5000, D: 64}
	w := reftest.DyadicHashWeights(rng, sh.Hkv, sh.D, 128)
	kv := reftest.DyadicKV(rng, sh, true)
	win := ref.Windows{Sink: 4, Recent: 8}
	qs := [][]float32{reftest.Dyadic(rng, sh.B*sh.Hq*sh.D), reftest.Dyadic(rng, sh.B*sh.Hq*sh.D), reftest.Dyadic(rng, sh.B*sh.Hq*sh.D)}
	for _, c := range []struct {
		variant string
		chunk   int
		plan    PlanMode
		merge   MergeMode
		warmed  int // warm dispatches a step records beside the score (WarmOn)
		late    int // and beside the select (WarmLate)
		bufs    int // the cache in this many buffers (0: one)
		splits  int // the attention's splits (0: the policy's); 2 with the merge folded has the warm split fold every other step
	}{
		{VariantFused, 4096, PlanAuto, MergeSeparate, 3, 2, 0, 0},
		{VariantFused, 4096, PlanAuto, MergeSeparate, 3, 2, 2, 0},
		{VariantFused, 4096, PlanAuto, MergeFold, 2, 1, 0, 0},
		{VariantFused, 4096, PlanAuto, MergeFold, 2, 1, 0, 2},
		{VariantFused, 1024, PlanAuto, MergeSeparate, 3, 2, 0, 0},
		{VariantFused, 1024, PlanOn, MergeSeparate, 3, 2, 0, 0},
		{VariantThreeKernel, 4096, PlanAuto, MergeSeparate, 3, 2, 0, 0},
		{VariantNaive, 1024, PlanAuto, MergeAuto, 0, 0, 0, 0},
	} {
		modes := []WarmMode{WarmOff, WarmOn, WarmLate}
		var ms [3]*HATA
		for i, mode := range modes {
			o := SparseOptions{Storage: F16, Variant: c.variant, ScoreChunk: c.chunk, SelectPlan: c.plan, Merge: c.merge, Warm: mode, Reserve: 3, Split: SplitPolicy{Splits: c.splits}}
			m, err := ctx.NewHATA("hata", w, win, false, o)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if c.bufs > 0 { // the warm split reads the first buffer's rows
				m.maxBuf = uint64(sh.B*sh.Hkv/c.bufs) * uint64(roundUp(sh.N+3, 64)*sh.D*F16.bytes())
			}
			if err := m.Prefill(kv); err != nil {
				t.Fatal(err)
			}
			if got := len(m.kv.k); got != max(c.bufs, 1) {
				t.Fatalf("the cache in %d buffers, want %d", got, max(c.bufs, 1))
			}
			ms[i] = m
		}
		want := ref.NewHATA(w, win, false)
		if err := want.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		var folds, splits [2]int // WarmOn's and WarmLate's steps at the same splits so far, and those splits
		for _, b := range []ref.Budget{{K: 300}, {K: 40}, {K: 300}} {
			for step, q := range qs {
				where := fmt.Sprintf("%s chunk %d plan %d merge %d splits %d cache buffers %d budget %v step %d", c.variant, c.chunk, c.plan, c.merge, c.splits, max(c.bufs, 1), b, step)
				off, err := ms[0].Decode(q, b)
				if err != nil {
					t.Fatalf("%s, warm off: %v", where, err)
				}
				if ms[0].lastWarm != 0 {
					t.Errorf("%s, warm off: %d warm dispatches, want 0", where, ms[0].lastWarm)
				}
				rw, err := want.Decode(q, b)
				if err != nil {
					t.Fatal(err)
				}
				for i, n := range []int{c.warmed, c.late} {
					m, at := ms[i+1], fmt.Sprintf("%s, Warm %d", where, modes[i+1])
					on, err := m.Decode(q, b)
					if err != nil {
						t.Fatalf("%s: %v", at, err)
					}
					if m.lastWarm != n {
						t.Errorf("%s: %d warm dispatches, want %d", at, m.lastWarm, n)
					}
					if c.merge == MergeFold && n > 0 {
						if s := m.lastAttend.splits; s != splits[i] {
							folds[i], splits[i] = 0, s // laid out anew: the counter zeroed
						}
						folds[i]++
						checkWarmCounter(t, at, m, folds[i])
					}
					checkSameResult(t, at, off, on)
					checkStep(t, at, "hata", q, kv, b, want, m, rw, on, true)
				}
			}
		}
	}
}

// TestWarmRule checks WarmAuto's rule at its threshold of codes (below it
// beside the select from warmLateTokens tokens a row, nowhere else), and
// at the score grid's last wave (full, with room for fewer warm workgroups
// than the step has, and for all of them, over one wave and two, and where
// the wave is not known); that the modes reach the step (two rows under the
// threshold warm the split and the merge beside the select under WarmLate,
// all three beside the score under WarmOn, and nothing under WarmAuto but
// where a row holds warmLateTokens, two rows or ten; two rows
// over it warm beside the score under WarmAuto where the device's wave
// leaves room: with chunks of 4096, 258 workgroups, so on most CPU
// counts); and that a mode out of range is an error naming it.
func TestWarmRule(t *testing.T) {
	for _, c := range []struct {
		codes, chunk, groups, wave, warms, rows int
		want                                    warmPlace
	}{
		{warmMinCodes - 1, 1024, 256, 528, 3, 8, warmAtSelect},
		{8 * 8192, 1024, 64, 528, 3, 8, warmNowhere},    // H200, B1/8K (run 380)
		{8 * 16384, 1024, 128, 528, 3, 8, warmAtSelect}, // B1/16K
		{8 * (warmLateTokens - 1), 1024, 128, 528, 3, 8, warmNowhere},
		{9 * (warmLateTokens - 1), 1024, 256, 528, 3, 9, warmNowhere},
		{warmMinCodes - 1, 1024, 256, 528, 3, 9, warmAtSelect},
		{warmMinCodes / 2, 1024, 512, 528, 3, 64, warmNowhere}, // H200, B8/8K
		{16 * 8192, 1024, 128, 528, 3, 16, warmNowhere},        // B2/8K
		{16 * 16384, 1024, 256, 528, 3, 16, warmAtSelect},      // B2/16K
		{32 * 16384, 1024, 512, 528, 3, 32, warmAtSelect},      // B4/16K
		{32 * 16383, 1024, 512, 528, 3, 32, warmNowhere},
		{32 * 24576, 4096, 192, 528, 3, 32, warmAtScore}, // B4/24K: the plan's chunks (run 390)
		{8 * 81920, 4096, 160, 528, 3, 8, warmAtScore},   // B1/80K
		{64 * 12288, 4096, 192, 528, 3, 64, warmAtScore}, // B8/12K
		{32 * 24576, warmLongChunk - 8, 192, 528, 3, 32, warmAtSelect},
		{32 * 24576, 4096, 527, 528, 3, 32, warmNowhere}, // long chunks, the wave full
		{8 * 3000, 4096, 8, 528, 3, 8, warmNowhere},      // rows shorter than a chunk
		{warmMinCodes, 2048, 256, 528, 3, 8, warmAtScore},
		{8 * 262144, 3976, 528, 528, 3, 8, warmNowhere}, // H200, B1/256K: the wave full
		{8 * 262144, 3976, 526, 528, 3, 8, warmNowhere},
		{8 * 262144, 3976, 525, 528, 3, 8, warmAtScore},
		{8 * 262144, 3976, 527, 528, 1, 8, warmAtScore},
		{64 * 262144, 16384, 1024, 528, 3, 64, warmAtScore}, // two waves, room in the second
		{64 * 262144, 16384, 1056, 528, 1, 64, warmNowhere},
		{warmMinCodes, 2048, 528, 0, 3, 8, warmAtScore},
	} {
		if got := warmRule(c.codes, c.chunk, c.groups, c.wave, c.warms, c.rows); got != c.want {
			t.Errorf("warmRule(%d codes, chunks of %d, %d workgroups, wave %d, %d warm, %d rows) = %v, want %v", c.codes, c.chunk, c.groups, c.wave, c.warms, c.rows, got, c.want)
		}
	}
	ctx := device(t)
	rng := rand.New(rand.NewPCG(62, 3))
	for _, c := range []struct {
		b, n    int
		mode    WarmMode
		want    int
		variant string // "": the fused chain
		chunk   int    // the score's chunks; 0: 2048
	}{
		{1, 3000, WarmAuto, 0, "", 0}, {1, 3000, WarmOn, 3, "", 0}, {1, 3000, WarmLate, 2, "", 0}, {1, 3000, WarmOff, 0, "", 0}, {5, 3000, WarmAuto, 0, "", 0},
		{1, 3000, WarmAuto, 0, "", 4096},               // a row shorter than a chunk
		{1, warmLateTokens + 8, WarmAuto, 2, "", 0},    // two rows, a row long enough
		{5, warmLateTokens + 8, WarmAuto, 2, "", 0},    // ten rows, a row long enough
		{1, warmLateTokens + 8, WarmAuto, 3, "", 4096}, // chunks long enough
		{1, warmMinCodes/2 + 8, WarmAuto, 3, "", 0}, {1, warmMinCodes/2 + 8, WarmOff, 0, "", 0},
		{1, 3000, WarmOn, 0, VariantOneKernel, 0}, // one dispatch: no level to warm beside, nor buffers for it
	} {
		sh := ref.Shape{B: c.b, Hq: 4, Hkv: 2, N: c.n, D: 32}
		w := reftest.DyadicHashWeights(rng, sh.Hkv, sh.D, 32)
		chunk := c.chunk
		if chunk == 0 {
			chunk = 2048
		}
		m, err := ctx.NewHATA("hata", w, ref.Windows{}, false, SparseOptions{Storage: F16, Variant: c.variant, Merge: MergeSeparate, Warm: c.mode, ScoreChunk: chunk, Reserve: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.PrefillRandom(sh.B, sh.Hkv, sh.N, sh.D, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Step(reftest.Dyadic(rng, sh.B*sh.Hq*sh.D), ref.Budget{K: 64}); err != nil {
			t.Fatal(err)
		}
		rows := sh.B * sh.Hkv
		if c.mode == WarmAuto && c.want == 3 { // beside the score where this device's wave leaves room (lavapipe: 4 a CPU)
			groups := rows * ((c.n + chunk - 1) / chunk)
			if warmRule(rows*c.n, chunk, groups, hataScorePerCU*ctx.Info.ComputeUnits, c.want, rows) != warmAtScore {
				c.want = 0
			}
		}
		if m.lastWarm != c.want {
			t.Errorf("N=%d, %d rows, Warm %d %s: %d warm dispatches, want %d", c.n, rows, c.mode, c.variant, m.lastWarm, c.want)
		}
		if _, ok := m.scratch["warm inputs"]; ok != (c.want > 0) {
			t.Errorf("N=%d, %d rows, Warm %d %s: warm buffers allocated %v, want %v", c.n, rows, c.mode, c.variant, ok, c.want > 0)
		}
		m.Close()
	}
	if _, err := ctx.SparseFactory(SparseOptions{Warm: 4})("hata", 2, 64, ref.Options{W: reftest.DyadicHashWeights(rng, 2, 64, 32)}); err == nil || !strings.Contains(err.Error(), "Warm 4") {
		t.Errorf("Warm 4: %v, want an error naming it", err)
	}
}

// TestWarmChunk checks that HATA's score chunk grows where its grid would
// fill its one wave within warmSlots of the end, so that the warm
// workgroups find room (warmChunk), and that grids with room, over one
// wave, or of an unknown wave keep their chunks; and that hataScoreChunk
// applies it on the H200's 132 compute units at B1/256K (528 workgroups of
// 3976 tokens, 520 of 4040) under WarmAuto and WarmOn, traced or not, not
// under WarmOff or with fewer than warmMinCodes codes, and leaves B8/32K's.
func TestWarmChunk(t *testing.T) {
	for _, c := range []struct{ n, rows, chunk, wave, want int }{
		{262144, 8, 3976, 528, 4040},  // 528 -> 520 workgroups
		{262144, 8, 4096, 528, 4096},  // 512: room
		{1 << 20, 8, 8000, 528, 8000}, // 1056: over one wave
		{10000, 2, 200, 104, 200},     // 100 of 104: room for 4
		{10000, 2, 196, 104, 200},     // 104 -> 100
		{10000, 2, 196, 0, 196},       // no wave known
		{10000, 1, 1001, 13, 1001},    // 10 of 13: room for exactly 3
	} {
		if got := warmChunk(c.n, c.rows, c.chunk, c.wave); got != c.want {
			t.Errorf("warmChunk(N=%d, %d rows, chunk %d, wave %d) = %d, want %d", c.n, c.rows, c.chunk, c.wave, got, c.want)
		}
	}
	for _, c := range []struct {
		mode       WarmMode
		trace      bool
		b, n, want int
	}{
		{WarmAuto, false, 1, 262144, 4040},
		{WarmOn, false, 1, 262144, 4040},
		{WarmOff, false, 1, 262144, 3976},
		{WarmAuto, true, 1, 262144, 4040}, // a traced step warms too
		{WarmOff, true, 1, 262144, 3976},
		{WarmAuto, false, 8, 32768, 4096},
		{WarmAuto, false, 1, 65536, 1024}, // 0.5M codes: 512 workgroups of 1024 tokens
	} {
		core := &sparseCore{ctx: &Context{Info: DeviceInfo{ComputeUnits: 132, Limits: Limits{MaxComputeWorkGroupCount: [3]uint32{65535, 65535, 65535}}}}}
		core.opt.Variant, core.opt.Warm, core.opt.Trace = VariantFused, c.mode, c.trace
		if got := core.hataScoreChunk(c.n, c.b*8, true); got != c.want {
			t.Errorf("B%d N=%d, Warm %d, trace %v: score chunk %d, want %d", c.b, c.n, c.mode, c.trace, got, c.want)
		}
	}
}

// TestWarmLargeSameResults holds HATA's steps at shapes where WarmAuto's
// rule warms on a GPU like the H200 (beside the score from a million codes:
// B1/256K, whose score chunks warmChunk lengthens, and B8/32K; beside the
// select below it: B1/32K; the merge apart at all three) to the same steps
// with the warm workgroups off, bit for bit, with
// valid selections, and the warm dispatches the step recorded checked
// against warmRule on this device's wave. Only with HATA_VK_LARGE=1 on a GPU
// (caches of 0.5-1 GB).
func TestWarmLargeSameResults(t *testing.T) {
	ctx := device(t)
	if ctx.Info.Type == DeviceCPU || os.Getenv(envLarge) != "1" {
		t.Skipf("needs a GPU and %s=1", envLarge)
	}
	rng := rand.New(rand.NewPCG(63, 3))
	const hq, hkv, d = 32, 8, 128
	w := reftest.DyadicHashWeights(rng, hkv, d, 128)
	for _, sh := range []struct{ b, n int }{{1, 262144}, {8, 32768}, {1, 32768}} {
		q := reftest.Dyadic(rng, sh.b*hq*d)
		b := ref.Budget{K: sh.n / 64}
		var res [2]*ref.Result
		for i, mode := range []WarmMode{WarmOff, WarmAuto} {
			m, err := ctx.NewHATA("hata", w, ref.Windows{}, false, SparseOptions{Storage: F16, Warm: mode, Reserve: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.PrefillRandom(sh.b, hkv, sh.n, d, 7); err != nil {
				t.Fatal(err)
			}
			if res[i], err = m.Decode(q, b); err != nil {
				t.Fatalf("B%d N=%d Warm %d: %v", sh.b, sh.n, mode, err)
			}
			if err := ref.CheckSelection(res[i].Selected, sh.b*hkv, sh.n, b.K); err != nil {
				t.Errorf("B%d N=%d Warm %d: %v", sh.b, sh.n, mode, err)
			}
			if mode == WarmAuto { // the rule on this device's wave (the H200: 3 at both shapes)
				rows := sh.b * hkv
				ch := m.hataScoreChunk(sh.n, rows, m.lastKeyThr.Buf != nil)
				warms := 2 // the select's (select_groups with the plan at all three shapes) and the split's, beside the score
				if a := m.lastAttend; a != nil && a.merge != nil {
					warms++
				}
				want := 0
				switch warmRule(rows*sh.n, ch, rows*((sh.n+ch-1)/ch), hataScorePerCU*ctx.Info.ComputeUnits, warms, rows) {
				case warmAtScore:
					want = warms
				case warmAtSelect:
					want = warms - 1
				}
				if m.lastWarm != want {
					t.Errorf("B%d N=%d: %d warm dispatches, want %d (score chunk %d)", sh.b, sh.n, m.lastWarm, want, ch)
				}
				t.Logf("B%d N=%d: %d warm dispatches, score chunk %d", sh.b, sh.n, m.lastWarm, ch)
			}
			m.Close()
		}
		checkSameResult(t, fmt.Sprintf("B%d N=%d", sh.b, sh.n), res[0], res[1])
	}
}

// checkWarmCounter checks the folded warm split's counter after m's step:
// the steps laid out alike so far (steps), modulo the attention's splits,
// since each S-th one is its row's last, folds and resets it (split_fold),
// and with one split nothing counts.
func checkWarmCounter(t *testing.T, where string, m *HATA, steps int) {
	t.Helper()
	var w [4]byte
	if err := m.ctx.Read(m.warmCnt.Buf, m.warmCnt.Off, w[:]); err != nil {
		t.Fatalf("%s: reading the warm counter: %v", where, err)
	}
	want := 0
	if s := m.lastAttend.splits; s > 1 {
		want = steps % s
	}
	if got := int(binary.LittleEndian.Uint32(w[:])); got != want {
		t.Errorf("%s: the warm split's counter is %d after %d steps of %d splits, want %d", where, got, steps, m.lastAttend.splits, want)
	}
}

// TestWarmTraces runs traced steps (SparseOptions.Trace) with the warm
// workgroups beside the score (WarmOn) and beside the select (WarmLate),
// with the plan and without, the merge apart and folded: the results are
// those of an untraced step without them, bit for bit; WarmTraces reports
// one workgroup of each warm kernel that is traced (the select's write and
// the split; the merge is not), with its readings in order, and each
// started before the step's own kernel of that name (it ran in an earlier
// level); and a step without warm workgroups reports none, an untraced
// method an error.
func TestWarmTraces(t *testing.T) {
	ctx := clockDevice(t)
	rng := rand.New(rand.NewPCG(63, 3))
	sh := ref.Shape{B: 2, Hq: 8, Hkv: 2, N: 5000, D: 64}
	w := reftest.DyadicHashWeights(rng, sh.Hkv, sh.D, 128)
	kv := reftest.DyadicKV(rng, sh, true)
	q := reftest.Dyadic(rng, sh.B*sh.Hq*sh.D)
	b := ref.Budget{K: 300}
	step := func(o SparseOptions) (*HATA, *ref.Result) {
		t.Helper()
		o.Storage, o.Reserve = F16, 3
		m, err := ctx.NewHATA("hata", w, ref.Windows{Sink: 4, Recent: 8}, false, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		r, err := m.Decode(q, b)
		if err != nil {
			t.Fatal(err)
		}
		return m, r
	}
	for _, c := range []struct {
		chunk int
		plan  PlanMode
		merge MergeMode
		mode  WarmMode
		want  []string // the warm traces, in order
	}{
		{4096, PlanAuto, MergeSeparate, WarmOn, []string{"warm select", "warm sparse_split"}},
		{4096, PlanAuto, MergeSeparate, WarmLate, []string{"warm sparse_split"}},
		{1024, PlanOn, MergeSeparate, WarmOn, []string{"warm select", "warm sparse_split"}},
		{4096, PlanAuto, MergeFold, WarmOn, []string{"warm select", "warm sparse_split"}},
		{4096, PlanAuto, MergeSeparate, WarmOff, nil},
	} {
		at := fmt.Sprintf("chunk %d plan %d merge %d Warm %d", c.chunk, c.plan, c.merge, c.mode)
		o := SparseOptions{ScoreChunk: c.chunk, SelectPlan: c.plan, Merge: c.merge}
		_, off := step(o)
		o.Trace, o.Warm = true, c.mode
		m, on := step(o)
		checkSameResult(t, at, off, on)
		ws, err := m.WarmTraces()
		if err != nil {
			t.Fatalf("%s: %v", at, err)
		}
		var got []string
		for _, wt := range ws {
			got = append(got, wt.Kernel)
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s: warm traces (-want +got):\n%s", at, d)
			continue
		}
		sel, err := m.SelectTrace()
		if err != nil {
			t.Fatalf("%s: %v", at, err)
		}
		att, err := m.AttentionTrace()
		if err != nil {
			t.Fatalf("%s: %v", at, err)
		}
		for _, wt := range ws {
			if _, err := wt.Summary(); err != nil || len(wt.Points) != 1 {
				t.Errorf("%s: %s: %d workgroups (%v), want 1 with its readings in order", at, wt.Kernel, len(wt.Points), err)
				continue
			}
			own := sel
			if wt.Kernel == "warm sparse_split" {
				own = att
			}
			for i, p := range own.Points {
				if d := int32(p[0] - wt.Points[0][0]); d <= 0 {
					t.Errorf("%s: %s started %d ticks after %s's workgroup %d, want before it", at, wt.Kernel, -d, own.Kernel, i)
					break
				}
			}
		}
	}
	m, _ := step(SparseOptions{})
	if _, err := m.WarmTraces(); err == nil || !strings.Contains(err.Error(), "Trace") {
		t.Errorf("an untraced method's WarmTraces: %v, want an error naming Trace", err)
	}
}
