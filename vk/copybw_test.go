package vk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCopyBandwidth checks that the roofline measurement runs without
// validation messages, reports a positive rate, and rejects a size it cannot
// bind.
func TestCopyBandwidth(t *testing.T) {
	c := device(t)
	bw, err := c.CopyBandwidth(4<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if bw <= 0 {
		t.Fatalf("CopyBandwidth = %v B/s, want > 0", bw)
	}
	t.Logf("%s: copy %.1f GB/s (read + write)", c.Info.Name, bw/1e9)
	if _, err := c.CopyBandwidth(8, 1); err == nil {
		t.Error("CopyBandwidth(8 bytes): want an error")
	}
}

// TestReadBandwidth runs the read-only roofline over random words whose
// count is no multiple of the grid's stride or of its unrolled step, and
// checks that the XOR of the workgroups' results is the XOR of every word of
// the source (a word skipped or read twice changes it), that the bandwidth
// is positive, and that a size below one element is refused.
func TestReadBandwidth(t *testing.T) {
	c := device(t)
	const size = 4<<20 + 3*16
	src := make([]byte, size)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < size; i += 4 {
		binary.LittleEndian.PutUint32(src[i:], rng.Uint32())
	}
	var want [4]uint32
	for i := 0; i < size; i += 4 {
		want[i/4%4] ^= binary.LittleEndian.Uint32(src[i:])
	}
	var bw float64
	for _, kind := range []MemoryKind{Host, DeviceLocal} { // a source in host memory too: HostReadBandwidth
		var xors []byte
		var err error
		bw, xors, err = c.readBandwidth(size, readUnroll, 2, kind, func(b *Buffer) error {
			return c.Write(Region{Dst: b, Data: src})
		})
		if err != nil {
			t.Fatal(err)
		}
		if bw <= 0 {
			t.Errorf("%s source: read bandwidth = %v B/s, want > 0", kind, bw)
		}
		var got [4]uint32
		for i := 0; i < len(xors); i += 4 {
			got[i/4%4] ^= binary.LittleEndian.Uint32(xors[i:])
		}
		if got != want {
			t.Errorf("%s source: XOR of the workgroups' results %x, want the source's %x", kind, got, want)
		}
	}
	t.Logf("%s: read %.1f GB/s", c.Info.Name, bw/1e9)
	if _, err := c.ReadBandwidth(8, 1); err == nil {
		t.Error("ReadBandwidth(8 bytes): want an error")
	}
	if c.Info.Type == DeviceCPU {
		return
	}
	// On a GPU, the loads in flight per invocation side by side (logged).
	big := min(uint64(1<<30), uint64(c.Info.Limits.MaxStorageBufferRange))
	for _, u := range []uint32{1, 2, 4, 8} {
		bw, _, err := c.readBandwidth(big, u, 20, DeviceLocal, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("read of %d MiB, %d loads in flight per invocation: %.1f GB/s", big>>20, u, bw/1e9)
	}
}

// TestGatherBandwidth runs the random-gather roofline over three buffers of
// random words and checks that the XOR of the workgroups' results is the XOR
// of the rows the kernel's hash picks, as the host computes them (a row
// missed, read from the wrong buffer or at a wrong offset changes it); then
// that GatherBandwidth plans spans past one buffer's range in several and
// refuses what it cannot bind. On a GPU it logs the bandwidth over spans
// from 1 to 16 GiB (rows of 256 bytes, a K or V row) and of other rows.
func TestGatherBandwidth(t *testing.T) {
	c := device(t)
	r := gatherRun{rowBytes: 64, size: 64 * 37, nbuf: 3, groups: 6, iters: 2 * readUnroll, seed: 12345}
	rng := rand.New(rand.NewPCG(3, 5))
	src := make([][]byte, r.nbuf)
	for i := range src {
		src[i] = make([]byte, r.size)
		for j := 0; j < len(src[i]); j += 4 {
			binary.LittleEndian.PutUint32(src[i][j:], rng.Uint32())
		}
	}
	var want [4]uint32
	slots := uint32(copyWorkgroup) / r.vecs()
	for w := range r.groups {
		buf := src[w%uint32(r.nbuf)]
		for ls := range slots {
			slot := w/uint32(r.nbuf)*slots + ls
			for it := range r.iters {
				row := uint64(lowbias32((slot*r.iters+it)^r.seed)) % (r.size / r.rowBytes) // gather_read.comp's gather_row
				for j := uint64(0); j < r.rowBytes; j += 4 {
					want[j/4%4] ^= binary.LittleEndian.Uint32(buf[row*r.rowBytes+j:])
				}
			}
		}
	}
	// Sources in host memory too (HostGatherBandwidth), and host memory the
	// process maps itself where the device can import it (newHostImport).
	srcs := []struct {
		kind  MemoryKind
		alloc sourceAlloc
	}{{Host, allocPlain}, {DeviceLocal, allocPlain}, {Host, allocDedicated}}
	if c.Info.HostImportAlignment > 0 {
		srcs = append(srcs, srcs[0], srcs[0])
		srcs[3].alloc, srcs[4].alloc = allocImport, allocImportTHP
	}
	for _, sc := range srcs {
		r.kind, r.alloc = sc.kind, sc.alloc
		_, xors, err := c.gatherRead(r, 1, func(i int, b *Buffer) error {
			return c.Write(Region{Dst: b, Data: src[i]})
		})
		if err != nil {
			t.Fatal(err)
		}
		var got [4]uint32
		for i := 0; i < len(xors); i += 4 {
			got[i/4%4] ^= binary.LittleEndian.Uint32(xors[i:])
		}
		if got != want {
			t.Errorf("%s sources, %s: XOR of the workgroups' results %x, want that of the rows hashed %x", r.kind, r.alloc, got, want)
		}
	}
	r.kind, r.alloc = DeviceLocal, allocPlain

	limit := c.bufferLimit() &^ 255
	for _, tc := range []struct {
		span uint64
		nbuf int
	}{{256, 1}, {limit, 1}, {limit + 256, 2}, {3*limit - 256, 3}, {8 * limit, 8}} {
		p, err := c.gatherPlan(256, tc.span)
		if err != nil {
			t.Errorf("gatherPlan(256, %d): %v", tc.span, err)
			continue
		}
		if p.nbuf != tc.nbuf || p.size > limit || uint64(p.nbuf)*p.size > tc.span || p.size%256 != 0 ||
			p.groups%uint32(p.nbuf) != 0 || p.iters%readUnroll != 0 || p.iters == 0 {
			t.Errorf("gatherPlan(256, %d) = %+v, want %d buffers of at most %d bytes", tc.span, p, tc.nbuf, limit)
		}
	}
	for _, bad := range []struct{ row, span uint64 }{{8, 1 << 20}, {48, 1 << 20}, {8192, 1 << 20}, {256, 128}, {256, 8*limit + 256}} {
		if _, _, err := c.GatherBandwidth(bad.row, bad.span, 1); err == nil {
			t.Errorf("GatherBandwidth(%d-byte rows, %d bytes): want an error", bad.row, bad.span)
		}
	}
	if _, _, err := c.GatherBandwidth(256, 1<<20, 0); err == nil {
		t.Error("GatherBandwidth(0 reps): want an error")
	}
	bw, nbuf, err := c.GatherBandwidth(256, 4<<20, 2)
	if err != nil || bw <= 0 || nbuf != 1 {
		t.Fatalf("GatherBandwidth(256, 4 MiB) = %v B/s in %d buffers, %v: want > 0 in one", bw, nbuf, err)
	}
	t.Logf("%s: gathers of 256-byte rows over 4 MiB: %.1f GB/s", c.Info.Name, bw/1e9)
	if c.Info.Type == DeviceCPU || os.Getenv("HATA_VK_LARGE") == "" {
		return
	}
	// On a GPU with the large shapes: the gathers' roofline over spans past
	// the last-level cache, and by row size (logged).
	for _, gib := range []uint64{1, 2, 4, 8, 9, 10, 12, 16} {
		bw, nbuf, err := c.GatherBandwidth(256, gib<<30, 20)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gathers of 256-byte rows over %d GiB (%d buffers): %.1f GB/s", gib, nbuf, bw/1e9)
	}
	for _, row := range []uint64{64, 128, 512, 1024, 4096} {
		bw, _, err := c.GatherBandwidth(row, 1<<30, 20)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gathers of %d-byte rows over 1 GiB: %.1f GB/s", row, bw/1e9)
	}
	// From host memory over the bus (a cache offloaded, HostCache): by row
	// size, the rows a top-k method's attention reads there (logged).
	for _, row := range []uint64{64, 128, 256, 512, 1024, 2048, 4096} {
		bw, _, err := c.HostGatherBandwidth(row, 1<<30, 20)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gathers of %d-byte rows over 1 GiB of host memory: %.1f GB/s", row, bw/1e9)
	}
	// Host gathers by span and by how the memory is allocated (logged):
	// what set HATA-off's paired attention at batch 8 (33-35 GB/s over
	// caches of 4 and 8 GiB) apart from its batch 1 (48-50, caches up to 1
	// GiB), and why the attention reads such caches in windows (run 438:
	// 54 GB/s over 1 GiB, 22 over 4, whatever the allocation).
	thp, _ := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	t.Logf("transparent huge pages: %s; import alignment %d", bytes.TrimSpace(thp), c.Info.HostImportAlignment)
	for _, tc := range []struct {
		row, span uint64
		alloc     sourceAlloc
	}{
		{512, 1 << 30, allocPlain}, {512, 2 << 30, allocPlain}, {512, 4 << 30, allocPlain}, {512, 8 << 30, allocPlain},
		{512, 4 << 30, allocDedicated}, {512, 8 << 30, allocDedicated},
		{512, 1 << 30, allocImport}, {512, 4 << 30, allocImport},
		{512, 1 << 30, allocImportTHP}, {512, 2 << 30, allocImportTHP}, {512, 4 << 30, allocImportTHP}, {512, 8 << 30, allocImportTHP},
		{256, 4 << 30, allocPlain}, {256, 4 << 30, allocImportTHP},
	} {
		if tc.alloc >= allocImport && c.Info.HostImportAlignment == 0 {
			continue
		}
		r, err := c.gatherPlan(tc.row, tc.span)
		if err != nil {
			t.Fatal(err)
		}
		r.kind, r.alloc = Host, tc.alloc
		ns, _, err := c.gatherRead(r, 20, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("gathers of %d-byte rows over %d MiB of host memory, %s, %d buffers: %.1f GB/s",
			tc.row, tc.span>>20, tc.alloc, r.nbuf, float64(r.bytes())/ns)
	}
}

// TestDispatchFloor checks that the dependent-dispatch measurement runs
// without validation messages, reports a positive time per dispatch, and
// rejects an empty chain.
func TestDispatchFloor(t *testing.T) {
	c := device(t)
	ns, err := c.DispatchFloor(8, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ns <= 0 {
		t.Fatalf("DispatchFloor = %v ns, want > 0", ns)
	}
	t.Logf("%s: %.1f us per dependent dispatch", c.Info.Name, ns/1e3)
	// With a timestamp before every dispatch, as between a decode step's
	// stages: what the timestamps add (logged; on a GPU run this is the
	// measurement).
	for _, groups := range []uint32{1, uint32(max(c.Info.ComputeUnits, 1)) * 4} {
		plain, err := c.dispatchFloor(32, groups, 9, false)
		if err != nil {
			t.Fatal(err)
		}
		stamped, err := c.dispatchFloor(32, groups, 9, true)
		if err != nil {
			t.Fatal(err)
		}
		if plain <= 0 || stamped <= 0 {
			t.Fatalf("%d workgroups: %v ns plain, %v ns stamped, want > 0", groups, plain, stamped)
		}
		t.Logf("%s, %d workgroups: %.2f us per dispatch, %.2f us with a timestamp before each", c.Info.Name, groups, plain/1e3, stamped/1e3)
	}
	if _, err := c.DispatchFloor(0, 4, 1); err == nil {
		t.Error("DispatchFloor(0 dispatches): want an error")
	}
}

// TestColdDispatchFloor runs the chain of dependent dispatches after a
// flush and without, of one pipeline, of copies of one (built and freed by
// the chain: the context's objects are as many after it as before) and of
// distinct kernels (copy.comp at 16, 32, ..., 16n lanes, each in the
// context's kernels: one per dispatch, not one for all), and refuses chains
// it cannot build; the times are logged (on a GPU run they are the
// measurement; no timed assertion).
func TestColdDispatchFloor(t *testing.T) {
	c := device(t)
	const n = 4
	copies := func() []uint32 { // the copy kernels' workgroups the context holds
		c.mu.Lock()
		defer c.mu.Unlock()
		var wgs []uint32
		for _, k := range c.kernels {
			if k.spec.Shader == "copy" {
				wgs = append(wgs, k.Workgroup())
			}
		}
		slices.Sort(wgs)
		return wgs
	}
	before := copies()
	l2, err := c.NewL2Flush(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	for _, flush := range []*L2Flush{l2, nil} {
		for _, kernels := range []ChainKernels{ChainOne, ChainCopies, ChainSizes, ChainLarge} {
			objects := liveObjects(c)
			ns, err := c.ColdDispatchFloor(n, kernels, flush, 3)
			if err != nil {
				t.Fatalf("flush %t, kernels %d: %v", flush != nil, kernels, err)
			}
			if ns <= 0 {
				t.Fatalf("flush %t, kernels %d: %v ns a dispatch, want > 0", flush != nil, kernels, ns)
			}
			if kernels == ChainCopies && liveObjects(c) != objects {
				t.Errorf("the chain of copies left %d objects in the context, want as many as before it (%d)", liveObjects(c), objects)
			}
			t.Logf("%s: flush %t, kernels %d: %.1f us a dependent dispatch", c.Info.Name, flush != nil, kernels, ns/1e3)
		}
	}
	var added []uint32
	for _, wg := range copies() {
		if !slices.Contains(before, wg) {
			added = append(added, wg)
		}
	}
	for _, wg := range []uint32{16, 32, 48, 64} {
		if !slices.Contains(copies(), wg) {
			t.Errorf("no copy kernel of %d lanes after the distinct chains; the context's copies have %v", wg, copies())
		}
	}
	if len(added) > n {
		t.Errorf("the chains added copy kernels of %v lanes, want at most the %d distinct ones", added, n)
	}
	for _, bad := range []int{0, 9} {
		if _, err := c.ColdDispatchFloor(bad, ChainSizes, nil, 1); err == nil {
			t.Errorf("ColdDispatchFloor(%d dispatches): want an error", bad)
		}
	}
	if _, err := c.ColdDispatchFloor(2, ChainLarge+1, nil, 1); err == nil || !strings.Contains(err.Error(), "kernels 4") {
		t.Errorf("ColdDispatchFloor with kernels %d: %v, want an error naming them", ChainLarge+1, err)
	}
}

// TestBigcode checks that bigcode.comp, ColdDispatchFloor's large kernel,
// copies as copy.comp does whatever its salt: its 128 rounds change the
// code, not the result.
func TestBigcode(t *testing.T) {
	c := device(t)
	src := make([]uint32, 4*1000)
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range src {
		src[i] = rng.Uint32()
	}
	for _, salt := range []uint32{1, 7} {
		got, err := runCopy(t, c, KernelSpec{Shader: "bigcode", Bindings: 2, Push: copyPush{}, Spec: []uint32{64, salt}}, src)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, src) {
			t.Errorf("bigcode with salt %d: the copy differs from its source", salt)
		}
	}
}

// TestLoadLatency runs the dependent-load chain over a small and a large
// region, with a flush of as many bytes before every run, and checks that the chain was followed (its end is where n hops of
// the stride lead) and that bad sizes are refused; the latencies are logged
// (on a GPU run they are the measurement; no timed assertion).
func TestLoadLatency(t *testing.T) {
	c := device(t)
	for _, size := range []uint64{1 << 20, 64 << 20} {
		ns, end, err := c.loadLatency(chaseRun{size: size, flush: size}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n := size / 4; uint64(end) != chaseLong*chaseStride%n {
			t.Errorf("LoadLatency(%d): the chain ended at %d, want %d after %d hops of %d", size, end, chaseLong*chaseStride%n, chaseLong, chaseStride)
		}
		if ns < 0 {
			t.Fatalf("LoadLatency(%d) = %v ns, want >= 0", size, ns)
		}
		t.Logf("%s: %.0f ns per dependent load over %d MiB", c.Info.Name, ns, size>>20)
	}
	// With the other workgroups copying beside the chain (few slices each, so
	// a CPU device that runs them before the chain stays quick).
	ns, end, err := c.loadLatency(chaseRun{size: 1 << 20, busy: 4 << 20, busyMax: 64}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := uint64(1<<20) / 4; uint64(end) != chaseLong*chaseStride%n {
		t.Errorf("loaded: the chain ended at %d, want %d", end, chaseLong*chaseStride%n)
	}
	t.Logf("%s: %.0f ns per dependent load beside a copy", c.Info.Name, ns)
	for _, size := range []uint64{0, 4 * chaseStride} {
		if _, err := c.LoadLatency(size, 0, 1); err == nil {
			t.Errorf("LoadLatency(%d bytes): want an error", size)
		}
	}
}

// TestBatchLevels checks Timings.Levels, the dispatches of a batch that run
// one after another (hata bench's floor counts them): barriers with no
// dispatch between them, and fills, add no level; dispatches with no
// barrier between them share one; a batch re-recorded starts from zero.
func TestBatchLevels(t *testing.T) {
	ctx := device(t)
	err := ctx.withCopyChain("levels test", 16*copyWorkgroup, func(ch *copyChain, b *Batch) error {
		d := func(b *Batch) { b.Dispatch(ch.k, ch.fwd, copyPush{N: uint32(ch.size / 16)}, 1, 1, 1) }
		for _, c := range []struct {
			name   string
			record func(b *Batch)
			want   int
		}{
			{"none", func(b *Batch) { b.Fill(ch.src.Whole(), 0); b.Barrier() }, 0},
			{"one", func(b *Batch) { b.Barrier(); d(b); b.Barrier(); b.Barrier() }, 1},
			{"two side by side", func(b *Batch) { d(b); d(b) }, 1},
			{"a chain of three", func(b *Batch) {
				b.Stage("a")
				d(b)
				d(b)
				b.Barrier()
				b.Fill(ch.dst.Whole(), 0)
				b.Barrier()
				b.Stage("b")
				d(b)
				b.Barrier()
				d(b)
				b.Barrier()
			}, 3},
			{"the copy chain", func(b *Batch) { ch.record(b, 5, 1, true) }, 5},
		} {
			if err := b.Begin(); err != nil {
				return err
			}
			c.record(b)
			tm, err := b.Submit()
			if err != nil {
				return fmt.Errorf("%s: %v", c.name, err)
			}
			if tm.Levels != c.want {
				t.Errorf("%s: Levels = %d, want %d", c.name, tm.Levels, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWarmClocks checks that WarmClocks keeps the device busy for the time
// asked, returns a positive bandwidth, and refuses a duration that is not
// positive.
func TestWarmClocks(t *testing.T) {
	ctx := device(t)
	start := time.Now()
	bw, err := ctx.WarmClocks(50 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("WarmClocks(50ms) returned after %v", took)
	}
	if bw <= 0 {
		t.Errorf("WarmClocks bandwidth %v, want > 0", bw)
	}
	t.Logf("%s: %.0f GB/s at the end of the warm-up", ctx.Info.Name, bw/1e9)
	if _, err := ctx.WarmClocks(0); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("WarmClocks(0) = %v, want an error naming the duration", err)
	}
}

// TestL2Flush checks that an L2Flush reads its whole buffer once per Run
// (the XOR of the read kernel's workgroup results is the source's), runs
// again, refuses sizes it cannot bind, and closes twice; and that a nil one
// (no flush) runs and closes as nothing.
func TestL2Flush(t *testing.T) {
	var none *L2Flush
	if err := none.Run(); err != nil {
		t.Errorf("nil L2Flush: Run() = %v, want nil", err)
	}
	if err := none.Close(); err != nil {
		t.Errorf("nil L2Flush: Close() = %v, want nil", err)
	}
	c := device(t)
	const size = 1<<20 + 5*16
	f, err := c.NewL2Flush(size + 7) // rounded down to 16
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.src.size != size {
		t.Fatalf("flush buffer of %d bytes, want %d", f.src.size, size)
	}
	src := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 5))
	for i := 0; i < size; i += 4 {
		binary.LittleEndian.PutUint32(src[i:], rng.Uint32())
	}
	want := xorLanes(src)
	if err := c.Write(Region{Dst: f.src, Data: src}); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		if err := c.Write(Region{Dst: f.dst, Data: make([]byte, f.dst.size)}); err != nil {
			t.Fatal(err)
		}
		if err := f.Run(); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		xors := make([]byte, f.dst.size)
		if err := c.Read(f.dst, 0, xors); err != nil {
			t.Fatal(err)
		}
		if got := xorLanes(xors); got != want {
			t.Errorf("run %d: XOR of the workgroups' results %x, want the source's %x", run, got, want)
		}
	}
	for _, bad := range []uint64{8, uint64(c.Info.Limits.MaxStorageBufferRange) + 16} {
		if g, err := c.NewL2Flush(bad); err == nil {
			g.Close()
			t.Errorf("NewL2Flush(%d): want an error", bad)
		}
	}
	f.Close()
	f.Close()
}

// xorLanes returns the XOR of b's uvec4 elements, lane by lane (len(b) a
// multiple of 16).
func xorLanes(b []byte) [4]uint32 {
	var x [4]uint32
	for i := 0; i < len(b); i += 4 {
		x[i/4%4] ^= binary.LittleEndian.Uint32(b[i:])
	}
	return x
}

// TestL2FlushPages checks that AddPages' buffers are touched once every 64
// KiB, and nowhere else, by every Run: with random words everywhere, the XOR
// of touch.comp's subgroup results is that of the words at multiples of
// 64 KiB. Two calls add two buffers, the second's size rounded down.
func TestL2FlushPages(t *testing.T) {
	c := device(t)
	f, err := c.NewL2Flush(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []uint64{2 * touchStride, 5*touchStride + 100} {
		if err := f.AddPages(size); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.pages) != 2 || f.pages[0].size != 2*touchStride || f.pages[1].size != 5*touchStride || len(f.touch.runs) != 2 {
		t.Fatalf("%d page buffers, want 2 of %d and %d bytes", len(f.pages), 2*touchStride, 5*touchStride)
	}
	rng := rand.New(rand.NewPCG(7, 9))
	want := make([][4]uint32, len(f.pages))
	for p, pg := range f.pages {
		src := make([]byte, pg.size)
		for i := 0; i < len(src); i += 4 {
			binary.LittleEndian.PutUint32(src[i:], rng.Uint32())
		}
		for off := 0; off < len(src); off += touchStride {
			w := xorLanes(src[off : off+16])
			for l := range w {
				want[p][l] ^= w[l]
			}
		}
		if err := c.Write(Region{Dst: pg, Data: src}); err != nil {
			t.Fatal(err)
		}
	}
	for run := range 2 {
		if err := c.Write(Region{Dst: f.touch.dst, Data: make([]byte, f.touch.dst.size)}); err != nil {
			t.Fatal(err)
		}
		if err := f.Run(); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for p, r := range f.touch.runs {
			xors := make([]byte, r.dst.Size)
			if err := c.Read(r.dst.Buf, r.dst.Off, xors); err != nil {
				t.Fatal(err)
			}
			if got := xorLanes(xors); got != want[p] {
				t.Errorf("run %d, buffer %d: XOR of the subgroups' results %x, want the touched words' %x", run, p, got, want[p])
			}
		}
	}
}

// TestPageWalkCost checks that the page walk probe runs over plain and
// dedicated memory after a flush of the TLBs, frees all it allocated, and
// refuses less than a MiB. (Its numbers are the device's: lavapipe has no
// TLBs to miss.)
func TestPageWalkCost(t *testing.T) {
	c := device(t)
	f, err := c.NewL2Flush(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.AddPages(4 << 20); err != nil {
		t.Fatal(err)
	}
	before := liveObjects(c)
	plain, ded, err := c.PageWalkCost(f, 2*dedicatedMin, 3)
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(plain) || math.IsNaN(ded) || math.IsInf(plain, 0) || math.IsInf(ded, 0) {
		t.Errorf("PageWalkCost = %v, %v ns a MiB, want finite numbers", plain, ded)
	}
	if n := liveObjects(c); n != before {
		t.Errorf("PageWalkCost left %d objects of the context's more than before it", n-before)
	}
	if _, _, err := c.PageWalkCost(f, 1<<19, 3); err == nil || !strings.Contains(err.Error(), "1 MiB") {
		t.Errorf("PageWalkCost over 512 KiB: %v, want an error asking for at least 1 MiB", err)
	}
}

// liveObjects returns how many objects c holds (buffers, kernels, sets,
// batches), to check that a probe frees what it allocates.
func liveObjects(c *Context) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
}
