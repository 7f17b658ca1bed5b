package experiments

import (
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestMustMove checks MustMove's byte counts, worked out by hand, at the
// paper's B8/32K point (Hq 32, Hkv 8, d 128, k = 511 = floor(0.0156*32768))
// and at a shape whose last Quest page is partial.
func TestMustMove(t *testing.T) {
	b8 := ref.Shape{B: 8, Hq: 32, Hkv: 8, N: 32768, D: 128}
	// rows = B*Hkv = 64; q in + out = 2*8*32*128*4 = 262144 bytes;
	// selected K/V in fp16 = 2*64*511*128*2 = 16744448 bytes.
	const io, sel16 = 262144, 16744448
	for _, c := range []struct {
		method string
		s      ref.Shape
		t      Traffic
		want   int64
	}{
		// all of K and V: 2*64*32768*128*2
		{"dense", b8, Traffic{K: 511}, 1073741824 + io},
		// codes: 64*32768*128/8
		{"hata", b8, Traffic{K: 511}, 33554432 + sel16 + io},
		// 32 rotated channels in fp16: 64*32768*32*2
		{"loki", b8, Traffic{K: 511}, 134217728 + sel16 + io},
		// float32 rotated keys (vk's lokif32=1) over an fp16 cache: twice the channels' bytes
		{"loki", b8, Traffic{K: 511, KeyElem: 4}, 2*134217728 + sel16 + io},
		// pages of 32: 1024 per row, lo and hi in fp16: 2*64*1024*128*2
		{"quest", b8, Traffic{K: 511, ElemSize: 2, PageSize: 32}, 33554432 + sel16 + io},
		// pages of 16: 2048 per row
		{"quest", b8, Traffic{K: 511, PageSize: 16}, 67108864 + sel16 + io},
		// fp32 cache, fp32 bounds and K/V: twice the bytes
		{"quest", b8, Traffic{K: 511, ElemSize: 4}, 2*33554432 + 2*sel16 + io},
		// N=100, pages of 32: ceil(100/32) = 4 pages (the last of 4 tokens);
		// B*Hkv = 2, d = 64: bounds 2*2*4*64*2 = 2048, selected 2*2*10*64*2 =
		// 5120, q and out 2*1*4*64*4 = 2048
		{"quest", ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 100, D: 64}, Traffic{K: 10}, 2048 + 5120 + 2048},
		{"streaming", b8, Traffic{K: 511}, sel16 + io},
		{"magicpig", b8, Traffic{K: 511}, 0},
	} {
		if got := MustMove(c.method, c.s, c.t); got != c.want {
			t.Errorf("MustMove(%q, %v, %+v) = %d, want %d", c.method, c.s, c.t, got, c.want)
		}
	}
}

// TestCacheBytes holds CacheBytes, the part of MustMove read from the K/V
// cache, at the paper's B8/32K point: all of K and V for dense, all of K and
// the selected rows for topk, the selected rows for the others.
func TestCacheBytes(t *testing.T) {
	b8 := ref.Shape{B: 8, Hq: 32, Hkv: 8, N: 32768, D: 128}
	const sel16 = 16744448 // 2*64*511*128*2
	for _, c := range []struct {
		method string
		want   int64
	}{
		{"dense", 1073741824}, {"topk", 536870912 + sel16},
		{"hata", sel16}, {"lsh", sel16}, {"loki", sel16}, {"quest", sel16}, {"streaming", sel16}, {"h2o", sel16},
		{"magicpig", 0},
	} {
		if got := CacheBytes(c.method, b8, Traffic{K: 511}); got != c.want {
			t.Errorf("CacheBytes(%q) = %d, want %d", c.method, got, c.want)
		}
	}
}
