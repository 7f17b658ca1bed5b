package vk

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestQuestBoundsScores checks Quest's device state and scores directly: the
// page bounds on the device (in the cache's type) equal the min and max of
// every page's keys, bit for bit, after a prefill whose bounds buffers were
// poisoned first and after appends that fill a page and open the next; and
// every page's score (read back per token) is within rounding of ref's. Keys
// and queries are continuous random values (rounded to fp16 for an fp16
// cache), not the acceptance suite's dyadic grid, on which a page's min and
// max are nearly always -2 and 2. The shapes have N not a multiple of the
// page, pages not a multiple of quest_bounds's pages per workgroup nor of
// quest_score's pages per step, and (ScoreChunk) several quest_score
// workgroups per row, the last one partial; and quest_score at 64 and 256
// lanes (ScoreWorkgroup) besides its default 128.
func TestQuestBoundsScores(t *testing.T) {
	ctx := device(t)
	for _, st := range []Storage{F32, F16} {
		for i, c := range []struct {
			s          ref.Shape
			page       int
			scoreChunk int // tokens per quest_score workgroup; 0: the default
			wg         int // quest_score's workgroup (ScoreWorkgroup); 0: the default
		}{
			{ref.Shape{B: 1, Hq: 4, Hkv: 1, N: 991, D: 128}, 3, 3 * 128, 0}, // 331 pages, 3 chunks of 128
			{ref.Shape{B: 2, Hq: 6, Hkv: 2, N: 16*37 + 5, D: 64}, 16, 16 * 9, 0},
			{ref.Shape{B: 1, Hq: 2, Hkv: 2, N: 450, D: 64}, 7, 0, 0},
			{ref.Shape{B: 2, Hq: 2, Hkv: 2, N: 1, D: 128}, 32, 0, 0},
			{ref.Shape{B: 1, Hq: 4, Hkv: 1, N: 991, D: 128}, 3, 3 * 128, 256},
			{ref.Shape{B: 2, Hq: 6, Hkv: 2, N: 16*37 + 5, D: 64}, 16, 0, 64},
		} {
			s := c.s
			where := fmt.Sprintf("%s %v page %d scorechunk %d workgroup %d", st, s, c.page, c.scoreChunk, c.wg)
			rng := rand.New(rand.NewPCG(uint64(i), uint64(st)+40))
			random := func(n int) []float32 {
				x := make([]float32, n)
				for i := range x {
					x[i] = 4*rng.Float32() - 2
				}
				if st == F16 {
					reftest.RoundHalf(x)
				}
				return x
			}
			kv, err := ref.NewKV(s.B, s.Hkv, s.N, s.D, random(s.B*s.Hkv*s.N*s.D), random(s.B*s.Hkv*s.N*s.D))
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.NewQuest(c.page)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ctx.NewQuest(s.D, c.page, SparseOptions{Storage: st, ScoreChunk: c.scoreChunk, ScoreWorkgroup: c.wg})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []ref.Method{want, got} {
				if err := m.Prefill(kv); err != nil {
					t.Fatalf("%s: Prefill: %v", where, err)
				}
			}
			poisonBounds(t, got)
			if err := got.buildAll(); err != nil {
				t.Fatalf("%s: rebuilding the bounds: %v", where, err)
			}
			cache := kv.Clone()
			for step := 0; ; step++ {
				at := fmt.Sprintf("%s after %d appends (N=%d)", where, step, cache.N)
				checkQuestBounds(t, at, got, cache)
				q := random(s.B * s.Hq * s.D)
				b := ref.Budget{K: min(cache.N, 2*c.page+1)}
				decodeStep(t, at, "quest", q, cache, b, want, got, false)
				if step == c.page+1 {
					break
				}
				k, v := random(s.B*s.Hkv*s.D), random(s.B*s.Hkv*s.D)
				for _, a := range []interface{ Append(k, v []float32) error }{want, got, cache} {
					if err := a.Append(k, v); err != nil {
						t.Fatalf("%s: Append: %v", at, err)
					}
				}
			}
			got.Close()
		}
	}
}

// poisonBounds fills m's page bounds with NaN.
func poisonBounds(t *testing.T, m *Quest) {
	t.Helper()
	b, err := m.getBatch()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Begin(); err != nil {
		t.Fatal(err)
	}
	nan := uint32(NaNBits)
	if m.opt.Storage == F16 {
		nan = 0x7e007e00 // two fp16 NaNs
	}
	lo, hi := m.bounds()
	b.Fill(lo, nan)
	b.Fill(hi, nan)
	if _, err := b.Submit(); err != nil {
		t.Fatal(err)
	}
}

// checkQuestBounds compares m's page bounds on the device with the min and
// max over each page's keys of kv, exactly, for every row and page.
func checkQuestBounds(t *testing.T, where string, m *Quest, kv *ref.KV) {
	t.Helper()
	lo, hi := m.bounds()
	es := m.opt.Storage.bytes()
	rowBytes := uint64(m.pcap() * kv.D * es)
	pages := (kv.N + m.page - 1) / m.page
	for r := range kv.B * kv.Hkv {
		var dev [2][]float32
		for i, rg := range []Range{lo, hi} {
			raw := make([]byte, pages*kv.D*es)
			if err := m.ctx.Read(rg.Buf, rg.Off+uint64(r)*rowBytes, raw); err != nil {
				t.Fatal(err)
			}
			dev[i] = make([]float32, pages*kv.D)
			for e := range dev[i] {
				if es == 2 {
					dev[i][e] = halfFloat(uint16(raw[2*e]) | uint16(raw[2*e+1])<<8)
				} else {
					dev[i][e] = bytesF32(raw[4*e : 4*e+4])[0]
				}
			}
		}
		for j := range pages {
			for d := range kv.D {
				mn, mx := kv.K[r][j*m.page*kv.D+d], kv.K[r][j*m.page*kv.D+d]
				for tok := j * m.page; tok < min((j+1)*m.page, kv.N); tok++ {
					mn = min(mn, kv.K[r][tok*kv.D+d])
					mx = max(mx, kv.K[r][tok*kv.D+d])
				}
				if g := dev[0][j*kv.D+d]; g != mn {
					t.Fatalf("%s: row %d page %d channel %d: lo %v on the device, want %v", where, r, j, d, g, mn)
				}
				if g := dev[1][j*kv.D+d]; g != mx {
					t.Fatalf("%s: row %d page %d channel %d: hi %v on the device, want %v", where, r, j, d, g, mx)
				}
			}
		}
	}
}

// TestQuestNaNPages holds the select's rule that a NaN score ranks last
// (select_key.glsl's desc_key; ref's byLarger) to ref on the GPU: a page
// whose keys are +Inf in channel 0, where every query head of its group has
// q = 0, scores 0*Inf = NaN in every implementation, while the other pages
// score finite dyadic sums, exact in float32. The NaN page sits first, in
// the middle and last, and the budget takes two pages, or every finite
// token, so that a NaN page ranked first (or among the finite ones) changes
// the selection. On the H200, whose NaN is positive, the test fails without
// desc_key's NaN rule (run 421); on lavapipe, whose NaN from 0*Inf is
// negative, desc_key ranks it last even without the rule.
func TestQuestNaNPages(t *testing.T) {
	ctx := device(t)
	const page = 7
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 20*page + 3, D: 64}
	for _, st := range []Storage{F32, F16} {
		for _, nanPage := range []int{0, 9, 20} {
			rng := rand.New(rand.NewPCG(uint64(nanPage), uint64(st)+70))
			kv := reftest.DyadicKV(rng, s, st == F16)
			for r := range s.B * s.Hkv {
				for tk := nanPage * page; tk < min((nanPage+1)*page, s.N); tk++ {
					kv.K[r][tk*s.D] = float32(math.Inf(1))
				}
			}
			q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
			for h := range s.B * s.Hq {
				q[h*s.D] = 0
			}
			finite := s.N - (min((nanPage+1)*page, s.N) - nanPage*page)
			for _, k := range []int{2 * page, finite} {
				where := fmt.Sprintf("%s, page %d of +Inf keys, k=%d", st, nanPage, k)
				want, err := ref.NewQuest(page)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ctx.NewQuest(s.D, page, SparseOptions{Storage: st})
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range []ref.Method{want, got} {
					if err := m.Prefill(kv); err != nil {
						t.Fatalf("%s: Prefill: %v", where, err)
					}
				}
				rw, err := want.Decode(q, ref.Budget{K: k})
				if err != nil {
					t.Fatalf("%s: ref: %v", where, err)
				}
				rg, err := got.Decode(q, ref.Budget{K: k})
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				got.Close()
				for r, row := range rw.Selected {
					if slices.ContainsFunc(row, func(tk int32) bool { return int(tk)/page == nanPage }) {
						t.Fatalf("%s: ref selected a token of the NaN page in row %d: %v", where, r, row)
					}
				}
				if d := cmp.Diff(rw.Selected, rg.Selected); d != "" {
					t.Errorf("%s: selection differs from ref, whose NaN page ranks last (-ref +got):\n%s", where, d)
				}
			}
		}
	}
}
