package vk

import "slices"

// WarmMode is SparseOptions.Warm: whether HATA's (and lsh's) step runs one
// workgroup of each kernel that follows its score kernel, on buffers of
// its own, in an earlier level, so that their machine code is fetched
// there instead of when their own level starts: beside the score kernel,
// or (the attention's only) beside the select's write.
//
// After the timer's L2 flush (in a model: the other layers' weights) a
// kernel's first workgroups wait for its machine code from memory, block by
// block as they reach it: about 0.3 us a KB on the H200, for a step's
// select (17 KB at B1/128K), attention (10 KB) and merge (6 KB) kernels
// (BENCHMARKS.md, session 28). A warm workgroup waits for the same code in
// an earlier level, which hides it where that level is long enough; its
// results are thrown away. Beside the score (warmRule: from about a million
// codes a step, or chunks of 4096 tokens, where the score's grid leaves
// them room) that took 1.8-2.5 us off HATA's steps on the H200 at B1/128K,
// B8/16K, B8/32K, B8/128K and B8/256K (run 353), with score chunks that
// leave them room (warmChunk) 1.3-1.5 us off B1/192K and B1/256K (run
// 356), with the folded split warmed too 0.7 off B8/128K (run 361), and
// below a million codes where the chunks are long 2.6-4.1 off B1/80K,
// B1/96K, B2/48K, B4/24K and B8/12K (run 391). Where the score's level is
// shorter than the warm workgroups, the attention's are warmed beside the
// select's write instead (WarmLate), from 16K tokens a row: 1.0-1.9 us off
// B1/32K and B1/64K (run 363), 1.4-1.8 off B2/16K, B2/32K and B4/16K (run
// 367), 0.4-1.6 off B1/16K-64K since the select's search holds only its
// bins (run 380).
type WarmMode int

// The modes of WarmMode.
const (
	WarmAuto WarmMode = iota // by warmRule
	WarmOn                   // beside the score, wherever the step has such kernels
	WarmOff                  // never
	WarmLate                 // the attention's beside the select's write, wherever the step has them
)

// valid reports whether m is one of the modes.
func (m WarmMode) valid() bool { return m >= WarmAuto && m <= WarmLate }

// warmPlace is where a step's warm workgroups run (warmRule).
type warmPlace int

const (
	warmNowhere  warmPlace = iota
	warmAtScore            // the select's, the attention's and the merge's beside the score
	warmAtSelect           // the attention's and the merge's beside the select's write
)

// warmMinCodes is warmRule's threshold: the codes a step's score kernel
// reads (rows times tokens) from which its level hides the warm workgroups,
// which wait for their own code from memory. On the H200 (run 353) the
// score stage took 4.2-4.5 us longer at 0.5M codes and below (B1/32K,
// B1/64K, B8/8K: 7.4-8.7 us levels) and no longer from 1M (B1/128K,
// B8/16K: 13.1-13.2 us).
const warmMinCodes = 1 << 20

// warmLongChunk is warmRule's other threshold: score chunks of
// warmLongChunk tokens or more make a level that hides the warm workgroups
// below warmMinCodes too. Such chunks come of the select's plan
// (hataPlanChunk) in few workgroups, each streaming its chunk alone: on
// the H200 B4/24K (192 workgroups of 4096 tokens, 0.75M codes) took
// 32.2-32.7 us with the select warmed beside the score against 36.9-37.1
// with the attention warmed beside the select, its score stage 12.2-12.5
// either way (run 390); with chunks of 1024 (B1/16K-64K, B2/16K, B4/16K)
// the score's stage grew 2.3-3.1 us (runs 383 and 390). Run 391 (this rule
// against the one before it): B1/80K 32.4-32.5 against 36.2-36.3, B1/96K
// 32.7-33.0 against 36.8, B2/48K 32.4-32.6 against 36.5-36.8, B4/24K
// 32.6-32.8 against 36.7-36.8, B8/12K 32.4-32.5 against 35.0-35.1; B1/64K,
// B2/24K, B4/48K and B8/16K, which it does not change, within 0.3 us.
const warmLongChunk = hataPlanChunk

// warmLateTokens says where warmRule warms the attention beside the
// select's write below warmMinCodes: where a row holds warmLateTokens tokens
// or more. On the H200 that took 1.0-1.9 us off B1/32K and B1/64K (run 363)
// and 1.4-1.8 off B2/16K, B2/32K and B4/16K (run 367), and added 0.3-0.4 to
// B8/8K (run 363; its select level 1.7 us longer, its attention 1.5
// shorter) and 0.1-0.5 to B2/8K and B4/8K (run 366). B1/8K gained 1.0-1.9
// too until the select's search held only its bins (b5ae373): with the
// select 1.5 us shorter the warm split outlasts its level, and the step
// took 32.6 us against 31.7-31.9 unwarmed (run 380; B1/16K 31.8-32.0
// against 32.6-32.8, B1/32K 29.2-29.3 against 30.9, B1/64K 32.1-32.3
// against 32.7-32.9).
const warmLateTokens = 16384

// warmLen is the most keys the warm select reads and the most entries the
// warm split attends: enough that each runs its code, which is what it is
// for. On the H200 (run 363) whole chunks and splits beside the select
// lengthened B1/8K's select level by 3.8 us and 64 entries by 1.5; beside
// the score the two gave the same step times.
const warmLen = 64

// warmRule is WarmAuto's rule for a step whose score kernel reads codes
// codes in groups workgroups of chunk tokens, wave of which run at once
// (hataScorePerCU a compute unit; 0: not known), over rows rows, beside
// warms warm workgroups: beside the score from warmMinCodes codes or
// chunks of warmLongChunk tokens, where the score's last wave leaves a slot
// for each warm workgroup; below that, the attention's beside the select's
// write from warmLateTokens tokens a row.
// Where the
// score's grid fills its last wave, a warm workgroup takes the place of one
// of its workgroups, which then starts a workgroup's time late: on the
// H200 B1/256K (528 workgroups, 4 on each of 132 units) took 48.1-48.2 us
// with them against 45.6-45.9 without, its score stage 21.6-21.9 against
// 17.2-17.4 (run 353). Where the rule warms beside the score, the steps
// took 1.8-2.5 us less: B1/128K 34.9-35.1 against 37.3-37.7, B8/16K
// 35.4-35.5 against 37.4-37.8, B8/32K 44.0-44.1 against 45.8-46.2, B8/128K
// 92.6-93.0 against 94.5-94.9 (the select only: the merge is folded there;
// 91.5-91.6 against 92.2-92.4 with the folded split too, run 361), B8/256K
// 153.7-154.0 against 155.5-155.9.
func warmRule(codes, chunk, groups, wave, warms, rows int) warmPlace {
	// A score level too short to hide them: few codes, and workgroups that
	// stream short chunks (or rows shorter than a chunk).
	short := codes < warmMinCodes && min(chunk, codes/rows) < warmLongChunk
	switch {
	case short && codes/rows >= warmLateTokens:
		return warmAtSelect
	case short:
		return warmNowhere
	case wave <= 0 || (wave-groups%wave)%wave >= warms:
		return warmAtScore
	}
	return warmNowhere
}

// warmSlots is the most warm workgroups a step runs: the select's, the
// attention's split and the merge.
const warmSlots = 3

// warmChunk returns chunk, or where the score grid of rows*ceil(n/chunk)
// workgroups fills its one wave of wave within warmSlots of the end, the
// shortest chunk (a multiple of 8) whose grid leaves warmSlots slots free:
// on the H200 B1/256K's chunks of 3976 tokens made 528 workgroups, the
// whole wave, where warmRule cannot warm; chunks of 4040 make 520.
func warmChunk(n, rows, chunk, wave int) int {
	g := rows * ((n + chunk - 1) / chunk)
	per := (wave - warmSlots) / rows // chunks a row that leave the slots
	if wave <= 0 || g > wave || wave-g >= warmSlots || per < 1 {
		return chunk
	}
	return ((n+per-1)/per + 7) &^ 7
}

// warmOff reports whether SparseOptions rule the warm workgroups out
// (WarmOff). A traced step warms as an untraced one does: its warm
// workgroups run the traced kernels, whose readings go to the warm
// outputs (HATA.WarmTraces).
func (c *sparseCore) warmOff() bool { return c.opt.Warm == WarmOff }

// warmWhere is where a step of SparseOptions.Warm's mode runs its warm
// workgroups, warms of them beside a score kernel of groups workgroups of
// chunk tokens over codes codes of rows rows.
func (m *HATA) warmWhere(codes, chunk, groups, warms, rows int) warmPlace {
	switch {
	case m.warmOff():
		return warmNowhere
	case m.opt.Warm == WarmAuto:
		return warmRule(codes, chunk, groups, hataScorePerCU*m.ctx.Info.ComputeUnits, warms, rows)
	case m.opt.Warm == WarmLate:
		return warmAtSelect
	}
	return warmAtScore
}

// warmSelect reports whether p's write kernel can be warmed: the fused
// select (select_write_cum or select_groups, SELECT_CUM in select.glsl),
// whose only inputs are the keys and the histogram buffer, and which
// writes nothing but the selection.
func warmSelect(p *selectPlan) bool {
	return p.writeK != nil && p.attend == nil && !p.perRow && p.prebuilt && p.cumChunk > 0 && p.count == nil
}

// warmAttend reports whether a's kernels can be warmed: sparse_split over
// an index list, and sparse_merge where the merge is apart. Where it is
// folded, the warm split counts on a counter of its own (prepareWarm), as
// the step's counters count the row's workgroups.
func warmAttend(a *attention) bool {
	return a != nil && a.split != nil && a.gather == nil
}

// warmDispatch is one warm workgroup of a step (prepareWarm): its kernel,
// its buffers and its push constants.
type warmDispatch struct {
	k    *Kernel
	set  *Set
	push any
}

// prepareWarm sets the warm workgroups of step h whose attention is a,
// where SparseOptions.Warm asks for them (warmWhere): h.warm, beside the
// score kernel, one workgroup (a grid of one row and one chunk or split) of
// each kernel that follows it and can be warmed (warmSelect, warmAttend);
// or h.sel.warm, beside the select's write, the attention's. Each reads
// zeros where the step's own kernel reads what an earlier kernel of the
// step writes: the select's keys, histograms and plan (threshold 0 and
// nothing to take beyond the windows' tokens, written from slot 0; without
// the plan, a zero histogram's last bin, every token of the chunk, cut to
// warmLen tokens), the attention's index list (token 0, every entry of a
// split cut to warmLen entries) and the merge's partials. They read the
// step's q and K/V, which no kernel of the step writes. Each writes into a
// region of its own of a scratch buffer that nothing else reads. So the
// step's results are those of a step without them, bit for bit
// (TestWarmSameResults), and the validation layer finds no hazard. The
// inputs are zeroed when allocated (zeroedBuf), before the step is
// recorded, and nothing writes them after. The outputs are zeroed in the
// step's upload stage wherever their layout is new (a new buffer, or
// regions of other sizes): zero is that range, or empty.
func (m *HATA) prepareWarm(h *hataStep, a *attention) (zero Range, err error) {
	p := h.sel
	h.warm, p.warm = nil, nil
	m.warmSelTrace, m.warmSplitTrace = Range{}, Range{}
	sel, att := warmSelect(p), warmAttend(a)
	warms := 0
	if sel {
		warms++
	}
	if att {
		warms++
		if a.merge != nil {
			warms++
		}
	}
	place := warmNowhere
	if warms > 0 {
		place = m.warmWhere(h.rows*m.n, h.scoreChunk, h.rows*((m.n+h.scoreChunk-1)/h.scoreChunk), warms, h.rows)
	}
	if place == warmAtSelect {
		sel = false // the select's own level is the one that hides them
		att = att && p.attend == nil && p.writeK != nil
	}
	if place == warmNowhere || !sel && !att {
		return Range{}, nil
	}
	up := m.ctx.bindAlign
	d4 := uint64(m.d) * 4 // bytes of a row of o
	// Zeros: every binding reads from offset 0 as much as it reads of row 0
	// and chunk 0. The select's keys: chunk tokens of at most 4 bytes; its
	// histograms: select_plan.glsl's layout for one row (the histogram,
	// the chunk histograms, ctr, thr and the chunks' plan).
	keys := 4*uint64(p.chunk) + 64
	zeros := uint64(16)
	if sel {
		zeros = max(zeros, keys, 4*uint64(p.nbins*(1+p.nchunks)+2+2*p.nchunks))
	}
	if att {
		zeros = max(zeros, 4*uint64(a.length), uint64(a.splits)*d4, uint64(a.splits)*8)
	}
	// Outputs, a region each, in this order: the selection and, traced,
	// its clock readings; the split's partial o, (m, l), out, counters
	// and, traced, its readings; the merge's out. A warm workgroup is its
	// grid's workgroup 0: its readings are the first of a trace's.
	selTrace, splitTrace := 4*uint64(selectTracePoints), 4*uint64(tracePoints)
	var sizes []uint64
	if sel {
		sizes = append(sizes, 4*uint64(p.chunk))
		if p.trace.Buf != nil {
			sizes = append(sizes, selTrace)
		}
	}
	if att {
		g := uint64(h.g)
		// Where the merge is folded, the warm split's counter (zeroed
		// with the outputs where their layout is new) makes its one
		// workgroup the row's last every S-th step: then it folds its
		// own partials into its own out, so the fold's code is fetched
		// too.
		sizes = append(sizes, g*uint64(a.splits)*d4, g*uint64(a.splits)*8, g*d4, 16)
		if a.trace.Buf != nil {
			sizes = append(sizes, splitTrace)
		}
		if a.merge != nil {
			sizes = append(sizes, d4)
		}
	}
	var outBytes uint64
	for _, sz := range sizes {
		outBytes += up(sz)
	}
	z, err := m.zeroedBuf("warm inputs", up(zeros)) // nothing writes it
	if err != nil {
		return Range{}, err
	}
	out, err := m.buf("warm outputs", outBytes, DeviceLocal)
	if err != nil {
		return Range{}, err
	}
	if out != m.warmOut || !slices.Equal(sizes, m.warmLayout) {
		zero = out.Whole() // the warm split's counter starts at 0
	}
	zr := func(size uint64) Range { return z.Range(0, up(max(size, 16))) }
	var off uint64
	i := 0
	next := func() Range { // the next output region, sizes[i]
		r := out.Range(off, up(sizes[i]))
		off, i = off+r.Size, i+1
		return r
	}
	var ws []warmDispatch
	add := func(k *Kernel, push any, rs ...Range) error {
		set, err := m.set(k, rs...)
		if err == nil {
			ws = append(ws, warmDispatch{k, set, push})
		}
		return err
	}
	if sel {
		push := p.push()
		push.ChunkLen = uint32(min(p.chunk, warmLen))
		rs := []Range{zr(keys), z.Whole(), zr(16), next()}
		if p.trace.Buf != nil {
			m.warmSelTrace = out.Range(next().Off, selTrace) // the readings WarmTraces reads, not the region's padding
			rs = append(rs, m.warmSelTrace)
		}
		if err := add(p.writeK, push, rs...); err != nil {
			return Range{}, err
		}
	}
	if att {
		kv := m.groups()[0]
		push := m.splitPush(h.step, a, m.cap, 0)
		push.SplitLen = uint32(min(a.length, warmLen))
		po, pml, o, cnt := next(), next(), next(), next()
		rs := []Range{h.q, zr(4 * uint64(a.length)), kv.k, kv.v, po, pml, o, cnt}
		if a.trace.Buf != nil {
			m.warmSplitTrace = out.Range(next().Off, splitTrace)
			rs = append(rs, m.warmSplitTrace)
		}
		if err := add(a.split, push, rs...); err != nil {
			return Range{}, err
		}
		m.warmCnt = cnt
		if a.merge != nil {
			if err := add(a.merge, mergePush{Splits: uint32(a.splits)}, zr(uint64(a.splits)*d4), zr(uint64(a.splits)*8), next()); err != nil {
				return Range{}, err
			}
		}
	}
	if place == warmAtSelect {
		p.warm = ws
	} else {
		h.warm = ws
	}
	// Remembered only now: where anything above failed, the next step
	// compares with the last layout that was prepared (and zeroed).
	m.warmOut, m.warmLayout = out, sizes
	return zero, nil
}

// recordWarm records h's warm workgroups (prepareWarm) beside the kernel
// recorded before them, the score kernel.
func (m *HATA) recordWarm(b *Batch, h *hataStep) {
	m.lastWarm += dispatchWarm(b, h.warm)
}

// dispatchWarm records ws, a workgroup each, with no barrier after them,
// so that they run beside the kernel recorded before them; it returns how
// many it recorded.
func dispatchWarm(b *Batch, ws []warmDispatch) int {
	for _, w := range ws {
		b.Dispatch(w.k, w.set, w.push, 1, 1, 1)
	}
	return len(ws)
}

// WarmTraces returns the clock readings of the last step's warm workgroups
// (SparseOptions.Trace and Warm): the select's write ("warm select") and
// the attention's split ("warm sparse_split"), one workgroup each, those
// that ran; none where the step warmed nothing. Their clock is the step's
// kernels', so a reading says in which level a warm workgroup ran and how
// long it waited for what. They are not among Traces, whose kernels run one
// after another.
func (m *HATA) WarmTraces() ([]KernelTrace, error) {
	if !m.opt.Trace {
		return nil, m.errorf("WarmTraces: built without SparseOptions.Trace")
	}
	out, err := appendTrace(nil, m.warmSelTrace, func() (KernelTrace, error) {
		return m.readTrace("WarmTraces", "warm select", SelectTracePhases, m.warmSelTrace)
	})
	if err != nil {
		return nil, err
	}
	return appendTrace(out, m.warmSplitTrace, func() (KernelTrace, error) {
		return m.readTrace("WarmTraces", "warm sparse_split", TracePhases, m.warmSplitTrace)
	})
}
