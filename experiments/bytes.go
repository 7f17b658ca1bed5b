package experiments

import "github.com/hata-go/hata/ref"

// Traffic are the parameters of MustMove beyond the shape.
type Traffic struct {
	K        int // selected tokens per (batch, KV head)
	ElemSize int // bytes per cached K/V element: 2 for fp16, 4 for fp32
	Rbit     int // hata, lsh: code bits; default ref.DefaultRbit (128)
	Channels int // loki: channels scored; default 32
	KeyElem  int // loki: bytes per rotated key element; default ElemSize (vk's lokif32=1: 4)
	PageSize int // quest: tokens per page; default 32
}

// MustMove returns the bytes one decode step of method must read and write at
// the least, the figure every timed row divides by its time to give the
// achieved bandwidth (HATA.md: codes are Rbit/8 bytes per token and KV head,
// selected K/V 2*D*ElemSize bytes per selected token):
//
//	dense      2*B*Hkv*N*D*e                          (all of K and V)
//	hata, lsh  B*Hkv*N*Rbit/8 + 2*B*Hkv*k*D*e         (codes + selected K/V)
//	loki       B*Hkv*N*C*r + 2*B*Hkv*k*D*e            (C rotated key channels of r = KeyElem bytes + selected K/V)
//	quest      2*B*Hkv*ceil(N/P)*D*e + 2*B*Hkv*k*D*e  (page min/max + selected K/V)
//	topk       B*Hkv*N*D*e + 2*B*Hkv*k*D*e            (all of K + selected K/V)
//	streaming, h2o  2*B*Hkv*k*D*e                      (selected K/V; positions or host scores pick them)
//
// plus the queries in and the outputs out (2*B*Hq*D*4). Scores, histograms and
// index lists are left out: an implementation may keep them on chip. Quest's
// page bounds count e bytes per element: the min and max of fp16 keys are
// fp16 values, and package vk stores them in the cache's type (quest_bounds,
// read once per decode step by quest_score for all the heads of a group).
func MustMove(method string, s ref.Shape, t Traffic) int64 {
	side, cache, ok := stepBytes(method, s, t)
	if !ok {
		return 0
	}
	return side + cache + 2*int64(s.B*s.Hq*s.D)*4
}

// CacheBytes returns the part of MustMove read from the K/V cache itself:
// all of it for dense, all of K and the selected V for topk, the selected
// K/V for the others. With the cache in host memory (vk.Tuning.HostCache,
// the paper's HATA-off) these are the bytes that cross the bus; the rest
// (codes, page bounds, rotated keys, q and the output) stay in device
// memory.
func CacheBytes(method string, s ref.Shape, t Traffic) int64 {
	_, cache, _ := stepBytes(method, s, t)
	return cache
}

// stepBytes returns MustMove's bytes but the queries' and the outputs': those
// of the method's side state (codes, page bounds, rotated keys), and those
// of the K/V cache; ok is false for a method MustMove does not know.
func stepBytes(method string, s ref.Shape, t Traffic) (side, cache int64, ok bool) {
	if t.Rbit == 0 {
		t.Rbit = ref.DefaultRbit
	}
	if t.Channels == 0 {
		t.Channels = 32
	}
	if t.PageSize == 0 {
		t.PageSize = 32
	}
	if t.ElemSize == 0 {
		t.ElemSize = 2
	}
	if t.KeyElem == 0 {
		t.KeyElem = t.ElemSize
	}
	rows := int64(s.B * s.Hkv)
	n, d, e, k := int64(s.N), int64(s.D), int64(t.ElemSize), int64(t.K)
	selected := 2 * rows * k * d * e
	switch method {
	case "dense":
		return 0, 2 * rows * n * d * e, true
	case "hata", "lsh":
		return rows * n * int64(t.Rbit) / 8, selected, true
	case "loki":
		return rows * n * int64(t.Channels) * int64(t.KeyElem), selected, true
	case "quest":
		pages := (n + int64(t.PageSize) - 1) / int64(t.PageSize)
		return 2 * rows * pages * d * e, selected, true
	case "topk":
		return 0, rows*n*d*e + selected, true
	case "streaming", "h2o":
		return 0, selected, true
	}
	return 0, 0, false
}
