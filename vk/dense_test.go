package vk

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

func TestSplitPlan(t *testing.T) {
	for _, p := range []SplitPolicy{{}, {Splits: 3}, {Splits: 1000}, {TargetWorkgroups: 528, MinTokens: 64}, {MinTokens: 1}, {MinTokens: 128, FillTokens: 64}} {
		for _, n := range []int{1, 2, 7, 31, 33, 100, 1035, 32768, 262155} {
			for _, rows := range []int{1, 2, 8, 64} {
				for _, cu := range []int{0, 2, 132} {
					for _, maxS := range []int{1, 5, 65535} {
						s, l := p.Plan(n, rows, cu, maxS)
						where := fmt.Sprintf("%+v.Plan(n=%d, rows=%d, cu=%d, max=%d) = %d, %d", p, n, rows, cu, maxS, s, l)
						switch {
						case s < 1 || l < 1 || s > maxS || s > n:
							t.Fatalf("%s: out of range", where)
						case s*l < n || (s-1)*l >= n:
							t.Fatalf("%s: splits do not tile n with every split non-empty", where)
						}
					}
				}
			}
		}
	}
	// The H200 case the speed target is set at: B=1, Hkv=8, N=32K fills
	// 4 workgroups per SM.
	if s, l := (SplitPolicy{}).Plan(32768, 8, 132, 65535); s != 66 || l != 497 {
		t.Errorf("Plan(32768, 8 rows, 132 SMs) = %d, %d; want 66 splits of 497", s, l)
	}
	// B=8: 64 rows fill one wave of 528 with S=8, not 9.
	if s, _ := (SplitPolicy{}).Plan(32768, 64, 132, 65535); s != 8 {
		t.Errorf("Plan(32768, 64 rows, 132 SMs) = %d splits, want 8", s)
	}
	// More rows than a wave: whole waves of single splits.
	if s, _ := (SplitPolicy{}).Plan(32768, 1024, 132, 65535); s != 1 {
		t.Errorf("Plan(32768, 1024 rows, 132 SMs) = %d splits, want 1", s)
	}
	// The top-k methods' split of the selection (H200, 528 workgroups a
	// wave): splits of sparseFillTokens (16) where those of 128 are two or
	// more, within the wave and at most fillMaxSplits (64) a row: B1/32K (8
	// rows, k = 511) 32, B1/64K 64, B1/128K to B1/256K 64 (the cap), B8/32K
	// 8 (512 workgroups), B2/128K and B2/256K 33 (the wave: 528), B8/128K 8
	// (512), B4/32K 16 (the wave), four rows of 8000 entries 64 (the cap;
	// the wave allows 132), B1/16K 16, and B1/8K's one split stays one (no
	// merge).
	sparse := SplitPolicy{TargetWorkgroups: 528, MinTokens: 128, FillTokens: sparseFillTokens}
	for _, c := range []struct{ k, rows, want int }{
		{511, 8, 32}, {1022, 8, 64}, {2044, 8, 64}, {3067, 8, 64}, {4089, 8, 64}, {511, 64, 8}, {2044, 16, 33},
		{4089, 16, 33}, {2044, 64, 8}, {8000, 4, 64}, {255, 8, 16}, {127, 8, 1}, {1022, 32, 16},
	} {
		if s, _ := sparse.Plan(c.k, c.rows, 132, 65535); s != c.want {
			t.Errorf("%+v.Plan(%d, %d rows, 132 SMs) = %d splits, want %d", sparse, c.k, c.rows, s, c.want)
		}
	}
	if s, _ := (SplitPolicy{Splits: 5}).Plan(100, 1, 0, 65535); s != 5 {
		t.Errorf("Plan with Splits 5 = %d splits", s)
	}
}

// denseCase is one shape of the dense sweep.
type denseCase struct {
	b, hkv, g, n, d int
	storage         Storage
	opt             DenseOptions
	maxRange        uint64 // 0: the device's
}

func (c denseCase) String() string {
	s := fmt.Sprintf("B=%d Hkv=%d G=%d N=%d D=%d %s", c.b, c.hkv, c.g, c.n, c.d, c.storage)
	if c.opt.Split.Splits > 0 {
		s += fmt.Sprintf(" S=%d", c.opt.Split.Splits)
	}
	if c.maxRange > 0 {
		s += fmt.Sprintf(" maxRange=%d", c.maxRange)
	}
	return s
}

// randomKV returns a cache of normal entries, rounded to float16 for F16
// storage (the inputs ref sees are then exactly what the GPU holds).
func randomKV(rng *rand.Rand, b, hkv, n, d int, s Storage) *ref.KV {
	k, v := normal(rng, b*hkv*n*d, 1), normal(rng, b*hkv*n*d, 1)
	if s == F16 {
		reftest.RoundHalf(k)
		reftest.RoundHalf(v)
	}
	kv, err := ref.NewKV(b, hkv, n, d, k, v)
	if err != nil {
		panic(err)
	}
	return kv
}

func normal(rng *rand.Rand, n int, sigma float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * sigma)
	}
	return x
}

// checkDense compares the GPU output with ref.Dense (float64) under the
// flash-attention tolerance of reftest.CheckClose: per query row,
// max|gpu - ref64| <= 2 max|ref32 - ref64| + 64u max|ref64| + 64u, ref32 being
// the naive float32 evaluation in token order.
func checkDense(t *testing.T, where string, got, q []float32, kv *ref.KV) {
	t.Helper()
	want, err := ref.Dense(q, kv)
	if err != nil {
		t.Fatalf("%s: ref.Dense: %v", where, err)
	}
	if err := reftest.CheckClose(got, want, sparse32(t, q, kv, nil), kv.D); err != nil {
		t.Errorf("%s: %v", where, err)
	}
}

func runDenseCase(t *testing.T, ctx *Context, c denseCase, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	kv := randomKV(rng, c.b, c.hkv, c.n, c.d, c.storage)
	q := normal(rng, c.b*c.hkv*c.g*c.d, 2)
	m := prefillDense(t, ctx, c, kv)
	defer m.Close()
	res, err := m.Decode(q, ref.Full)
	if err != nil {
		t.Fatalf("%v: Decode: %v", c, err)
	}
	if res.Selected != nil {
		t.Errorf("%v: dense Decode returned a selection", c)
	}
	checkDense(t, c.String()+fmt.Sprintf(" (S=%d, %d chunks)", m.splits, len(m.splitSets)), res.Out, q, kv)
}

// prefillDense returns a Dense of c's options and storage, bound in buffers
// of c.maxRange where set, prefilled with kv. The caller closes it.
func prefillDense(t *testing.T, ctx *Context, c denseCase, kv *ref.KV) *Dense {
	t.Helper()
	opt := c.opt
	opt.Storage = c.storage
	m, err := ctx.NewDense(opt)
	if err != nil {
		t.Fatalf("%v: NewDense: %v", c, err)
	}
	if c.maxRange > 0 {
		m.maxRange = c.maxRange
	}
	if err := m.Prefill(kv); err != nil {
		m.Close()
		t.Fatalf("%v: Prefill: %v", c, err)
	}
	return m
}

// TestDenseMatchesRef sweeps shapes that are not multiples of anything (N in
// {1, 7, 100, 1035}), head dims 64/128/256, batch 1/2, GQA groups 1/4 and
// both storage types against ref.Dense.
func TestDenseMatchesRef(t *testing.T) {
	ctx := device(t)
	seed := uint64(0)
	for _, s := range []Storage{F32, F16} {
		for _, d := range []int{64, 128, 256} {
			for _, n := range []int{1, 7, 100, 1<<10 + 11} {
				for _, b := range []int{1, 2} {
					for _, g := range []int{1, 4} {
						seed++
						runDenseCase(t, ctx, denseCase{b: b, hkv: 2, g: g, n: n, d: d, storage: s}, seed)
					}
				}
			}
		}
	}
}

// TestDenseSplitsAndChunks forces the paths the default plan may not take on
// this device: one token per split, an odd number of splits, many splits with
// a short tail, and the cache bound one row (or two) per dispatch as if
// maxStorageBufferRange were tiny.
func TestDenseSplitsAndChunks(t *testing.T) {
	ctx := device(t)
	for i, c := range []denseCase{
		{b: 1, hkv: 1, g: 1, n: 7, d: 64, storage: F32, opt: DenseOptions{Split: SplitPolicy{Splits: 7}}},
		{b: 2, hkv: 2, g: 4, n: 100, d: 128, storage: F16, opt: DenseOptions{Split: SplitPolicy{Splits: 3}}},
		{b: 1, hkv: 2, g: 2, n: 1<<10 + 11, d: 64, storage: F32, opt: DenseOptions{Split: SplitPolicy{Splits: 200}}},
		{b: 1, hkv: 1, g: 3, n: 300, d: 128, storage: F32, opt: DenseOptions{Split: SplitPolicy{Splits: 1}}},
		{b: 2, hkv: 3, g: 2, n: 50, d: 64, storage: F32, maxRange: 512 * 64 * 4},       // one row per chunk
		{b: 3, hkv: 2, g: 1, n: 70, d: 128, storage: F16, maxRange: 2 * 384 * 128 * 2}, // two rows per chunk
		{b: 1, hkv: 2, g: 8, n: 33, d: 64, storage: F16, opt: DenseOptions{Workgroup: 64, Tile: 1}},
		{b: 1, hkv: 1, g: 5, n: 129, d: 64, storage: F32, opt: DenseOptions{Workgroup: 256, Tile: 3}},
		{b: 2, hkv: 2, g: 4, n: 1<<10 + 11, d: 128, storage: F16, opt: DenseOptions{Tile: 2}}, // the GPU default
		{b: 1, hkv: 2, g: 4, n: 1<<10 + 11, d: 64, storage: F32, opt: DenseOptions{Tile: 4}},
	} {
		runDenseCase(t, ctx, c, uint64(100+i))
	}
}

// TestDensePieces holds dense with DenseOptions.Pieces on (equal pieces of
// all the rows' tokens, some spanning the end of one row and the start of
// the next) to ref.Dense: pieces shorter than a row, as long as one, rows in
// up to 6 pieces, a cache bound two rows or one row a dispatch, several
// tiles and group sizes, and two decode steps each, whose counters the
// folded merge must leave 0. It checks the plan too: pieces of
// SplitPolicy.pieces' length (the kernel really took pieces), and S splits
// of every row where pieces cannot run (the merge apart, or traced).
func TestDensePieces(t *testing.T) {
	ctx := device(t)
	for i, c := range []denseCase{
		{b: 2, hkv: 3, g: 2, n: 50, d: 64, storage: F32, opt: DenseOptions{Split: SplitPolicy{TargetWorkgroups: 7, MinTokens: 1}}},
		{b: 2, hkv: 2, g: 4, n: 100, d: 128, storage: F16, opt: DenseOptions{Split: SplitPolicy{TargetWorkgroups: 3, MinTokens: 1}}},
		{b: 1, hkv: 4, g: 1, n: 33, d: 64, storage: F32, opt: DenseOptions{Split: SplitPolicy{TargetWorkgroups: 4}}}, // a piece a row
		{b: 1, hkv: 2, g: 4, n: 1<<10 + 11, d: 128, storage: F16, opt: DenseOptions{Split: SplitPolicy{TargetWorkgroups: 7}}},
		{b: 1, hkv: 2, g: 5, n: 1<<10 + 11, d: 64, storage: F32, opt: DenseOptions{Tile: 3, Split: SplitPolicy{TargetWorkgroups: 11}}},
		{b: 3, hkv: 2, g: 1, n: 70, d: 128, storage: F16, maxRange: 2 * 384 * 128 * 2, opt: DenseOptions{Split: SplitPolicy{TargetWorkgroups: 5, MinTokens: 1}}}, // two rows a dispatch
		{b: 2, hkv: 3, g: 2, n: 50, d: 64, storage: F32, maxRange: 512 * 64 * 4, opt: DenseOptions{Split: SplitPolicy{TargetWorkgroups: 4, MinTokens: 1}}},       // one row a dispatch
		{b: 2, hkv: 2, g: 4, n: 300, d: 96, storage: F32, opt: DenseOptions{Workgroup: 64, Tile: 2, Split: SplitPolicy{TargetWorkgroups: 9}}},
		{b: 2, hkv: 2, g: 4, n: 1<<10 + 11, d: 128, storage: F16}, // the device's target
	} {
		c.opt.Pieces, c.opt.Merge = PiecesOn, MergeFold
		rng := rand.New(rand.NewPCG(uint64(500+i), 7))
		kv := randomKV(rng, c.b, c.hkv, c.n, c.d, c.storage)
		m := prefillDense(t, ctx, c, kv)
		for step := range 2 {
			q := normal(rng, c.b*c.hkv*c.g*c.d, 2)
			res, err := m.Decode(q, ref.Full)
			if err != nil {
				t.Fatalf("%v: Decode: %v", c, err)
			}
			rows := c.b * c.hkv
			uniform, _ := m.opt.Split.Plan(c.n, rows, ctx.Info.ComputeUnits, 1<<20) // NewDense's defaults
			stride, pieceLen := m.opt.Split.pieces(c.n, rows, uniform, ctx.Info.ComputeUnits)
			where := fmt.Sprintf("%v pieces step %d (%d pieces of %d tokens, stride %d, %d dispatches)", c, step, pieceCount(rows, c.n, pieceLen), pieceLen, stride, len(m.splitSets))
			if !m.pieces || m.splitLen != pieceLen || m.splits != stride {
				t.Fatalf("%s: the step ran pieces %v of %d tokens, stride %d", where, m.pieces, m.splitLen, m.splits)
			}
			checkDense(t, where, res.Out, q, kv)
			checkCounters(t, where, ctx, m.cnt)
		}
		m.Close()
	}
	// Where the merge is apart, or the step traced, pieces do not run.
	for _, opt := range []DenseOptions{{Pieces: PiecesOn, Merge: MergeSeparate}, {Pieces: PiecesOn, Trace: true}, {Pieces: PiecesOff}, {}} {
		if opt.Trace && !ctx.Info.ShaderClock {
			continue
		}
		c := denseCase{b: 2, hkv: 2, g: 4, n: 100, d: 64, storage: F32, opt: opt}
		c.opt.Split.TargetWorkgroups = 3
		rng := rand.New(rand.NewPCG(600, 7))
		kv := randomKV(rng, c.b, c.hkv, c.n, c.d, c.storage)
		m := prefillDense(t, ctx, c, kv)
		q := normal(rng, c.b*c.hkv*c.g*c.d, 2)
		res, err := m.Decode(q, ref.Full)
		if err != nil {
			t.Fatalf("%+v: %v", opt, err)
		}
		if m.pieces {
			t.Errorf("%+v: the step ran pieces", opt)
		}
		checkDense(t, fmt.Sprintf("%v %+v", c, opt), res.Out, q, kv)
		m.Close()
	}
	if _, err := ctx.NewDense(DenseOptions{Pieces: PiecesOn + 1}); err == nil || !strings.Contains(err.Error(), "Pieces") {
		t.Errorf("NewDense(Pieces %d) = %v, want an error naming Pieces", PiecesOn+1, err)
	}
}

// TestDenseAppend prefills, then appends tokens one at a time past the
// capacity (so the cache grows on the device twice), decoding along the way,
// and compares every step with ref.DenseMethod after the same appends; in
// fp16 the cache is also kept in buffers of at most 3 rows of 256 tokens (one
// buffer at 128 tokens, two at 256, four of one row at 512), as a cache
// larger than a buffer may be is.
func TestDenseAppend(t *testing.T) {
	ctx := device(t)
	for _, s := range []Storage{F32, F16, F16 | 1<<8} {
		split := s&(1<<8) != 0
		s &^= 1 << 8
		const b, hkv, g, d, n0, steps = 2, 2, 4, 64, 100, 170
		rng := rand.New(rand.NewPCG(uint64(s), 11))
		kv := randomKV(rng, b, hkv, n0, d, s)
		want := ref.NewDense()
		got, err := ctx.NewDense(DenseOptions{Storage: s, Reserve: 1})
		if err != nil {
			t.Fatal(err)
		}
		if split {
			got.maxRange = 3 * 256 * d * 2
		}
		if err := want.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if err := got.Prefill(kv); err != nil {
			t.Fatalf("%s: Prefill: %v", s, err)
		}
		caps := []int{got.Cap()}
		cache := kv.Clone()
		for step := 0; step <= steps; step++ {
			if step%23 == 0 || step == steps {
				q := normal(rng, b*hkv*g*d, 2)
				res, err := got.Decode(q, ref.Full)
				if err != nil {
					t.Fatalf("%s step %d: Decode: %v", s, step, err)
				}
				checkDense(t, fmt.Sprintf("%s after %d appends (N=%d, Cap=%d)", s, step, got.Len(), got.Cap()), res.Out, q, cache)
				wres, err := want.Decode(q, ref.Full)
				if err != nil {
					t.Fatal(err)
				}
				if err := reftest.CheckClose(res.Out, wres.Out, sparse32(t, q, cache, nil), d); err != nil {
					t.Errorf("%s step %d: against ref.DenseMethod: %v", s, step, err)
				}
			}
			if step == steps {
				break
			}
			k, v := normal(rng, b*hkv*d, 1), normal(rng, b*hkv*d, 1)
			if s == F16 {
				reftest.RoundHalf(k)
				reftest.RoundHalf(v)
			}
			for _, a := range []interface{ Append(k, v []float32) error }{got, want, cache} {
				if err := a.Append(k, v); err != nil {
					t.Fatalf("%s step %d: Append: %v", s, step, err)
				}
			}
			if c := got.Cap(); c != caps[len(caps)-1] {
				caps = append(caps, c)
			}
		}
		if got.Len() != n0+steps {
			t.Errorf("%s: Len() = %d, want %d", s, got.Len(), n0+steps)
		}
		if split && (len(got.kv.k) != b*hkv || got.kv.rowsPer != 1) {
			t.Errorf("%s: %d buffers of %d rows after growing, want %d of 1", s, len(got.kv.k), got.kv.rowsPer, b*hkv)
		}
		if len(caps) < 3 {
			t.Errorf("%s: capacities %v: want two growths", s, caps)
		}
		got.Close()
	}
}

// TestDenseReprefill reuses one Dense for caches of other shapes and a
// different number of query heads.
func TestDenseReprefill(t *testing.T) {
	ctx := device(t)
	m, err := ctx.NewDense(DenseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(5, 5))
	for _, c := range []struct{ b, hkv, g, n, d int }{{1, 2, 4, 40, 128}, {2, 1, 2, 300, 64}, {2, 1, 3, 300, 64}, {1, 4, 1, 9, 256}} {
		kv := randomKV(rng, c.b, c.hkv, c.n, c.d, F32)
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		q := normal(rng, c.b*c.hkv*c.g*c.d, 1)
		res, err := m.Decode(q, ref.Full)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		checkDense(t, fmt.Sprintf("reprefill %+v", c), res.Out, q, kv)
	}
}

func TestDenseErrors(t *testing.T) {
	ctx := device(t)
	m, err := ctx.NewDense(DenseOptions{Storage: F16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	wantErr := func(what string, err error, sub string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s: error %v, want one containing %q", what, err, sub)
		}
	}
	_, err = m.Decode(make([]float32, 64), ref.Full)
	wantErr("decode before prefill", err, "before prefill")
	wantErr("append before prefill", m.Append(nil, nil), "before prefill")
	kv12, _ := ref.NewKV(1, 1, 3, 12, make([]float32, 36), make([]float32, 36))
	wantErr("f16 with D=12", m.Prefill(kv12), "multiple of 8")
	rng := rand.New(rand.NewPCG(1, 1))
	kv := randomKV(rng, 1, 2, 5, 64, F16)
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	_, err = m.Decode(make([]float32, 64), ref.Full)
	wantErr("q of one head for Hkv=2", err, "multiple of Hkv=2")
	_, err = m.Decode(make([]float32, 100), ref.Full)
	wantErr("q of 100 floats", err, "len 100")
	wantErr("append of wrong length", m.Append(make([]float32, 64), make([]float32, 128)), "len(k)=64")
	if _, err := ctx.NewMethod("hata", 2, 64, ref.Options{}); err == nil || !strings.Contains(err.Error(), "hash weights") {
		t.Errorf(`NewMethod("hata") without hash weights: error %v, want one naming them`, err)
	}
	for _, tile := range []int{-1, 17} {
		_, err := ctx.NewDense(DenseOptions{Storage: F16, Tile: tile})
		wantErr(fmt.Sprintf("Tile %d", tile), err, "Tile")
	}
	_, err = ctx.NewDense(DenseOptions{Merge: 3})
	wantErr("Merge 3", err, "Merge mode 3")
	if _, err := ctx.NewMethod("dense", 2, 1024, ref.Options{}); err == nil {
		t.Error(`NewMethod("dense", D=1024) succeeded; the merge kernel takes D <= 512`)
	}
	if _, err := ctx.NewMethod("dense", 2, 6, ref.Options{}); err == nil {
		t.Error(`NewMethod("dense", D=6) succeeded; the f32 kernel needs D % 4 == 0`)
	}
	empty, _ := ref.NewKV(1, 1, 0, 64, nil, nil)
	if err := m.Prefill(empty); err != nil {
		t.Fatalf("Prefill of N=0: %v", err)
	}
	_, err = m.Decode(make([]float32, 64), ref.Full)
	wantErr("decode of N=0", err, "N=0")
}

// mergeMode is MergeSeparate when separate, else MergeFold.
func mergeMode(separate bool) MergeMode {
	if separate {
		return MergeSeparate
	}
	return MergeFold
}

// TestDenseTimings checks the per-stage GPU times of a decode, with the
// merge folded into the split kernel (no "merge" stage) and separate.
func TestDenseTimings(t *testing.T) {
	ctx := device(t)
	if ctx.Info.TimestampValidBits == 0 {
		t.Skipf("%s has no timestamps", ctx.Info.Name)
	}
	for _, separate := range []bool{false, true} {
		m, err := ctx.NewDense(DenseOptions{Merge: mergeMode(separate)})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(9, 9))
		if err := m.Prefill(randomKV(rng, 1, 2, 2000, 128, F32)); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Decode(normal(rng, 8*128, 1), ref.Full); err != nil {
			t.Fatal(err)
		}
		tm := m.Timings()
		m.Close()
		var names []string
		for _, s := range tm.Stages {
			names = append(names, s.Name)
			if s.Ns < 0 || math.IsNaN(s.Ns) || s.Ns > 60e9 {
				t.Errorf("separate merge %v: stage %s: %v ns", separate, s.Name, s.Ns)
			}
		}
		want := []string{"upload"}
		if ctx.poison {
			want = append(want, "poison")
		}
		want = append(want, "split")
		if separate {
			want = append(want, "merge")
		}
		want = append(want, "readback")
		if !tm.Supported || !slices.Equal(names, want) {
			t.Errorf("separate merge %v: stages %v (supported %v), want %v", separate, names, tm.Supported, want)
		}
		if tm.Get("split") <= 0 || tm.Total() < tm.Get("split") {
			t.Errorf("separate merge %v: split %v ns of total %v ns: want a positive split inside the total", separate, tm.Get("split"), tm.Total())
		}
		t.Logf("%s, separate merge %v: %v", ctx.Info.Name, separate, tm)
	}
}

// TestDenseFoldedMerge holds the merge folded into the split kernel (the
// last workgroup of each cache row merges) and the separate dense_merge to
// ref over two consecutive decode steps of the same Dense (the second step
// fails if a row's split counter were not back at 0), at S = 1 (the split
// writes the output), a few splits, more splits than the workgroup has lanes
// and one token per split; at D/4 not dividing the workgroup (D=96) and
// over it (D=512, workgroup 64: two column passes); and the counters are read
// back after every step: all 0.
func TestDenseFoldedMerge(t *testing.T) {
	ctx := device(t)
	type fcase struct {
		b, hkv, g, n, d int
		s               Storage
		splits          []int
		opt             DenseOptions
	}
	seed := uint64(300)
	for _, c := range []fcase{
		{1, 2, 4, 1<<10 + 11, 128, F16, []int{1, 2, 7, 345, 1<<10 + 11}, DenseOptions{}},
		{2, 3, 1, 333, 64, F32, []int{1, 5, 129}, DenseOptions{}},
		{1, 1, 3, 200, 96, F32, []int{13}, DenseOptions{}},
		{1, 2, 2, 100, 512, F32, []int{1, 5}, DenseOptions{Workgroup: 64}},
		{2, 2, 5, 77, 64, F16, []int{3}, DenseOptions{Tile: 2}},
	} {
		for _, splits := range c.splits {
			seed++
			rng := rand.New(rand.NewPCG(seed, 3))
			kv := randomKV(rng, c.b, c.hkv, c.n, c.d, c.s)
			qs := [][]float32{normal(rng, c.b*c.hkv*c.g*c.d, 2), normal(rng, c.b*c.hkv*c.g*c.d, 2)}
			for _, separate := range []bool{false, true} {
				opt := c.opt
				opt.Storage, opt.Merge, opt.Split.Splits = c.s, mergeMode(separate), splits
				m, err := ctx.NewDense(opt)
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Prefill(kv); err != nil {
					t.Fatal(err)
				}
				for step, q := range qs {
					where := fmt.Sprintf("B=%d Hkv=%d G=%d N=%d D=%d %s Splits=%d separate merge %v step %d", c.b, c.hkv, c.g, c.n, c.d, c.s, splits, separate, step)
					res, err := m.Decode(q, ref.Full)
					if err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					// Plan keeps every split non-empty: S = ceil(N / ceil(N / Splits)).
					if l := (c.n + splits - 1) / splits; m.splits != (c.n+l-1)/l {
						t.Fatalf("%s: planned %d splits, want %d", where, m.splits, (c.n+l-1)/l)
					}
					where += fmt.Sprintf(" (S=%d)", m.splits)
					checkDense(t, where, res.Out, q, kv)
					checkCounters(t, where, ctx, m.cnt)
				}
				m.Close()
			}
		}
	}
}

// TestDenseMergeSwitch decodes with one Dense whose merge changes between
// steps, as MergeAuto's choice does when the cache grows across
// denseSeparateMergeSplits splits (on a GPU; a CPU device always folds, so
// the test sets the mode itself): the split kernel, the merge kernel and
// their descriptor sets must follow, and the counters stay 0.
func TestDenseMergeSwitch(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(31, 7))
	kv := randomKV(rng, 1, 2, 500, 64, F16)
	m, err := ctx.NewDense(DenseOptions{Storage: F16, Split: SplitPolicy{Splits: 7}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	for step, mode := range []MergeMode{MergeFold, MergeSeparate, MergeSeparate, MergeFold, MergeSeparate} {
		m.opt.Merge = mode
		q := normal(rng, 2*4*64, 2)
		res, err := m.Decode(q, ref.Full)
		if err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("step %d, merge mode %d", step, mode)
		merged := slices.ContainsFunc(m.Timings().Stages, func(st Stage) bool { return st.Name == "merge" })
		if merged != (mode == MergeSeparate) || (m.merge != nil) != (mode == MergeSeparate) {
			t.Errorf("%s: merge stage %v, merge kernel %v", where, merged, m.merge != nil)
		}
		checkDense(t, where, res.Out, q, kv)
		checkCounters(t, where, ctx, m.cnt)
	}
}

// checkCounters fails the test unless every uint32 of the split counters cnt
// is 0, as every dispatch of a split kernel must leave them.
func checkCounters(t *testing.T, where string, ctx *Context, cnt *Buffer) {
	t.Helper()
	if cnt == nil {
		t.Fatalf("%s: no split counters", where)
	}
	w := make([]byte, cnt.Size())
	if err := ctx.Read(cnt, 0, w); err != nil {
		t.Fatalf("%s: reading the split counters: %v", where, err)
	}
	for i := 0; i < len(w); i += 4 {
		if v := uint32(w[i]) | uint32(w[i+1])<<8 | uint32(w[i+2])<<16 | uint32(w[i+3])<<24; v != 0 {
			t.Errorf("%s: split counter %d is %d after the step, want 0", where, i/4, v)
		}
	}
}

// TestAcceptance runs the project's acceptance suite (ref/reftest) on dense
// attention, with float32 and float16 caches (the top-k methods run it in
// sparse_acceptance_test.go).
func TestAcceptance(t *testing.T) {
	ctx := device(t)
	dense := []string{"dense"}
	t.Run("f32", func(t *testing.T) {
		reftest.Run(t, ctx.NewMethod, reftest.Config{Names: dense, Dims: []int{64, 128, 256}})
	})
	t.Run("f16", func(t *testing.T) {
		reftest.Run(t, ctx.Factory(DenseOptions{Storage: F16}), reftest.Config{Names: dense, Dims: []int{64, 128}, FP16: true})
	})
}

// BenchmarkDenseDecode times decode steps with GPU timestamps and reports
// the K/V bytes read per second of the split and merge kernels (the
// bandwidth the kernel reaches), and the kernels' time per step: the split
// with the merge folded in (merge-µs 0), and at B=1, N=32K also with
// MergeSeparate (the "_sepmerge" cases). Shapes are Llama-3-8B's attention
// (Hkv=8, G=4, D=128) at several N; on a CPU device only the smallest runs.
// HATA_BENCH_SWEEP=1 adds a sweep of the kernel's options at B=1, N=32K,
// fp16.
//
//	go test -run '^$' -bench DenseDecode -benchtime 20x ./vk/
func BenchmarkDenseDecode(b *testing.B) {
	if testCtx == nil {
		b.Skipf("no Vulkan device: %v", testErr)
	}
	ctx := testCtx
	type benchCase struct {
		b, hkv, g, n, d int
		s               Storage
		opt             DenseOptions
	}
	cases := []benchCase{
		{1, 8, 4, 4096, 128, F16, DenseOptions{}},
		{1, 8, 4, 32768, 128, F16, DenseOptions{}},
		{1, 8, 4, 32768, 128, F16, DenseOptions{Merge: MergeSeparate}},
		{1, 8, 4, 32768, 128, F32, DenseOptions{}},
		{8, 8, 4, 32768, 128, F16, DenseOptions{}},
		{1, 8, 4, 131072, 128, F16, DenseOptions{}},
	}
	if os.Getenv("HATA_BENCH_SWEEP") != "" {
		for _, tile := range []int{1, 2, 4} {
			for _, wg := range []int{128, 256} {
				for _, target := range []int{264, 528, 1056} {
					cases = append(cases, benchCase{1, 8, 4, 32768, 128, F16,
						DenseOptions{Tile: tile, Workgroup: wg, Split: SplitPolicy{TargetWorkgroups: target}}})
				}
			}
		}
	}
	kvs := map[[4]int]*ref.KV{} // shared by the cases of one shape
	for _, c := range cases {
		if ctx.Info.Type == DeviceCPU && c.n*c.b > 4096 {
			continue
		}
		name := fmt.Sprintf("B%d_Hkv%d_G%d_N%d_D%d_%s", c.b, c.hkv, c.g, c.n, c.d, c.s)
		if o := c.opt; o.Tile != 0 || o.Workgroup != 0 || o.Split != (SplitPolicy{}) {
			name += fmt.Sprintf("_tile%d_wg%d_target%d", c.opt.Tile, c.opt.Workgroup, c.opt.Split.TargetWorkgroups)
		}
		if c.opt.Merge == MergeSeparate {
			name += "_sepmerge"
		}
		b.Run(name, func(b *testing.B) {
			// A cheap deterministic fill: values in [-1, 1) from an LCG.
			x := uint32(1)
			fill := func(n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					x = x*1664525 + 1013904223
					v[i] = float32(int32(x>>8)-1<<23) / (1 << 23)
				}
				return v
			}
			shape := [4]int{c.b, c.hkv, c.n, c.d}
			kv := kvs[shape]
			if kv == nil {
				var err error
				if kv, err = ref.NewKV(c.b, c.hkv, c.n, c.d, fill(c.b*c.hkv*c.n*c.d), fill(c.b*c.hkv*c.n*c.d)); err != nil {
					b.Fatal(err)
				}
				kvs = map[[4]int]*ref.KV{shape: kv}
			}
			opt := c.opt
			opt.Storage = c.s
			m, err := ctx.NewDense(opt)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			if err := m.Prefill(kv); err != nil {
				b.Fatal(err)
			}
			q := fill(c.b * c.hkv * c.g * c.d)
			// Warm up for 300 ms: pipelines, buffers, and the GPU's clocks,
			// which idle low while the host prepares the data.
			for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
				if _, err := m.Decode(q, ref.Full); err != nil {
					b.Fatal(err)
				}
			}
			var split, merge float64
			b.ResetTimer()
			for range b.N {
				if _, err := m.Decode(q, ref.Full); err != nil {
					b.Fatal(err)
				}
				t := m.Timings()
				split += t.Get("split")
				merge += t.Get("merge")
			}
			bytes := float64(2 * c.b * c.hkv * c.n * c.d * c.s.bytes())
			n := float64(b.N)
			b.ReportMetric(bytes/((split+merge)/n), "GB/s")
			b.ReportMetric(split/n/1e3, "split-µs")
			b.ReportMetric(merge/n/1e3, "merge-µs")
			b.ReportMetric(float64(m.splits), "splits")
		})
	}
}

// TestDenseDefaults checks the options NewDense fills in: the tile left to
// denseTile's rule, 3 split workgroups per compute unit (BENCHMARKS.md, runs
// 33-34 and 37-38), and that set options are kept.
func TestDenseDefaults(t *testing.T) {
	ctx := device(t)
	m, err := ctx.NewDense(DenseOptions{Storage: F16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.opt.Tile != 0 {
		t.Errorf("default tile %d, want 0 (denseTile's rule)", m.opt.Tile)
	}
	if cu := ctx.Info.ComputeUnits; cu > 0 && m.opt.Split.TargetWorkgroups != 3*cu {
		t.Errorf("default target workgroups %d, want 3 per compute unit (%d)", m.opt.Split.TargetWorkgroups, 3*cu)
	}
	set, err := ctx.NewDense(DenseOptions{Storage: F16, Tile: 2, Split: SplitPolicy{TargetWorkgroups: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if set.opt.Tile != 2 || set.opt.Split.TargetWorkgroups != 100 {
		t.Errorf("set options became tile %d, target %d; want 2, 100", set.opt.Tile, set.opt.Split.TargetWorkgroups)
	}
}

// TestDenseTileRule checks denseTile at its bounds and at the H200's target
// shapes (run 137, BENCHMARKS.md), and that a Dense whose rule gives another
// tile after an append switches its split kernel and stays exact: the rule is
// replaced by one that switches at 40 tokens per split, which lavapipe (a CPU
// device, tile 1 by the real rule) would otherwise never do.
func TestDenseTileRule(t *testing.T) {
	for _, c := range []struct {
		dev       DeviceType
		len, want int
	}{
		{DeviceDiscrete, 1, 3}, {DeviceDiscrete, 511, 3}, {DeviceDiscrete, 512, 4}, {DeviceDiscrete, 4095, 4},
		{DeviceDiscrete, 4096, 5}, {DeviceDiscrete, 1 << 20, 5}, {DeviceIntegrated, 600, 4},
		{DeviceCPU, 1, 1}, {DeviceCPU, 5000, 1},
	} {
		if got := denseTile(c.dev, c.len); got != c.want {
			t.Errorf("denseTile(%v, %d) = %d, want %d", c.dev, c.len, got, c.want)
		}
	}
	// The H200 (132 compute units, 3 workgroups each): B1/8K, B1/32K and
	// B8/32K of Llama-3.1-8B (8 KV heads).
	h200 := SplitPolicy{TargetWorkgroups: 3 * 132}
	for _, c := range []struct{ b, n, want int }{{1, 8192, 3}, {1, 32768, 4}, {8, 32768, 5}} {
		_, l := h200.Plan(c.n, c.b*8, 132, 65535)
		if got := denseTile(DeviceDiscrete, l); got != c.want {
			t.Errorf("B%d/N=%d on the H200: splits of %d tokens get tile %d, want %d", c.b, c.n, l, got, c.want)
		}
	}

	ctx := device(t)
	defer func(r func(DeviceType, int) int) { denseTileRule = r }(denseTileRule)
	denseTileRule = func(_ DeviceType, splitLen int) int {
		if splitLen < 40 {
			return 2
		}
		return 3
	}
	const b, hkv, g, d, n0 = 1, 2, 4, 64, 70
	rng := rand.New(rand.NewPCG(3, 11))
	kv := randomKV(rng, b, hkv, n0, d, F16)
	m, err := ctx.NewDense(DenseOptions{Storage: F16, Split: SplitPolicy{Splits: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	cache := kv.Clone()
	for _, c := range []struct{ appends, tile int }{{0, 2}, {12, 3}} { // splits of 35, then 41 tokens
		for range c.appends {
			k, v := normal(rng, b*hkv*d, 1), normal(rng, b*hkv*d, 1)
			reftest.RoundHalf(k)
			reftest.RoundHalf(v)
			for _, a := range []interface{ Append(k, v []float32) error }{m, cache} {
				if err := a.Append(k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		q := normal(rng, b*hkv*g*d, 2)
		res, err := m.Decode(q, ref.Full)
		if err != nil {
			t.Fatalf("N=%d: Decode: %v", m.Len(), err)
		}
		if got := m.split.spec.Spec[4]; m.tile != c.tile || got != uint32(c.tile) {
			t.Errorf("N=%d (splits of %d): tile %d, split kernel's TILE %d; want %d", m.Len(), m.splitLen, m.tile, got, c.tile)
		}
		checkDense(t, fmt.Sprintf("N=%d tile %d", m.Len(), m.tile), res.Out, q, cache)
	}
}

// TestSparseSplitDefaults checks the split policy that newSparseCore gives
// the top-k methods on a device of 132 compute units (the H200): 128
// entries a split filled toward sparseFillTokens (16; 64 for HATA's
// onekernel variant: B1/32K's 511 entries over 8 rows in 32 splits, or 8),
// up to 64 splits a row (B1/256K's 4089 entries over 8 rows: 64), 32 for
// the onekernel variant, and a FillMaxSplits set by the caller, or by a
// benchmark's Tuning, kept.
func TestSparseSplitDefaults(t *testing.T) {
	ctx := &Context{Info: DeviceInfo{Type: DeviceDiscrete, ComputeUnits: 132, SubgroupOps: SubgroupArithmetic}}
	for _, c := range []struct {
		variant       string
		fill          int // SparseOptions' FillMaxSplits
		want, want32K int // splits at B1/256K and B1/32K
	}{{"", 0, 64, 32}, {VariantThreeKernel, 0, 64, 32}, {VariantOneKernel, 0, 32, 8}, {VariantOneKernel, 48, 48, 8}, {"", 40, 40, 32}} {
		core, err := newSparseCore(ctx, "hata", 128, SparseOptions{Storage: F16, Variant: c.variant, Split: SplitPolicy{FillMaxSplits: c.fill}})
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := core.opt.Split.Plan(4089, 8, 132, 65535); s != c.want {
			t.Errorf("variant %q, FillMaxSplits %d: %+v gives %d splits at B1/256K, want %d", c.variant, c.fill, core.opt.Split, s, c.want)
		}
		if s, _ := core.opt.Split.Plan(511, 8, 132, 65535); s != c.want32K {
			t.Errorf("variant %q, FillMaxSplits %d: %+v gives %d splits at B1/32K, want %d", c.variant, c.fill, core.opt.Split, s, c.want32K)
		}
	}
	o := Tuning{FillMaxSplits: 40}.applySparse(SparseOptions{Storage: F16, Variant: VariantOneKernel})
	core, err := newSparseCore(ctx, "hata", 128, o)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := core.opt.Split.Plan(4089, 8, 132, 65535); s != 40 {
		t.Errorf("fillmaxsplits=40: %+v gives %d splits at B1/256K, want 40", core.opt.Split, s)
	}
}

// TestSparseTileRule checks sparseTile at its bounds and at the shapes the
// H200 measured (Llama-3.1-8B, 1.56%; session 25, runs 288-289: tile 2 where
// a slot walks at most 16 entries of a split, 4 where it walks 32 or more),
// with newSparseCore's split policy on 132 compute units and sparse_split's
// 4 slots there (128 lanes, 32 a token), and that a HATA whose rule gives
// another tile at another budget switches its attention kernel and stays
// exact: the rule is replaced by one that switches at 8 entries per split,
// which lavapipe (a CPU device, tile 1 by the real rule) would otherwise
// never do.
func TestSparseTileRule(t *testing.T) {
	for _, c := range []struct {
		dev                   DeviceType
		splitLen, nslot, want int
	}{
		{DeviceDiscrete, 1, 4, 2}, {DeviceDiscrete, 64, 4, 2}, {DeviceDiscrete, 65, 4, 4}, {DeviceDiscrete, 127, 4, 4},
		{DeviceIntegrated, 16, 1, 2}, {DeviceIntegrated, 17, 1, 4}, {DeviceCPU, 1, 4, 1}, {DeviceCPU, 1024, 4, 1},
	} {
		if got := sparseTile(c.dev, c.splitLen, c.nslot); got != c.want {
			t.Errorf("sparseTile(%v, %d, %d) = %d, want %d", c.dev, c.splitLen, c.nslot, got, c.want)
		}
	}
	h200 := &Context{Info: DeviceInfo{Type: DeviceDiscrete, ComputeUnits: 132, SubgroupOps: SubgroupArithmetic}}
	core, err := newSparseCore(h200, "hata", 128, SparseOptions{Storage: F16})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ b, n, want int }{
		{1, 8192, 4}, {1, 16384, 2}, {1, 32768, 2}, {1, 131072, 2}, {1, 262144, 2},
		{2, 65536, 2}, {4, 32768, 2}, {4, 65536, 2}, {8, 8192, 4}, {8, 16384, 2}, {8, 32768, 2},
		{8, 65536, 4}, {8, 131072, 4},
	} {
		k := int(0.0156 * float64(c.n))
		_, l := core.opt.Split.Plan(k, c.b*8, 132, 65535)
		if got := sparseTile(DeviceDiscrete, l, 4); got != c.want {
			t.Errorf("B%d/N=%d on the H200: splits of %d entries get tile %d, want %d", c.b, c.n, l, got, c.want)
		}
	}

	ctx := device(t)
	defer func(r func(DeviceType, int, int) int) { sparseTileRule = r }(sparseTileRule)
	sparseTileRule = func(_ DeviceType, splitLen, _ int) int {
		if splitLen <= 8 {
			return 2
		}
		return 3
	}
	rng := rand.New(rand.NewPCG(5, 9))
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 120, D: 64}
	w := reftest.DyadicHashWeights(rng, s.Hkv, s.D, 128)
	kv := reftest.DyadicKV(rng, s, true)
	m, want := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16, Split: SplitPolicy{Splits: 2}}, kv)
	defer m.Close()
	for _, c := range []struct{ k, tile int }{{12, 2}, {40, 3}, {16, 2}} { // splits of 6, 20 and 8 entries
		b := ref.Budget{K: c.k}
		stepHATA(t, rng, fmt.Sprintf("budget %v", b), kv, s.Hq, b, want, m)
		a := m.lastAttend
		if a == nil || a.split == nil {
			t.Fatalf("budget %v: no sparse_split in the last step", b)
		}
		if got := a.split.spec.Spec[5]; got != uint32(c.tile) {
			t.Errorf("budget %v (splits of %d entries): sparse_split's TILE (id 5) %d, want %d", b, a.length, got, c.tile)
		}
	}
}
