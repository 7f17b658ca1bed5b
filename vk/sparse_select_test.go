package vk

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// selectCase is one run of the select kernels on keys given by the test.
type selectCase struct {
	name       string
	keys       [][]uint32 // [rows][N]
	key16      bool
	directBins int // 0: radix passes
	page       int // tokens per key (keys then [rows][ceil(N/page)])
	n, k       int
	win        ref.Windows
	chunk      int  // SelectChunk; 0: the default
	perRow     bool // select_rows: one workgroup per row
	wg         int  // SelectWorkgroup; 0: the default
}

// runSelect uploads c.keys, runs the select kernels (select_hist passes,
// select_count, select_write; or select_rows) with every output poisoned,
// and returns the selection read back.
func runSelect(t *testing.T, ctx *Context, c selectCase) [][]int32 {
	t.Helper()
	core, err := newSparseCore(ctx, "select test", 64, SparseOptions{SelectChunk: c.chunk, SelectWorkgroup: c.wg})
	if err != nil {
		t.Fatal(err)
	}
	defer core.close()
	rows := len(c.keys)
	stride := len(c.keys[0])
	if c.chunk%8 == 0 { // 8-aligned rows and chunks: the kernels' 16-byte loads
		stride = roundUp(stride, 8)
	}
	var raw []byte
	if c.key16 {
		stride = roundUp(stride, 2)
		h := make([]uint16, rows*stride)
		for r, row := range c.keys {
			for i, x := range row {
				h[r*stride+i] = uint16(x)
			}
		}
		raw = u16Bytes(h)
	} else {
		w := make([]uint32, rows*stride)
		for r, row := range c.keys {
			copy(w[r*stride:], row)
		}
		raw = unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4*len(w))
	}
	keys, err := core.buf("keys", uint64(len(raw)), DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.Write(Region{Dst: keys, Data: raw}); err != nil {
		t.Fatal(err)
	}
	selBytes := uint64(rows*c.k) * 4
	sel, err := core.buf("sel", selBytes, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := core.buf("sel readback", selBytes, Readback)
	if err != nil {
		t.Fatal(err)
	}
	sinkEnd, recentStart, forced := windows(c.win, c.n, c.k)
	p, err := core.prepareSelect(selectSpec{
		keys: keys.Range(0, uint64(len(raw))), key16: c.key16, keyStride: stride, page: max(c.page, 1),
		rows: rows, n: c.n, kk: c.k - forced, sinkEnd: sinkEnd, recentEnd: recentStart,
		directBins: c.directBins, sel: sel.Range(0, selBytes), k: c.k, perRow: c.perRow,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := core.getBatch()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Begin(); err != nil {
		t.Fatal(err)
	}
	b.Fill(sel.Range(0, selBytes), NaNBits)
	b.Fill(p.cnt, NaNBits)
	p.zeroHist(b)
	b.Barrier()
	if err := core.recordSelect(b, p); err != nil {
		t.Fatal(err)
	}
	b.Copy(rb.Range(0, selBytes), sel.Range(0, selBytes))
	if _, err := b.Submit(); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	w := unsafe.Slice((*uint32)(unsafe.Pointer(&rb.Bytes()[0])), rows*c.k)
	out := make([][]int32, rows)
	for r := range out {
		out[r] = make([]int32, c.k)
		for i := range out[r] {
			out[r][i] = int32(w[r*c.k+i])
		}
	}
	return out
}

// wantSelect is ref's selection of c: ref.SelectSmallest on the keys as
// int32 when they fit, else ref.SelectLargest on their negation (exact in
// float64), every token carrying its page's key.
func wantSelect(c selectCase) [][]int32 {
	out := make([][]int32, len(c.keys))
	for r, row := range c.keys {
		page := max(c.page, 1)
		small := true
		for t := range c.n {
			small = small && row[t/page] < 1<<31
		}
		if small {
			s := make([]int32, c.n)
			for t := range s {
				s[t] = int32(row[t/page])
			}
			out[r] = ref.SelectSmallest(s, c.k, c.win)
		} else {
			s := make([]float64, c.n)
			for t := range s {
				s[t] = -float64(row[t/page])
			}
			out[r] = ref.SelectLargest(s, c.k, c.win)
		}
	}
	return out
}

// keyGen fills rows x n keys.
type keyGen struct {
	name string
	gen  func(rng *rand.Rand, r, t int) uint32
}

// TestSelectMatchesRef holds the select kernels to ref.SelectSmallest
// exactly: one-pass histograms (HATA's) and radix passes over uint16 and
// uint32 keys, for N = 1, 7, 300 and (1<<12)+11, budgets 1, 2, 7, k = N-1 and
// k = N, with heavy ties (all keys equal; two distinct values; few distinct
// values), keys spanning the whole 32-bit range, sink/recent windows, and
// chunks of 61 tokens (many workgroups per row, unaligned: one key load per
// token), 64 (aligned rows: 16-byte key loads) and the default; and
// select_rows (one workgroup per row, uint32 keys, no windows) on the same
// keys, its rows unaligned (chunk 61) and aligned.
func TestSelectMatchesRef(t *testing.T) {
	ctx := device(t)
	gens := []keyGen{
		{"all-equal", func(*rand.Rand, int, int) uint32 { return 7 }},
		{"two-values", func(rng *rand.Rand, _, _ int) uint32 { return uint32(3 + 5*rng.IntN(2)) }},
		{"few-values", func(rng *rand.Rand, _, _ int) uint32 { return uint32(rng.IntN(6)) }},
		{"hamming-like", func(rng *rand.Rand, _, _ int) uint32 { return uint32(200 + rng.IntN(113)) }},
		{"descending", func(_ *rand.Rand, r, t int) uint32 { return uint32(512 - t%500 + r) }},
	}
	wide := keyGen{"full-32-bit", func(rng *rand.Rand, _, _ int) uint32 {
		if rng.IntN(4) == 0 {
			return [...]uint32{0, 1, 1 << 31, 1<<32 - 1, 0x80000001}[rng.IntN(5)]
		}
		return rng.Uint32()
	}}
	type mode struct {
		name       string
		key16      bool
		directBins int
		perRow     bool
	}
	modes := []mode{{"direct513", true, 513, false}, {"direct32", false, 4096, false}, {"radix16", true, 0, false}, {"radix32", false, 0, false}, {"rows32", false, 0, true}}
	seed := uint64(0)
	for _, n := range []int{1, 7, 300, 1<<12 + 11} {
		for _, k := range uniq(1, 2, 7, n-1, n) {
			if k < 1 || k > n {
				continue
			}
			for _, m := range modes {
				gs := gens
				if m.name == "radix32" || m.perRow {
					gs = append(gs, wide)
				}
				for _, g := range gs {
					for _, w := range []ref.Windows{{}, {Sink: 2, Recent: 3}} {
						for _, chunk := range []int{61, 64, 0} {
							small := chunk != 0 && (n < 300 || g.name == "descending" || g.name == "all-equal" || k == n-1)
							if small || (w != ref.Windows{}) && (m.perRow || g.name != "few-values" && g.name != "all-equal") {
								continue
							}
							seed++
							rng := rand.New(rand.NewPCG(seed, 3))
							rows := 3
							c := selectCase{key16: m.key16, directBins: m.directBins, n: n, k: k, win: w, chunk: chunk, perRow: m.perRow}
							c.keys = make([][]uint32, rows)
							for r := range rows {
								c.keys[r] = make([]uint32, n)
								for i := range n {
									x := g.gen(rng, r, i)
									if m.key16 {
										x &= 0xffff
									}
									if m.directBins > 0 {
										x %= uint32(m.directBins)
									}
									c.keys[r][i] = x
								}
							}
							c.name = fmt.Sprintf("%s %s N=%d k=%d windows %+v chunk %d", m.name, g.name, n, k, w, chunk)
							got := runSelect(t, ctx, c)
							if d := cmp.Diff(wantSelect(c), got); d != "" {
								t.Fatalf("%s: selection differs from ref (-ref +got):\n%s", c.name, d)
							}
						}
					}
				}
			}
		}
	}
}

// TestSelectWorkgroups holds the select kernels to ref at workgroups other
// than the default 256 (SparseOptions.SelectWorkgroup): 64, 128 and 512
// lanes over one-pass histograms and radix passes of uint16 and uint32
// keys, chunks unaligned (61: one key load per token), aligned (64) and the
// default, with ties and windows; and checks that a workgroup too small for
// the histogram search (64 lanes hold 1024 bins, the uint32 radix passes
// have 2048) is refused with an error that names it.
func TestSelectWorkgroups(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(23, 5))
	const rows, n = 3, 1<<12 + 11
	for _, m := range []struct {
		name       string
		key16      bool
		directBins int
		max        uint32
	}{{"direct513", true, 513, 513}, {"radix16", true, 0, 1 << 16}, {"radix32", false, 0, 0}} {
		for _, wg := range []int{64, 128, 512} {
			for _, c := range []struct {
				chunk, k int
				win      ref.Windows
			}{{61, 7, ref.Windows{}}, {64, n - 1, ref.Windows{}}, {0, 300, ref.Windows{Sink: 2, Recent: 3}}} {
				sc := selectCase{key16: m.key16, directBins: m.directBins, n: n, k: c.k, win: c.win, chunk: c.chunk, wg: wg}
				sc.keys = make([][]uint32, rows)
				for r := range sc.keys {
					sc.keys[r] = make([]uint32, n)
					for i := range sc.keys[r] {
						x := uint32(200 + rng.IntN(40)) // ties
						if m.max == 0 {
							x = rng.Uint32()
						}
						sc.keys[r][i] = x
					}
				}
				sc.name = fmt.Sprintf("%s workgroup %d N=%d k=%d windows %+v chunk %d", m.name, wg, n, c.k, c.win, c.chunk)
				if m.name == "radix32" && wg == 64 {
					core, err := newSparseCore(ctx, "select test", 64, SparseOptions{SelectWorkgroup: wg})
					if err != nil {
						t.Fatal(err)
					}
					_, err = core.prepareSelect(selectSpec{keyStride: n, rows: rows, n: n, kk: c.k, recentEnd: n, k: c.k})
					core.close()
					if err == nil || !strings.Contains(err.Error(), "select workgroup 64") || !strings.Contains(err.Error(), "2048 bins") {
						t.Errorf("%s: %v, want an error naming select workgroup 64 and the 2048 bins", sc.name, err)
					}
					break
				}
				if d := cmp.Diff(wantSelect(sc), runSelect(t, ctx, sc)); d != "" {
					t.Fatalf("%s: selection differs from ref (-ref +got):\n%s", sc.name, d)
				}
			}
		}
	}
}

// TestSelectPages checks keys shared by pages of tokens (Quest's reading):
// the selection equals ref's over the per-token keys, pages cut at k, with
// the radix select over chunks and with select_rows (4, 8, 16 and 32 keys
// per lane: rows of 1250 to 30000 keys; pages past rowsAutoMaxKeys, which
// RowSelectAuto gives select_rows since session 31, at 16 and 32).
func TestSelectPages(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(17, 4))
	for _, c := range []struct{ n, page, k int }{{7, 32, 3}, {100, 32, 40}, {523, 7, 100}, {523, 32, 523}, {65, 1, 9}, {40000, 32, 625}, {9000, 5, 333}, {12000, 1, 50}, {20000, 1, 700}, {24001, 2, 900}, {90000, 3, 4000}} {
		pages := (c.n + c.page - 1) / c.page
		keys := make([][]uint32, 2)
		for r := range keys {
			keys[r] = make([]uint32, pages)
			for j := range keys[r] {
				keys[r][j] = uint32(rng.IntN(4)) << 30 // heavy ties between pages
			}
		}
		for _, perRow := range []bool{false, true} {
			sc := selectCase{name: fmt.Sprintf("N=%d page=%d k=%d rows %v", c.n, c.page, c.k, perRow), keys: keys, page: c.page, n: c.n, k: c.k, chunk: 64, perRow: perRow}
			if d := cmp.Diff(wantSelect(sc), runSelect(t, ctx, sc)); d != "" {
				t.Errorf("%s: selection differs from ref (-ref +got):\n%s", sc.name, d)
			}
		}
	}
}

// TestSelectLarge holds the select kernels over chunks to ref at a
// benchmark's scale, with HATA_VK_LARGE=1 (on a GPU; lavapipe takes about a
// minute): 64 rows (batch 8 of Llama-3.1-8B's 8 KV heads) of 131083 tokens
// in the default chunks (2048 workgroups a kernel), k = 2044 (1.56%), with
// and without windows, through the one-pass histogram over uint32 keys
// (HATA's naive variant) and uint16 keys, and the radix passes over uint16
// and uint32 keys (the exact top-k's and Loki's); each case three times, as
// a race may lose only now and then. On the H200, select_hist's first pass
// lost counts at this scale when its zeroing of the shared histogram had no
// barrier before the adds (26ac155: hata/naive's batch 8 wrote selections
// out of order once select_count's search got shorter); lavapipe's small
// rows never showed it.
func TestSelectLarge(t *testing.T) {
	if os.Getenv(envLarge) != "1" {
		t.Skipf("needs %s=1", envLarge)
	}
	ctx := device(t)
	const rows, n, k = 64, 1<<17 + 11, 2044
	for i, m := range []struct {
		name       string
		key16      bool
		directBins int
	}{{"direct513-u32", false, 513}, {"direct513-u16", true, 513}, {"radix16", true, 0}, {"radix32", false, 0}} {
		for _, w := range []ref.Windows{{}, {Sink: 4, Recent: 64}} {
			rng := rand.New(rand.NewPCG(uint64(i), 41))
			c := selectCase{name: fmt.Sprintf("%s windows %+v", m.name, w), key16: m.key16, directBins: m.directBins, n: n, k: k, win: w}
			c.keys = make([][]uint32, rows)
			for r := range c.keys {
				c.keys[r] = make([]uint32, n)
				for t := range c.keys[r] {
					switch {
					case m.directBins > 0: // Hamming-like: G*rbit = 512, most near the middle
						c.keys[r][t] = uint32(200 + rng.IntN(113))
					case m.key16:
						c.keys[r][t] = rng.Uint32() & 0xffff
					default:
						c.keys[r][t] = rng.Uint32()
					}
				}
			}
			want := wantSelect(c)
			for rep := range 3 {
				got := runSelect(t, ctx, c)
				for r := range want {
					if d := cmp.Diff(want[r], got[r]); d != "" {
						t.Fatalf("%s, run %d: row %d's selection differs from ref (-ref +got):\n%s", c.name, rep, r, d)
					}
				}
			}
		}
	}
}

func uniq(xs ...int) []int {
	var out []int
	seen := map[int]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// TestRowsKeysPerLane pins select_rows' keys per lane and the RowSelect
// modes' rules (rowsAutoMaxKeys for one key per token, Quest's pages
// wherever they fit; an explicit SelectChunk keeps the radix select;
// RowSelectOn where a row does not fit is an error) on a device that fits
// it.
func TestRowsKeysPerLane(t *testing.T) {
	for _, c := range []struct{ n, page, want int }{
		{1, 1, 4}, {4096, 1, 4}, {4097, 1, 8}, {8192, 1, 8}, {8193, 1, 16}, {32768, 1, 32},
		{262144, 32, 8}, {131072, 32, 4}, {40000, 32, 4},
	} {
		if got := rowsKeysPerLane(c.n, c.page); got != c.want {
			t.Errorf("rowsKeysPerLane(%d, %d) = %d, want %d", c.n, c.page, got, c.want)
		}
	}
	ctx := &Context{Info: DeviceInfo{MaxSubgroupSize: 32, SubgroupOps: SubgroupBasic | SubgroupArithmetic}}
	ctx.Info.Limits.MaxComputeWorkGroupInvocations = 1024
	ctx.Info.Limits.MaxComputeWorkGroupSize = [3]uint32{1024, 1024, 64}
	for _, c := range []struct {
		mode        RowSelectMode
		selectChunk int
		n, page     int
		wantRows    bool
		wantErr     bool
	}{
		{RowSelectAuto, 0, 262144, 32, true, false}, {RowSelectAuto, 0, 8192, 1, true, false},
		{RowSelectAuto, 0, 393216, 32, true, false}, {RowSelectAuto, 0, 1 << 20, 32, true, false},
		{RowSelectAuto, 0, 1<<20 + 1, 32, false, false}, {RowSelectAuto, 0, 8193, 1, false, false},
		{RowSelectAuto, 0, 32768, 1, false, false}, {RowSelectAuto, 2048, 8192, 1, false, false},
		{RowSelectOn, 0, 32768, 1, true, false}, {RowSelectOn, 2048, 8192, 1, true, false},
		{RowSelectOn, 0, 32769, 1, false, true}, {RowSelectOff, 0, 1024, 32, false, false},
	} {
		core := &sparseCore{ctx: ctx, opt: SparseOptions{RowSelect: c.mode, SelectChunk: c.selectChunk}}
		got, err := core.rowSelect(c.n, c.page)
		if got != c.wantRows || (err != nil) != c.wantErr {
			t.Errorf("mode %d, SelectChunk %d, N %d, page %d: rowSelect = %v, %v; want %v, error %v", c.mode, c.selectChunk, c.n, c.page, got, err, c.wantRows, c.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "32769 keys") {
			t.Errorf("error %q does not name the row's keys", err)
		}
	}
	ctx.Info.SubgroupOps = SubgroupBasic // no subgroup arithmetic: the radix select
	if rows, err := (&sparseCore{ctx: ctx}).rowSelect(1024, 32); rows || err != nil {
		t.Errorf("rowSelect without subgroup arithmetic = %v, %v; want false, nil", rows, err)
	}
}

// TestRadixSelectChunk pins the radix select's default chunks on a device
// of 132 compute units (the H200's): run 84's best at the paper's shapes.
func TestRadixSelectChunk(t *testing.T) {
	c := &sparseCore{ctx: &Context{Info: DeviceInfo{ComputeUnits: 132}}}
	for _, tc := range []struct{ n, rows, want int }{
		{32768, 8, 4096}, {131072, 8, 4096}, {262144, 8, 4096},
		{32768, 64, 4096}, {131072, 64, 16384}, {262144, 64, 32768},
		{100, 1000, 4096}, // a chunk never grows past the row
	} {
		if got := c.radixSelectChunk(tc.n, tc.rows); got != tc.want {
			t.Errorf("N %d, %d rows: chunk %d, want %d", tc.n, tc.rows, got, tc.want)
		}
	}
}

// TestSelectGroupsRule pins which chunks the fused select takes with
// select_groups and with how many 8-token groups per lane: none up to one of
// select_write's tiles (256 lanes x 8 tokens), then the fewest that hold
// the chunk in one tile, at most 8.
func TestSelectGroupsRule(t *testing.T) {
	for chunk, want := range map[int]int{0: 0, 512: 0, 2048: 0, 2056: 2, 3976: 2, 4096: 2, 4104: 3, 8192: 4, 16384: 8, 32768: 8} {
		if got := selectGroups(chunk); got != want {
			t.Errorf("selectGroups(%d) = %d, want %d", chunk, got, want)
		}
	}
	// At other workgroups (SparseOptions.SelectWorkgroup): the groups that
	// hold a chunk in one tile, at least one, at most 8.
	for _, c := range []struct{ chunk, wg, want int }{
		{16384, 64, 8}, {4096, 512, 1}, {4104, 512, 2}, {16384, 512, 4}, {16384, 1024, 2}, {2056, 64, 5}, {1, 64, 1},
	} {
		if got := groupsPerLane(c.chunk, c.wg); got != c.want {
			t.Errorf("groupsPerLane(%d, %d) = %d, want %d", c.chunk, c.wg, got, c.want)
		}
	}
}

// TestLogitsUnrollRule pins score_logits' tokens per slot per round: 2*TPT/G
// within [1, 4] (4 for the exact top-k's 128 float16 channels at G = 4, 2
// for Loki's 32, 1 with a lane per token).
func TestLogitsUnrollRule(t *testing.T) {
	for _, c := range []struct{ tpt, g, want int }{{16, 4, 4}, {32, 4, 4}, {4, 4, 2}, {8, 4, 4}, {4, 1, 4}, {1, 2, 1}, {1, 4, 1}, {2, 4, 1}, {4, 3, 2}, {4, 0, 4}} {
		if got := logitsUnroll(c.tpt, c.g); got != c.want {
			t.Errorf("logitsUnroll(%d lanes, G %d) = %d, want %d", c.tpt, c.g, got, c.want)
		}
	}
}

// TestSelectKernels pins which select kernels each chain dispatches: the
// radix select (the exact top-k and Loki over chunks) its histogram passes
// and select_write, no select_count (its last pass writes the chunk counts);
// HATA's naive variant select_hist, select_count and select_write; the fused
// one select_write_cum alone at chunks of one tile (the score kernel builds
// the histogram and the chunk counts). Every one matches ref (the
// acceptance suite); this checks the chain's shape.
func TestSelectKernels(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(17, 3))
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 3000, D: 64}
	kv := reftest.DyadicKV(rng, s, true)
	w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
	basis := make([]float64, s.Hkv*s.D*s.D)
	for h := range s.Hkv {
		for j := range s.D {
			basis[(h*s.D+j)*s.D+j] = 1
		}
	}
	all := []string{"select_hist", "select_count", "select_write", "select_write_cum", "select_groups", "select_rows"}
	for _, c := range []struct {
		name, variant string
		ran           []string
	}{
		{"topk", "", []string{"select_hist", "select_write"}},
		{"loki", "", []string{"select_hist", "select_write"}},
		{"hata", VariantNaive, []string{"select_hist", "select_count", "select_write"}},
		{"hata", VariantFused, []string{"select_write_cum"}},
	} {
		o := SparseOptions{Storage: F16, Variant: c.variant, RowSelect: RowSelectOff, ScoreChunk: 1024, Reserve: 1}
		m, err := ctx.SparseFactory(o)(c.name, s.Hkv, s.D, ref.Options{W: w, LokiBasis: basis})
		if err != nil {
			t.Fatalf("%s/%s: %v", c.name, c.variant, err)
		}
		if err := m.Prefill(kv); err != nil {
			t.Fatalf("%s/%s: prefill: %v", c.name, c.variant, err)
		}
		if _, err := m.Decode(reftest.Dyadic(rng, s.B*s.Hq*s.D), ref.Budget{K: 40}); err != nil {
			t.Fatalf("%s/%s: %v", c.name, c.variant, err)
		}
		ran := builtShaders(coreOf(m))
		for _, name := range all {
			if want := slices.Contains(c.ran, name); ran[name] != want {
				t.Errorf("%s/%s: %s ran: %v, want %v", c.name, c.variant, name, ran[name], want)
			}
		}
		m.(interface{ Close() error }).Close()
	}
}

// TestGroupsWorkgroup checks select_groups' default workgroup: 512 lanes
// only for chunks that would give 256 lanes more than 4 groups each and 512
// lanes at most 4 (8193-16384 tokens), and only where the device allows 512
// lanes in a multiple of its largest subgroup.
func TestGroupsWorkgroup(t *testing.T) {
	info := DeviceInfo{MaxSubgroupSize: 32, Limits: Limits{MaxComputeWorkGroupInvocations: 1024, MaxComputeWorkGroupSize: [3]uint32{1024, 1024, 64}}}
	for _, c := range []struct {
		chunk int
		info  func(*DeviceInfo)
		want  int
	}{
		{2056, nil, 256},
		{8192, nil, 256}, // 4 groups a lane of 256
		{8200, nil, 512}, // 5 of 256, 3 of 512
		{12288, nil, 512},
		{16384, nil, 512},
		{16392, nil, 256}, // 5 groups a lane of 512
		{32768, nil, 256},
		{16384, func(d *DeviceInfo) { d.Limits.MaxComputeWorkGroupInvocations = 256 }, 256},
		{16384, func(d *DeviceInfo) { d.Limits.MaxComputeWorkGroupSize[0] = 384 }, 256},
		{16384, func(d *DeviceInfo) { d.MaxSubgroupSize = 1024 }, 256},
	} {
		d := info
		if c.info != nil {
			c.info(&d)
		}
		core := &sparseCore{ctx: &Context{Info: d}}
		if got := core.groupsWorkgroup(c.chunk); got != c.want {
			t.Errorf("groupsWorkgroup(%d) with %d invocations, a size of %d and subgroups of up to %d = %d, want %d",
				c.chunk, d.Limits.MaxComputeWorkGroupInvocations, d.Limits.MaxComputeWorkGroupSize[0], d.MaxSubgroupSize, got, c.want)
		}
	}
}

// descKey is select_key.glsl's desc_key on the host, for TestScoreOfKey.
func descKey(f float32) uint32 {
	if f != f {
		return 0xffffffff
	}
	b := math.Float32bits(f)
	if f == 0 {
		b = 0
	}
	asc := b | 0x80000000
	if b&0x80000000 != 0 {
		asc = ^b
	}
	return ^asc
}

// TestScoreOfKey holds scoreOfKey, from which Scores reads the float scores
// back (the score kernels write only their keys), to the inverse of
// desc_key: bit for bit over finite and infinite floats of both signs, the
// subnormals and random bit patterns, -0 read back as +0, NaN as a NaN; and
// the keys in the reverse order of the floats, as the select needs. The
// acceptance suites hold the scores read back on a device to ref's
// (checkScored).
func TestScoreOfKey(t *testing.T) {
	fs := []float32{0, 1, -1, 0.5, -0.5, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
		-math.SmallestNonzeroFloat32, 1e-40, -1e-40, float32(math.Inf(1)), float32(math.Inf(-1)), 3.14159, -2.71828}
	rng := rand.New(rand.NewPCG(5, 7))
	for range 10000 {
		if f := math.Float32frombits(rng.Uint32()); f == f {
			fs = append(fs, f)
		}
	}
	for _, f := range fs {
		if g := scoreOfKey(descKey(f)); math.Float32bits(g) != math.Float32bits(f) {
			t.Fatalf("scoreOfKey(desc_key(%v)) = %v (bits %#x, want %#x)", f, g, math.Float32bits(g), math.Float32bits(f))
		}
	}
	if g := scoreOfKey(descKey(float32(math.Copysign(0, -1)))); math.Float32bits(g) != 0 {
		t.Errorf("scoreOfKey(desc_key(-0)) = %v (bits %#x), want +0", g, math.Float32bits(g))
	}
	if g := scoreOfKey(descKey(float32(math.NaN()))); g == g {
		t.Errorf("scoreOfKey(desc_key(NaN)) = %v, want a NaN", g)
	}
	slices.Sort(fs)
	for i := 1; i < len(fs); i++ {
		if fs[i] > fs[i-1] && descKey(fs[i]) >= descKey(fs[i-1]) {
			t.Fatalf("desc_key(%v) = %#x not below desc_key(%v) = %#x", fs[i], descKey(fs[i]), fs[i-1], descKey(fs[i-1]))
		}
	}
}
