package vk

import (
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
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
		ms := sameResults(t, ctx, name, s, uint64(i), SparseOptions{Storage: F16, Reserve: 1},
			SparseOptions{Storage: F16, Reserve: 1, HostCache: true})
		bufs := cacheOf(ms[1]).allBuffers()
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

// sameResults builds the method name twice, with options a and with b,
// runs both through a prefill of shape s, a decode, appends that grow the
// cache (Reserve 1: the copies from the old buffers to the new) and another
// decode, from the seed's dyadic inputs, and wants the two runs' outputs
// and selections bit for bit the same. It returns the two methods (closed
// when the test ends).
func sameResults(t *testing.T, ctx *Context, name string, s ref.Shape, seed uint64, a, b SparseOptions) [2]ref.Method {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	o := ref.Options{Seed: 5, PageSize: 8}
	if name == "hata" {
		w, err := ref.RandomHashWeights(s.Hkv, s.D, ref.DefaultRbit, 9)
		if err != nil {
			t.Fatal(err)
		}
		o.W = w
	}
	var ms [2]ref.Method
	for j, opt := range []SparseOptions{a, b} {
		f := ctx.SparseFactory(opt)
		if name == "dense" { // with the lanes a token too
			f = ctx.Factory(DenseOptions{Storage: opt.Storage, HostCache: opt.HostCache, PairedKV: opt.PairedKV, LanesPerToken: opt.LanesPerToken})
		}
		m, err := f(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { m.(io.Closer).Close() })
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
			t.Errorf("%s: decode %s: the results differ (-%+v +%+v):\n%s", name, when, a, b, d)
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
	return ms
}

// cacheOf returns the K/V store of a GPU method (Dense or a top-k method).
func cacheOf(m ref.Method) *kvStore {
	if d, ok := m.(*Dense); ok {
		return d.kv
	}
	return coreOf(m).kv
}

// TestPairedKV runs every method (the top-k methods' fused chain) with a
// token's K and V side by side in one buffer (PairedKV), in host memory,
// beside the same method with separate K and V buffers in device memory,
// and wants the results bit for bit the same (sameResults: a prefill,
// appends that grow the cache, decodes): the same arithmetic over the same
// values, read at other offsets, by every kernel that reads the cache
// (hata's and lsh's key codes, Loki's rotation, Quest's page bounds, the
// exact top-k's and H2O's logits, the attention). The paired cache must be
// one buffer per run, not two. The other variants of hata and lsh, and the
// tuning key for them, must refuse it.
func TestPairedKV(t *testing.T) {
	ctx := device(t)
	for i, name := range Methods {
		for _, c := range []struct {
			st    Storage
			d     int
			lanes int // LanesPerToken
		}{
			{F16, 64, 0}, {F32, 64, 0},
			// fp16 read in 8-byte vectors (the f16h entry points, two to a
			// 16-byte chunk of the paired layout): 8 lanes a token over a
			// row of four 16-byte vectors; on a GPU with subgroups of 32
			// the default lanes at D=64 take them too.
			{F16, 32, 8},
		} {
			s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 127, D: c.d}
			ms := sameResults(t, ctx, name, s, uint64(i), SparseOptions{Storage: c.st, Reserve: 1, LanesPerToken: c.lanes},
				SparseOptions{Storage: c.st, Reserve: 1, LanesPerToken: c.lanes, HostCache: true, PairedKV: true})
			if h, ok := ms[0].(*H2O); ok { // its logits feed the history, which the results show only later
				s0, a0 := h.hist.Select(13)
				s1, a1 := ms[1].(*H2O).hist.Select(13)
				if d := cmp.Diff([]any{s0, a0}, []any{s1, a1}); d != "" {
					t.Errorf("h2o %s D=%d: the histories differ (-apart +paired):\n%s", c.st, c.d, d)
				}
			}
			kv := cacheOf(ms[1])
			if !kv.paired || len(kv.allBuffers()) != len(kv.k) || !strings.Contains(kv.k[0].Name(), "K/V cache") {
				t.Errorf("%s %s D=%d: paired %v, %d buffers for %d runs (%q): want one paired buffer a run", name, c.st, c.d, kv.paired, len(kv.allBuffers()), len(kv.k), kv.k[0].Name())
			}
		}
	}
	w, err := ref.RandomHashWeights(2, 64, ref.DefaultRbit, 9)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hata/naive", "hata/twokernel", "hata/threekernel", "hata/onekernel", "lsh/naive", "lsh/threekernel"} {
		method, variant, _ := strings.Cut(name, "/")
		_, err := ctx.SparseFactory(SparseOptions{PairedKV: true, Variant: variant})(method, 2, 64, ref.Options{W: w})
		if err == nil || !strings.Contains(err.Error(), "PairedKV") {
			t.Errorf("%s with PairedKV: error %v, want one that names PairedKV", name, err)
		}
		if err := (Tuning{PairedKV: 1}).Check(name); err == nil {
			t.Errorf("Tuning{PairedKV: 1}.Check(%q): want an error", name)
		}
	}
	for _, name := range Methods {
		if err := (Tuning{PairedKV: 1, HostCache: 1}).Check(name); err != nil {
			t.Errorf("Tuning{PairedKV: 1, HostCache: 1}.Check(%q): %v", name, err)
		}
	}
}

// TestAttendRows runs the top-k methods with their attention dispatched a
// few cache rows at a time (SparseOptions.AttendRows: 1, and 4 of 6 rows,
// two windows of 3), in host and in device memory, beside the same method
// at once, and wants the results bit for bit the same (sameResults): each
// row's workgroups do the same arithmetic whichever dispatch they are in.
// It checks the windows' rule too: rows of 512 MiB of K and V, evened out,
// for a cache in host memory of a method that selects single tokens.
func TestAttendRows(t *testing.T) {
	ctx := device(t)
	s := ref.Shape{B: 3, Hq: 4, Hkv: 2, N: 127, D: 64}
	names := append(slices.Clone(sparseMethods), "hata/naive", "hata/threekernel")
	for i, name := range names {
		method, variant, _ := strings.Cut(name, "/")
		for _, c := range []struct {
			rows, groups int
			host         bool
		}{{1, 6, true}, {4, 2, false}, {4, 2, true}} {
			ms := sameResults(t, ctx, method, s, uint64(i), SparseOptions{Storage: F16, Reserve: 1, Variant: variant, HostCache: c.host},
				SparseOptions{Storage: F16, Reserve: 1, Variant: variant, HostCache: c.host, AttendRows: c.rows})
			if gs, windows := coreOf(ms[1]).attendGroups(coreOf(ms[1]).lastAttend); len(gs) != c.groups || !windows {
				t.Errorf("%s AttendRows %d: %d groups (windows %v), want %d windows", name, c.rows, len(gs), windows, c.groups)
			}
			if gs, windows := coreOf(ms[0]).attendGroups(coreOf(ms[0]).lastAttend); len(gs) != 1 || windows {
				t.Errorf("%s: %d groups (windows %v) of 6 rows by default, want one", name, len(gs), windows)
			}
			want := c.host && method != "quest" && method != "streaming" // the default's windows, for caches past 512 MiB
			if got := coreOf(ms[0]).hostWindows(); got != want || coreOf(ms[1]).hostWindows() {
				t.Errorf("%s, host cache %v: windows by default %v, want %v; with AttendRows %d %v, want false", name, c.host, got, want, c.rows, coreOf(ms[1]).hostWindows())
			}
		}
	}
	for _, c := range []struct {
		n        int
		tokBytes uint64
		want     int
	}{{131072, 256, 8}, {262144, 256, 4}, {32768, 256, 32}, {131072, 512, 4}, {1 << 30, 256, 1}, {0, 256, 1 << 20}} {
		if got := windowRows(c.n, c.tokBytes); got != c.want {
			t.Errorf("windowRows(%d, %d) = %d, want %d", c.n, c.tokBytes, got, c.want)
		}
	}
	for _, c := range []struct{ rows, per, want int }{{64, 8, 8}, {64, 7, 7}, {64, 5, 5}, {6, 4, 3}, {7, 3, 3}, {8, 3, 3}, {10, 3, 3}, {9, 2, 2}} {
		if got := evenRows(c.rows, c.per); got != c.want {
			t.Errorf("evenRows(%d, %d) = %d, want %d", c.rows, c.per, got, c.want)
		}
	}
	if _, err := ctx.SparseFactory(SparseOptions{AttendRows: -1})("quest", 2, 64, ref.Options{PageSize: 8}); err == nil {
		t.Error("AttendRows -1: want an error")
	}
}

// TestHostOverlap checks the rule that reads a cache in host memory past 1
// GiB at once in short splits (hostOverlapSplits) at the H200's shapes,
// and runs it, scaled down to a small cache (and the windows to a row),
// beside the same splits set by hand with the cache read at once: the
// results must be the same bits (the inputs are dyadic, so that holds for
// any splits) and the rule's attention must have those splits and read
// the cache at once, not in windows.
func TestHostOverlap(t *testing.T) {
	h200 := &Context{Info: DeviceInfo{ComputeUnits: 132}}
	for _, c := range []struct {
		name string
		b, n int
		k    int
		opt  SparseOptions
		want int
	}{
		{"hata", 8, 131072, 2044, SparseOptions{HostCache: true}, 128}, // rows of 64 MiB, 4 in flight: 132 splits, 16 entries at most 128
		{"loki", 8, 262144, 4089, SparseOptions{HostCache: true}, 256}, // rows of 128 MiB, 2 in flight: 264, at most 256
		{"hata", 8, 131072, 100, SparseOptions{HostCache: true}, 7},    // 16 entries a split at least
		{"hata", 8, 32768, 511, SparseOptions{HostCache: true}, 0},     // 1 GiB: windows
		{"hata", 1, 262144, 4089, SparseOptions{HostCache: true}, 0},   // 1 GiB: windows
		{"quest", 8, 131072, 2044, SparseOptions{HostCache: true}, 0},  // pages: at once, its own splits
		{"hata", 8, 131072, 2044, SparseOptions{}, 0},                  // device memory
		{"hata", 8, 131072, 2044, SparseOptions{HostCache: true, AttendRows: 4}, 0},
		{"hata", 8, 131072, 2044, SparseOptions{HostCache: true, Split: SplitPolicy{Splits: 8}}, 0},
		{"hata", 8, 131072, 2044, SparseOptions{HostCache: true, Variant: VariantOneKernel}, 0}, // its attention is inside its one dispatch
	} {
		c.opt.Storage = F16
		m := &sparseCore{ctx: h200, name: c.name, opt: c.opt, d: 128, b: c.b, hkv: 8, n: c.n}
		if got := m.hostOverlapSplits(c.k); got != c.want {
			t.Errorf("%s B%d/%d k=%d %+v: %d splits, want %d", c.name, c.b, c.n, c.k, c.opt, got, c.want)
		}
	}

	ctx := device(t)
	saved, savedWindow := hostOverlap, hostWindow
	t.Cleanup(func() { hostOverlap, hostWindow = saved, savedWindow })
	hostOverlap.min, hostOverlap.span, hostOverlap.splitMin = 0, 0, 2 // a row in flight, 2 entries a split
	hostWindow = 1                                                    // windows of a row, were the rule to read in windows
	s := ref.Shape{B: 3, Hq: 4, Hkv: 2, N: 127, D: 64}
	for i, name := range []string{"hata", "loki", "topk", "h2o"} {
		// The steps take 13 and 17 tokens (sameResults): 7 and 9 splits of
		// 2 entries where the SplitPolicy's target allows them, evened out
		// by SplitPolicy.Plan. The inputs are dyadic, so any splits give
		// the same bits: the splits are checked by count.
		target, _ := SplitPolicy{}.defaults(ctx.Info.ComputeUnits)
		for _, k := range []int{13, 17} {
			if want := min(target, (k+1)/2); want < 2 {
				t.Fatalf("a target of %d workgroups leaves the test %d splits", target, want)
			}
		}
		ms := sameResults(t, ctx, name, s, uint64(i), SparseOptions{Storage: F16, Reserve: 1, HostCache: true},
			SparseOptions{Storage: F16, Reserve: 1, HostCache: true, AttendRows: 1 << 20, Split: SplitPolicy{Splits: min(target, 9)}})
		a, b := coreOf(ms[0]).lastAttend, coreOf(ms[1]).lastAttend
		if gs, windows := coreOf(ms[0]).attendGroups(a); !a.overlap || a.splits != b.splits || windows || len(gs) != len(coreOf(ms[0]).groups()) {
			t.Errorf("%s: overlap %v, %d splits, windows %v: want the cache at once in %d splits (Splits %d evened out)", name, a.overlap, a.splits, windows, b.splits, min(target, 9))
		}
		if b.overlap {
			t.Errorf("%s with Splits set: overlap, want the policy's splits", name)
		}
	}
}

// TestHostHugePages opens a context whose Host buffers are host memory the
// process maps in transparent huge pages and the device imports
// (Options.HostHugePages), and runs dense, hata and quest there with their
// caches in that memory beside the same methods in device memory, wanting
// the results bit for bit the same (sameResults) and every cache buffer
// imported. A device that cannot import host memory must refuse the option
// by name.
func TestHostHugePages(t *testing.T) {
	ctx := device(t)
	if ctx.Info.HostImportAlignment == 0 {
		t.Setenv(EnvHostHugePages, "1")
		if c, err := OpenWith(Options{Device: strconv.Itoa(ctx.Info.Index)}); err == nil || !strings.Contains(err.Error(), "HostHugePages") {
			if c != nil {
				c.Close()
			}
			t.Fatalf("%s cannot import host memory: OpenWith with $%s=1: %v, want an error naming HostHugePages", ctx.Info.Name, EnvHostHugePages, err)
		}
		t.Skipf("%s cannot import host memory (no %s)", ctx.Info.Name, "VK_EXT_external_memory_host")
	}
	c := testContext(t, Options{HostHugePages: true})
	if !c.HostHugePages() || ctx.HostHugePages() {
		t.Errorf("HostHugePages() = %v with the option, %v without: want true and false", c.HostHugePages(), ctx.HostHugePages())
	}
	s := ref.Shape{B: 2, Hq: 4, Hkv: 2, N: 127, D: 64}
	for i, name := range []string{"dense", "hata", "quest"} {
		ms := sameResults(t, c, name, s, uint64(i), SparseOptions{Storage: F16, Reserve: 1},
			SparseOptions{Storage: F16, Reserve: 1, HostCache: true})
		for _, b := range cacheOf(ms[1]).allBuffers() {
			if b.Kind() != Host || b.hostMap == nil {
				t.Errorf("%s: cache buffer %q: %s memory, imported %v: want imported host memory", name, b.Name(), b.Kind(), b.hostMap != nil)
			}
		}
		for _, b := range cacheOf(ms[0]).allBuffers() {
			if b.hostMap != nil {
				t.Errorf("%s: device-memory cache buffer %q is imported host memory", name, b.Name())
			}
		}
	}
}
