package vk

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/hata-go/hata/ref"
)

// HATA is hash-aware top-k attention on the GPU (the vk implementation of
// ref.HATA; "lsh" is the same pipeline with random weights). Per decode step,
// in one command buffer:
//
//	encode  hata_encode_q: the query codes [B*Hq][Rbit/32] (q·W, bit = p > 0);
//	        twokernel: no such stage, hata_score encodes (when its shared memory fits)
//	score   hata_score: S[r][t] = sum_g popcount(qcode[r*G+g] XOR kcode[r][t])
//	        (fused: uint16 scores, the per-row histogram of S and each chunk's
//	        cumulative histogram built on the fly; with the select's plan,
//	        SparseOptions.SelectPlan, the last workgroup of each row also
//	        resolves the threshold and every chunk's first output slot;
//	        there hata_score_k8's one-byte scores min(S, 255) by default
//	        (SparseOptions.KeyBytes), the step run again with uint16 ones
//	        where a row's threshold reaches 255, and every later step of the
//	        cache too); beside it, by SparseOptions.Warm, one workgroup of
//	        the select's write, of the attention's split and (where it runs
//	        apart) of the merge on zeroed buffers of their own, whose code
//	        is then fetched while the score runs (warm.go)
//	select  naive: select_hist (a histogram pass over the scores), select_count
//	        and select_write; fused: select_write alone, or select_groups over
//	        score chunks longer than one of select_write's tiles (selectGroups),
//	        either searching the histogram itself or reading the plan;
//	        beside the write, where SparseOptions.Warm places them there
//	        (a short score level), the warm split and merge
//	        (select_groups_k8 over one-byte scores);
//	        twokernel: select_attend, which also attends ("select+attend").
//	        The k smallest S, ties to the
//	        smaller index, with the sink/recent windows forced in
//	        (ref.SelectSmallest)
//	gather  (naive only) sparse_gather: the selected K/V rows into compact buffers
//	attend  sparse_split: attention of the G heads of each group over its
//	        selection (fused: through the index list), split in S parts,
//	        the last workgroup of each row merging them (log-sum-exp), or
//	merge   sparse_merge: the merge of the S parts as a dispatch of its own
//	        (naive, and where SparseOptions.Merge chooses it)
//
// The onekernel variant runs encode, score, select and attend as work items
// of one dispatch, hata_step (hata_onekernel.go).
//
// Key codes [B*Hkv][Cap][ks] (keyCodeStride: Rbit/32 words for rbit 32 and
// 64, else rounded up to a multiple of 4) are encoded
// on the device from the stored keys (hata_encode_k_*) at Prefill (all N) and
// Append (the new key of every row), and rebuilt when the cache grows. They
// are read back only by Codes. The norm-weighted variant (ref.Options
// NormWeighted) computes the scores on the GPU, reads them back and ranks on
// the host with ref.SelectLargest, then attends on the GPU; the key norms are
// kept on the host in float64 as ref does.
//
// Timings names the stages "upload", ["poison",] ["encode",] "score",
// "select", ["gather",] "attend", ["merge",] ["readback"] (twokernel:
// "select+attend" in place of "select" and "attend"; onekernel: "step"
// alone, in place of all four; the norm-weighted
// variant adds a first batch with its own "upload", "encode", "score" and
// "readback").
//
// A HATA is not safe for concurrent use. Close frees its device memory.
type HATA struct {
	*sparseCore
	w            *ref.HashWeights
	windows      ref.Windows
	normWeighted bool
	words, ws    int // Rbit/32, and the query codes' stride (a multiple of 4 words)
	ks           int // the key codes' stride in words: keyCodeStride

	wbuf   *Buffer     // W: [Hkv][D][Rbit] float32
	knorm  [][]float64 // knorm: [B*Hkv] rows of [N], ||k_t|| for the norm-weighted scores
	lastHq int

	lastWarm        int      // the warm dispatches the last planned step recorded (recordWarm, or beside the select)
	warmOut         *Buffer  // the warm outputs the last step laid out (prepareWarm)
	warmLayout      []uint64 // and their regions' sizes
	warmCnt         Range    // the warm split's counter in them
	warmSelTrace    Range    // SparseOptions.Trace: the warm select's clock readings in them, else empty
	warmSplitTrace  Range    // and the warm split's
	lastScoreTrace  Range    // the last recorded step's hata_score trace (ScoreTrace), or empty
	lastEncodeTrace Range    // the last recorded step's hata_encode_q trace (EncodeTrace), or empty

	// One-byte keys (SparseOptions.KeyBytes): the last planned step's
	// thresholds where it used them (select_plan.glsl's thr), else empty;
	// noKey8 refuses them for the step being run again (keyFallback);
	// key16Cache (the default, KeyBytes 0) for every later step of this
	// cache, until the next prefill, once a step was run again;
	// keyFallbacks counts the steps run again.
	lastKeyThr   Range
	noKey8       bool
	key16Cache   bool
	keyFallbacks int
}

var (
	_ ref.Method = (*HATA)(nil)
	_ ref.Coder  = (*HATA)(nil)
)

// NewHATA returns HATA (name "hata") or its random-weight baseline (name
// "lsh") with hash weights w for caches of head dimension w.D.
func (c *Context) NewHATA(name string, w *ref.HashWeights, win ref.Windows, normWeighted bool, o SparseOptions) (*HATA, error) {
	if name != "hata" && name != "lsh" {
		return nil, fmt.Errorf("vk: NewHATA(%q): want hata or lsh", name)
	}
	if w == nil {
		return nil, fmt.Errorf("vk %s: no hash weights", name)
	}
	if win.Sink < 0 || win.Recent < 0 {
		return nil, fmt.Errorf("vk %s: windows %+v: want sink, recent >= 0", name, win)
	}
	core, err := newSparseCore(c, name, w.D, o)
	if err != nil {
		return nil, err
	}
	m := &HATA{sparseCore: core, w: w, windows: win, normWeighted: normWeighted, words: w.Words(), ws: roundUp(w.Words(), 4), ks: keyCodeStride(w.Words())}
	if err := m.uploadW(); err != nil {
		return nil, err
	}
	core.side, core.planner = m, m
	return m, nil
}

// uploadW puts W on the device, unless it is there: at NewHATA, and at the
// first prefill after Close freed it.
func (m *HATA) uploadW() error {
	if m.wbuf != nil {
		return nil
	}
	b, err := m.ctx.NewBuffer("vk "+m.name+" W", uint64(4*len(m.w.W)), DeviceLocal)
	if err != nil {
		return err
	}
	if err := m.ctx.Write(Region{Dst: b, Data: f32Bytes(m.w.W)}); err != nil {
		b.Free()
		return err
	}
	m.wbuf = b
	return nil
}

func (m *HATA) checkShape(hkv, d int) error {
	if hkv != m.w.Hkv || d != m.w.D {
		return m.errorf("hash weights are [Hkv=%d D=%d Rbit=%d], the cache has Hkv=%d D=%d", m.w.Hkv, m.w.D, m.w.Rbit, hkv, d)
	}
	return nil
}

// Prefill implements ref.Method: the cache goes to the device and every key
// is encoded there.
func (m *HATA) Prefill(kv *ref.KV) error {
	if err := kv.Validate(); err != nil {
		return m.errorf("prefill: %v", err)
	}
	if err := m.checkShape(kv.Hkv, kv.D); err != nil {
		return err
	}
	if err := m.uploadW(); err != nil {
		return err
	}
	if err := m.sparseCore.Prefill(kv); err != nil {
		return err
	}
	m.key16Cache = false
	m.knorm = nil
	if m.normWeighted {
		m.knorm = make([][]float64, len(kv.K))
		for r := range m.knorm {
			m.knorm[r] = make([]float64, kv.N)
			for t := range kv.N {
				m.knorm[r][t] = norm64(kv.K[r][t*kv.D : (t+1)*kv.D])
			}
		}
	}
	return nil
}

// PrefillRandom fills the cache on the device (see Dense.PrefillRandom;
// RandomKV gives the same cache on the host) and encodes every key there.
// The norm-weighted variant needs the keys on the host and refuses.
func (m *HATA) PrefillRandom(b, hkv, n, d int, seed uint32) error {
	if m.normWeighted {
		return m.errorf("prefill random: the norm-weighted variant keeps key norms on the host; prefill it from a ref.KV")
	}
	if err := m.checkShape(hkv, d); err != nil {
		return err
	}
	if err := m.uploadW(); err != nil {
		return err
	}
	if err := m.sparseCore.PrefillRandom(b, hkv, n, d, seed); err != nil {
		return err
	}
	m.key16Cache = false
	return nil
}

// Append implements ref.Method: the new key of every row is encoded on the
// device as it enters the cache.
func (m *HATA) Append(k, v []float32) error {
	if err := m.sparseCore.Append(k, v); err != nil {
		return err
	}
	if m.normWeighted {
		for r := range m.knorm {
			m.knorm[r] = append(m.knorm[r], norm64(k[r*m.d:(r+1)*m.d]))
		}
	}
	return nil
}

// keyCodeStride returns the words between two key codes of words words:
// as many for one and two (rbit 32 and 64: four or two codes a uvec4, so
// that the score reads rbit/8 bytes a token), else words rounded up to a
// multiple of 4 (the kernels read a code as whole uvec4, padded with zeros).
// Caches hold a multiple of 64 tokens a row, so a row's codes start on a
// uvec4 either way.
func keyCodeStride(words int) int {
	if words <= 2 {
		return words
	}
	return roundUp(words, 4)
}

// codesPerVec4 returns CPV of hata_score and hata_step (ham_planes.glsl):
// the key codes in a uvec4, 1 where a code takes one or more.
func (m *HATA) codesPerVec4() uint32 { return uint32(max(1, 4/m.ks)) }

// keyCodes returns the key codes [rows][Cap][ks] words.
func (m *HATA) keyCodes() Range {
	return m.scratch["key codes"].Range(0, uint64(m.rows()*m.cap*m.ks)*4)
}

// sizeSide implements sideState: the key codes [rows][Cap][ks].
func (m *HATA) sizeSide() error {
	_, err := m.buf("key codes", uint64(m.rows()*m.cap*m.ks)*4, DeviceLocal)
	return err
}

// buildSide implements sideState: hata_encode_k over tokens [t0, t1).
func (m *HATA) buildSide(b *Batch, t0, t1 int) error {
	return m.recordProjK(b, "hata_encode_k", m.wbuf, []kvGroup{{k: m.keyCodes(), rows: m.rows()}}, m.w.Rbit, m.w.Rbit, m.ks, t0, t1)
}

// hataMaxChunk bounds the default score chunk of HATA (scoreChunk), and
// hataWavesChunk is the chunk where even hataMaxChunk makes a grid of more
// than one wave (hataScoreChunk); with one-byte keys the fused chain's
// chunks go up to hataKey8MaxChunk, and never below hataMinChunk.
const (
	hataMaxChunk     = 16384
	hataWavesChunk   = 8192
	hataKey8MaxChunk = 32768
	hataMinChunk     = 1024
	hataPlanChunk    = 4096
)

// hataScoreChunk returns the tokens per workgroup of HATA's score kernel,
// which are also its select's chunks, as scoreChunk does: waveChunk's whole
// chunks per row within one wave, up to hataMaxChunk; where hataMaxChunk still makes more
// than one wave (B8/256K, and Llama-2-7B's 32 KV heads from B2/256K, B4/128K
// and B8/64K on the H200), chunks of hataWavesChunk for the fused chain,
// the default. On the H200 those steps took 3.9-5.4 us less with chunks of
// 8192 than with 16384 (B8/256K 161.9-162.4 against 166.3-166.7;
// select_groups with 4 groups a lane in four waves 21.0-21.4 us against
// 25.7-26.2 with 8 in two), 6144 gave 2.7-3.0 less and 12288 9.4-9.8 more;
// with caches past the gathers' 2 GiB knee, whose steps spread by up to 50
// us, the select and score stages were shorter too. Where 16384 makes one
// wave, 8192 was 0.1-1.2 us slower (runs 238-239, BENCHMARKS.md session
// 20). The other variants keep 16384: threekernel's score reads W once per
// workgroup and twokernel attends a chunk per workgroup, and with 8192 at
// B8/256K they took 210.3-210.7 and 213.9-214.5 us against 193.3 and 193.5
// (runs 240 and 243 against 237).
//
// Where the step takes one-byte keys (key8: SparseOptions.KeyBytes) the
// fused chain's one wave goes up to hataKey8MaxChunk: B8/256K on the H200
// took 153.4-153.7 us with chunks of 32768 against 154.7-155.4 with 8192,
// Llama-2-7B's B2/256K and B8/64K 0.4-1.6 us less and B4/128K even, while
// with uint16 keys 32768 was 1.8-3.0 us slower (run 267, BENCHMARKS.md
// session 23). And the fused chain's chunks are at least hataMinChunk: 1024
// against waveChunk's floor of 512 took 0.4-1.1 us off B1/16K, B1/32K and
// B2/16K and was even at B1/8K and B2/8K (run 267).
//
// With one-byte keys, where that leaves chunks too short for the select's
// plan (planSelect) and chunks of hataPlanChunk still make a workgroup for
// every compute unit, the fused chain takes hataPlanChunk, and with it the
// plan: with every step after an L2 flush (BENCHMARKS.md session 24, runs
// 280-281) steps on the H200 took 0.9-1.2 us less at B1/128K, B2/64K,
// B4/32K and B8/16K, 0.2-0.8 at B1/80K, B1/96K, B2/48K and Llama-2-7B's
// B1/32K; at B1/32K (64 workgroups) it was 1.4 slower, at B1/64K (128)
// 0.2-0.3 faster. (Session 18 had found the plan 0-1.4 us slower at these
// shapes, with uint16 keys and every step's data left in L2 by the last.)
//
// Where the warm workgroups may run beside the score (SparseOptions.Warm,
// from warmMinCodes codes) and the grid would fill its one wave within
// warmSlots of the end, the chunk grows until warmSlots are left
// (warmChunk), so that warmRule finds room for them.
func (c *sparseCore) hataScoreChunk(n, rows int, key8 bool) int {
	ch := c.opt.ScoreChunk
	if ch == 0 {
		fused := c.opt.Variant == VariantFused
		maxChunk := hataMaxChunk
		if fused && key8 {
			maxChunk = hataKey8MaxChunk
		}
		ch = c.waveChunk(n, rows, maxChunk, hataScorePerCU)
		cu := max(c.ctx.Info.ComputeUnits, 1)
		wave := hataScorePerCU * cu
		if fused && ch >= hataMaxChunk && rows*((n+ch-1)/ch) > wave {
			ch = hataWavesChunk
		}
		if fused {
			ch = max(ch, hataMinChunk)
			if key8 && !planSelect(ch) && rows*((n+hataPlanChunk-1)/hataPlanChunk) >= cu {
				ch = hataPlanChunk
			}
			if !c.warmOff() && c.opt.Warm != WarmLate && rows*n >= warmMinCodes {
				ch = warmChunk(n, rows, ch, wave)
			}
		}
	}
	return c.gridChunk(n, ch)
}

// hataStep is a prepared decode step of HATA.
type hataStep struct {
	*step
	encode, score *Kernel // encode: nil when score encodes the queries itself (fused)
	qcodes, keys  Range
	sel           *selectPlan
	fusedHist     bool
	key16         bool
	key8          bool // one-byte keys (hata_score_k8, select_groups_k8)
	scoreChunk    int
	trace         Range          // SparseOptions.Trace: hata_score's [rows][nchunks][scoreTracePoints] clock readings, else empty
	encodeTrace   Range          // SparseOptions.Trace: hata_encode_q's [rows][words][encodeTracePoints], else empty
	warm          []warmDispatch // the warm workgroups beside the score (prepareWarm), or none; those beside the select are in sel.warm
}

// prepare sizes and builds everything one decode step with budget k needs.
// forRank: the norm-weighted path (scores for the host, no GPU selection).
func (m *HATA) prepare(q []float32, budget ref.Budget, forRank bool) (*hataStep, error) {
	s, err := m.prepareStep(q, budget)
	if err != nil {
		return nil, err
	}
	k := s.k
	h := &hataStep{step: s}
	g := s.g
	nb := g*m.w.Rbit + 1
	fused := m.opt.Variant != VariantNaive && !forRank // fused or twokernel
	h.key16 = fused && g*m.w.Rbit <= 65535
	h.fusedHist = h.key16 && nb <= maxDirectBins
	qc, err := m.buf("query codes", uint64(s.rows*g*m.ws)*4, DeviceLocal)
	if err != nil {
		return nil, err
	}
	h.qcodes = qc.Range(0, uint64(s.rows*g*m.ws)*4)
	keyBytes := uint64(s.rows*m.cap) * 4
	if h.key16 {
		keyBytes /= 2
	}
	keys, err := m.buf("scores", keyBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	h.keys = keys.Range(0, keyBytes)
	bins := uint32(1)
	if h.fusedHist {
		bins = uint32(nb)
	}
	// The twokernel and threekernel variants encode the queries inside
	// hata_score when its shared memory (hata_score.comp: q, partial sums,
	// codes, histogram, scan) fits; otherwise, and in the other variants,
	// hata_encode_q runs first (faster on the H200 at the default score
	// chunks: BENCHMARKS.md).
	swg := cmp.Or(m.opt.ScoreWorkgroup, scoreWorkgroup)
	ncolp := 32 * m.ws
	sl := max(swg/ncolp, 1)
	shared := 4 * (g*m.d + sl*g*ncolp + g*m.ws + int(bins) + swg)
	encodeInScore := m.opt.Variant == VariantTwoKernel || m.opt.Variant == VariantThreeKernel
	encode := encodeInScore && fused && shared <= int(m.ctx.Info.Limits.MaxComputeSharedMemorySize)
	if !encode {
		encodeShader, encodeBindings := "hata_encode_q", 3
		if m.opt.Trace { // its entry point with the clock readings, and their buffer
			encodeShader, encodeBindings = "hata_encode_q_trace", 4
			if h.encodeTrace, err = m.traceBuffer("encode trace", s.rows*m.ws, encodeTracePoints); err != nil {
				return nil, err
			}
		}
		if h.encode, err = m.projQKernel(encodeShader, encodeBindings, g, m.w.Rbit, m.ws*s.rows); err != nil {
			return nil, err
		}
	}
	// Chunks up to 16384 tokens (32768 with one-byte keys): one wave of the
	// score and select kernels where 4096 needed four (B8/128K on the H200:
	// select 26.1 us instead of 32.7, the step 115.6 instead of 121.8;
	// BENCHMARKS.md); the other methods' score kernels keep 4096.
	key8 := m.key8Chunks(h.fusedHist)
	h.scoreChunk = m.hataScoreChunk(m.n, s.rows, key8)
	if m.opt.Variant == VariantOneKernel && h.fusedHist && len(m.kv.k) == 1 {
		// hata_step's items (a multiple of 8: 16-byte key loads); where it
		// cannot run (stepKernel), the fused chain keeps its own chunks.
		h.scoreChunk = roundUp(cmp.Or(m.opt.ScoreChunk, oneKernelChunk), 8)
	}
	// The select's plan (SparseOptions.SelectPlan) where the separate
	// select reads the score kernel's chunk counts, and with it one-byte
	// keys (SparseOptions.KeyBytes) where select_groups runs.
	// The plan's threshold search in hata_score's last workgroup holds
	// maxBinsPerLane bins a lane (wg_scan.glsl's find_bin_at: nbins <=
	// MAXPER*WG): where a small ScoreWorkgroup cannot hold the histogram,
	// the select searches it itself (with a score workgroup of 32 at G=7,
	// rbit 128, 897 bins, the plan's threshold was wrong and the selection
	// out of order).
	plan := h.fusedHist && m.opt.Variant != VariantTwoKernel && m.opt.Variant != VariantOneKernel &&
		(m.opt.SelectPlan == PlanOn || m.opt.SelectPlan == PlanAuto && planSelect(h.scoreChunk)) &&
		int(bins) <= maxBinsPerLane*swg
	sinkEnd, recentStart, forced := windows(m.windows, m.n, k)
	spec := selectSpec{
		keys: h.keys, key16: h.key16, keyStride: m.cap, page: 1, rows: s.rows, n: m.n,
		kk: k - forced, sinkEnd: sinkEnd, recentEnd: recentStart,
		prebuilt: h.fusedHist, sel: s.sel, k: k,
	}
	if h.fusedHist {
		spec.cumChunk = h.scoreChunk // hata_score writes the chunk counts: no select_count
		spec.plan = plan
		if m.opt.Variant == VariantTwoKernel {
			spec.attendG = g // select and attend in one dispatch
		}
	}
	if nb <= maxDirectBins {
		spec.directBins = nb
	}
	h.key8 = key8 && plan && spec.groupsSelect()
	spec.key8 = h.key8
	scoreShader, scoreBindings := "hata_score", 6
	if h.key8 {
		scoreShader = "hata_score_k8"
	}
	if m.opt.Trace { // its entry point with the clock readings, and their buffer
		scoreShader, scoreBindings = scoreShader+"_trace", 7
		if h.trace, err = m.traceBuffer("score trace", s.rows*((m.n+h.scoreChunk-1)/h.scoreChunk), scoreTracePoints); err != nil {
			return nil, err
		}
	}
	if h.score, err = m.kernel(scoreShader, scoreBindings, hataScorePush{}, uint32(swg), uint32(m.ws/4), uint32(g), b32(h.key16), bins,
		b32(h.fusedHist), b32(encode), uint32(m.d), b32(plan), m.codesPerVec4()); err != nil {
		return nil, err
	}
	if h.sel, err = m.prepareSelect(spec); err != nil {
		return nil, err
	}
	return h, nil
}

// recordScores records "encode" (unless hata_score encodes) and "score",
// the cache's translation prefetch and the warm workgroups (recordWarm)
// beside the score kernel.
// zeroed: the histograms were cleared in the upload stage (stepPlan.zero).
func (m *HATA) recordScores(b *Batch, h *hataStep, zeroed bool) error {
	m.lastEncodeTrace = h.encodeTrace // empty where nothing traces the encode
	if h.encode != nil {
		b.Stage("encode")
		if !zeroed {
			h.sel.zeroHist(b)
		}
		ebufs := []Range{h.q, m.wbuf.Whole(), h.qcodes}
		if h.encodeTrace.Buf != nil {
			ebufs = append(ebufs, h.encodeTrace)
		}
		eset, err := m.set(h.encode, ebufs...)
		if err != nil {
			return err
		}
		b.Dispatch(h.encode, eset, projPush{Hkv: uint32(m.hkv), Group: uint32(h.g), Ldw: uint32(m.w.Rbit), Ostride: uint32(m.ws)},
			uint32(m.ws), uint32(h.rows), 1)
		b.Barrier()
		b.Stage("score")
	} else {
		b.Stage("score")
		if !zeroed {
			h.sel.zeroHist(b)
			b.Barrier()
		}
	}
	bufs := []Range{h.qcodes, m.keyCodes(), h.keys, h.sel.hist, h.q, m.wbuf.Whole()}
	if h.trace.Buf != nil {
		bufs = append(bufs, h.trace)
	}
	m.lastScoreTrace = h.trace
	sset, err := m.set(h.score, bufs...)
	if err != nil {
		return err
	}
	b.Dispatch(h.score, sset, hataScorePush{
		N: uint32(m.n), Cap: uint32(m.cap), ChunkLen: uint32(h.scoreChunk),
		SinkEnd: uint32(h.sel.sinkEnd), RecentStart: uint32(h.sel.recentEnd), KeyStride: uint32(m.cap),
		Hkv: uint32(m.hkv), Ldw: uint32(m.w.Rbit), Rbit: uint32(m.w.Rbit),
		KK: uint32(h.sel.kk), KStride: uint32(h.sel.k),
	}, uint32((m.n+h.scoreChunk-1)/h.scoreChunk), uint32(h.rows), 1)
	m.recordWarm(b, h)
	m.recordPrefetch(b)
	b.Barrier()
	return nil
}

// plan implements planner: encode and score (recordScores), then the
// select, or (fused) the select and attention in one dispatch.
func (m *HATA) plan(q []float32, budget ref.Budget) (*stepPlan, error) {
	h, err := m.prepare(q, budget, false)
	if err != nil {
		return nil, err
	}
	m.lastHq = h.hq
	m.lastKeyThr = Range{}
	m.lastWarm = 0
	if h.key8 {
		m.lastKeyThr = h.sel.planThr
	}
	p := &stepPlan{
		s:      h.step,
		poison: []Range{h.qcodes, h.keys, h.sel.cnt, h.trace, h.encodeTrace},
		gather: m.opt.Variant == VariantNaive,
		zero:   []Range{h.sel.zeroRange()},
		rec: func(b *Batch) error {
			if err := m.recordScores(b, h, true); err != nil {
				return err
			}
			if h.sel.attend != nil {
				return nil // select_attend selects, in p.attend
			}
			b.Stage("select")
			err := m.recordSelect(b, h.sel)
			m.lastWarm += h.sel.warmed
			return err
		},
	}
	p.prepare = func(a *attention) error {
		zero, err := m.prepareWarm(h, a)
		if zero.Buf != nil {
			p.zero = append(p.zero, zero)
		}
		return err
	}
	if h.sel.attend != nil {
		p.splits = h.sel.nchunks
		p.attend = func(b *Batch, a *attention) error { return m.recordSelectAttend(b, h.sel, h.step, a) }
	}
	if m.opt.Variant == VariantOneKernel {
		o, err := m.stepKernel(h)
		if err != nil {
			return nil, err
		}
		if o != nil { // one dispatch does all: no stages before the attention's
			p.rec = nil
			p.prepare = nil // nor any level to warm beside
			p.zero = append(p.zero, o.ctr)
			p.attend = func(b *Batch, a *attention) error { return m.recordStep(b, h, o, a) }
		}
	}
	return p, nil
}

// Decode implements ref.Method: one decode step on the GPU, returning the
// output and the selection (read back with it).
func (m *HATA) Decode(q []float32, budget ref.Budget) (*ref.Result, error) {
	if m.normWeighted {
		return m.decodeNormWeighted(q, budget, true)
	}
	return keyFallback(m, func() (*ref.Result, error) { return m.sparseCore.Decode(q, budget) })
}

// oneByteKeys reports whether the next step takes one-byte keys where the
// select's plan and select_groups run (SparseOptions.KeyBytes): not when
// run again after one fell short (noKey8), nor by default once a step of
// this cache was (key16Cache).
func (m *HATA) oneByteKeys() bool {
	return !m.noKey8 && (m.opt.KeyBytes == 1 || m.opt.KeyBytes == 0 && !m.key16Cache)
}

// key8Chunks reports whether the next step's score chunks are chosen for
// one-byte keys (hataScoreChunk's key8): where it takes them (oneByteKeys)
// and the select's plan they need can run, over a one-pass histogram
// (fusedHist) and not turned off; the step takes them where the plan then
// runs with select_groups (prepare).
func (m *HATA) key8Chunks(fusedHist bool) bool {
	return fusedHist && m.opt.SelectPlan != PlanOff && m.oneByteKeys()
}

// keyFallback returns step's result, or where the step used one-byte keys
// and a row's threshold reached 255 (keysFellShort), the result of step run
// once more with uint16 keys; by default (KeyBytes 0) every later step of
// this cache then keeps uint16 keys.
func keyFallback[T any](m *HATA, step func() (T, error)) (T, error) {
	var zero T
	r, err := step()
	if err != nil {
		return zero, err
	}
	again, err := m.keysFellShort()
	if err != nil {
		return zero, err
	}
	if !again {
		return r, nil
	}
	m.key16Cache = m.opt.KeyBytes == 0
	m.noKey8 = true
	defer func() { m.noKey8 = false }()
	return step()
}

// keysFellShort reports whether the step just run used one-byte keys and a
// row's threshold reached 255, where they are not exact (counted in
// keyFallbacks): its thresholds are read back from the plan.
func (m *HATA) keysFellShort() (bool, error) {
	if m.lastKeyThr.Buf == nil {
		return false, nil
	}
	thr, err := m.readWords(m.lastKeyThr.Buf, m.lastKeyThr.Off, int(m.lastKeyThr.Size/4))
	if err != nil {
		return false, err
	}
	if len(thr) == 0 || slices.Max(thr) < 255 {
		return false, nil
	}
	m.keyFallbacks++
	return true, nil
}

// KeyFallbacks returns how many steps used one-byte keys
// (SparseOptions.KeyBytes 0 or 1) and were run again with uint16 keys, a
// row's threshold having reached 255.
func (m *HATA) KeyFallbacks() int { return m.keyFallbacks }

// Step runs one decode step without reading anything back (for timing it:
// Timings gives the stages). The output stays on the device.
func (m *HATA) Step(q []float32, budget ref.Budget) (Timings, error) {
	if m.normWeighted {
		_, err := m.decodeNormWeighted(q, budget, false)
		return m.timings, err
	}
	return keyFallback(m, func() (Timings, error) { return m.sparseCore.Step(q, budget) })
}

// decodeNormWeighted scores on the GPU, ranks on the host by
// ||k_t|| * (G - 2 S_t / Rbit) with ref.SelectLargest, and attends on the GPU.
func (m *HATA) decodeNormWeighted(q []float32, budget ref.Budget, readback bool) (*ref.Result, error) {
	h, err := m.prepare(q, budget, true)
	if err != nil {
		return nil, err
	}
	m.lastHq = h.hq
	rb, err := m.buf("scores readback", h.keys.Size, Readback)
	if err != nil {
		return nil, err
	}
	qUp := m.scratch["q upload"]
	copy(qUp.Bytes(), f32Bytes(q))
	b, err := m.getBatch()
	if err != nil {
		return nil, err
	}
	if err := b.Begin(); err != nil {
		return nil, err
	}
	b.Stage("upload")
	if err := m.qup.record(m.ctx, b, h.q, qUp.Range(0, h.q.Size)); err != nil {
		return nil, m.errorf("%v", err)
	}
	b.Barrier()
	if m.ctx.poison {
		b.Stage("poison")
		b.Fill(h.qcodes, NaNBits)
		b.Fill(h.keys, NaNBits)
		b.Barrier()
	}
	if err := m.recordScores(b, h, false); err != nil {
		return nil, err
	}
	b.Stage("readback")
	b.Copy(rb.Range(0, h.keys.Size), h.keys)
	first, err := b.Submit()
	if err != nil {
		return nil, m.errorf("decode scores: %v", err)
	}
	if err := rb.invalidate(); err != nil {
		return nil, err
	}
	m.stepped = true // the query codes are on the device
	scores := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(rb.Bytes()))), h.rows*m.cap)
	sel := make([][]int32, h.rows)
	w := make([]float64, m.n)
	for r := range sel {
		for t := range m.n {
			w[t] = m.knorm[r][t] * (float64(h.g) - 2*float64(scores[r*m.cap+t])/float64(m.w.Rbit))
		}
		sel[r] = ref.SelectLargest(w, h.k, m.windows)
	}
	hostSel, err := m.hostSelection(sel, h.k)
	if err != nil {
		return nil, err
	}
	res, err := m.run(q, &stepPlan{s: h.step, hostSel: hostSel}, readback)
	if err != nil {
		return nil, err
	}
	m.timings.Stages = append(first.Stages, m.timings.Stages...)
	m.timings.Levels += first.Levels
	return res, nil
}

// Codes implements ref.Coder: the query codes of the last decode,
// [B][Hq][Rbit/32], and the key codes of the cache, [B][Hkv][N][Rbit/32],
// read back from the device.
func (m *HATA) Codes() (qcodes, kcodes []uint32, err error) {
	if !m.stepped || !m.hasCache() {
		return nil, nil, m.errorf("no codes before the first Decode")
	}
	nq := m.rows() * (m.lastHq / m.hkv)
	qw, err := m.readWords(m.scratch["query codes"], 0, nq*m.ws)
	if err != nil {
		return nil, nil, err
	}
	for v := range nq {
		qcodes = append(qcodes, qw[v*m.ws:v*m.ws+m.words]...)
	}
	kw, err := m.readWords(m.scratch["key codes"], 0, m.rows()*m.cap*m.ks)
	if err != nil {
		return nil, nil, err
	}
	kcodes = make([]uint32, 0, m.rows()*m.n*m.words)
	for r := range m.rows() {
		for t := range m.n {
			o := (r*m.cap + t) * m.ks
			kcodes = append(kcodes, kw[o:o+m.words]...)
		}
	}
	return qcodes, kcodes, nil
}

// Close frees the device memory of m. The context's shared kernels stay.
func (m *HATA) Close() error {
	m.close()
	m.wbuf.Free()
	m.wbuf = nil
	return nil
}

// norm64 returns the Euclidean norm of x accumulated in float64, as ref does.
func norm64(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}
