package vk

import (
	"fmt"
)

// randomPush mirrors fill_random.comp's push constants.
type randomPush struct {
	N     uint32 // words to write in this binding
	Base  uint32 // element index of word 0 (in words for f32, word*2 for f16)
	Seed  uint32
	F16   uint32
	Scale float32
}

// RandomValue returns element i of FillRandom's sequence for seed before
// scaling: uniform in [-1, 1) on a grid of 2^-23, exactly as the GPU computes
// it (the float32 value times scale, then rounded to the storage type).
func RandomValue(seed, i uint32) float32 {
	return float32(lowbias32(i^lowbias32(seed))>>8)*(1.0/8388608.0) - 1
}

// lowbias32 is the 32-bit integer hash of fill_random.comp and
// gather_read.comp.
func lowbias32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// FillRandom fills r with pseudo-random elements uniform in [-scale, scale):
// float32, or float16 when f16 (two per 32-bit word). Element i of the range
// is RandomValue(seed, i)*scale whatever the binding limits, so a cache filled
// this way is reproducible on any device. r.Off and r.Size must be multiples
// of 4. It waits for the device.
func (c *Context) FillRandom(r Range, f16 bool, seed uint32, scale float32) error {
	return c.fillRandom(r, f16, seed, scale, 0)
}

// fillRandom is FillRandom for a range that continues another: word w of r
// gets the elements of word first+w, so a cache cut into several buffers
// holds what one buffer filled by FillRandom would. Element indices are
// taken modulo 2^32, as RandomValue's (and RandomKV's) are, so a cache of
// more than 2^32 elements repeats its values: the benchmarks' largest
// caches (Llama-2-7B's B8/256K holds 2^33 elements of K) need only be
// reproducible, not distinct.
func (c *Context) fillRandom(r Range, f16 bool, seed uint32, scale float32, first uint64) error {
	if r.Off%4 != 0 || r.Size%4 != 0 {
		return fmt.Errorf("vk: fill random: range offset %d size %d: want multiples of 4", r.Off, r.Size)
	}
	const wg = 256
	k, err := c.SharedKernel(KernelSpec{Shader: "fill_random", Bindings: 1, Push: randomPush{}, Spec: []uint32{wg}})
	if err != nil {
		return err
	}
	b, err := c.NewBatch()
	if err != nil {
		return err
	}
	defer b.Free()
	words := r.Size / 4
	window := (uint64(c.Info.Limits.MaxStorageBufferRange) / 4) &^ 63 // words per binding
	var sets []*Set
	defer func() {
		for _, s := range sets {
			s.Free()
		}
	}()
	if err := b.Begin(); err != nil {
		return err
	}
	b.Stage("fill")
	f := uint32(0)
	if f16 {
		f = 1
	}
	for w := uint64(0); w < words; w += window {
		n := min(window, words-w)
		set, err := k.NewSet(r.Buf.Range(r.Off+4*w, 4*n))
		if err != nil {
			return err
		}
		sets = append(sets, set)
		groups := uint32(min((n+wg-1)/wg, uint64(c.Info.Limits.MaxComputeWorkGroupCount[0]), 65535))
		b.Dispatch(k, set, randomPush{N: uint32(n), Base: uint32(first + w), Seed: seed, F16: f, Scale: scale}, groups, 1, 1)
	}
	b.Barrier()
	_, err = b.Submit()
	return err
}

// PrefillRandom replaces the cache with b*hkv rows of n random tokens of
// dimension d, generated on the device (FillRandom, keys and values uniform in
// [-1, 1) from seed and seed+1) with room for Reserve more: the benchmarks'
// multi-gigabyte caches, which would take seconds to build and upload from the
// host. RandomKV builds the same cache on the host for checking.
func (m *Dense) PrefillRandom(b, hkv, n, d int, seed uint32) error {
	if b < 1 || hkv < 1 || n < 1 {
		return fmt.Errorf("vk dense: prefill random: B=%d Hkv=%d N=%d, want >= 1", b, hkv, n)
	}
	if err := checkDim(d, m.opt.Storage); err != nil {
		return fmt.Errorf("vk dense: %w", err)
	}
	m.freeCache()
	m.b, m.hkv, m.d, m.n = b, hkv, d, n
	if err := m.allocCache(roundUp(n+m.opt.Reserve, 64)); err != nil {
		return err
	}
	if err := m.kv.fillRandom(m.ctx, m.opt.Storage == F16, seed); err != nil {
		m.freeCache() // not a cache it never filled
		return err
	}
	return nil
}

// RandomKV returns on the host the first n tokens of the cache PrefillRandom
// builds with capacity cp tokens per row, as float32 (before any float16
// rounding of the device copy): K and V [B][Hkv][N][D].
func RandomKV(b, hkv, n, cp, d int, seed uint32) (k, v []float32) {
	k = make([]float32, b*hkv*n*d)
	v = make([]float32, b*hkv*n*d)
	for r := range b * hkv {
		for t := range n {
			for c := range d {
				i := uint32((r*cp+t)*d + c)
				k[(r*n+t)*d+c] = RandomValue(seed, i)
				v[(r*n+t)*d+c] = RandomValue(seed+1, i)
			}
		}
	}
	return k, v
}
