package vk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestQueryUpload checks queryUpload: the host's bytes arrive in dst through
// the staging buffer and copy.comp (a set built) for sizes of whole uvec4s,
// by a transfer alone otherwise (no set); a second destination rebuilds the
// set, so that it writes there and leaves the first alone; the kernel of
// the upload stage, a host stage, opens no level; and sizes that differ are
// refused.
func TestQueryUpload(t *testing.T) {
	ctx := device(t)
	rng := rand.New(rand.NewPCG(21, 1))
	b, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	var bufs [3]*Buffer // the host's q, the device's, and the device's read back
	for i, kind := range []MemoryKind{Upload, DeviceLocal, Readback} {
		if bufs[i], err = ctx.NewBuffer(fmt.Sprintf("upload test %s", kind), 8192, kind); err != nil {
			t.Fatal(err)
		}
		defer bufs[i].Free()
	}
	host, dev, rb := bufs[0], bufs[1], bufs[2]
	var u queryUpload
	defer u.free()
	for _, c := range []struct {
		off, size uint64
		kernel    bool
	}{{0, 4096, true}, {4096, 4096, true}, {0, 4096, true}, {256, 1028, false}} {
		where := fmt.Sprintf("%d bytes at %d", c.size, c.off)
		src := host.Bytes()[:c.size]
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		if err := b.Begin(); err != nil {
			t.Fatal(err)
		}
		b.Fill(dev.Whole(), 0)
		b.Barrier()
		b.Stage("upload")
		if err := u.record(ctx, b, dev.Range(c.off, c.size), host.Range(0, c.size)); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		b.Barrier()
		b.Stage("readback")
		b.Copy(rb.Whole(), dev.Whole())
		tm, err := b.Submit()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if err := rb.invalidate(); err != nil {
			t.Fatal(err)
		}
		got := rb.Bytes()[:8192]
		want := make([]byte, 8192)
		copy(want[c.off:], src)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the device's q differs from the host's (or bytes outside it were written)", where)
		}
		if (u.set != nil) != c.kernel || c.kernel && u.dst != dev.Range(c.off, c.size) {
			t.Errorf("%s: copied by a kernel %v (set for %+v), want %v", where, u.set != nil, u.dst, c.kernel)
		}
		if tm.Levels != 0 {
			t.Errorf("%s: Levels = %d, want 0 (the upload is a host stage)", where, tm.Levels)
		}
	}
	if err := u.record(ctx, b, dev.Range(0, 32), host.Range(0, 16)); err == nil {
		t.Error("16 bytes into 32: want an error")
	}
}

// TestEveryMethodUploadsByKernel checks that every GPU method's decode step
// writes its queries by a compute kernel (its queryUpload holds a set after
// a step), so that no method's first kernel follows transfers alone, which
// would time it differently from the others (BENCHMARKS.md, session 21).
func TestEveryMethodUploadsByKernel(t *testing.T) {
	ctx := device(t)
	q := benchQuery(9)
	for _, name := range Methods {
		m := benchStep(t, ctx, name, Tuning{}, q)
		var u *queryUpload
		if dm, ok := m.(*Dense); ok {
			u = &dm.qup
		} else {
			u = &coreOf(m).qup
		}
		if u.set == nil || u.dst.Size != uint64(4*len(q)) {
			t.Errorf("%s: the step's queries were not written by the upload's kernel (set %v, %d bytes)", name, u.set != nil, u.dst.Size)
		}
	}
}
