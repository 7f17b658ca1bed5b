package vk

// The tests of a method's and a context's life past the happy path: Close
// and use after it, a method prefilled again, and the error paths of
// Prefill, Append and Decode, each of which must leave either the state
// before the call or no cache at all (so that the next step says so), never
// one it did not write.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// TestSparseAppendGrowthFails makes the Append that doubles the cache fail,
// by lowering maxMemoryAllocationSize for it (as an allocation failing out
// of memory would): after the new cache buffers are allocated (the
// translation prefetch's results buffer over the limit), or at them (a row
// of the doubled cache over it). It then checks that the method still holds
// the cache it had: a decode agrees with ref's over the tokens before the
// failed Append, and a later Append grows the cache. (The first failure
// once left the new, never written buffers as the cache, and the steps
// after it attended over whatever they held; the second, no cache at all.)
func TestSparseAppendGrowthFails(t *testing.T) {
	device(t)
	for _, tc := range []struct {
		what     string
		prefetch PrefetchMode
		limit    uint64
	}{
		// The doubled cache's rows (8 KiB each) still fit one allocation
		// apiece; the prefetch's results for its four buffers (16 KiB) do not.
		{"after the cache", PrefetchOn, 8 << 10},
		// The doubled cache's rows do not fit.
		{"at the cache", PrefetchOff, 4 << 10},
	} {
		for i, name := range sparseMethods {
			appendGrowthFails(t, fmt.Sprintf("%s (failing %s)", name, tc.what), name, i, tc.prefetch, tc.limit)
		}
	}
}

// appendGrowthFails is TestSparseAppendGrowthFails for method name with the
// translation prefetch pf, the Append that grows the cache run under the
// allocation limit limit; where names the case.
func appendGrowthFails(t *testing.T, where, name string, seed int, pf PrefetchMode, limit uint64) {
	t.Helper()
	ctx := testContext(t, Options{})
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 63, D: 16}
	o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 64), Seed: 3, PageSize: 7, SinkTokens: 2}
	want, err := ref.New(name, s.Hkv, s.D, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ctx.SparseFactory(SparseOptions{Reserve: 1, Prefetch: pf, LokiF32Keys: true})(name, s.Hkv, s.D, o)
	if err != nil {
		t.Fatal(err)
	}
	defer got.(io.Closer).Close()
	kv := reftest.DyadicKV(rng, s, false)
	for _, m := range []ref.Method{want, got} {
		if err := m.Prefill(kv); err != nil {
			t.Fatalf("%s: Prefill: %v", where, err)
		}
	}
	cache := kv.Clone()
	appendAll := func(ms ...appender) error { return appendDyadic(rng, s, ms...) }
	if err := appendAll(want, got, cache); err != nil { // N = 64 = Cap
		t.Fatalf("%s: Append: %v", where, err)
	}
	if c := coreOf(got).cap; c != 64 {
		t.Fatalf("%s: capacity %d, want 64", where, c)
	}
	lim := &ctx.Info.Limits.MaxMemoryAllocationSize
	saved := *lim
	*lim = limit
	err = appendAll(got)
	*lim = saved
	if err == nil {
		t.Fatalf("%s: the Append past the capacity did not fail", where)
	}
	t.Logf("%s: the failed Append: %v", where, err)
	if c, n := coreOf(got), cache.N; !c.hasCache() || c.n != n || c.cap != 64 {
		t.Fatalf("%s: after the failed Append: cache %v N=%d Cap=%d, want the cache of N=%d Cap=64", where, c.hasCache(), c.n, c.cap, n)
	}
	for step := range 2 {
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		decodeStep(t, fmt.Sprintf("%s: step %d after the failed Append (N=%d)", where, step, cache.N), name, q, cache, ref.Budget{K: 9}, want, got, exactSelection[name])
		if err := appendAll(want, got, cache); err != nil {
			t.Fatalf("%s: Append after the failed one: %v", where, err)
		}
	}
	if c := coreOf(got).cap; c != 128 {
		t.Errorf("%s: capacity %d after growing, want 128", where, c)
	}
}

// TestScoresAfterAppend checks that Scores (ref.Scorer) returns the scores
// behind the last Decode's selection, [B*Hkv] rows of the N tokens that
// Decode saw, as ref's methods do, after Appends that came since: one that
// leaves the capacity as it is (Scores once returned a row of N+1 scores,
// the last one stale) and ones that double it (where it once indexed past
// the scores it read back: a panic).
func TestScoresAfterAppend(t *testing.T) {
	ctx := device(t)
	for i, name := range []string{"topk", "loki", "quest"} {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 63, D: 32}
		o := ref.Options{Seed: 3, PageSize: 7}
		want, err := ref.New(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ctx.SparseFactory(SparseOptions{Reserve: 1, LokiF32Keys: true})(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		kv := reftest.DyadicKV(rng, s, false)
		for _, m := range []ref.Method{want, got} {
			if err := m.Prefill(kv); err != nil {
				t.Fatalf("%s: Prefill: %v", name, err)
			}
		}
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		for _, m := range []ref.Method{want, got} {
			if _, err := m.Decode(q, ref.Budget{K: 9}); err != nil {
				t.Fatalf("%s: Decode: %v", name, err)
			}
		}
		check := func(when string) {
			t.Helper()
			ws, err := want.(ref.Scorer).Scores()
			if err != nil {
				t.Fatal(err)
			}
			gs, err := func() (gs [][]float64, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return got.(ref.Scorer).Scores()
			}()
			if err != nil {
				t.Errorf("%s: Scores %s: %v", name, when, err)
			} else if err := closeScores(gs, ws); err != nil {
				t.Errorf("%s: Scores %s: %v", name, when, err)
			}
		}
		check("after the decode (N=63, Cap=64)")
		for n := 64; n <= 65; n++ {
			k, v := reftest.Dyadic(rng, s.B*s.Hkv*s.D), reftest.Dyadic(rng, s.B*s.Hkv*s.D)
			for _, m := range []ref.Method{want, got} {
				if err := m.Append(k, v); err != nil {
					t.Fatalf("%s: Append to N=%d: %v", name, n, err)
				}
			}
			check(fmt.Sprintf("after appends to N=%d (Cap=%d)", n, coreOf(got).cap))
		}
		got.(io.Closer).Close()
	}
}

// TestUseAfterClose checks that a method, buffer or batch used after its
// context closed (or after its own Free) fails with an error saying so,
// instead of calling Vulkan on destroyed objects, which aborted the process.
func TestUseAfterClose(t *testing.T) {
	ctx := testContext(t, Options{})
	const b, hq, hkv, n, d = 1, 4, 2, 40, 16
	rng := rand.New(rand.NewPCG(1, 2))
	kv, q := randomKV(rng, b, hkv, n, d, F32), normal(rng, b*hq*d, 1)
	w := mustRandomWeights(t, hkv, d)
	ms := make([]ref.Method, len(Methods))
	for i, name := range Methods {
		var err error
		if ms[i], err = ctx.NewMethod(name, hkv, d, ref.Options{W: w}); err != nil {
			t.Fatalf("NewMethod(%s): %v", name, err)
		}
		if err := ms[i].Prefill(kv); err != nil {
			t.Fatalf("%s: Prefill: %v", name, err)
		}
		if _, err := ms[i].Decode(q, ref.Budget{K: 4}); err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
	}
	buf, err := ctx.NewBuffer("freed", 16, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	buf.Free()
	if err := ctx.Write(Region{Dst: buf, Data: make([]byte, 16)}); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("Write to a freed buffer = %v, want an error saying it is freed", err)
	}
	batch, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	batch.Free()
	if err := batch.Begin(); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("Begin on a freed batch = %v, want an error saying it is freed", err)
	}
	if err := ctx.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "closed") && !strings.Contains(err.Error(), "freed") {
			t.Errorf("%s after the context closed = %v, want an error saying it is closed", what, err)
		}
	}
	for i, name := range Methods {
		_, err := ms[i].Decode(q, ref.Budget{K: 4})
		closed(name+" Decode", err)
		closed(name+" Append", ms[i].Append(make([]float32, b*hkv*d), make([]float32, b*hkv*d)))
		closed(name+" Prefill", ms[i].Prefill(kv))
		if err := ms[i].(io.Closer).Close(); err != nil {
			t.Errorf("%s: Close after the context closed: %v", name, err)
		}
	}
	_, err = ctx.NewBuffer("after", 16, DeviceLocal)
	closed("NewBuffer", err)
	_, err = ctx.NewBatch()
	closed("NewBatch", err)
	closed("Read", ctx.Read(buf, 0, make([]byte, 16)))
}

// TestCloseConcurrent closes a context from several goroutines at once, as
// its methods' promise of concurrent use allows: exactly one of them frees
// its objects and device (two doing it crashed the process in the driver).
func TestCloseConcurrent(t *testing.T) {
	const b, hq, hkv, n, d = 1, 4, 2, 40, 16
	rng := rand.New(rand.NewPCG(1, 2))
	kv, q := randomKV(rng, b, hkv, n, d, F32), normal(rng, b*hq*d, 1)
	for range 8 {
		ctx := testContext(t, Options{})
		m, err := ctx.NewMethod("hata", hkv, d, ref.Options{W: mustRandomWeights(t, hkv, d)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Decode(q, ref.Budget{K: 4}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := ctx.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
		wg.Wait()
	}
}

// mustRandomWeights returns random hash weights of 32 bits for hkv heads of
// dimension d.
func mustRandomWeights(t *testing.T, hkv, d int) *ref.HashWeights {
	t.Helper()
	w, err := ref.RandomHashWeights(hkv, d, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestPrefillAfterClose checks that every method prefilled again after its
// Close (NewMethod's doc) decodes as it did before: hata and lsh freed their
// hash weights at Close and dereferenced the nil buffer at the next Prefill.
func TestPrefillAfterClose(t *testing.T) {
	ctx := device(t)
	const b, hq, hkv, n, d = 1, 4, 2, 40, 16
	rng := rand.New(rand.NewPCG(3, 4))
	kv, q := randomKV(rng, b, hkv, n, d, F32), normal(rng, b*hq*d, 1)
	w := mustRandomWeights(t, hkv, d)
	for _, name := range Methods {
		m, err := ctx.NewMethod(name, hkv, d, ref.Options{W: w})
		if err != nil {
			t.Fatalf("NewMethod(%s): %v", name, err)
		}
		var res [2]*ref.Result
		for i := range res {
			if err := m.Prefill(kv); err != nil {
				t.Fatalf("%s: Prefill %d: %v", name, i, err)
			}
			if res[i], err = m.Decode(q, ref.Budget{K: 4}); err != nil {
				t.Fatalf("%s: Decode %d: %v", name, i, err)
			}
			if err := m.(io.Closer).Close(); err != nil {
				t.Fatalf("%s: Close %d: %v", name, i, err)
			}
		}
		if !slices.Equal(res[0].Out, res[1].Out) || !slices.EqualFunc(res[0].Selected, res[1].Selected, slices.Equal) {
			t.Errorf("%s: the decode after Close and Prefill = %v %v, want the first's %v %v",
				name, res[1].Out[:4], res[1].Selected, res[0].Out[:4], res[0].Selected)
		}
	}
}

// TestPrefillBadCache checks that every method refuses a cache built by
// hand whose rows do not hold what its shape says (ref.KV.Validate), with an
// error instead of a panic (the package's promise).
func TestPrefillBadCache(t *testing.T) {
	ctx := device(t)
	const b, hkv, n, d = 1, 2, 8, 16
	good, err := ref.NewKV(b, hkv, n, d, make([]float32, b*hkv*n*d), make([]float32, b*hkv*n*d))
	if err != nil {
		t.Fatal(err)
	}
	short := good.Clone()
	short.K[1] = short.K[1][:d]
	bad := map[string]*ref.KV{
		"nil":          nil,
		"N too large":  {B: b, Hkv: hkv, D: d, N: n + 1, K: good.K, V: good.V},
		"a row short":  short,
		"rows missing": {B: b, Hkv: hkv, D: d, N: n, K: good.K[:1], V: good.V[:1]},
	}
	w := mustRandomWeights(t, hkv, d)
	for _, name := range Methods {
		m, err := ctx.NewMethod(name, hkv, d, ref.Options{W: w})
		if err != nil {
			t.Fatal(err)
		}
		for what, kv := range bad {
			if err := m.Prefill(kv); err == nil {
				t.Errorf("%s: Prefill of a cache with %s = nil, want an error", name, what)
			}
		}
		if err := m.(io.Closer).Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrefillFails makes a prefill fail after its cache buffers are
// allocated, by lowering maxMemoryAllocationSize below what it allocates
// next (a top-k method's translation prefetch results; dense's upload
// through the context's staging buffer, which a fresh context has yet to
// allocate), as an allocation failing out of memory would. A decode after
// it must fail as one before any prefill does, and a prefill after it must
// work. (The failed prefill once left the unwritten buffers as the cache,
// which the next decode attended over.)
func TestPrefillFails(t *testing.T) {
	device(t)
	for i, name := range append([]string{"dense"}, sparseMethods...) {
		ctx := testContext(t, Options{})
		rng := rand.New(rand.NewPCG(uint64(i), 13))
		s := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 63, D: 16}
		o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 64), Seed: 3, PageSize: 7}
		var got ref.Method
		var err error
		if name == "dense" {
			got, err = ctx.NewDense(DenseOptions{Reserve: 1})
		} else {
			got, err = ctx.SparseFactory(SparseOptions{Reserve: 1, Prefetch: PrefetchOn, LokiF32Keys: true})(name, s.Hkv, s.D, o)
		}
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.New(name, s.Hkv, s.D, o)
		if err != nil {
			t.Fatal(err)
		}
		kv := reftest.DyadicKV(rng, s, false)
		// A cache row (64 tokens of 16 float32) takes 4 KiB: the cache's
		// buffers fit, the four buffers' prefetch results (16 KiB) do not.
		lim := &ctx.Info.Limits.MaxMemoryAllocationSize
		saved := *lim
		*lim = 4 << 10
		err = got.Prefill(kv)
		*lim = saved
		if err == nil {
			t.Fatalf("%s: Prefill under a 4 KiB allocation limit did not fail", name)
		}
		t.Logf("%s: the failed prefill: %v", name, err)
		q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
		if _, err := got.Decode(q, ref.Budget{K: 9}); err == nil || !strings.Contains(err.Error(), "before prefill") {
			t.Errorf("%s: Decode after the failed Prefill: error %v, want one saying there was no prefill", name, err)
		}
		for _, m := range []ref.Method{want, got} {
			if err := m.Prefill(kv); err != nil {
				t.Fatalf("%s: Prefill after the failed one: %v", name, err)
			}
		}
		if name == "dense" {
			res, err := got.Decode(q, ref.Full)
			if err != nil {
				t.Fatal(err)
			}
			checkDense(t, "dense after the failed prefill", res.Out, q, kv)
		} else {
			decodeStep(t, name+" after the failed prefill", name, q, kv, ref.Budget{K: 9}, want, got, exactSelection[name])
		}
		got.(io.Closer).Close()
	}
}

// TestDensePrepareFails makes a Dense's decode with more query heads fail
// while it sizes its buffers (its partial outputs over a lowered
// maxMemoryAllocationSize, as an allocation failing out of memory would),
// after it has chosen the split kernel for the new group size, then decodes
// with the earlier query heads again: the output must be dense attention's.
// (The failed step once left the new group's kernel in place, which the
// next step, finding the heads it had before, kept and ran with them.)
func TestDensePrepareFails(t *testing.T) {
	device(t)
	ctx := testContext(t, Options{})
	rng := rand.New(rand.NewPCG(5, 7))
	const b, hkv, n, d = 1, 2, 100, 16
	kv := randomKV(rng, b, hkv, n, d, F32)
	m, err := ctx.NewDense(DenseOptions{Split: SplitPolicy{Splits: 4}, Merge: MergeFold})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Prefill(kv); err != nil {
		t.Fatal(err)
	}
	q2 := normal(rng, b*hkv*2*d, 2) // G = 2
	q4 := normal(rng, b*hkv*4*d, 2) // G = 4
	res, err := m.Decode(q2, ref.Full)
	if err != nil {
		t.Fatalf("Decode (G=2): %v", err)
	}
	checkDense(t, "G=2", res.Out, q2, kv)
	// G=4: q and out take 512 bytes, the 4 splits' partial outputs 2 KiB.
	lim := &ctx.Info.Limits.MaxMemoryAllocationSize
	saved := *lim
	*lim = 1 << 10
	_, err = m.Decode(q4, ref.Full)
	*lim = saved
	if err == nil {
		t.Fatalf("Decode (G=4) under a 1 KiB allocation limit did not fail")
	}
	t.Logf("the failed decode: %v", err)
	for _, q := range [][]float32{q2, q4, q2} {
		res, err := m.Decode(q, ref.Full)
		if err != nil {
			t.Fatalf("Decode (G=%d) after the failed one: %v", len(q)/(b*hkv*d), err)
		}
		checkDense(t, "after the failed decode", res.Out, q, kv)
	}
}

// TestSubmitTimeout makes a batch's wait time out (submitTimeout 0) and
// checks that the next Begin waits for that submission before it resets its
// command buffer, which the device may still be running: the fence has
// signalled when Begin returns, and the batch records and submits again.
func TestSubmitTimeout(t *testing.T) {
	ctx := testContext(t, Options{})
	buf, err := ctx.NewBuffer("timeout", 64<<20, Readback)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	b, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	old := submitTimeout
	defer func() { submitTimeout = old }()
	timedOut := false
	for fills := 16; fills <= 1024 && !timedOut; fills *= 4 {
		if err := b.Begin(); err != nil {
			t.Fatal(err)
		}
		for i := range fills {
			b.Fill(buf.Whole(), uint32(i))
			b.Barrier()
		}
		submitTimeout = 0
		_, err := b.Submit()
		submitTimeout = old
		if err == nil {
			continue // the device finished within the wait: more work
		}
		var ve *vkc.Error
		if !errors.As(err, &ve) || ve.Result != vkc.Timeout {
			t.Fatalf("Submit with no time to wait = %v, want VK_TIMEOUT", err)
		}
		timedOut = true
	}
	if !timedOut {
		t.Skip("the device finished 1024 fills of 64 MiB within a wait of 0 ns")
	}
	if err := b.Begin(); err != nil {
		t.Fatalf("Begin after a timed-out Submit: %v", err)
	}
	if r := vulkan.GetFenceStatus(ctx.dev, b.fence); r != vulkan.Success {
		t.Errorf("Begin returned while the timed-out submission still ran (fence status %d)", r)
	}
	b.Fill(buf.Range(0, 16), 7)
	if _, err := b.Submit(); err != nil {
		t.Fatalf("Submit after the timed-out one: %v", err)
	}
	got := make([]byte, 16)
	if err := ctx.Read(buf, 0, got); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i += 4 {
		if w := binary.LittleEndian.Uint32(got[i:]); w != 7 {
			t.Fatalf("word %d after the second submission = %d, want 7", i/4, w)
		}
	}
}

// noWait runs f with submitTimeout 0: the first batch f submits times out
// unless the device has finished it by the time Submit waits.
func noWait(f func() error) error {
	old := submitTimeout
	submitTimeout = 0
	defer func() { submitTimeout = old }()
	return f()
}

// isTimeout reports whether err wraps VK_TIMEOUT.
func isTimeout(err error) bool {
	var ve *vkc.Error
	return errors.As(err, &ve) && ve.Result == vkc.Timeout
}

// heldCount returns the number of freed objects c holds for stuck batches.
func (c *Context) heldCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// checkHeld fails the test where b, whose Submit timed out in a step that
// then freed what it had made for b (where names the step), still runs but
// its context holds nothing: those frees came after the timeout and before
// now, when b had not finished either, so they must have been held (and
// not destroyed under the device, which on lavapipe crashes the process).
func checkHeld(t *testing.T, where string, ctx *Context, b *Batch) {
	t.Helper()
	if vulkan.GetFenceStatus(ctx.dev, b.fence) == vulkan.Success {
		t.Logf("%s: the timed-out batch finished before the check", where)
		return
	}
	if ctx.heldCount() == 0 {
		t.Errorf("%s: the timed-out batch still runs, and its context holds nothing that was freed meanwhile", where)
	}
}

// TestFreeWhileStuck checks the rule of a stuck batch (see Batch): a
// buffer, a descriptor set and a kernel that a batch whose wait timed out
// still uses, freed meanwhile, read as freed at once but are held by the
// context; once a later free finds the batch's fence signalled, without
// the batch's owner waiting again, they are destroyed; and the batch then
// records and submits again.
func TestFreeWhileStuck(t *testing.T) {
	ctx := testContext(t, Options{})
	const words = 4 << 20
	buf, err := ctx.NewBuffer("stuck", 4*words, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ctx.NewKernel(KernelSpec{Shader: "fill_random", Bindings: 1, Push: randomPush{}, Spec: []uint32{256}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := k.NewSet(buf.Whole())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	if err := b.Begin(); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		b.Dispatch(k, set, randomPush{N: words, Seed: uint32(i), Scale: 1}, 4096, 1, 1)
		b.Barrier()
	}
	err = noWait(func() error { _, err := b.Submit(); return err })
	if err == nil {
		t.Skip("the device ran 4 fills of 16 MiB within a wait of 0 ns")
	}
	if !isTimeout(err) {
		t.Fatalf("Submit with no time to wait = %v, want VK_TIMEOUT", err)
	}
	set.Free()
	k.Free()
	buf.Free()
	checkHeld(t, "freeing the set, kernel and buffer", ctx, b)
	if err := buf.Whole().check(); err == nil {
		t.Errorf("the buffer freed while held does not read as freed")
	}
	if set.set != vulkan.NullDescriptorSet || k.pipe != vulkan.NullPipeline {
		t.Errorf("the set or kernel freed while held does not read as freed")
	}
	for start := time.Now(); vulkan.GetFenceStatus(ctx.dev, b.fence) != vulkan.Success; time.Sleep(time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatal("the timed-out batch has not finished in a minute")
		}
	}
	other, err := ctx.NewBuffer("other", 64, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	other.Free() // finds the fence signalled: everything held goes
	if n := ctx.heldCount(); n != 0 {
		t.Errorf("%d objects held after a free found the stuck batch finished", n)
	}
	small, err := ctx.NewBuffer("small", 64, Readback)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Free()
	if err := b.Begin(); err != nil {
		t.Fatalf("Begin after the timed-out Submit: %v", err)
	}
	b.Fill(small.Whole(), 7)
	if _, err := b.Submit(); err != nil {
		t.Fatalf("Submit after the timed-out one: %v", err)
	}
	if w := binary.LittleEndian.Uint32(small.Bytes()); w != 7 {
		t.Errorf("word 0 after the second submission = %d, want 7", w)
	}
}

// TestDenseGrowTimeout makes the batch that copies a Dense's cache into
// one of twice the capacity time out (submitTimeout 0). grow then keeps the
// old cache and frees the new one, which the copy may still be writing:
// the context must hold it until the copy is seen finished (on lavapipe,
// destroying it at once crashed the test process). The cache must stay as
// it was: an Append and a Decode after it agree with ref.Dense.
func TestDenseGrowTimeout(t *testing.T) {
	ctx := testContext(t, Options{})
	const b, hkv, hq, d, seed = 1, 4, 8, 128, 5
	var m *Dense
	var n, oldCap int
	var old *kvStore
	var err error
	for n = 1024; ; n *= 4 { // 4, 16, 64 MiB of cache to copy
		if m, err = ctx.NewDense(DenseOptions{Reserve: 1}); err != nil {
			t.Fatal(err)
		}
		if err := m.PrefillRandom(b, hkv, n, d, seed); err != nil {
			t.Fatal(err)
		}
		old, oldCap = m.kv, m.cap
		if err = noWait(func() error { return m.grow(2 * m.cap) }); err != nil {
			break
		}
		m.Close()
		if n == 16384 {
			t.Skip("the device copied 64 MiB of cache within a wait of 0 ns")
		}
	}
	defer m.Close()
	if !isTimeout(err) {
		t.Fatalf("grow with no time to wait = %v, want VK_TIMEOUT", err)
	}
	t.Logf("the timed-out grow: %v", err)
	checkHeld(t, "the timed-out grow", ctx, m.batch)
	if m.kv != old || m.cap != oldCap {
		t.Fatalf("after the timed-out grow: Cap=%d, a cache other than the old one; want the old cache of Cap=%d", m.cap, oldCap)
	}
	k, v := RandomKV(b, hkv, n, oldCap, d, seed)
	kv, err := ref.NewKV(b, hkv, n, d, k, v)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	nk, nv := normal(rng, b*hkv*d, 1), normal(rng, b*hkv*d, 1)
	for _, c := range []interface{ Append(k, v []float32) error }{m, kv} {
		if err := c.Append(nk, nv); err != nil {
			t.Fatalf("Append after the timed-out grow: %v", err)
		}
	}
	q := normal(rng, b*hq*d, 2)
	res, err := m.Decode(q, ref.Full)
	if err != nil {
		t.Fatalf("Decode after the timed-out grow: %v", err)
	}
	checkDense(t, "after the timed-out grow", res.Out, q, kv)
	if n := ctx.heldCount(); n != 0 {
		t.Errorf("%d objects still held after the next decode waited for its batch", n)
	}
}

// TestSparseGrowTimeout makes the Append that doubles a HATA's cache (the
// copy of the old cache into the new and the key codes rebuilt for it) time
// out (submitTimeout 0). Append then frees the new cache (keepCache), which
// the batch may still be writing: the context must hold it. keepCache's
// rebuild of the old cache's side state waits for that batch again, with
// no time either: it keeps the old cache where the batch has finished by
// then and drops it (saying so) where not, as on lavapipe. The method must
// then work: a decode agrees with ref's (after a prefill again where the
// cache was dropped), and so does one after Appends that grow the cache.
func TestSparseGrowTimeout(t *testing.T) {
	ctx := testContext(t, Options{})
	const name = "hata"
	rng := rand.New(rand.NewPCG(3, 17))
	s := ref.Shape{B: 1, Hq: 8, Hkv: 4, N: 1023, D: 128} // Cap 1024: 4 MiB of cache to copy
	o := ref.Options{W: reftest.DyadicHashWeights(rng, s.Hkv, s.D, 64), Seed: 3}
	want, err := ref.New(name, s.Hkv, s.D, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ctx.SparseFactory(SparseOptions{Reserve: 1})(name, s.Hkv, s.D, o)
	if err != nil {
		t.Fatal(err)
	}
	defer got.(io.Closer).Close()
	kv := reftest.DyadicKV(rng, s, false)
	for _, m := range []ref.Method{want, got} {
		if err := m.Prefill(kv); err != nil {
			t.Fatal(err)
		}
	}
	cache := kv.Clone()
	appendAll := func(ms ...appender) error { return appendDyadic(rng, s, ms...) }
	if err := appendAll(want, got, cache); err != nil { // N = 1024 = Cap
		t.Fatal(err)
	}
	c := coreOf(got)
	if c.cap != 1024 {
		t.Fatalf("capacity %d, want 1024", c.cap)
	}
	err = noWait(func() error { return appendAll(got) })
	if err == nil {
		t.Skip("the device grew the cache within a wait of 0 ns")
	}
	if !strings.Contains(err.Error(), "VK_TIMEOUT") {
		t.Fatalf("Append with no time to wait = %v, want VK_TIMEOUT", err)
	}
	t.Logf("the timed-out Append: %v", err)
	checkHeld(t, "the timed-out Append", ctx, c.batch)
	switch {
	case c.hasCache() && c.n == cache.N && c.cap == 1024:
		t.Logf("the old cache was kept")
	case !c.hasCache() && strings.Contains(err.Error(), "dropped"):
		t.Logf("the old cache was dropped")
		for _, m := range []ref.Method{want, got} {
			if err := m.Prefill(cache); err != nil {
				t.Fatalf("Prefill after the timed-out Append: %v", err)
			}
		}
	default:
		t.Fatalf("after the timed-out Append: cache %v N=%d Cap=%d, want the cache of N=%d Cap=1024, or none and an error saying so", c.hasCache(), c.n, c.cap, cache.N)
	}
	q := reftest.Dyadic(rng, s.B*s.Hq*s.D)
	decodeStep(t, "after the timed-out Append", name, q, cache, ref.Budget{K: 9}, want, got, exactSelection[name])
	for grown := 2 * c.cap; c.cap < grown; {
		if err := appendAll(want, got, cache); err != nil {
			t.Fatalf("Append after the timed-out one (N=%d Cap=%d): %v", c.n, c.cap, err)
		}
	}
	decodeStep(t, "after growing", name, q, cache, ref.Budget{K: 9}, want, got, exactSelection[name])
	if n := ctx.heldCount(); n != 0 {
		t.Errorf("%d objects still held after the method's batch waited again", n)
	}
}

// TestDensePrefillTimeout makes the transfer of a Dense's prefill time out
// (submitTimeout 0). Prefill then frees the cache it allocated, which the
// transfer may still be writing: the context must hold it. A decode after
// it fails as one before any prefill, and a prefill after it (whose upload
// first waits for the timed-out transfer, which may still be reading the
// staging buffer) works.
func TestDensePrefillTimeout(t *testing.T) {
	ctx := testContext(t, Options{})
	rng := rand.New(rand.NewPCG(7, 3))
	q := normal(rng, 8*128, 2)
	m, err := ctx.NewDense(DenseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var kv *ref.KV
	for n := 1024; ; n *= 4 { // 4, 16, 64 MiB to upload
		kv = randomKV(rng, 1, 4, n, 128, F32)
		if err = noWait(func() error { return m.Prefill(kv) }); err != nil {
			break
		}
		if n == 16384 {
			t.Skip("the device ran the prefill's transfer of 64 MiB within a wait of 0 ns")
		}
	}
	if !isTimeout(err) {
		t.Fatalf("Prefill with no time to wait = %v, want VK_TIMEOUT", err)
	}
	t.Logf("the timed-out prefill: %v", err)
	checkHeld(t, "the timed-out prefill", ctx, ctx.xfer)
	if _, err := m.Decode(q, ref.Full); err == nil || !strings.Contains(err.Error(), "before prefill") {
		t.Errorf("Decode after the timed-out Prefill: error %v, want one saying there was no prefill", err)
	}
	if err := m.Prefill(kv); err != nil {
		t.Fatalf("Prefill after the timed-out one: %v", err)
	}
	res, err := m.Decode(q, ref.Full)
	if err != nil {
		t.Fatal(err)
	}
	checkDense(t, "after the timed-out prefill", res.Out, q, kv)
	if n := ctx.heldCount(); n != 0 {
		t.Errorf("%d objects still held after the transfer waited again", n)
	}
}

// appender is what appendDyadic appends to: a method, or a ref.KV cache.
type appender interface{ Append(k, v []float32) error }

// appendDyadic appends one token of dyadic keys and values (B*Hkv rows of
// D) drawn from rng, the same token to each of ms; it stops at the first
// error.
func appendDyadic(rng *rand.Rand, s ref.Shape, ms ...appender) error {
	k, v := reftest.Dyadic(rng, s.B*s.Hkv*s.D), reftest.Dyadic(rng, s.B*s.Hkv*s.D)
	for _, m := range ms {
		if err := m.Append(k, v); err != nil {
			return err
		}
	}
	return nil
}
