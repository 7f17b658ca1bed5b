package vk

import (
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
	"github.com/vulkan-go/vulkan"
)

// TestHostCache runs every GPU method with its K/V cache in host memory
// (HostCache, the paper's HATA-off) beside the same method with it in
// device memory, through a prefill, decodes, and appends that grow the
// cache (Reserve 1: the copies from the old buffers to the new), and wants
// the two runs' outputs and selections bit for bit the same: the same
// kernels read the same bytes from another memory. It also wants every
// buffer of the cache to be a Host buffer, from memory that is not
// device-local wherever the device has such memory (a discrete GPU; on
// lavapipe every type is device-local, and the test holds the kinds and
// the results only). The acceptance suite runs the methods against ref
// with host caches too (TestSparseAcceptance's f16-hostcache).
func TestHostCache(t *testing.T) {
	ctx := device(t)
	hostOnly := false // whether the device has host-visible memory that is not device-local
	for _, mt := range ctx.memTypes {
		if mt.flags&vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostVisibleBit) != 0 &&
			mt.flags&vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyDeviceLocalBit) == 0 {
			hostOnly = true
		}
	}
	s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 127, D: 64}
	for i, name := range append([]string{"dense"}, sparseMethods...) {
		rng := rand.New(rand.NewPCG(uint64(i), 11))
		o := ref.Options{Seed: 5, PageSize: 8}
		if name == "hata" {
			w, err := ref.RandomHashWeights(s.Hkv, s.D, ref.DefaultRbit, 9)
			if err != nil {
				t.Fatal(err)
			}
			o.W = w
		}
		var ms [2]ref.Method
		for j, host := range []bool{false, true} {
			m, err := ctx.SparseFactory(SparseOptions{Storage: F16, Reserve: 1, HostCache: host})(name, s.Hkv, s.D, o)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			defer m.(io.Closer).Close()
			ms[j] = m
		}
		step := func(when string, budget ref.Budget) {
			t.Helper()
			q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
			var rs [2]*ref.Result
			for j, m := range ms {
				r, err := m.Decode(q, budget)
				if err != nil {
					t.Fatalf("%s: Decode %s: %v", name, when, err)
				}
				rs[j] = r
			}
			if d := cmp.Diff(rs[0], rs[1]); d != "" {
				t.Errorf("%s: decode %s: the host cache's result differs from the device cache's (-device +host):\n%s", name, when, d)
			}
		}
		kv := reftest.DyadicKV(rng, s, true)
		for _, m := range ms {
			if err := m.Prefill(kv); err != nil {
				t.Fatalf("%s: Prefill: %v", name, err)
			}
		}
		step("after the prefill", ref.Budget{K: 13})
		for n := s.N + 1; n <= s.N+3; n++ { // past Cap 128: the cache grows
			k, v := reftest.Dyadic(rng, s.B*s.Hkv*s.D), reftest.Dyadic(rng, s.B*s.Hkv*s.D)
			for _, m := range ms {
				if err := m.Append(k, v); err != nil {
					t.Fatalf("%s: Append to N=%d: %v", name, n, err)
				}
			}
		}
		step("after appends that grew the cache", ref.Budget{K: 17})
		var bufs []*Buffer
		if d, ok := ms[1].(*Dense); ok {
			bufs = d.kv.allBuffers()
		} else {
			bufs = coreOf(ms[1]).kv.allBuffers()
		}
		if len(bufs) == 0 {
			t.Fatalf("%s: no cache buffers", name)
		}
		if i == 0 {
			t.Logf("%s: host caches in memory type %d (flags %#x, heap %d; every memory type device-local: %v)", ctx.Info.Name, bufs[0].memType,
				ctx.memTypes[bufs[0].memType].flags, ctx.memTypes[bufs[0].memType].heap, !hostOnly)
		}
		for _, b := range bufs {
			dl := ctx.memTypes[b.memType].flags&vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyDeviceLocalBit) != 0
			if b.Kind() != Host || hostOnly && dl {
				t.Errorf("%s: cache buffer %q is %s memory of type %d (device-local %v), want host memory (not device-local where the device has such: %v)",
					name, b.Name(), b.Kind(), b.memType, dl, hostOnly)
			}
		}
	}
}
