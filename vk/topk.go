package vk

import (
	"math"

	"github.com/hata-go/hata/ref"
)

// TopK is the exact top-k oracle on the GPU (the vk implementation of
// ref.TopK). Per decode step:
//
//	score   score_logits: x[r][g][t] = q_{r*G+g}·K[r][t] / sqrt(D) and the
//	        per-chunk softmax partials (max, sum of exp) of every head;
//	        score_softmax: s[r][t] = sum_g exp(x - M_g) / Z_g (M_g, Z_g merged
//	        from the partials), as "smaller is better" uint32 keys, and the
//	        radix select's first histogram pass where it runs
//	select  the k largest s, ties to the smaller index (ref.SelectLargest,
//	        in float32): select_rows (one workgroup per row, one dispatch)
//	        up to rowsAutoMaxKeys tokens, else the radix select over chunks
//	        (histogram passes of 11, 11 and 10 bits, the last also counting
//	        each chunk's tokens below every last digit, then select_write);
//	        SparseOptions.RowSelect
//	attend  as HATA's fused variant (the merge folded in)
//
// Timings names the stages "upload", ["poison",] "score", "select",
// "attend", ["readback"]. The scores are float32 on the GPU where ref's are float64, so a selection
// may differ from ref's where two scores are within rounding of each other
// (the acceptance suite allows exactly that, through ref's Scores).
type TopK struct {
	*sparseCore
}

var (
	_ ref.Method = (*TopK)(nil)
	_ ref.Scorer = (*TopK)(nil)
)

// NewTopK returns the exact top-k oracle for caches of head dimension d.
func (c *Context) NewTopK(d int, o SparseOptions) (*TopK, error) {
	core, err := newSparseCore(c, "topk", d, o)
	if err != nil {
		return nil, err
	}
	m := &TopK{sparseCore: core}
	core.planner = m
	return m, nil
}

// softmaxScores is the score pipeline of the oracle and of Loki: the logits
// of the G heads of every group against n keys of length dk, their softmax
// over all n per head, summed over the group, as select keys.
type softmaxScores struct {
	logits, softmax *Kernel
	x, pml, keys    Range
	chunk, nchunks  int
	dk              int
	// hist0: score_softmax builds the radix select's first histogram pass
	// (HIST), which then starts at its second; false where the select is
	// select_rows.
	hist0 bool
}

// prepareSoftmax sizes the buffers and builds the kernels of the score
// pipeline over keys of length dk stored as st, in a paired cache
// (SparseOptions.PairedKV) where paired: the exact top-k's K is, Loki's
// rotated keys (a buffer of their own) are not.
func (c *sparseCore) prepareSoftmax(s *step, dk int, st Storage, paired bool) (*softmaxScores, error) {
	rows, err := c.rowSelect(c.n, 1)
	if err != nil {
		return nil, err
	}
	ss := &softmaxScores{dk: dk, hist0: !rows}
	ss.chunk = c.scoreChunk(c.n, s.rows, scoreMaxChunk, logitsPerCU)
	ss.nchunks = (c.n + ss.chunk - 1) / ss.chunk
	xBytes := uint64(s.rows*s.g*c.cap) * 4
	x, err := c.buf("logits", xBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	pmlBytes := uint64(s.rows*s.g*ss.nchunks) * 8
	pml, err := c.buf("logit partials", pmlBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	keyBytes := uint64(s.rows*c.cap) * 4
	keys, err := c.buf("score keys", keyBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	ss.x, ss.pml, ss.keys = x.Range(0, xBytes), pml.Range(0, pmlBytes), keys.Range(0, keyBytes)
	if ss.logits, err = c.logitsKernel(s.g, dk, st, false, paired); err != nil {
		return nil, err
	}
	if ss.softmax, err = c.kernel("score_softmax", 4, softmaxPush{}, scoreWorkgroup, uint32(s.g), b32(ss.hist0)); err != nil {
		return nil, err
	}
	return ss, nil
}

// logitsKernel returns score_logits for group g over keys of length dk,
// read from a paired cache (SparseOptions.PairedKV) where paired.
func (c *sparseCore) logitsKernel(g, dk int, st Storage, indexed, paired bool) (*Kernel, error) {
	tpt := lanesPerToken(c.ctx.Info, dk/st.vec())
	return c.kernel("score_logits_"+st.String(), 5, logitsPush{},
		sparseWorkgroup, uint32(tpt), uint32(dk), uint32(g), b32(indexed), uint32(logitsUnroll(tpt, g)), b32(paired))
}

// logitsUnroll is score_logits' tokens per slot per round (its UNR) with tpt
// lanes per token and g query heads per group: 2*tpt/g within [1, 4], so
// that a lane holds at most two of the round's g*UNR logits after the
// slot's reduce-scatter. Four suit the exact top-k's 128 channels (16 lanes
// per token in float16); Loki's 32 channels in float16 (4 lanes, g = 4)
// took 145.9 us at B8/32K with 2 against 168.4 with 4, whose 4 logits per
// lane held 80 registers (56 with 2), while 2 made the top-k's score 8-16%
// slower (run 111, BENCHMARKS.md).
func logitsUnroll(tpt, g int) int {
	return min(max(2*tpt/max(g, 1), 1), 4)
}

// recordLogits records score_logits (kernel k) over the keys' buffers, one
// dispatch of push.NChunks x the group's rows each, push as given but for
// its Row0, the group's first row.
func (c *sparseCore) recordLogits(b *Batch, k *Kernel, push logitsPush, q Range, keys []kvGroup, idx, x, pml Range) error {
	for _, g := range keys {
		set, err := c.set(k, q, g.k, idx, x, pml)
		if err != nil {
			return err
		}
		push.Row0 = uint32(g.row0)
		b.Dispatch(k, set, push, push.NChunks, uint32(g.rows), 1)
	}
	return nil
}

// recordSoftmax records the score pipeline of q: [rows*G][dk] float32 against
// keys: [rows][Cap][dk] (the cache, or Loki's rotated keys), with the first
// histogram pass of sp (floatSelect of ss) when ss.hist0, and the cache's
// translation prefetch beside score_logits.
func (c *sparseCore) recordSoftmax(b *Batch, s *step, ss *softmaxScores, sp *selectPlan, q Range, keys []kvGroup, idx Range) error {
	if err := c.recordLogits(b, ss.logits, logitsPush{
		N: uint32(c.n), Cap: uint32(c.cap), KStride: uint32(s.k), ChunkLen: uint32(ss.chunk), NChunks: uint32(ss.nchunks),
		XStride: uint32(c.cap), Scale: float32(1 / math.Sqrt(float64(c.d))),
	}, q, keys, idx, ss.x, ss.pml); err != nil {
		return err
	}
	c.recordPrefetch(b)
	b.Barrier()
	// sp.hist is bound either way (select_rows' is a word, unread without
	// HIST).
	sset, err := c.set(ss.softmax, ss.x, ss.pml, ss.keys, sp.hist)
	if err != nil {
		return err
	}
	b.Dispatch(ss.softmax, sset, softmaxPush{
		N: uint32(c.n), XStride: uint32(c.cap), ChunkLen: uint32(ss.chunk), NChunks: uint32(ss.nchunks), KeyStride: uint32(c.cap),
	}, uint32(ss.nchunks), uint32(s.rows), 1)
	b.Barrier()
	return nil
}

// floatSelect prepares the selection of the k largest float scores behind
// keys ([rows][keyStride] uint32 from desc_key, one per page tokens), its
// first histogram pass built by the score kernel when hist0.
func (c *sparseCore) floatSelect(s *step, keys Range, keyStride, page int, hist0 bool) (*selectPlan, error) {
	rows, err := c.rowSelect(c.n, page)
	if err != nil {
		return nil, err
	}
	return c.prepareSelect(selectSpec{
		keys: keys, keyStride: keyStride, page: page, rows: s.rows, n: c.n,
		kk: s.k, sinkEnd: 0, recentEnd: c.n, sel: s.sel, k: s.k,
		perRow: rows, chunk: c.radixSelectChunk(c.n, s.rows), pass0: hist0,
	})
}

// plan implements planner: the score pipeline on the cache's keys, then the
// radix select.
func (m *TopK) plan(q []float32, budget ref.Budget) (*stepPlan, error) {
	s, err := m.prepareStep(q, budget)
	if err != nil {
		return nil, err
	}
	ss, err := m.prepareSoftmax(s, m.d, m.opt.Storage, m.opt.PairedKV)
	if err != nil {
		return nil, err
	}
	sp, err := m.floatSelect(s, ss.keys, m.cap, 1, ss.hist0)
	if err != nil {
		return nil, err
	}
	return &stepPlan{
		s:      s,
		scores: scoreView{keys: ss.keys, stride: m.cap, page: 1, n: m.n},
		poison: []Range{ss.x, ss.pml, ss.keys, sp.cnt},
		rec: func(b *Batch) error {
			b.Stage("score")
			sp.zeroHist(b)
			if err := m.recordSoftmax(b, s, ss, sp, s.q, m.groups(), s.sel); err != nil {
				return err
			}
			b.Stage("select")
			return m.recordSelect(b, sp)
		},
	}, nil
}

// Scores implements ref.Scorer: the GPU's float32 scores s of the last
// decode, read back.
func (m *TopK) Scores() ([][]float64, error) { return m.floatScores() }

// scoreView is where a decode step left its float scores, as the select's
// keys: [rows][stride] uint32 from desc_key, one per page tokens, of the
// step's n tokens.
type scoreView struct {
	keys         Range
	stride, page int
	// n is the tokens cached when the step ran: the scores cover them,
	// whatever Appends came since.
	n int
}

// floatScores is Scores of the methods that rank by float scores on the GPU
// (topk, loki, quest): the last step's scores, read back from its select
// keys, one per token it saw (as ref's, not one per token cached since).
func (c *sparseCore) floatScores() ([][]float64, error) {
	if !c.stepped {
		return nil, c.errorf("no scores before the first Decode")
	}
	v := c.lastScores
	w, err := c.readWords(v.keys.Buf, v.keys.Off, c.rows()*v.stride)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, c.rows())
	for row := range out {
		out[row] = make([]float64, v.n)
		for t := range v.n {
			out[row][t] = float64(scoreOfKey(w[row*v.stride+t/v.page]))
		}
	}
	return out, nil
}

// scoreOfKey inverts select_key.glsl's desc_key: the float32 score whose
// select key is key. desc_key is one to one but for -0, whose key is +0's
// (the scores add from +0 and never are -0), and NaN, whose every bit
// pattern maps to the last key (read back as a NaN). The score kernels
// write only the keys (score_softmax, quest_score): a buffer of the scores
// too would be 4 bytes a token written every step for Scores alone.
func scoreOfKey(key uint32) float32 {
	asc := ^key // desc_key complements an ascending key
	if asc&0x80000000 != 0 {
		return math.Float32frombits(asc &^ 0x80000000) // a positive float, its sign bit set
	}
	return math.Float32frombits(^asc) // a negative float, complemented
}
