package vk

import (
	"github.com/hata-go/hata/ref"
)

// Quest is query-aware page selection on the GPU (the vk implementation of
// ref.Quest). The page bounds lo, hi: [B*Hkv][ceil(Cap/P)][D] float32 are
// computed from the cache on the device (quest_bounds: every page at Prefill,
// the new token's page at Append, all again when the cache grows). Per
// decode step:
//
//	score   quest_score: S(j) = sum_g sum_i max(q_g[i] lo_j[i], q_g[i] hi_j[i])
//	        per page, as "smaller is better" uint32 keys
//	select  the radix select over tokens, each reading its page's key: the k
//	        largest token scores with ties to the smaller index, which is
//	        ref's rule (pages best first, ties to the smaller page, the last
//	        page cut to its first tokens)
//	attend  as HATA's fused variant (the merge folded in)
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

// pcap returns the page capacity of a row.
func (m *Quest) pcap() int { return (m.cap + m.page - 1) / m.page }

func (m *Quest) boundBytes() uint64 { return uint64(m.rows()*m.pcap()*m.d) * 4 }

// sizeSide implements sideState: lo and hi.
func (m *Quest) sizeSide() error {
	if _, err := m.buf("page min", m.boundBytes(), DeviceLocal); err != nil {
		return err
	}
	_, err := m.buf("page max", m.boundBytes(), DeviceLocal)
	return err
}

// buildSide implements sideState: quest_bounds over the pages of tokens
// [t0, t1).
func (m *Quest) buildSide(b *Batch, t0, t1 int) error {
	k, err := m.kernel("quest_bounds_"+m.opt.Storage.String(), 3, questBoundsPush{}, questWorkgroup, uint32(m.d))
	if err != nil {
		return err
	}
	set, err := m.set(k, m.k.Whole(), m.scratch["page min"].Range(0, m.boundBytes()), m.scratch["page max"].Range(0, m.boundBytes()))
	if err != nil {
		return err
	}
	p0, p1 := t0/m.page, (t1-1)/m.page+1
	step := int(m.ctx.Info.Limits.MaxComputeWorkGroupCount[0])
	for a := p0; a < p1; a += step {
		e := min(a+step, p1)
		b.Dispatch(k, set, questBoundsPush{N: uint32(m.n), Cap: uint32(m.cap), Page: uint32(m.page), P0: uint32(a), PCap: uint32(m.pcap())},
			uint32(e-a), uint32(m.rows()), 1)
	}
	b.Barrier()
	return nil
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
	sc, err := m.buf("page scores", keyBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	score, err := m.kernel("quest_score", 5, questScorePush{}, questWorkgroup, uint32(m.d), uint32(s.g))
	if err != nil {
		return nil, err
	}
	kr, sr := keys.Range(0, keyBytes), sc.Range(0, keyBytes)
	sp, err := m.floatSelect(s, kr, pcap, m.page)
	if err != nil {
		return nil, err
	}
	return &stepPlan{
		s:      s,
		scores: scoreView{r: sr, stride: pcap, page: m.page},
		poison: []Range{kr, sr, sp.cnt},
		rec: func(b *Batch) error {
			b.Stage("score")
			sp.zeroHist(b)
			set, err := m.set(score, s.q, m.scratch["page min"].Range(0, m.boundBytes()), m.scratch["page max"].Range(0, m.boundBytes()), kr, sr)
			if err != nil {
				return err
			}
			b.Dispatch(score, set, questScorePush{Pages: uint32(pages), PCap: uint32(pcap), PStride: uint32(pcap)},
				uint32((pages+questWorkgroup-1)/questWorkgroup), uint32(s.rows), 1)
			b.Barrier()
			b.Stage("select")
			return m.recordSelect(b, sp)
		},
	}, nil
}

// Scores implements ref.Scorer: every token carries its page's float32
// score S of the last decode.
func (m *Quest) Scores() ([][]float64, error) { return m.floatScores() }
