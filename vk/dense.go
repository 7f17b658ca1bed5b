package vk

import (
	"cmp"
	"fmt"
	"math"

	"github.com/hata-go/hata/ref"
)

// Storage is the element type of the key/value cache on the device; the
// arithmetic is float32 either way.
type Storage int

// The storage types.
const (
	F32 Storage = iota // float32
	F16                // IEEE binary16, rounded to nearest even on upload
)

// String returns "f32" or "f16".
func (s Storage) String() string { return [...]string{"f32", "f16"}[s] }

// bytes returns the size of one element.
func (s Storage) bytes() int { return [...]int{4, 2}[s] }

// vec returns the elements of one 16-byte vector (KV_VEC in kv.glsl).
func (s Storage) vec() int { return 16 / s.bytes() }

// DenseOptions configure a Dense. The zero value is the default of every
// field.
type DenseOptions struct {
	Storage Storage
	// Workgroup is the split kernel's workgroup size; default 128. It must be
	// a multiple of the device's largest subgroup size; it is halved while
	// the kernel's shared memory would not fit.
	Workgroup int
	// Tile is the tokens each slot scores between two rescales of its
	// accumulator (and loads ahead); 0 (the default) chooses it per step
	// from the tokens of a split (denseTile): 3 below 512, 4 below 4096,
	// else 5; 1 on a CPU device. On an H200, with 3 split workgroups per
	// compute unit (the default TargetWorkgroups here), tile 4 was 8-16%
	// faster than tile 2 with 4 per unit (runs 33-34), tile 5 up to 4%
	// faster than 4 at long splits, 6 to 8 much slower (runs 37-38), and
	// at short splits the smaller tiles faster: 3 by 5-12% below 512
	// tokens, 4 by 1-3% from 512 to 2731 (run 137; BENCHMARKS.md).
	Tile int
	// LanesPerToken is the split kernel's TPT, the lanes that share one K/V
	// row (a power of two, at most the smallest subgroup size, dividing the
	// row's 16-byte vectors); 0: the largest such number up to 32.
	LanesPerToken int
	// Split chooses the number of splits S; its TargetWorkgroups defaults to
	// 3 per compute unit here (4 for the top-k methods): tiles of 4 hold
	// twice the bytes in flight per slot, and three such workgroups fit a
	// compute unit at once where four would spill into a second wave.
	Split SplitPolicy
	// Reserve is the token capacity allocated beyond the prefill's N, so that
	// Append does not reallocate; default 256. Capacity grows by doubling
	// when it runs out.
	Reserve int
	// HostCache keeps K and V in host memory (a Host buffer), which the
	// split kernel streams over the bus: dense attention over an offloaded
	// cache, HATA-off's baseline (SparseOptions.HostCache).
	HostCache bool
	// PairedKV keeps a token's K and V side by side in one buffer, as
	// SparseOptions.PairedKV does (dense over the same layout as a paired
	// HATA-off).
	PairedKV bool
	// Merge chooses how the S split partials are merged: in the split
	// kernel's last workgroup of every cache row (MergeFold) or by
	// dense_merge in a dispatch of its own, stage "merge", behind a pipeline
	// barrier (MergeSeparate); the default, MergeAuto, merges separately
	// where a row has at least denseSeparateMergeSplits splits
	// (denseMergeSeparately).
	Merge MergeMode
	// Trace, for benchmarks, builds dense_split with a read of the device
	// clock at each phase of every workgroup (its *_trace entry point), so
	// that AttentionTrace and Traces can say where the split kernel's time
	// goes (DenseTracePhases). It needs DeviceInfo.ShaderClock. The readings
	// cost time (5-8% on the H200, run 133, BENCHMARKS.md): a traced step
	// says what its phases take, not what an untraced step takes.
	Trace bool
	// Pieces, on (PiecesOn) and where the merge is folded and the step is
	// not traced, cuts the rows' tokens, one row after another, into pieces
	// of equal length, one per workgroup, as many as the plan's waves of
	// Split.TargetWorkgroups hold, instead of S equal splits of every row
	// (SplitPolicy.pieces): where rows*S leaves some of a wave's slots
	// empty, a piece may then span the end of one row and the start of the
	// next. On the H200 the 12 of 132 compute units that hold two of B8's
	// 384 split workgroups instead of three end 40-120 us before the rest,
	// and one row of B8/32K's tokens in 396 splits ran 3.6-4.6 us faster
	// than in 384 (BENCHMARKS.md, session 30, runs 337-338). But the pieces
	// kernel holds 203 registers at tile 5 (168 without), so two
	// workgroups share a compute unit instead of three: it was 28% slower
	// at B8/32K and B8/128K, 1 us slower at B4/32K (tile 4, 167 registers)
	// and 3.4% faster only where S splits a row fill two thirds of the
	// slots (Llama-2-7B's B8/32K, 256 rows of one split: 954 us against
	// 987-991; run 339). With the registers of the splits (run 344, B8/32K)
	// it gains too little: at tile 4 (167 registers either way) 267.4 us
	// against the splits' 268.4 and tile 5's 266.1, and a piece's two
	// segments written out (lab-340: 168 registers at tile 5, twice the
	// code) took 275.9: a piece that crosses a row runs a second segment,
	// with its own first loads and slots' merge (the likely cost, not
	// traced). So PiecesAuto (the default) is off.
	Pieces PiecesMode
}

// PiecesMode is DenseOptions.Pieces.
type PiecesMode int

// The modes of PiecesMode.
const (
	// PiecesAuto: the default, which is off.
	PiecesAuto PiecesMode = iota
	// PiecesOff: S equal splits of every row.
	PiecesOff
	// PiecesOn: equal pieces of all the rows' tokens where the merge is
	// folded and the step not traced.
	PiecesOn
)

// denseSeparateMergeSplits is the fewest splits per row for which MergeAuto
// merges dense's partials in a dispatch of its own.
const denseSeparateMergeSplits = 32

// denseMergeSeparately is MergeAuto's rule for dense: a dispatch of its own
// when a row has at least denseSeparateMergeSplits splits (on GPUs; CPU
// devices fold). The folded merge's last workgroup reads its row's S
// partials a few at a time, so its cost grows with S: on the H200 (runs
// 60-61, BENCHMARKS.md) the separate merge was 0.7-4.1 us faster at every
// batch-1 shape from 8K to 256K tokens (49 splits per row), even at B2/32K
// (24) and 0.5-2.5 us slower at B2/128K, B4 and B8 (6-12 splits).
func denseMergeSeparately(info DeviceInfo, splits int) bool {
	return info.Type != DeviceCPU && splits >= denseSeparateMergeSplits
}

// SplitPolicy chooses S, the splits of flash-decoding: enough workgroups to
// fill the device, but splits long enough to amortise the merge.
type SplitPolicy struct {
	// Splits fixes S (capped at N); 0 chooses it from the fields below.
	Splits int
	// TargetWorkgroups is the number of split workgroups to aim for, B*Hkv*S;
	// default 4 per compute unit of the device (4*132 = 528 on an H200), or
	// 256 when the device does not report its compute units.
	TargetWorkgroups int
	// MinTokens is the fewest tokens per split; default 32.
	MinTokens int
	// FillTokens, when above 0 and below MinTokens: where MinTokens gives
	// two or more splits, they shrink toward FillTokens tokens as long as
	// the workgroups (rows*S) stay within the waves of TargetWorkgroups and
	// a row has at most FillMaxSplits of them. The top-k methods use
	// sparseFillTokens (16; 64 from session 7 to 23, which on the H200 took
	// HATA's step 0.9-1.8 us below no fill at B1/64K, B1/128K, B2/32K-128K,
	// B4/32K-64K and B8/32K, run 98); one split stays one, since a second
	// adds the merge (12.1 against 9.3 us at B1/8K, run 40; BENCHMARKS.md).
	// 0 (dense): off.
	FillTokens int
	// FillMaxSplits bounds the splits per row that FillTokens makes; 0:
	// fillMaxSplits (64). HATA's onekernel variant keeps 32 (SparseOptions).
	FillMaxSplits int
}

// fillMaxSplits is the default bound on the splits per row that FillTokens
// makes (SplitPolicy.FillMaxSplits; the row's merge reads every split's
// partials). 64 since session 20: on the H200,
// 64 splits of 64 entries at B1/256K (8 rows) took HATA's step 0.7-1.1 us
// less than 32 of 128, Quest's 1.9-2.1, the exact top-k's 1.1-1.5 and
// Loki's 1.0-1.6, and 48 at B1/192K 0.4-1.2 less (runs 241-242; 64 had
// been 2.4-2.8 us slower in session 7, run 75, before the merge was a
// dispatch of its own there); 33 instead of 32 at B2/256K was even.
const fillMaxSplits = 64

// Plan returns S and the split length L for n tokens over rows = B*Hkv cache
// rows on a device of cu compute units, at most maxSplits splits:
//
//	T = TargetWorkgroups, W = ceil(rows / T)        (waves of T workgroups)
//	S = clamp(floor(W*T / rows), 1, min(ceil(n / MinTokens), maxSplits))
//	(FillTokens: where 1 < S, S = min(ceil(n / FillTokens), floor(W*T / rows), FillMaxSplits) if larger)
//	L = ceil(n / S), then S = ceil(n / L)
//
// Rounding S down keeps rows*S within whole waves: on an H200, 64 rows get
// S = 8 (512 workgroups, one wave of 528), not 9 (576: a second wave of 48).
//
// so that every split holds at least one token and S*L >= n > (S-1)*L.
func (p SplitPolicy) Plan(n, rows, cu, maxSplits int) (splits, splitLen int) {
	if n < 1 {
		return 1, 1
	}
	s := p.Splits
	if s <= 0 {
		target, minTok := p.defaults(cu)
		// Whole waves: the workgroups rows*S fill ceil(rows/target) waves
		// of target workgroups without a partial last wave.
		rows = max(rows, 1)
		waves := (rows + target - 1) / target
		s = min(waves*target/rows, (n+minTok-1)/minTok)
		if f := p.FillTokens; f > 0 && f < minTok && s > 1 {
			s = max(s, min((n+f-1)/f, waves*target/rows, cmp.Or(p.FillMaxSplits, fillMaxSplits)))
		}
	}
	s = max(1, min(s, n, max(maxSplits, 1)))
	splitLen = (n + s - 1) / s
	return (n + splitLen - 1) / splitLen, splitLen
}

// defaults returns TargetWorkgroups and MinTokens, or where unset (0 or
// less) their defaults on a device of cu compute units: 4 workgroups a
// compute unit (256 where cu is unknown) and 32 tokens. Plan and pieces
// take both from here.
func (p SplitPolicy) defaults(cu int) (target, minTok int) {
	target, minTok = p.TargetWorkgroups, p.MinTokens
	if target <= 0 {
		target = 256
		if cu > 0 {
			target = 4 * cu
		}
	}
	if minTok <= 0 {
		minTok = 32
	}
	return target, minTok
}

// pieceCount is the pieces of pieceLen tokens that rows rows of n tokens
// each, taken one after another, are cut into: the grid of a pieces
// dispatch (Decode) and what prepare checks against the device's limit.
func pieceCount(rows, n, pieceLen int) int { return (rows*n + pieceLen - 1) / pieceLen }

// pieces returns DenseOptions.Pieces' plan for n tokens over rows cache rows,
// where Plan gave splits of each: pieces of pieceLen tokens of all the rows'
// tokens taken one row after another, as many as the waves that rows*splits
// fills of TargetWorkgroups (as Plan defaults it) hold, but none shorter
// than MinTokens (or n); and stride, the most pieces one row's tokens can be
// in (the partials a row can have). Row r's tokens [r*n, (r+1)*n) are in
// pieces r*n/pieceLen to ((r+1)*n-1)/pieceLen; pieceLen <= n, since the
// waves hold at least rows*splits workgroups.
func (p SplitPolicy) pieces(n, rows, splits, cu int) (stride, pieceLen int) {
	target, minTok := p.defaults(cu)
	rows = max(rows, 1)
	waves := (rows*max(splits, 1) + target - 1) / target
	pieceLen = max((rows*n+waves*target-1)/(waves*target), min(minTok, n), 1)
	return (n+pieceLen-1)/pieceLen + 1, pieceLen
}

// Dense is dense decode attention with GQA on the GPU (flash-decoding): the
// vk implementation of ref.DenseMethod.
//
// The cache lives on the device as K, V: [B][Hkv][Cap][D] in the chosen
// Storage, with Cap >= N so that Append writes one token per row in place.
// Decode runs one kernel, dense_split (one workgroup per split s and cache row
// b*Hkv+h): the softmax partials (m, l, o) of the G query heads of the group
// over the split's tokens, reading each K and V row once for all G heads;
// the last workgroup to finish a row (counted in a uint per row, left 0 after
// every dispatch) does the log-sum-exp merge of the row's S partials into
// out: [B][Hq][D], and with S = 1 the split writes out directly. With
// DenseOptions.Merge (MergeSeparate, or MergeAuto at 32 splits per row and
// more), the merge is a second kernel, dense_merge (one
// workgroup per query head), behind a barrier.
//
// Cache rows are bound in chunks of at most maxStorageBufferRange bytes, one
// dispatch per chunk (push constant row_base), so the cache may be larger
// than one binding allows; one row (Cap*D elements) must fit in a binding.
//
// D must be a multiple of 4 (F32) or 8 (F16) and at most 512. F16 storage
// rounds K and V to the nearest half on upload (ties to even, |x| >= 65520
// to infinity); compare it with ref on inputs rounded the same way
// (reftest.RoundHalf). Arithmetic is float32; the float32 error is within
// reftest.CheckClose's bound (twice a naive float32 evaluation's).
//
// A Dense is not safe for concurrent use. Close frees its device memory.
type Dense struct {
	ctx *Context
	opt DenseOptions

	b, hkv, d int // cache shape
	n, cap    int // tokens cached, tokens allocated per row
	// kv is K and V [B*Hkv][Cap][D] in buffers of as many rows as one
	// buffer may bind and allocate (maxRange, maxMemoryAllocationSize); nil
	// before Prefill.
	kv *kvStore

	hq, splits, splitLen int  // the decode shape the buffers below are sized for (pieces: splits is the most pieces a row is in, splitLen a piece's tokens)
	pieces               bool // the split kernel takes pieces of all the rows' tokens (DenseOptions.Pieces)
	tile                 int  // the split kernel's TILE (DenseOptions.Tile, or denseTile's)
	q, qUp               *Buffer
	po, pml              *Buffer
	out, outRB           *Buffer
	cnt                  *Buffer // cnt: [B*Hkv] uint32 finished splits per row, 0 between dispatches
	trace                *Buffer // DenseOptions.Trace: [B*Hkv][S][denseTracePoints] uint32 clock readings, else nil
	traced               bool    // a traced step has run since the last prefill
	split, merge         *Kernel
	splitSets            []*Set
	splitGroups          []kvGroup // the cache's rows of each split set
	mergeSet             *Set
	batch                *Batch
	qup                  queryUpload // writes each step's q by a compute kernel
	timings              Timings

	maxRange uint64 // the binding limit used; tests lower it to force several buffers
}

var _ ref.Method = (*Dense)(nil)

// NewDense returns dense attention on c.
func (c *Context) NewDense(o DenseOptions) (*Dense, error) {
	if o.Storage != F32 && o.Storage != F16 {
		return nil, fmt.Errorf("vk dense: storage %d: want F32 or F16", o.Storage)
	}
	if o.Workgroup == 0 {
		o.Workgroup = 128
	}
	if err := checkLanes(c.Info, o.LanesPerToken); err != nil {
		return nil, fmt.Errorf("vk dense: %w", err)
	}
	if o.Split.TargetWorkgroups == 0 && c.Info.ComputeUnits > 0 {
		o.Split.TargetWorkgroups = 3 * c.Info.ComputeUnits
	}
	if o.Reserve == 0 {
		o.Reserve = 256
	}
	if o.Workgroup < 0 || o.Reserve < 0 {
		return nil, fmt.Errorf("vk dense: negative option in %+v", o)
	}
	if !o.Merge.valid() {
		return nil, fmt.Errorf("vk dense: Merge mode %d: want MergeAuto (0), MergeFold (1) or MergeSeparate (2)", o.Merge)
	}
	if o.Pieces < PiecesAuto || o.Pieces > PiecesOn {
		return nil, fmt.Errorf("vk dense: Pieces mode %d: want PiecesAuto (0), PiecesOff (1) or PiecesOn (2)", o.Pieces)
	}
	if o.Tile < 0 || o.Tile > maxDenseTile {
		return nil, fmt.Errorf("vk dense: Tile %d: want 1 to %d, or 0 for the rule by split length (each slot holds two tiles of K and V rows in registers)", o.Tile, maxDenseTile)
	}
	if o.Trace && !c.Info.ShaderClock {
		return nil, fmt.Errorf("vk dense: Trace needs VK_KHR_shader_clock's device clock, which %s lacks", c.Info.Name)
	}
	return &Dense{ctx: c, opt: o, maxRange: c.Info.Limits.MaxStorageBufferRange}, nil
}

// Name implements ref.Method.
func (m *Dense) Name() string { return "dense" }

// Len returns the number of cached tokens.
func (m *Dense) Len() int { return m.n }

// Cap returns the token capacity of every cache row.
func (m *Dense) Cap() int { return m.cap }

// Timings returns the GPU time of every stage of the last Decode: "upload"
// (q to the device), "poison" (only when the context poisons outputs),
// "split" (with the folded merge), "merge" (only when merged separately) and
// "readback".
func (m *Dense) Timings() Timings { return m.timings }

// checkDim reports whether the kernels support head dimension d in storage
// s; the caller names the method.
func checkDim(d int, s Storage) error {
	if d < 1 || d%s.vec() != 0 {
		return fmt.Errorf("head dim D=%d: the %s kernels read 16-byte vectors, so D must be a positive multiple of %d", d, s, s.vec())
	}
	if d > 4*mergeWorkgroup {
		return fmt.Errorf("head dim D=%d: the kernels' merge of the attention's splits holds at most D=%d", d, 4*mergeWorkgroup)
	}
	return nil
}

// Prefill implements ref.Method: it uploads kv to device-local K and V
// buffers with room for Reserve more tokens. On error no cache is left (a
// decode then fails as one before any prefill).
func (m *Dense) Prefill(kv *ref.KV) error {
	if err := kv.Validate(); err != nil {
		return fmt.Errorf("vk dense: prefill: %w", err)
	}
	if err := checkDim(kv.D, m.opt.Storage); err != nil {
		return fmt.Errorf("vk dense: %w", err)
	}
	m.freeCache()
	m.b, m.hkv, m.d, m.n = kv.B, kv.Hkv, kv.D, kv.N
	if err := m.allocCache(roundUp(kv.N+m.opt.Reserve, 64)); err != nil {
		return err
	}
	rows := m.b * m.hkv
	regions := make([]Region, 0, 2*rows)
	for r := range rows {
		regions = append(regions, m.kv.writes(r, 0, m.encode(kv.K[r][:m.n*m.d]), m.encode(kv.V[r][:m.n*m.d]))...)
	}
	if err := m.ctx.Write(regions...); err != nil {
		m.freeCache() // not a cache it never wrote
		return fmt.Errorf("vk dense: prefill: %w", err)
	}
	return nil
}

// Append implements ref.Method: k and v, [B][Hkv][D], become token N of
// every row. The capacity doubles (on the device) when it is full.
func (m *Dense) Append(k, v []float32) error {
	if m.kv == nil {
		return fmt.Errorf("vk dense: append before prefill")
	}
	want := m.b * m.hkv * m.d
	if len(k) != want || len(v) != want {
		return fmt.Errorf("vk dense: append: len(k)=%d len(v)=%d, want B*Hkv*D = %d*%d*%d = %d", len(k), len(v), m.b, m.hkv, m.d, want)
	}
	if m.n == m.cap {
		if err := m.grow(2 * m.cap); err != nil {
			return err
		}
	}
	regions := make([]Region, 0, 2*m.b*m.hkv)
	for r := range m.b * m.hkv {
		regions = append(regions, m.kv.writes(r, m.n, m.encode(k[r*m.d:(r+1)*m.d]), m.encode(v[r*m.d:(r+1)*m.d]))...)
	}
	if err := m.ctx.Write(regions...); err != nil {
		return fmt.Errorf("vk dense: append: %w", err)
	}
	m.n++
	return nil
}

// Decode implements ref.Method: q: [B][Hq][D] attends over every cached
// token; the budget is not used. It returns Out: [B][Hq][D].
func (m *Dense) Decode(q []float32, _ ref.Budget) (*ref.Result, error) {
	if m.kv == nil {
		return nil, fmt.Errorf("vk dense: decode before prefill")
	}
	if m.n < 1 {
		return nil, fmt.Errorf("vk dense: decode over an empty cache (N=0)")
	}
	bd := m.b * m.d
	if len(q) == 0 || len(q)%bd != 0 || (len(q)/bd)%m.hkv != 0 {
		return nil, fmt.Errorf("vk dense: q: len %d, want B*Hq*D with B=%d D=%d and Hq a multiple of Hkv=%d", len(q), m.b, m.d, m.hkv)
	}
	hq := len(q) / bd
	if err := m.prepare(hq); err != nil {
		return nil, err
	}
	copy(m.qUp.Bytes(), f32Bytes(q))
	outBytes := uint64(4 * len(q))

	b := m.batch
	if err := b.Begin(); err != nil {
		return nil, err
	}
	b.Stage("upload")
	if err := m.qup.record(m.ctx, b, m.q.Range(0, outBytes), m.qUp.Range(0, outBytes)); err != nil {
		return nil, fmt.Errorf("vk dense: %w", err)
	}
	b.Barrier()
	if m.ctx.poison {
		b.Stage("poison")
		b.Fill(m.po.Whole(), NaNBits)
		b.Fill(m.pml.Whole(), NaNBits)
		b.Fill(m.out.Whole(), NaNBits)
		if m.trace != nil {
			b.Fill(m.trace.Whole(), NaNBits) // a workgroup that writes none stands still (Summary)
		}
		b.Barrier()
		out := bytesF32(m.outRB.Bytes())
		for i := range out {
			out[i] = float32(math.NaN())
		}
	}
	b.Stage("split")
	g := hq / m.hkv
	for c, set := range m.splitSets {
		base, nr := m.splitGroups[c].row0, m.splitGroups[c].rows
		x, y := m.splits, nr
		if m.pieces {
			x, y = pieceCount(nr, m.n, m.splitLen), 1
		}
		b.Dispatch(m.split, set, densePush{
			N:        uint32(m.n),
			Cap:      uint32(m.cap),
			Hkv:      uint32(m.hkv),
			RowBase:  uint32(base),
			SplitLen: uint32(m.splitLen),
			Splits:   uint32(m.splits),
			Scale:    float32(1 / math.Sqrt(float64(m.d))),
			Rows:     uint32(nr),
		}, uint32(x), uint32(y), 1)
	}
	b.Barrier()
	if m.merge != nil {
		b.Stage("merge")
		b.Dispatch(m.merge, m.mergeSet, mergePush{Splits: uint32(m.splits)}, uint32(hq), uint32(m.b), 1)
		b.Barrier()
	}
	b.Stage("readback")
	b.Copy(m.outRB.Range(0, outBytes), m.out.Range(0, outBytes))
	t, err := b.Submit()
	if err != nil {
		return nil, fmt.Errorf("vk dense: decode (G=%d, S=%d): %w", g, m.splits, err)
	}
	m.timings = t
	m.traced = m.opt.Trace
	if err := m.outRB.invalidate(); err != nil {
		return nil, err
	}
	out := make([]float32, len(q))
	copy(out, bytesF32(m.outRB.Bytes()))
	return &ref.Result{Out: out}, nil
}

// densePush mirrors the push constants of dense_split.glsl.
type densePush struct {
	N        uint32  // cached tokens
	Cap      uint32  // row stride of K and V, in tokens
	Hkv      uint32  // KV heads
	RowBase  uint32  // cache row at offset 0 of the K/V bindings
	SplitLen uint32  // tokens per split (pieces: per piece)
	Splits   uint32  // S (pieces: the most pieces a row's tokens are in)
	Scale    float32 // 1/sqrt(D)
	Rows     uint32  // cache rows of this dispatch (pieces)
}

// mergeWorkgroup is the merge kernel's workgroup size: a power of two, at
// least D/4.
const mergeWorkgroup = 128

// mergePush mirrors the push constants of dense_merge.comp.
type mergePush struct {
	Splits uint32 // S
}

// prepare sizes the decode buffers, kernels and descriptor sets for hq query
// heads and the current N.
func (m *Dense) prepare(hq int) error {
	c := m.ctx
	lim := c.Info.Limits
	rows := m.b * m.hkv
	qBytes := uint64(m.b * hq * m.d * 4)
	maxSplits := int(min(m.maxRange/qBytes, uint64(lim.MaxComputeWorkGroupCount[0])))
	if maxSplits < 1 {
		return fmt.Errorf("vk dense: q of %s is over maxStorageBufferRange %s", bytesString(qBytes), bytesString(m.maxRange))
	}
	splits, splitLen := m.opt.Split.Plan(m.n, rows, c.Info.ComputeUnits, maxSplits)
	g := hq / m.hkv
	separate := m.opt.Merge.separate(denseMergeSeparately(c.Info, splits))
	pieces := m.opt.Pieces == PiecesOn && !separate && !m.opt.Trace
	if pieces {
		uniform, uniformLen := splits, splitLen
		splits, splitLen = m.opt.Split.pieces(m.n, rows, splits, c.Info.ComputeUnits)
		most := 0 // the most pieces of one dispatch
		for _, gr := range m.kv.groups(int(lim.MaxComputeWorkGroupCount[1])) {
			most = max(most, pieceCount(gr.rows, m.n, splitLen))
		}
		if splits > maxSplits || most > int(lim.MaxComputeWorkGroupCount[0]) {
			pieces, splits, splitLen = false, uniform, uniformLen
		}
	}
	if separate && (hq > int(lim.MaxComputeWorkGroupCount[0]) || m.b > int(lim.MaxComputeWorkGroupCount[1])) {
		return fmt.Errorf("vk dense: merge grid Hq=%d x B=%d over maxComputeWorkGroupCount %v", hq, m.b, lim.MaxComputeWorkGroupCount)
	}
	tile := m.opt.Tile
	if tile == 0 {
		tile = denseTileRule(c.Info.Type, splitLen)
	}
	// The kernels, like the shape below, become m's only once every buffer
	// and set is ready: a step that fails on the way leaves m's kernels
	// those of m.hq, m.tile and m.pieces, which the next step compares with.
	split, merge := m.split, m.merge
	newKernels := m.split == nil || hq != m.hq || separate != (m.merge != nil) || tile != m.tile || pieces != m.pieces
	if newKernels {
		var err error
		if split, err = m.splitKernel(g, tile, separate, pieces); err != nil {
			return err
		}
		merge = nil
		if separate { // checkDim, at every prefill, holds D within the merge's 4*mergeWorkgroup
			if merge, err = c.SharedKernel(KernelSpec{Shader: "dense_merge", Bindings: 3, Push: mergePush{}, Spec: []uint32{mergeWorkgroup, uint32(m.d)}}); err != nil {
				return err
			}
		}
	}
	grow := func(buf **Buffer, name string, size uint64, kind MemoryKind) (bool, error) {
		if *buf != nil && (*buf).size >= size {
			return false, nil
		}
		(*buf).Free()
		nb, err := c.NewBuffer(name, size, kind)
		*buf = nb
		return true, err
	}
	changed := false
	for _, a := range []struct {
		buf  **Buffer
		name string
		size uint64
		kind MemoryKind
	}{
		{&m.q, "dense q", qBytes, DeviceLocal},
		{&m.qUp, "dense q upload", qBytes, Upload},
		{&m.out, "dense out", qBytes, DeviceLocal},
		{&m.outRB, "dense out readback", qBytes, Readback},
		{&m.po, "dense partial o", uint64(splits) * qBytes, DeviceLocal},
		{&m.pml, "dense partial m,l", uint64(splits*m.b*hq) * 8, DeviceLocal},
		{&m.trace, "dense trace", m.traceBytes(splits), DeviceLocal},
	} {
		if a.size == 0 {
			continue
		}
		ch, err := grow(a.buf, a.name, a.size, a.kind)
		if err != nil {
			return fmt.Errorf("vk dense: %w", err)
		}
		changed = changed || ch
	}
	if m.batch == nil {
		b, err := c.NewBatch()
		if err != nil {
			return err
		}
		m.batch = b
	}
	// The counters of the folded merge start at 0, and every dispatch leaves
	// them so: they are zeroed once, here, when (re)allocated.
	newCnt, err := grow(&m.cnt, "dense split counters", uint64(rows)*4, DeviceLocal)
	if err != nil {
		return fmt.Errorf("vk dense: %w", err)
	}
	if newCnt {
		changed = true
		b := m.batch
		if err := b.Begin(); err != nil {
			return err
		}
		b.Fill(m.cnt.Whole(), 0)
		if _, err := b.Submit(); err != nil {
			m.cnt.Free()
			m.cnt = nil
			return fmt.Errorf("vk dense: zeroing the split counters: %w", err)
		}
	}
	if changed || newKernels || m.splitSets == nil || hq != m.hq || splits != m.splits || pieces != m.pieces {
		m.freeSets()
		// One set per run of rows inside one buffer of the cache, at most
		// maxComputeWorkGroupCount[1] rows each.
		poBytes := uint64(splits) * qBytes
		pmlBytes := uint64(splits*m.b*hq) * 8
		for _, g := range m.kv.groups(int(lim.MaxComputeWorkGroupCount[1])) {
			ranges := []Range{m.q.Range(0, qBytes), g.k, g.v,
				m.po.Range(0, poBytes), m.pml.Range(0, pmlBytes), m.out.Range(0, qBytes), m.cnt.Range(0, uint64(rows)*4)}
			if m.opt.Trace {
				ranges = append(ranges, m.trace.Range(0, m.traceBytes(splits)))
			}
			set, err := split.NewSet(ranges...)
			if err != nil {
				m.freeSets() // not some of the groups' sets: the next step makes them all
				return err
			}
			m.splitSets = append(m.splitSets, set)
			m.splitGroups = append(m.splitGroups, g)
		}
		if merge != nil {
			set, err := merge.NewSet(m.po.Range(0, poBytes), m.pml.Range(0, pmlBytes), m.out.Range(0, qBytes))
			if err != nil {
				m.freeSets()
				return err
			}
			m.mergeSet = set
		}
	}
	m.split, m.merge = split, merge
	m.hq, m.splits, m.splitLen, m.tile, m.pieces = hq, splits, splitLen, tile, pieces
	return nil
}

// maxDenseTile bounds DenseOptions.Tile, as SparseOptions.Tile is bounded:
// on the H200 tiles past 5 already spill into fewer workgroups per compute
// unit (BENCHMARKS.md, session 6), and a CPU device's compiler takes minutes
// over a kernel unrolled much further.
const maxDenseTile = 16

// denseTileRule is the tile rule of DenseOptions.Tile = 0; a variable so that
// a test can make lavapipe (a CPU device, tile 1) switch tiles between steps.
var denseTileRule = denseTile

// denseTile returns the split kernel's tile for splits of splitLen tokens on
// a device of type dev: on a GPU 3 below 512 tokens, 4 below 4096, else 5; on
// a CPU 1 (no latency to hide, and LLVM compiles the unrolled tile slowly).
// A slot loads the next tile while it scores one, so two tiles are
// requested before its first arithmetic: a short split with long tiles
// waits for loads it cannot overlap; a long split gains from more bytes in
// flight per round.
// Measured on the H200 (run 137, BENCHMARKS.md): at 168 and 335 tokens per
// split tile 3 beat 5 by 11% and 5%; at 669-2731 tile 4 beat 5 by 0-3%; at
// 5462 (B4/64K, B8/32K) tile 5 beat 4 by 1%; from 3343 to 4681 the two were
// within 0.8% (run 147).
func denseTile(dev DeviceType, splitLen int) int {
	switch {
	case dev == DeviceCPU:
		return 1
	case splitLen < 512:
		return 3
	case splitLen < 4096:
		return 4
	}
	return 5
}

// splitSoftmaxShared returns the bytes of shared memory split_softmax.glsl
// declares for nslot slots, head dimension d and group size g: sh_m and sh_l
// (nslot*g floats each), sh_o (nslot rows of d floats) and sh_last.
func splitSoftmaxShared(nslot, d, g int) int {
	return 2*nslot*g*4 + nslot*d*4 + 4
}

// listMergeShared returns the shared memory, in bytes, of split_softmax.glsl
// with MERGE_HEADS and the index list of maxSplitLen entries kept in sh_o
// (IDX_VEC4, sparse_split and hata_step): sh_m, sh_l, and sh_o holding every
// head's nslot rows where they take at most 8 KiB (one head's otherwise) or
// the list, whichever is larger, and sh_last.
func listMergeShared(nslot, d, g int) int {
	heads := 1
	if nslot*g*d*4 <= 8192 {
		heads = g
	}
	return 2*nslot*g*4 + max(nslot*d*4*heads, 4*maxSplitLen) + 4
}

// splitKernel returns the split kernel for group size g and tile tile: lanes
// per token TPT the largest power of two <= min(smallest subgroup, 32)
// dividing D/KV_VEC, and the workgroup halved until its shared memory fits;
// the merge folded in unless separate; pieces of all the rows' tokens with
// pieces, splits of each row without.
func (m *Dense) splitKernel(g, tile int, separate, pieces bool) (*Kernel, error) {
	info := m.ctx.Info
	tpt, shader, err := splitLanes(info, "dense_split", m.d, m.opt.Storage, m.opt.LanesPerToken)
	if err != nil {
		return nil, fmt.Errorf("vk dense: %v", err)
	}
	wg := m.opt.Workgroup
	shared := func(wg int) int { return splitSoftmaxShared(wg/tpt, m.d, g) }
	for wg > int(info.MaxSubgroupSize) && wg/2%tpt == 0 && shared(wg) > int(info.Limits.MaxComputeSharedMemorySize) {
		wg /= 2
	}
	switch {
	case wg%int(info.MaxSubgroupSize) != 0 || wg%tpt != 0:
		return nil, fmt.Errorf("vk dense: workgroup %d is not a multiple of the largest subgroup size %d", wg, info.MaxSubgroupSize)
	case shared(wg) > int(info.Limits.MaxComputeSharedMemorySize):
		return nil, fmt.Errorf("vk dense: D=%d G=%d needs %d bytes of shared memory at workgroup %d, the device has %d", m.d, g, shared(wg), wg, info.Limits.MaxComputeSharedMemorySize)
	}
	bindings := 7
	if m.opt.Trace {
		shader += "_trace"
		bindings = 8
	}
	return m.ctx.SharedKernel(KernelSpec{
		Shader:   shader,
		Bindings: bindings,
		Push:     densePush{},
		Spec:     []uint32{uint32(wg), uint32(tpt), uint32(m.d), uint32(g), uint32(tile), b32(!separate), b32(pieces), b32(m.opt.PairedKV)},
	})
}

// traceBytes returns the size of the trace buffer for splits splits: every
// split workgroup's denseTracePoints readings with DenseOptions.Trace, else
// 0 (no buffer).
func (m *Dense) traceBytes(splits int) uint64 {
	if !m.opt.Trace {
		return 0
	}
	return uint64(m.b*m.hkv*splits*denseTracePoints) * 4
}

// AttentionTrace returns the clock readings of the last Decode's split
// kernel (dense_split), every workgroup's (rows times splits, row-major).
// It fails unless m was built with DenseOptions.Trace and has decoded since
// its last prefill.
func (m *Dense) AttentionTrace() (KernelTrace, error) {
	switch {
	case !m.opt.Trace:
		return KernelTrace{}, fmt.Errorf("vk dense: AttentionTrace: built without DenseOptions.Trace")
	case !m.traced:
		return KernelTrace{}, fmt.Errorf("vk dense: AttentionTrace: no traced step has run since the last prefill")
	}
	return m.ctx.readTrace(m.trace.Range(0, m.traceBytes(m.splits)), "dense_split", DenseTracePhases)
}

// Traces returns the clock readings of the last Decode's traced kernels: the
// split kernel's (AttentionTrace).
func (m *Dense) Traces() ([]KernelTrace, error) {
	t, err := m.AttentionTrace()
	if err != nil {
		return nil, err
	}
	return []KernelTrace{t}, nil
}

// encode converts float32 elements to the storage type's bytes.
func (m *Dense) encode(x []float32) []byte {
	if m.opt.Storage == F16 {
		return halfBytes(x)
	}
	return f32Bytes(x)
}

// allocCache allocates K and V with capacity cp tokens per row, in buffers
// of as many rows as maxRange and maxMemoryAllocationSize allow. On error
// the cache is left as it was.
func (m *Dense) allocCache(cp int) error {
	kv, err := newKVStore(m.ctx, "dense", m.b*m.hkv, cp, uint64(m.d)*uint64(m.opt.Storage.bytes()),
		min(m.maxRange, m.ctx.Info.Limits.MaxMemoryAllocationSize), cacheKind(m.opt.HostCache), m.opt.PairedKV)
	if err != nil {
		return fmt.Errorf("vk dense: Cap=%d tokens x D=%d %s: %w", cp, m.d, m.opt.Storage, err)
	}
	m.kv, m.cap = kv, cp
	return nil
}

// grow moves the cache to capacity cp on the device. On error the cache
// is left as it was: the new buffers are freed and the old ones kept.
func (m *Dense) grow(cp int) (err error) {
	old, oldCap := m.kv, m.cap
	if err := m.allocCache(cp); err != nil {
		return err
	}
	defer func() {
		if err != nil { // the copies never ran: the old cache is still the cache
			m.kv.free()
			m.kv, m.cap = old, oldCap
		}
	}()
	var copies copyGroups
	m.kv.moveRows(&copies, old, m.n)
	if m.batch == nil {
		b, err := m.ctx.NewBatch()
		if err != nil {
			return err
		}
		m.batch = b
	}
	b := m.batch
	if err := b.Begin(); err != nil {
		return err
	}
	copies.record(b)
	if _, err := b.Submit(); err != nil {
		return fmt.Errorf("vk dense: growing the cache to %d tokens: %w", cp, err)
	}
	old.free()
	m.freeSets() // they bound the old buffers
	return nil
}

func (m *Dense) freeSets() {
	for _, s := range m.splitSets {
		s.Free()
	}
	m.splitSets, m.splitGroups = nil, nil
	m.mergeSet.Free()
	m.mergeSet = nil
}

func (m *Dense) freeCache() {
	m.freeSets()
	m.traced = false
	m.kv.free()
	m.kv, m.n, m.cap = nil, 0, 0
	m.split, m.merge, m.hq = nil, nil, 0
}

// Close frees the device memory of m. The context's shared kernels stay.
func (m *Dense) Close() error {
	m.freeCache()
	for _, b := range []**Buffer{&m.q, &m.qUp, &m.po, &m.pml, &m.out, &m.outRB, &m.cnt, &m.trace} {
		(*b).Free()
		*b = nil
	}
	m.batch.Free()
	m.batch = nil
	m.qup.free()
	m.split, m.merge = nil, nil
	return nil
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }
