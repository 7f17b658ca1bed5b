package vk

import (
	"fmt"
	"slices"
)

// kvStore is a K/V cache [rows][Cap][D] kept in buffers of whole rows:
// buffers k[i], v[i] hold rows [i*rowsPer, min((i+1)*rowsPer, rows)), as
// many rows as one buffer may bind and allocate, so that a cache larger than
// either limit is cut into several (the methods dispatch each kernel that
// reads it once per buffer). Dense and every top-k method keep their cache in
// one.
//
// A paired store (SparseOptions.PairedKV) keeps a token's K and V side by
// side instead, in the buffers k[i] (v is k: both bindings of a kernel are
// the same buffer): each token 2*D elements, 16-byte chunks of its K and of
// its V alternating (pairChunks), so that the lanes that load a token's K
// touch every byte of its K and V at once and the bus fetches them as one
// run (split_softmax.glsl's KV_RS, KV_POS and KV_VOFF).
type kvStore struct {
	k, v     []*Buffer // paired: v is k
	rows     int
	rowsPer  int
	rowBytes uint64 // bytes of a row in its buffer: Cap tokens of K (or V), or paired of both
	tokBytes uint64 // bytes of one token's K (or V): D elements
	paired   bool
}

// cacheKind returns the memory of a K/V cache: Host where the options say
// HostCache, else DeviceLocal.
func cacheKind(host bool) MemoryKind {
	if host {
		return Host
	}
	return DeviceLocal
}

// newKVStore allocates a store of rows rows of capacity cp tokens of
// tokBytes bytes (K's, or V's) in buffers of at most limit bytes of memory
// kind (DeviceLocal or Host), named name+" K cache" and name+" V cache", or
// paired name+" K/V cache". On error nothing stays allocated.
func newKVStore(ctx *Context, name string, rows, cp int, tokBytes, limit uint64, kind MemoryKind, paired bool) (*kvStore, error) {
	rowBytes := uint64(cp) * tokBytes
	if paired {
		rowBytes *= 2
	}
	if rowBytes > limit {
		return nil, fmt.Errorf("one cache row is %s, over the %s a buffer may bind (maxStorageBufferRange, maxMemoryAllocationSize)",
			bytesString(rowBytes), bytesString(limit))
	}
	s := &kvStore{rows: rows, rowsPer: int(min(uint64(rows), limit/rowBytes)), rowBytes: rowBytes, tokBytes: tokBytes, paired: paired}
	for r0 := 0; r0 < rows; r0 += s.rowsPer {
		size := rowBytes * uint64(min(s.rowsPer, rows-r0))
		if paired {
			k, err := ctx.NewBuffer(name+" K/V cache", size, kind)
			if err != nil {
				s.free()
				return nil, err
			}
			s.k = append(s.k, k)
			s.v = s.k
			continue
		}
		k, err := ctx.NewBuffer(name+" K cache", size, kind)
		if err == nil {
			s.k = append(s.k, k)
			var v *Buffer
			if v, err = ctx.NewBuffer(name+" V cache", size, kind); err == nil {
				s.v = append(s.v, v)
			}
		}
		if err != nil {
			s.free()
			return nil, err
		}
	}
	return s, nil
}

// rowAt returns the buffers that hold row r and the row's byte offset in
// them (paired: the same buffer twice).
func (s *kvStore) rowAt(r int) (k, v *Buffer, off uint64) {
	i := r / s.rowsPer
	return s.k[i], s.v[i], uint64(r-i*s.rowsPer) * s.rowBytes
}

// pairChunk is the bytes of K, then of V, that alternate in a paired
// store's tokens (kv.glsl's KV_CH vectors).
const pairChunk = 16

// pairChunks appends to dst the bytes of k and v (encoded, of equal length,
// a multiple of pairChunk) with their 16-byte chunks alternating, k's
// first: a paired store's layout of whole tokens.
func pairChunks(dst, k, v []byte) []byte {
	for i := 0; i < len(k); i += pairChunk {
		dst = append(dst, k[i:i+pairChunk]...)
		dst = append(dst, v[i:i+pairChunk]...)
	}
	return dst
}

// tokenOff returns the buffers of row r and the byte offset of its token t:
// of its K and its V, or paired of the token's 2*D elements.
func (s *kvStore) tokenOff(r, t int) (kb, vb *Buffer, off uint64) {
	kb, vb, off = s.rowAt(r)
	if s.paired {
		return kb, vb, off + 2*uint64(t)*s.tokBytes
	}
	return kb, vb, off + uint64(t)*s.tokBytes
}

// writes returns the writes of tokens from t on of row r: k and v, the same
// whole tokens (encoded), as two regions, or paired as one (pairChunks).
func (s *kvStore) writes(r, t int, k, v []byte) []Region {
	kb, vb, off := s.tokenOff(r, t)
	if !s.paired {
		return []Region{{Dst: kb, Off: off, Data: k}, {Dst: vb, Off: off, Data: v}}
	}
	return []Region{{Dst: kb, Off: off, Data: pairChunks(make([]byte, 0, len(k)+len(v)), k, v)}}
}

// appendCopies writes k and v, one token of every row ([rows][D] each,
// encoded), into up (2*rows*tokBytes bytes at least) in the store's layout,
// [rows][D] of K then of V, or paired [rows][2*D] (pairChunks), and adds
// to g the copies that make them token t of every row.
func (s *kvStore) appendCopies(g *copyGroups, up *Buffer, t int, k, v []byte) {
	rows := uint64(s.rows)
	if s.paired {
		pairChunks(up.Bytes()[:0], k, v)
	} else {
		copy(up.Bytes(), k)
		copy(up.Bytes()[rows*s.tokBytes:], v)
	}
	for r := range s.rows {
		kb, vb, off := s.tokenOff(r, t)
		if s.paired {
			g.add(kb, up, CopyRegion{SrcOff: 2 * uint64(r) * s.tokBytes, DstOff: off, Size: 2 * s.tokBytes})
			continue
		}
		g.add(kb, up, CopyRegion{SrcOff: uint64(r) * s.tokBytes, DstOff: off, Size: s.tokBytes})
		g.add(vb, up, CopyRegion{SrcOff: (rows + uint64(r)) * s.tokBytes, DstOff: off, Size: s.tokBytes})
	}
}

// allBuffers returns the K buffers, then the V buffers (paired: the
// buffers once).
func (s *kvStore) allBuffers() []*Buffer {
	if s.paired {
		return slices.Clone(s.k)
	}
	return slices.Concat(s.k, s.v)
}

// groups returns the cache in row order as runs of at most maxRows rows
// (the rows one dispatch may cover, maxComputeWorkGroupCount[1]) inside one
// buffer each: one run per buffer unless a buffer holds more rows.
func (s *kvStore) groups(maxRows int) []kvGroup {
	var gs []kvGroup
	for r0 := 0; r0 < s.rows; {
		kb, vb, off := s.rowAt(r0)
		n := min(maxRows, s.rowsPer-r0%s.rowsPer, s.rows-r0)
		size := uint64(n) * s.rowBytes
		gs = append(gs, kvGroup{k: kb.Range(off, size), v: vb.Range(off, size), row0: r0, rows: n}) // paired: v is k
		r0 += n
	}
	return gs
}

// fillRandom fills K from seed and V from seed+1 as FillRandom fills one
// buffer holding the whole cache (RandomKV describes it). A paired store
// is filled from seed alone, its K and V alike: not RandomKV's cache (the
// benchmarks' caches, whose values no test compares).
func (s *kvStore) fillRandom(ctx *Context, f16 bool, seed uint32) error {
	for i := range s.k {
		first := uint64(i*s.rowsPer) * s.rowBytes / 4 // word index of the buffer in the whole cache
		if err := ctx.fillRandom(s.k[i].Whole(), f16, seed, 1, first); err != nil {
			return err
		}
		if s.paired {
			continue
		}
		if err := ctx.fillRandom(s.v[i].Whole(), f16, seed+1, 1, first); err != nil {
			return err
		}
	}
	return nil
}

// moveRows adds to g the copies of the first n tokens of every row of old
// into s (the cache growing to a larger capacity; s and old alike paired
// or not), at least 4 bytes a copy.
func (s *kvStore) moveRows(g *copyGroups, old *kvStore, n int) {
	size := max(uint64(n)*s.tokBytes, 4)
	for r := range s.rows {
		kb, vb, off := s.rowAt(r)
		okb, ovb, ooff := old.rowAt(r)
		if s.paired {
			g.add(kb, okb, CopyRegion{SrcOff: ooff, DstOff: off, Size: 2 * size})
			continue
		}
		g.add(kb, okb, CopyRegion{SrcOff: ooff, DstOff: off, Size: size})
		g.add(vb, ovb, CopyRegion{SrcOff: ooff, DstOff: off, Size: size})
	}
}

// free frees the buffers; a nil store has none.
func (s *kvStore) free() {
	if s == nil {
		return
	}
	freeAll(s.k)
	if !s.paired {
		freeAll(s.v)
	}
	s.k, s.v = nil, nil
}

// freeAll frees every buffer of bs.
func freeAll(bs []*Buffer) {
	for _, b := range bs {
		b.Free()
	}
}

// copyGroups collects copy regions per (dst, src) pair of buffers, in the
// order the pairs first appear, so that one vkCmdCopyBuffer records each.
type copyGroups struct {
	order   []bufferPair
	regions map[bufferPair][]CopyRegion
}

type bufferPair struct{ dst, src *Buffer }

// add adds region r of a copy from src to dst.
func (g *copyGroups) add(dst, src *Buffer, r CopyRegion) {
	p := bufferPair{dst, src}
	if g.regions == nil {
		g.regions = map[bufferPair][]CopyRegion{}
	}
	if _, ok := g.regions[p]; !ok {
		g.order = append(g.order, p)
	}
	g.regions[p] = append(g.regions[p], r)
}

// record records the copies into b.
func (g *copyGroups) record(b *Batch) {
	for _, p := range g.order {
		b.CopyRegions(p.dst, p.src, g.regions[p])
	}
}
