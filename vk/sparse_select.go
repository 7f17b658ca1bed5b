package vk

import (
	"cmp"
	"math"
)

// maxDirectBins bounds the bins of a one-pass histogram (keys < bins): the
// shared histogram must fit in 16 KiB, the Vulkan minimum of shared memory.
// HATA's scores need G*rbit + 1 bins (513 at G = 4, rbit = 128); wider key
// ranges go through radix passes (select.glsl: 8-bit digits for uint16 keys,
// 11, 11 and 10 bits for uint32 keys). select_groups, which runs only after
// a one-pass histogram, compares two uint16 keys at once and needs them and
// the threshold below 2^15: the constant below does not compile otherwise.
const maxDirectBins = 4096

const _ = uint(1<<15 - maxDirectBins) // select_groups' marks: keys < 2^15

// selectGroups returns the 8-token groups per lane (select_groups.glsl's
// GPL, its PER / 8) with which the fused select takes a chunk of chunk tokens
// in one tile, or 0 where select_write runs instead: chunks longer than one of
// select_write's tiles (selectWorkgroup*selectPer tokens) go to select_groups
// with the fewest groups per lane that hold the chunk, at most 8 (longer
// chunks take several tiles). On the H200 select_groups with 8 groups per
// lane was faster than select_write with chunks of 16384 tokens (B8/128K
// select 20.9 us against 26.1, B8/256K 34.9 against 44.6) and slower with
// 4096, where three quarters of its lanes had no tokens (B8/32K 17.2 against
// 12.7; run 38). With as many groups as the chunk needs (2 at B8/32K's 4096
// and B1/256K's 3976) its select stage took 10.7-10.9 us against
// select_write's 12.5-12.7 in two tiles, the step 1.1-1.7 us less (run 108,
// BENCHMARKS.md).
func selectGroups(chunk int) int {
	if chunk <= selectWorkgroup*selectPer {
		return 0
	}
	return groupsPerLane(chunk, selectWorkgroup)
}

// groupsPerLane returns select_groups' 8-token groups per lane (its GPL)
// for chunks of chunk tokens in workgroups of wg lanes: the fewest that
// hold the chunk in one tile, at least 1 and at most 8 (longer chunks take
// several tiles).
func groupsPerLane(chunk, wg int) int {
	return min(max((chunk+8*wg-1)/(8*wg), 1), 8)
}

// groupsWideLane is the most 8-token groups a lane of select_groups takes
// in groupsWorkgroup's wider workgroups.
const groupsWideLane = 4

// groupsWorkgroup returns the default workgroup of select_groups (HATA's
// fused select) for chunks of chunk tokens: selectWorkgroup, or twice that
// where selectWorkgroup's lanes would take more than groupsWideLane groups
// each and twice as many lanes take at most groupsWideLane (chunks of
// 8193-16384 tokens), if the device allows such a workgroup. On the H200
// (run 400, BENCHMARKS.md session 37) chunks of 16384 in 512 lanes of 4
// groups took the select stage 1.5-1.7 us less than in 256 lanes of 8,
// B8/128K 90.0-90.2 us against 91.4-91.6 and B4/256K 90.8-91.0 against
// 92.2-92.4. At B8/256K, chunks of 32768 (8 groups a lane either way: one
// tile of 512 lanes or two of 256), the select was 2.0 us shorter but the
// score's level, where the warm select runs, 6.8 longer: 158.6-158.8
// against 153.8-154.0 (traced in run 403 the score's level was the same
// either way and the select's 512-lane workgroups ran in two waves); those
// chunks keep selectWorkgroup.
func (c *sparseCore) groupsWorkgroup(chunk int) int {
	wg := 2 * selectWorkgroup
	if groupsPerLane(chunk, selectWorkgroup) <= groupsWideLane || groupsPerLane(chunk, wg) > groupsWideLane || !workgroupFits(c.ctx.Info, wg) {
		return selectWorkgroup
	}
	return wg
}

// workgroupFits reports whether the device runs workgroups of wg lanes
// along x: within its workgroup size and invocations, and a multiple of its
// largest subgroup size.
func workgroupFits(info DeviceInfo, wg int) bool {
	l := info.Limits
	return uint32(wg) <= l.MaxComputeWorkGroupInvocations && uint32(wg) <= l.MaxComputeWorkGroupSize[0] &&
		wg%int(max(info.MaxSubgroupSize, 1)) == 0
}

// maxBinsPerLane is wg_scan.glsl's MAXPER: the histogram bins a lane of
// the select's search (find_bin_at) holds, and of hata_step's.
const maxBinsPerLane = 16

// binsPerLane is the specialization constant 3 of the select kernels that
// search a histogram (select.glsl's BINS_PER: select_write_cum,
// select_groups, select_count, select_write; select_hist derives it from
// its own constant 3): the bins a lane of wg holds in the threshold's
// search, ceil(nbins / wg), so that its unrolled loads and compares are no
// more than nbins needs. With maxBinsPerLane there instead, HATA's select
// took 3.6 us to resolve its threshold from cold code on the H200 instead
// of 1.9, and B1/32K's step took 1.8-2.0 us longer (BENCHMARKS.md, session
// 35, runs 375 and 377; with the score's plan, SparseOptions.SelectPlan,
// the select runs no search); the radix select's kernels (the exact
// top-k's and Loki's past select_rows, HATA's naive variant) 1.0-2.7 us
// of their select stages, and hata/naive's about 20 at B8/256K (session
// 36, runs 382 and 385).
func binsPerLane(nbins, wg int) uint32 { return uint32(max((nbins+wg-1)/wg, 1)) }

const _ = uint(maxBinsPerLane*selectWorkgroup - maxDirectBins) // the default workgroup searches a one-pass histogram

// selectSpec describes one exact top-k selection over a key buffer
// (select.glsl): the kk smallest keys of the tokens [0, n) that no window
// forces in, ties to the smaller token index, plus the forced tokens
// (t < sinkEnd or t >= recentStart), written ascending to sel.
type selectSpec struct {
	keys      Range
	key16     bool // keys are packed uint16
	key8      bool // with key16 and plan: hata_score's one-byte keys (select_groups_k8)
	keyStride int  // row stride of keys, in keys
	page      int  // tokens per key (Quest's page size), >= 1
	rows, n   int
	kk        int // keys to take besides the forced tokens
	sinkEnd   int
	recentEnd int // recentStart: tokens t >= it are forced
	// directBins > 0: one histogram pass over keys < directBins; 0: radix
	// passes over the key's digits (passBins).
	directBins int
	// prebuilt: the one-pass histogram is built by the score kernel
	// (hata_score's fused histogram), so no select_hist pass runs.
	prebuilt bool
	// cumChunk > 0 (with prebuilt): the score kernel also wrote every
	// chunk's cumulative histogram over chunks of cumChunk tokens, after the
	// histograms in hist; the select uses those chunks and runs no
	// select_count (select.glsl, pc.cum).
	cumChunk int
	// attendG > 0 (with cumChunk): select and attend in one dispatch
	// (select_attend, group size attendG) when its shared memory fits and
	// the cache is one buffer; selectPlan.attend is nil otherwise (and the
	// separate select and attention run).
	attendG int
	// plan (with cumChunk and no attendG): the score kernel's last
	// workgroup of each row also writes the select's plan after the
	// cumulative histograms (select_plan.glsl: ctr, thr, plan), and the
	// write kernel reads it (SparseOptions.SelectPlan).
	plan bool
	// perRow: the whole selection by select_rows, one workgroup per row
	// (uint32 keys, no window, at most rowsWorkgroup*rowsKPT keys a row).
	perRow bool
	// pass0: the score kernel builds the first radix pass (score_softmax's
	// HIST), so select_hist runs from the second.
	pass0 bool
	// chunk, if > 0, is the select chunk when SparseOptions.SelectChunk is
	// 0 (else defaultSelectChunk).
	chunk int
	sel   Range // [rows][k] uint32
	k     int   // the row stride of sel
}

// selectPlan is a selectSpec with its kernels and buffers.
type selectPlan struct {
	selectSpec
	warm              []warmDispatch // dispatched beside the write, no barrier between (HATA's warm attention, prepareWarm)
	warmed            int            // of warm, dispatched by the last recordSelect
	passes, nbins     int
	chunk, nchunks    int
	hist, cnt         Range
	histBytes         uint64  // of the histograms proper (zeroed each step), before any cumulative ones
	hk, count, writeK *Kernel // count: nil with cumChunk or radixCum(); writeK: nil with attend
	attend            *Kernel // select_attend, or nil
	trace             Range   // SparseOptions.Trace: writeK's [rows][nchunks][selectTracePoints] clock readings, else empty
	planCtr           Range   // with plan: select_plan.glsl's ctr (left 0 by every step)
	planThr           Range   // with plan: select_plan.glsl's thr, every row's threshold T
}

// groupsSelect reports whether s's write is select_groups (where it does
// not also attend): HATA's fused select over chunks of uint16 keys longer
// than one of select_write's tiles, 8-aligned for its 16-byte key loads.
func (s *selectSpec) groupsSelect() bool {
	return selectGroups(s.cumChunk) > 0 && s.key16 && s.cumChunk%8 == 0 && s.keyStride%8 == 0
}

// radixCum reports whether s selects by radix passes over chunks, whose last
// select_hist writes every chunk's counts below each last digit
// (select.glsl's rc), so that no select_count runs (pc.cum with pc.radix).
func (s *selectSpec) radixCum() bool { return !s.perRow && s.directBins == 0 }

// passes returns the histogram passes and bins per pass of s.
func (s *selectSpec) passBins() (passes, nbins int) {
	switch {
	case s.directBins > 0:
		return 1, s.directBins
	case s.key16:
		return 2, 256 // two 8-bit digits (select.glsl's width)
	}
	return 3, 2048 // digits of 11, 11 and 10 bits
}

// prepareSelect sizes the histogram and chunk-count buffers of s and builds
// its kernels.
func (c *sparseCore) prepareSelect(s selectSpec) (*selectPlan, error) {
	p := &selectPlan{selectSpec: s}
	if p.page < 1 {
		p.page = 1
	}
	if s.directBins > maxDirectBins {
		return nil, c.errorf("a one-pass histogram of %d bins, over %d", s.directBins, maxDirectBins)
	}
	p.passes, p.nbins = s.passBins()
	if s.pass0 && (s.directBins > 0 || s.key16 || s.prebuilt || s.perRow) {
		return nil, c.errorf("a prebuilt first radix pass needs uint32 keys in radix passes over chunks")
	}
	if s.cumChunk > 0 && (!s.prebuilt || s.directBins == 0) {
		return nil, c.errorf("cumulative chunk histograms need the score kernel's one-pass histogram")
	}
	maxX := int(c.ctx.Info.Limits.MaxComputeWorkGroupCount[0])
	p.chunk = max(cmp.Or(c.opt.SelectChunk, s.chunk, defaultSelectChunk), (s.n+maxX-1)/maxX)
	switch {
	case s.cumChunk > 0:
		p.chunk = s.cumChunk
	case s.perRow:
		p.chunk = max(s.n, 1) // one workgroup per row
	}
	p.nchunks = (s.n + p.chunk - 1) / p.chunk
	p.histBytes = uint64(s.rows*p.passes*p.nbins) * 4
	if s.perRow {
		if s.key16 || s.directBins > 0 || s.prebuilt || s.sinkEnd > 0 || s.recentEnd < s.n || !c.rowsFit(s.n, p.page) {
			return nil, c.errorf("select_rows: uint32 keys, no window, at most %d keys a row", rowsWorkgroup*rowsKPT)
		}
		p.histBytes = 0 // its histograms are in shared memory
	}
	histBytes := max(p.histBytes, 4) // bound by every select kernel
	if s.key8 && (!s.plan || !s.groupsSelect()) {
		return nil, c.errorf("one-byte keys need the select's plan and select_groups")
	}
	if s.plan && (s.cumChunk == 0 || s.attendG > 0) {
		return nil, c.errorf("the select's plan needs the score kernel's chunk counts and a separate select")
	}
	planAt := uint64(0) // select_plan.glsl's plan_base, in bytes
	switch {
	case s.cumChunk > 0:
		histBytes += uint64(s.rows*p.nchunks*p.nbins) * 4
		if s.plan {
			planAt = histBytes
			histBytes += uint64(s.rows*(2+2*p.nchunks)) * 4
		}
	case !s.perRow:
		// Each row's resolved state after 1..passes passes (select.glsl's
		// state_at): 4 slots of 2 words, after the histograms; with radix
		// passes, then every chunk's rc of nbins+1 words.
		histBytes = p.histBytes + uint64(s.rows)*4*2*4
		if s.radixCum() {
			histBytes += uint64(s.rows*p.nchunks*(p.nbins+1)) * 4
		}
	}
	hist, err := c.buf("select histogram", histBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	cnt, err := c.buf("select counts", uint64(s.rows*p.nchunks)*8, DeviceLocal)
	if err != nil {
		return nil, err
	}
	p.hist, p.cnt = hist.Range(0, histBytes), cnt.Range(0, uint64(s.rows*p.nchunks)*8)
	if s.plan {
		p.planCtr = hist.Range(planAt, uint64(s.rows)*4)
		p.planThr = hist.Range(planAt+uint64(s.rows)*4, uint64(s.rows)*4)
		if p.planCtr != c.planZeroed { // new: zero it (every step leaves it zero)
			if err := c.zeroNow(p.planCtr); err != nil {
				return nil, c.errorf("zeroing the select plan's counters: %v", err)
			}
			c.planZeroed = p.planCtr
		}
	} else {
		// This step's histograms may cover the words a plan step left zero
		// (TestHATASelectPlanBetween).
		c.planZeroed = Range{}
	}
	if s.perRow {
		// Traced (its *_trace entry point and a fifth binding) with
		// SparseOptions.Trace, one workgroup per row.
		suffix, bindings := "", 4
		if c.opt.Trace {
			suffix, bindings = "_trace", 5
			if p.trace, err = c.traceBuffer("select trace", s.rows*p.nchunks, selectTracePoints); err != nil {
				return nil, err
			}
		}
		p.writeK, err = c.kernel("select_rows"+suffix, bindings, selectPush{}, rowsWorkgroup, 0, uint32(rowsKeysPerLane(s.n, p.page)))
		return p, err
	}
	k16 := b32(s.key16)
	wg := cmp.Or(c.opt.SelectWorkgroup, selectWorkgroup)
	if p.nbins > maxBinsPerLane*wg {
		return nil, c.errorf("select workgroup %d: its histogram search holds %d bins a lane, and the select's histogram has %d bins: want a workgroup of at least %d", wg, maxBinsPerLane, p.nbins, (p.nbins+maxBinsPerLane-1)/maxBinsPerLane)
	}
	if !s.prebuilt {
		if p.hk, err = c.kernel("select_hist", 4, selectPush{}, uint32(wg), k16, selectPer, uint32(p.nbins)); err != nil {
			return nil, err
		}
	}
	if s.cumChunk == 0 && !s.radixCum() {
		if p.count, err = c.kernel("select_count", 4, selectPush{}, uint32(wg), k16, selectPer, binsPerLane(p.nbins, wg)); err != nil {
			return nil, err
		}
	}
	if s.attendG > 0 && len(c.kv.k) == 1 { // select_attend binds the cache whole
		if s.cumChunk == 0 {
			return nil, c.errorf("select_attend needs the score kernel's chunk counts")
		}
		if p.attend, err = c.selectAttendKernel(s.attendG, s.key16); err != nil {
			return nil, err
		}
	}
	// The write kernel, traced (its *_trace entry point and a fifth
	// binding) with SparseOptions.Trace.
	suffix, bindings := "", 4
	if c.opt.Trace && p.attend == nil {
		suffix, bindings = "_trace", 5
		if p.trace, err = c.traceBuffer("select trace", s.rows*p.nchunks, selectTracePoints); err != nil {
			return nil, err
		}
	}
	switch {
	case p.attend != nil:
	case s.groupsSelect():
		// HATA's fused select over long chunks: whole chunks per tile,
		// groups without a taken key skipped.
		gwg := wg
		if c.opt.SelectWorkgroup == 0 {
			gwg = c.groupsWorkgroup(s.cumChunk)
		}
		per := uint32(8 * groupsPerLane(s.cumChunk, gwg))
		name := "select_groups"
		if s.key8 {
			name = "select_groups_k8"
		}
		if p.writeK, err = c.kernel(name+suffix, bindings, selectPush{}, uint32(gwg), k16, per, binsPerLane(p.nbins, gwg)); err != nil {
			return nil, err
		}
	case s.cumChunk > 0: // without select_count's resolved states
		if p.writeK, err = c.kernel("select_write_cum"+suffix, bindings, selectPush{}, uint32(wg), k16, selectPer, binsPerLane(p.nbins, wg)); err != nil {
			return nil, err
		}
	default:
		if p.writeK, err = c.kernel("select_write"+suffix, bindings, selectPush{}, uint32(wg), k16, selectPer, binsPerLane(p.nbins, wg)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// defaultSelectChunk is the select kernels' chunk when neither
// SparseOptions.SelectChunk nor the select's own rule sets one.
const defaultSelectChunk = 4096

// radixSelectChunk is the radix select's chunk over n tokens of rows rows:
// the power of two from defaultSelectChunk up that keeps the grid within 4
// workgroups per compute unit. Each workgroup of every pass resolves the
// threshold from the histograms before it reads its keys, so many short
// chunks cost more than their keys: on the H200 the exact top-k's select at
// B8/128K took 150.6 us with chunks of 4096 tokens (2048 workgroups), 91.8
// with 16384, 105.2 with 32768; at B8/256K 276.6, 180.8 and 157.6 with
// 4096, 16384, 32768; at B8/32K and B1/256K 4096 and 8192 tied and 16384
// was slower; at B1/128K 2048 was slower (run 84, BENCHMARKS.md).
func (c *sparseCore) radixSelectChunk(n, rows int) int {
	places := 4 * max(c.ctx.Info.ComputeUnits, 1)
	ch := defaultSelectChunk
	for ch < n && rows*((n+ch-1)/ch) > places {
		ch *= 2
	}
	return ch
}

// rowsFit reports whether select_rows can select over n tokens with a key
// per page tokens: a row's keys fit one workgroup of the device, which has
// the subgroup operations the kernel uses.
func (c *sparseCore) rowsFit(n, page int) bool {
	info := c.ctx.Info
	const ops = SubgroupArithmetic // wg_scan
	return (n+page-1)/page <= rowsWorkgroup*rowsKPT && workgroupFits(info, rowsWorkgroup) && info.SubgroupOps&ops == ops
}

// rowsKeysPerLane is select_rows' keys per lane (its KPT) for n tokens with
// a key per page tokens: the fewest of 4, 8, 16 and 32 that hold the row.
func rowsKeysPerLane(n, page int) int {
	nk := (n + page - 1) / page
	kpt := 4
	for kpt < rowsKPT && kpt*rowsWorkgroup < nk {
		kpt *= 2
	}
	return kpt
}

// rowsAutoMaxKeys is the most keys a row of one key per token may have for
// RowSelectAuto to select it with select_rows: up to 8 keys per lane it took
// 19-26 us on the H200 for Quest's pages at B1/32K to B8/256K, where the
// radix select over chunks took 36-298 us; with 32 keys per lane (the exact
// top-k's 32K tokens) it took 48-50 us, against 42-53 (runs 80-83,
// BENCHMARKS.md). Keys of pages (Quest's) are not held to it: the radix
// select runs over their tokens, page times as many keys as select_rows
// reads, and at 16 keys per lane (384K and 512K tokens in pages of 32)
// select_rows took 34.8-39.0 us at B1 and B8 against the radix select's
// 52.5-282.8, at 32 (1M tokens) 69.0-69.5 against 91.6-535.5 (runs
// 340-341, session 31).
const rowsAutoMaxKeys = 8 * rowsWorkgroup

// rowSelect says whether the float-score methods select with select_rows
// (one workgroup per row) over n tokens with a key per page tokens:
// RowSelectOn wherever it fits (an error where it does not), RowSelectOff
// never, RowSelectAuto where it fits and no SelectChunk is set (a chunk is
// the radix select's: a setting no kernel reads would be claimed by every
// benchmark row that set it), for one key per token up to rowsAutoMaxKeys
// keys a row.
func (c *sparseCore) rowSelect(n, page int) (bool, error) {
	switch c.opt.RowSelect {
	case RowSelectOff:
		return false, nil
	case RowSelectOn:
		if !c.rowsFit(n, page) {
			return false, c.errorf("RowSelectOn: a row of %d keys does not fit one workgroup of select_rows (at most %d keys, %d lanes with subgroup arithmetic)",
				(n+page-1)/page, rowsWorkgroup*rowsKPT, rowsWorkgroup)
		}
		return true, nil
	}
	return c.opt.SelectChunk == 0 && c.rowsFit(n, page) && (page > 1 || n <= rowsAutoMaxKeys), nil
}

// selectAttendKernel returns select_attend for group size g, or nil when its
// shared memory (select.glsl's scan, split_softmax.glsl's slots, a tile of
// WG*PER indices) does not fit the device or TPT does not divide its
// workgroup.
func (c *sparseCore) selectAttendKernel(g int, key16 bool) (*Kernel, error) {
	info := c.ctx.Info
	tpt := lanesPerToken(info, c.d/c.opt.Storage.vec())
	nslot := selectWorkgroup / tpt
	shared := 4*selectWorkgroup + 8 + splitSoftmaxShared(nslot, c.d, g) + 4*selectWorkgroup*selectPer
	if selectWorkgroup%tpt != 0 || shared > int(info.Limits.MaxComputeSharedMemorySize) {
		return nil, nil
	}
	return c.kernel("select_attend_"+c.opt.Storage.String(), 11, selectPush{},
		selectWorkgroup, b32(key16), selectPer, uint32(tpt), uint32(c.d), uint32(g), uint32(c.tile()), 1)
}

// recordSelectAttend records select_attend ("select+attend"): p's selection
// of step s written to s.sel, and the attention over it into a (a.splits =
// p.nchunks), merged by the last workgroup of each row.
func (c *sparseCore) recordSelectAttend(b *Batch, p *selectPlan, s *step, a *attention) error {
	b.Stage("select+attend")
	set, err := c.set(p.attend, p.keys, p.hist, p.cnt, p.sel, s.q, c.kv.k[0].Whole(), c.kv.v[0].Whole(), a.po, a.pml, a.out, a.cnt)
	if err != nil {
		return err
	}
	b.Dispatch(p.attend, set, selectPush{
		N: uint32(p.n), KK: uint32(p.kk), SinkEnd: uint32(p.sinkEnd), RecentStart: uint32(p.recentEnd),
		ChunkLen: uint32(p.chunk), NChunks: uint32(p.nchunks), KeyStride: uint32(p.keyStride),
		Page: uint32(p.page), KStride: uint32(p.k), NBins: uint32(p.nbins), Cum: 1,
		Cap: uint32(c.cap), Scale: float32(1 / math.Sqrt(float64(c.d))), Splits: uint32(p.nchunks),
	}, uint32(p.nchunks), uint32(p.rows), 1)
	b.Barrier()
	return nil
}

// zeroHist records the clearing of the histograms (not of the cumulative
// chunk histograms, which the score kernel writes whole); it must precede
// the first pass (the score kernel, when prebuilt).
func (p *selectPlan) zeroHist(b *Batch) {
	if p.histBytes > 0 {
		b.Fill(p.zeroRange(), 0)
	}
}

// zeroRange returns the part of the histogram buffer zeroHist clears.
func (p *selectPlan) zeroRange() Range {
	return p.hist.Buf.Range(p.hist.Off, p.histBytes)
}

// push returns the push constants of p's kernels (Pass 0).
func (p *selectPlan) push() selectPush {
	return selectPush{
		N: uint32(p.n), KK: uint32(p.kk), SinkEnd: uint32(p.sinkEnd), RecentStart: uint32(p.recentEnd),
		ChunkLen: uint32(p.chunk), NChunks: uint32(p.nchunks), KeyStride: uint32(p.keyStride),
		Page: uint32(p.page), KStride: uint32(p.k), Radix: b32(p.directBins == 0), NBins: uint32(p.nbins),
		Cum: b32(p.cumChunk > 0 || p.radixCum()), Plan: b32(p.plan),
	}
}

// record records the histogram passes (unless prebuilt), the counts and the
// write (beside it p.warm, with no barrier between), with barriers between
// them.
func (c *sparseCore) recordSelect(b *Batch, p *selectPlan) error {
	push := p.push()
	p.warmed = 0
	c.lastSelectTrace = p.trace
	grid := func(k *Kernel, push selectPush) error {
		bufs := []Range{p.keys, p.hist, p.cnt, p.sel}
		if k == p.writeK && p.trace.Buf != nil {
			bufs = append(bufs, p.trace)
		}
		set, err := c.set(k, bufs...)
		if err != nil {
			return err
		}
		b.Dispatch(k, set, push, uint32(p.nchunks), uint32(p.rows), 1)
		if k == p.writeK {
			p.warmed = dispatchWarm(b, p.warm)
		}
		b.Barrier()
		return nil
	}
	if p.perRow {
		return grid(p.writeK, push) // select_rows: the whole selection, one chunk a row
	}
	if !p.prebuilt {
		for pass := range p.passes {
			if pass == 0 && p.pass0 {
				continue // the score kernel built it
			}
			push.Pass = uint32(pass)
			if err := grid(p.hk, push); err != nil {
				return err
			}
		}
	}
	push.Pass = 0
	if p.count != nil {
		if err := grid(p.count, push); err != nil {
			return err
		}
	}
	return grid(p.writeK, push)
}

// scoreMaxChunk bounds the default score chunk of the score kernels but
// HATA's (hataMaxChunk).
const scoreMaxChunk = 4096

// hataScorePerCU and logitsPerCU are the workgroups per compute unit that
// the default score chunks fill (scoreChunk). score_logits' workgroups of
// 128 lanes take 64 registers each, so eight fit a compute unit of the
// H200; with chunks for eight the exact top-k's score took 171 us at B8/32K
// against 190 with chunks for four (run 79, BENCHMARKS.md). hata_score
// (32 registers since session 9) would fit eight too, but HATA's select
// works on the same chunks, and chunks for eight made the step slower
// (B8/32K 52.2-52.8 us against 49.5-49.9, run 95).
const (
	hataScorePerCU = 4
	logitsPerCU    = 8
)

// scoreChunk returns the tokens per workgroup of a score kernel over n
// tokens of rows rows: SparseOptions.ScoreChunk, or waveChunk's, and never
// more workgroups across than the grid allows (gridChunk).
func (c *sparseCore) scoreChunk(n, rows, maxChunk, perCU int) int {
	ch := c.opt.ScoreChunk
	if ch == 0 {
		ch = c.waveChunk(n, rows, maxChunk, perCU)
	}
	return c.gridChunk(n, ch)
}

// waveChunk is scoreChunk's default: as many whole chunks per row as keep
// the grid within perCU workgroups per compute unit (one wave; at least one
// chunk per row), of 512 to maxChunk tokens (multiples of 8, and above
// scoreMaxChunk of 2048). (Dividing the row's tokens by the target instead
// gave B8/32K on the H200 9 chunks of 3976 tokens per row, 576 workgroups
// for 528 places: HATA took 54.4 us against 52.4 with 8 of 4096, exact
// top-k 417 against 388, Loki 251 against 241; BENCHMARKS.md.) hata_score
// runs 4 per compute unit (hataScorePerCU), score_logits 8 (logitsPerCU).
func (c *sparseCore) waveChunk(n, rows, maxChunk, perCU int) int {
	cu := max(c.ctx.Info.ComputeUnits, 1)
	per := max(perCU*cu/max(rows, 1), 1) // chunks per row
	ch := (n + per - 1) / per
	ch = roundUp(min(max(ch, 512), maxChunk), 8) // 8: select_write's 16-byte key loads
	if ch > scoreMaxChunk {
		// Whole rounds of hata_score and tiles of select_write (2048
		// tokens each): B8/128K on the H200 took 120.2 us with chunks
		// of 15888 tokens, 115.6 with 16384 (BENCHMARKS.md).
		ch = min(roundUp(ch, 2048), maxChunk)
	}
	return ch
}

// gridChunk returns chunks of ch tokens, longer where n tokens in chunks of
// ch would need more workgroups across than the device's grid allows, and
// even.
func (c *sparseCore) gridChunk(n, ch int) int {
	maxX := int(c.ctx.Info.Limits.MaxComputeWorkGroupCount[0])
	return roundUp(max(ch, (n+maxX-1)/maxX), 2)
}
