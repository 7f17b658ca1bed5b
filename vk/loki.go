package vk

import (
	"math"

	"github.com/hata-go/hata/ref"
)

// Loki is low-rank-key top-k attention on the GPU (the vk implementation of
// ref.Loki). The basis P: [Hkv][D][D] (given, or fitted at Prefill on the
// host with ref.FitLokiBasis, as ref does) lives on the device in float32.
// Keys are rotated once, as they enter the cache (the first c channels of
// k P, stored [B*Hkv][Cap][c rounded up to 16 bytes] in float16 by
// loki_rotate_kh, or in float32 by loki_rotate_k with
// SparseOptions.LokiF32Keys or where a prefilled key could rotate past
// float16's range, setKeys; a key appended later that does is clamped to
// ±65504); per decode step:
//
//	encode  loki_rotate_q: q' = q P[:, :c]
//	score   the oracle's pipeline (TopK) on q' and the rotated keys with
//	        the scale 1/sqrt(D): per-head softmax over all N, summed over the group
//	select  the k largest, ties to the smaller index (as TopK's)
//	attend  exact attention over the original K, V (the merge folded in)
//
// Timings names the stages "upload", ["poison",] "encode", "score",
// "select", "attend", ["readback"]. PrefillRandom has no host keys to fit a basis on: it uses the given basis,
// or the identity (so the scores are the first c channels of q·k).
type Loki struct {
	*sparseCore
	channels, cp int       // c, and the rotated row stride (c rounded up to 16 bytes)
	keys         Storage   // of the rotated keys: F16, or F32 (setKeys)
	basis        []float64 // the given basis [Hkv][D][D], or nil
	pbuf         *Buffer   // P in use: [Hkv][D][D] float32
	pHkv         int       // heads of pbuf
}

var (
	_ ref.Method = (*Loki)(nil)
	_ ref.Scorer = (*Loki)(nil)
)

// NewLoki returns Loki for caches of hkv KV heads of dimension d scoring the
// first channels rotated channels (0: 32, capped at d), with the basis
// [hkv][d][d] or nil (fitted at Prefill), as ref.NewLoki.
func (c *Context) NewLoki(hkv, d, channels int, basis []float64, o SparseOptions) (*Loki, error) {
	if _, err := ref.NewLoki(hkv, d, channels, basis); err != nil { // the same checks as ref
		return nil, err
	}
	if channels == 0 {
		channels = 32
	}
	channels = min(channels, d)
	keys := F16
	if o.LokiF32Keys {
		keys = F32
	}
	core, err := newSparseCore(c, "loki", d, o)
	if err != nil {
		return nil, err
	}
	// A row of rotated keys is whole 16-byte vectors (score_logits' loads).
	m := &Loki{sparseCore: core, channels: channels, cp: roundUp(channels, keys.vec()), keys: keys, basis: basis}
	core.side, core.planner = m, m
	return m, nil
}

// setBasis uploads the basis in use, float64 [hkv][D][D], as float32.
func (m *Loki) setBasis(hkv int, p []float64) error {
	f := make([]float32, len(p))
	for i, x := range p {
		f[i] = float32(x)
	}
	if m.pbuf == nil || m.pHkv != hkv {
		m.dropSets()
		m.pbuf.Free()
		b, err := m.ctx.NewBuffer("vk loki basis", uint64(4*len(f)), DeviceLocal)
		if err != nil {
			m.pbuf = nil
			return m.errorf("%v", err)
		}
		m.pbuf, m.pHkv = b, hkv
	}
	return m.ctx.Write(Region{Dst: m.pbuf, Data: f32Bytes(f)})
}

// Prefill implements ref.Method: the basis is the given one or fitted on kv
// (ref.FitLokiBasis), and every key is rotated on the device.
func (m *Loki) Prefill(kv *ref.KV) error {
	if err := kv.Validate(); err != nil {
		return m.errorf("prefill: %v", err)
	}
	p := m.basis
	if p == nil {
		var err error
		if p, err = ref.FitLokiBasis(kv); err != nil {
			return m.errorf("%v", err)
		}
	}
	return m.prefillBasis(kv, p)
}

// prefillBasis is Prefill with the basis p: [Hkv][D][D] (Halves fits one on
// the whole batch for both of its instances, as ref fits it on the cache).
func (m *Loki) prefillBasis(kv *ref.KV, p []float64) error {
	if len(p) != kv.Hkv*kv.D*kv.D {
		return m.errorf("basis has len %d, the cache needs Hkv*D*D = %d*%d*%d", len(p), kv.Hkv, kv.D, kv.D)
	}
	if err := m.setBasis(kv.Hkv, p); err != nil {
		return err
	}
	m.setKeys(rotatedBound(kv, p, m.channels))
	return m.sparseCore.Prefill(kv)
}

// halfMax is float16's largest finite value.
const halfMax = 65504

// setKeys chooses the storage of the rotated keys of the cache about to be
// built: float16 (half the bytes the score reads) unless
// SparseOptions.LokiF32Keys asks for float32, or a rotated channel may
// reach bound >= halfMax, past which float16 holds only Inf (the rotation
// clamps it to ±halfMax, proj.glsl, but the scores would no longer be
// Loki's).
func (m *Loki) setKeys(bound float64) {
	m.keys = F16
	if m.opt.LokiF32Keys || bound >= halfMax {
		m.keys = F32
	}
	m.cp = roundUp(m.channels, m.keys.vec())
}

// rotatedBound returns a bound on the rotated channels of kv's keys under
// the basis p: [Hkv][D][D] (columns the directions): per head the largest
// key norm times the largest norm of the first c columns, the largest over
// the heads (|k·p_j| <= ||k|| ||p_j||).
func rotatedBound(kv *ref.KV, p []float64, c int) float64 {
	d := kv.D
	var bound float64
	for h := range kv.Hkv {
		var pn float64
		for j := range c {
			var s float64
			for i := range d {
				x := p[h*d*d+i*d+j]
				s += x * x
			}
			pn = max(pn, s)
		}
		var kn float64
		for b := range kv.B {
			row := kv.K[b*kv.Hkv+h]
			for t := range kv.N {
				var s float64
				for _, x := range row[t*d : (t+1)*d] {
					s += float64(x) * float64(x)
				}
				kn = max(kn, s)
			}
		}
		bound = max(bound, math.Sqrt(pn*kn))
	}
	return bound
}

// PrefillRandom fills the cache on the device (see Dense.PrefillRandom) and
// rotates it by the given basis, or by the identity when none was given.
func (m *Loki) PrefillRandom(b, hkv, n, d int, seed uint32) error {
	p := m.basis
	if p == nil {
		p = make([]float64, hkv*d*d)
		for h := range hkv {
			for i := range d {
				p[h*d*d+i*d+i] = 1
			}
		}
	} else if len(p) != hkv*d*d {
		return m.errorf("basis has len %d, the cache needs Hkv*D*D = %d*%d*%d", len(p), hkv, d, d)
	}
	if err := m.setBasis(hkv, p); err != nil {
		return err
	}
	m.setKeys(0) // N(0, 1) keys: their rotated channels are far below float16's range
	return m.sparseCore.PrefillRandom(b, hkv, n, d, seed)
}

// rkRow is the bytes of one cache row of rotated keys.
func (m *Loki) rkRow() uint64 { return uint64(m.cap * m.cp * m.keys.bytes()) }

// sizeSide implements sideState: the rotated keys [rows][Cap][cp] in
// float16, or float32 (SparseOptions.LokiF32Keys), in as many buffers as
// the cache's limit needs (sideRuns).
func (m *Loki) sizeSide() error { return m.sizeSideRuns("rotated keys", m.rkRow()) }

// buildSide implements sideState: loki_rotate_k over tokens [t0, t1).
func (m *Loki) buildSide(b *Batch, t0, t1 int) error {
	shader := "loki_rotate_kh"
	if m.keys == F32 {
		shader = "loki_rotate_k"
	}
	return m.recordProjK(b, shader, m.pbuf, m.sideRuns("rotated keys", m.rkRow()), m.channels, m.d, m.cp, t0, t1)
}

// plan implements planner: q rotated, then the oracle's score pipeline on
// the rotated keys and the radix select.
func (m *Loki) plan(q []float32, budget ref.Budget) (*stepPlan, error) {
	s, err := m.prepareStep(q, budget)
	if err != nil {
		return nil, err
	}
	qrBytes := uint64(s.rows*s.g*m.cp) * 4
	qr, err := m.buf("rotated q", qrBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	rot, err := m.projQKernel("loki_rotate_q", 3, s.g, m.channels, (m.cp+31)/32*s.rows)
	if err != nil {
		return nil, err
	}
	ss, err := m.prepareSoftmax(s, m.cp, m.keys, false)
	if err != nil {
		return nil, err
	}
	sp, err := m.floatSelect(s, ss.keys, m.cap, 1, ss.hist0)
	if err != nil {
		return nil, err
	}
	qrr := qr.Range(0, qrBytes)
	return &stepPlan{
		s:      s,
		scores: scoreView{keys: ss.keys, stride: m.cap, page: 1, n: m.n},
		poison: []Range{qrr, ss.x, ss.pml, ss.keys, sp.cnt},
		rec: func(b *Batch) error {
			b.Stage("encode")
			sp.zeroHist(b)
			set, err := m.set(rot, s.q, m.pbuf.Whole(), qrr)
			if err != nil {
				return err
			}
			b.Dispatch(rot, set, projPush{Hkv: uint32(m.hkv), Group: uint32(s.g), Ldw: uint32(m.d), Ostride: uint32(m.cp)},
				uint32((m.cp+31)/32), uint32(s.rows), 1)
			b.Barrier()
			b.Stage("score")
			if err := m.recordSoftmax(b, s, ss, sp, qrr, m.sideRuns("rotated keys", m.rkRow()), s.sel); err != nil {
				return err
			}
			b.Stage("select")
			return m.recordSelect(b, sp)
		},
	}, nil
}

// Scores implements ref.Scorer: the GPU's float32 scores of the last decode.
func (m *Loki) Scores() ([][]float64, error) { return m.floatScores() }

// Close frees the device memory of m.
func (m *Loki) Close() error {
	m.close()
	m.pbuf.Free()
	m.pbuf = nil
	return nil
}
