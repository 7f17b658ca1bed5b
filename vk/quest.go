package vk

import (
	"cmp"

	"github.com/hata-go/hata/ref"
)

// Quest is query-aware page selection on the GPU (the vk implementation of
// ref.Quest). The page bounds lo, hi: [B*Hkv][ceil(Cap/P)][D] are stored in
// the cache's type (fp16 bounds of an fp16 cache are exact: the min and max
// of fp16 values are fp16 values) and computed from the cache on the device
// (quest_bounds: every page at Prefill, the new token's page at Append, all
// again when the cache grows). Per decode step:
//
//	score   quest_score: S(j) = sum_g sum_i max(q_g[i] lo_j[i], q_g[i] hi_j[i])
//	        per page, as "smaller is better" uint32 keys (TPT lanes per
//	        page, coalesced loads, every head of the group from one load)
//	select  the k largest token scores with ties to the smaller index, each
//	        token carrying its page's key, which is ref's rule (pages best
//	        first, ties to the smaller page, the last page cut to its first
//	        tokens): select_rows (one workgroup per row over the page keys,
//	        each weighted by its tokens) wherever a row's pages fit one
//	        workgroup (32768), else the radix select over tokens;
//	        SparseOptions.RowSelect
//	attend  as HATA's fused variant (the merge folded in)
//
// SparseOptions.ScoreChunk, if set, is the tokens (rounded to whole pages and
// steps) each quest_score workgroup covers.
//
// Timings names the stages "upload", ["poison",] "score", "select",
// "attend", ["readback"].
type Quest struct {
	*sparseCore
	page int
}

var (
	_ ref.Method = (*Quest)(nil)
	_ ref.Scorer = (*Quest)(nil)
)

// NewQuest returns Quest with pages of pageSize tokens (0: 32) for caches of
// head dimension d.
func (c *Context) NewQuest(d, pageSize int, o SparseOptions) (*Quest, error) {
	if _, err := ref.NewQuest(pageSize); err != nil {
		return nil, err
	}
	if pageSize == 0 {
		pageSize = 32
	}
	core, err := newSparseCore(c, "quest", d, o)
	if err != nil {
		return nil, err
	}
	m := &Quest{sparseCore: core, page: pageSize}
	core.side, core.planner = m, m
	return m, nil
}

// The quest kernels' sizes: quest_score's workgroup and pages per slot per
// step (its TILE); quest_bounds's workgroup is questWorkgroup.
const (
	questScoreWorkgroup = 128
	questTile           = 4
)

// pcap returns the page capacity of a row.
func (m *Quest) pcap() int { return (m.cap + m.page - 1) / m.page }

// boundBytes returns the bytes of lo (or hi): [rows][pcap][D] in the
// storage type.
func (m *Quest) boundBytes() uint64 {
	return uint64(m.rows()*m.pcap()*m.d) * uint64(m.opt.Storage.bytes())
}

// sizeSide implements sideState: lo and hi.
func (m *Quest) sizeSide() error {
	if _, err := m.buf("page min", m.boundBytes(), DeviceLocal); err != nil {
		return err
	}
	_, err := m.buf("page max", m.boundBytes(), DeviceLocal)
	return err
}

// bounds returns the ranges of lo and hi.
func (m *Quest) bounds() (lo, hi Range) {
	return m.scratch["page min"].Range(0, m.boundBytes()), m.scratch["page max"].Range(0, m.boundBytes())
}

// buildSide implements sideState: quest_bounds over the pages of tokens
// [t0, t1), PPW pages per workgroup (one lane per 16-byte vector of a
// page's row).
func (m *Quest) buildSide(b *Batch, t0, t1 int) error {
	dv := m.d / m.opt.Storage.vec()
	ppw := max(questWorkgroup/dv, 1)
	k, err := m.kernel("quest_bounds_"+m.opt.Storage.String(), 3, questBoundsPush{}, questWorkgroup, uint32(m.d), uint32(ppw), b32(m.opt.PairedKV))
	if err != nil {
		return err
	}
	lo, hi := m.bounds()
	p0, p1 := t0/m.page, (t1-1)/m.page+1
	step := ppw * int(m.ctx.Info.Limits.MaxComputeWorkGroupCount[0])
	for _, g := range m.groups() {
		set, err := m.set(k, g.k, lo, hi)
		if err != nil {
			return err
		}
		for a := p0; a < p1; a += step {
			e := min(a+step, p1)
			b.Dispatch(k, set, questBoundsPush{N: uint32(m.n), Cap: uint32(m.cap), Page: uint32(m.page), P0: uint32(a), PCap: uint32(m.pcap()), Row0: uint32(g.row0)},
				uint32((e-a+ppw-1)/ppw), uint32(g.rows), 1)
		}
	}
	b.Barrier()
	return nil
}

// scoreKernel returns quest_score for group size g and the pages per
// workgroup step (NSLOT*TILE): SparseOptions.ScoreWorkgroup lanes (0:
// questScoreWorkgroup), TPT lanes per page, the largest power of two
// up to the smallest subgroup and 32 dividing a page row's 16-byte vectors
// (lanesPerToken); an error when q's shared copy (G*D floats) does not fit.
func (m *Quest) scoreKernel(g int) (*Kernel, int, error) {
	info := m.ctx.Info
	tpt := lanesPerToken(info, m.d/m.opt.Storage.vec())
	wg := cmp.Or(m.opt.ScoreWorkgroup, questScoreWorkgroup)
	if shared := g * m.d * 4; shared > int(info.Limits.MaxComputeSharedMemorySize) || wg%int(info.MaxSubgroupSize) != 0 {
		return nil, 0, m.errorf("quest_score: G=%d D=%d needs %d bytes of shared memory (the device has %d) and a workgroup of %d lanes, a multiple of the subgroup size %d",
			g, m.d, shared, info.Limits.MaxComputeSharedMemorySize, wg, info.MaxSubgroupSize)
	}
	k, err := m.kernel("quest_score_"+m.opt.Storage.String(), 4, questScorePush{},
		uint32(wg), uint32(tpt), uint32(m.d), uint32(g), questTile)
	return k, wg / tpt * questTile, err
}

// pageChunk returns the pages each quest_score workgroup covers, a multiple
// of step: SparseOptions.ScoreChunk tokens, or enough workgroups for 4 per
// compute unit, and never more workgroups than the grid allows.
func (m *Quest) pageChunk(pages, rows, step int) int {
	ch := (m.opt.ScoreChunk + m.page - 1) / m.page
	if m.opt.ScoreChunk == 0 {
		target := 4 * max(m.ctx.Info.ComputeUnits, 1)
		ch = (pages*rows + target - 1) / target
	}
	maxX := int(m.ctx.Info.Limits.MaxComputeWorkGroupCount[0])
	return roundUp(max(ch, (pages+maxX-1)/maxX, 1), step)
}

// plan implements planner: quest_score per page, then the radix select over
// tokens.
func (m *Quest) plan(q []float32, budget ref.Budget) (*stepPlan, error) {
	s, err := m.prepareStep(q, budget)
	if err != nil {
		return nil, err
	}
	pages, pcap := (m.n+m.page-1)/m.page, m.pcap()
	keyBytes := uint64(s.rows*pcap) * 4
	keys, err := m.buf("page keys", keyBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	score, step, err := m.scoreKernel(s.g)
	if err != nil {
		return nil, err
	}
	chunk := m.pageChunk(pages, s.rows, step)
	kr := keys.Range(0, keyBytes)
	sp, err := m.floatSelect(s, kr, pcap, m.page, false)
	if err != nil {
		return nil, err
	}
	return &stepPlan{
		s:      s,
		scores: scoreView{keys: kr, stride: pcap, page: m.page, n: m.n},
		poison: []Range{kr, sp.cnt},
		rec: func(b *Batch) error {
			b.Stage("score")
			sp.zeroHist(b)
			lo, hi := m.bounds()
			set, err := m.set(score, s.q, lo, hi, kr)
			if err != nil {
				return err
			}
			b.Dispatch(score, set, questScorePush{Pages: uint32(pages), PCap: uint32(pcap), PStride: uint32(pcap), Chunk: uint32(chunk)},
				uint32((pages+chunk-1)/chunk), uint32(s.rows), 1)
			m.recordPrefetch(b)
			b.Barrier()
			b.Stage("select")
			return m.recordSelect(b, sp)
		},
	}, nil
}

// Scores implements ref.Scorer: every token carries its page's float32
// score S of the last decode.
func (m *Quest) Scores() ([][]float64, error) { return m.floatScores() }
