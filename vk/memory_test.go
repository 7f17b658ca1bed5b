package vk

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vulkan-go/vulkan"
)

// ownContext opens a second context like the shared one (for tests that
// change its settings or provoke validation errors) and closes it at the end.
func ownContext(t *testing.T, validate bool) *Context {
	t.Helper()
	device(t)
	c, err := OpenWith(Options{Device: testCtx.Info.Name, Validate: validate, Poison: true})
	if err != nil {
		t.Fatalf("OpenWith: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWriteRead moves data through small staging buffers, so that transfers
// are split into pieces, including regions that straddle two pieces.
func TestWriteRead(t *testing.T) {
	ctx := ownContext(t, envValidate())
	ctx.stagingMax = 1 << 20
	const size = 3<<20 + 4096
	buf, err := ctx.NewBuffer("test", size, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	// Three regions out of order, the middle one larger than the staging.
	if err := ctx.Write(
		Region{Dst: buf, Off: 2 << 20, Data: data[2<<20:]},
		Region{Dst: buf, Off: 0, Data: data[:1<<19]},
		Region{Dst: buf, Off: 1 << 19, Data: data[1<<19 : 2<<20]},
	); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := make([]byte, size-8)
	if err := ctx.Read(buf, 8, got); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if !bytes.Equal(got, data[8:]) {
		t.Error("Read after Write differs from the data written")
	}
	for _, err := range []error{
		ctx.Write(Region{Dst: buf, Off: size - 4, Data: make([]byte, 8)}),
		ctx.Write(Region{Dst: buf, Off: 2, Data: make([]byte, 4)}),
		ctx.Read(buf, size, make([]byte, 4)),
	} {
		if err == nil {
			t.Error("a transfer outside the buffer or misaligned succeeded")
		}
	}
	buf.Free()
	buf.Free() // a second Free is a no-op
}

// TestOutOfMemory asks for more than the largest heap holds.
func TestOutOfMemory(t *testing.T) {
	ctx := device(t)
	var most uint64
	for _, h := range ctx.Info.Heaps {
		most = max(most, h.Size)
	}
	_, err := ctx.NewBuffer("huge", 2*most, DeviceLocal)
	if err == nil {
		t.Fatalf("NewBuffer of %d bytes succeeded on heaps %v", 2*most, ctx.Info.Heaps)
	}
	if !errors.Is(err, ErrOutOfMemory) || !strings.Contains(err.Error(), `"huge"`) || !strings.Contains(err.Error(), "heap") ||
		!strings.Contains(err.Error(), bytesString(2*most)) {
		t.Errorf("error %q: want ErrOutOfMemory naming the buffer, its size and the heap", err)
	}
}

// TestBatch checks fills, copies and the stage timings of a batch, and that
// recording errors surface at Submit.
func TestBatch(t *testing.T) {
	ctx := device(t)
	a, err := ctx.NewBuffer("a", 1<<16, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	rb, err := ctx.NewBuffer("rb", 1<<16, Readback)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Free()
	b, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	if err := b.Begin(); err != nil {
		t.Fatal(err)
	}
	b.Stage("fill")
	b.Fill(a.Whole(), NaNBits)
	b.Barrier()
	b.Fill(a.Range(4096, 4096), math.Float32bits(2.5))
	b.Barrier()
	b.Stage("copy")
	b.Copy(rb.Whole(), a.Whole())
	tm, err := b.Submit()
	if err != nil {
		t.Fatal(err)
	}
	f := bytesF32(rb.Bytes())
	if !math.IsNaN(float64(f[0])) || !math.IsNaN(float64(f[len(f)-1])) || f[1024] != 2.5 || f[2047] != 2.5 || !math.IsNaN(float64(f[2048])) {
		t.Errorf("after fills and copy: f[0]=%v f[1024]=%v f[2047]=%v f[2048]=%v f[last]=%v", f[0], f[1024], f[2047], f[2048], f[len(f)-1])
	}
	if ctx.Info.TimestampValidBits > 0 && (len(tm.Stages) != 2 || tm.Stages[0].Name != "fill" || tm.Stages[1].Name != "copy") {
		t.Errorf("timings %+v: want stages fill, copy", tm)
	}
	// Recording errors are kept and returned by Submit.
	if err := b.Begin(); err != nil {
		t.Fatal(err)
	}
	b.Copy(rb.Range(0, 8), a.Range(0, 4))
	b.Fill(a.Range(1<<16, 4), 0)
	if _, err := b.Submit(); err == nil || !strings.Contains(err.Error(), "4 bytes into 8") {
		t.Errorf("Submit after a mismatched copy: %v", err)
	}
	if _, err := b.Submit(); err == nil {
		t.Error("Submit without Begin succeeded")
	}
}

// TestValidationRecorded provokes a validation error on purpose and checks
// that the layer's message is recorded, so that the zero-message checks of
// the other tests can fail.
//
// Without HATA_VK_VALIDATE=1 a machine whose loader lacks the layer (the GPU
// machine of this project) skips it; with it, a missing layer fails.
func TestValidationRecorded(t *testing.T) {
	device(t)
	ctx, err := OpenWith(Options{Device: testCtx.Info.Name, Validate: true, Poison: true})
	if errors.Is(err, ErrNoValidationLayer) && !envValidate() {
		t.Skipf("OpenWith: %v (%s is not set)", err, EnvValidate)
	}
	if err != nil {
		t.Fatalf("OpenWith: %v", err)
	}
	t.Cleanup(func() { ctx.Close() })
	if !ctx.Validating() {
		t.Fatal("Validating() = false on a context opened with Validate")
	}
	b, err := ctx.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Begin(); err != nil {
		t.Fatal(err)
	}
	// Shader-write access is not performed by the transfer stage: invalid.
	vulkan.CmdPipelineBarrier(b.cb, vulkan.PipelineStageFlags(vulkan.PipelineStageTransferBit), vulkan.PipelineStageFlags(vulkan.PipelineStageTransferBit),
		0, 1, []vulkan.MemoryBarrier{{
			SType:         vulkan.StructureTypeMemoryBarrier,
			SrcAccessMask: vulkan.AccessFlags(vulkan.AccessShaderWriteBit),
			DstAccessMask: vulkan.AccessFlags(vulkan.AccessTransferReadBit),
		}}, 0, nil, 0, nil)
	if _, err := b.Submit(); err != nil {
		t.Fatal(err)
	}
	msgs := ctx.ValidationMessages(0)
	if ctx.ValidationCount() == 0 || len(msgs) == 0 || !strings.Contains(strings.Join(msgs, "\n"), "srcAccessMask") {
		t.Errorf("validation messages after an invalid barrier: %d %q; want one about srcAccessMask", ctx.ValidationCount(), msgs)
	}
	t.Logf("recorded as intended: %s", msgs)
}

// TestDedicated checks which buffers NewBuffer gives a dedicated allocation
// (device-local ones of dedicatedMin bytes or more, unless
// Options.NoDedicated or $HATA_VK_DEDICATED=0 says none), that data goes
// through one (under validation where it is on, which checks the binding
// against the allocation), and that the TLB flush's pages never get one.
func TestDedicated(t *testing.T) {
	device(t)
	open := func(o Options) *Context {
		t.Helper()
		o.Device, o.Validate = testCtx.Info.Name, envValidate()
		c, err := OpenWith(o)
		if err != nil {
			t.Fatalf("OpenWith: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Setenv(EnvDedicated, "")
	for _, no := range []bool{false, true} {
		c := open(Options{NoDedicated: no})
		for _, tc := range []struct {
			kind MemoryKind
			size uint64
			want bool
		}{
			{DeviceLocal, dedicatedMin - 4, false},
			{DeviceLocal, dedicatedMin, !no},
			{DeviceLocal, 3*dedicatedMin + 12, !no},
			{Upload, 2 * dedicatedMin, false},
			{Readback, 2 * dedicatedMin, false},
			{Host, 2 * dedicatedMin, false},
		} {
			b, err := c.NewBuffer("dedicated test", tc.size, tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			if b.dedicated != tc.want {
				t.Errorf("NoDedicated %v: %s buffer of %d bytes: dedicated %v, want %v", no, tc.kind, tc.size, b.dedicated, tc.want)
			}
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i*7 + int(tc.size))
			}
			got := make([]byte, tc.size)
			if err := c.Write(Region{Dst: b, Data: data}); err != nil {
				t.Fatal(err)
			}
			if err := c.Read(b, 0, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("NoDedicated %v: %s buffer of %d bytes: read back differs from what was written", no, tc.kind, tc.size)
			}
			b.Free()
		}
		f, err := c.NewL2Flush(4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.AddPages(dedicatedMin); err != nil {
			t.Fatal(err)
		}
		if len(f.pages) != 1 || f.pages[0].dedicated {
			t.Errorf("NoDedicated %v: the TLB flush's pages: %d buffers, the first dedicated; want one plain", no, len(f.pages))
		}
		f.Close()
	}
	for env, want := range map[string]bool{"0": false, "off": false, "1": true} {
		t.Setenv(EnvDedicated, env)
		if c := open(Options{}); c.dedicated != want {
			t.Errorf("$%s=%s: dedicated allocations %v, want %v", EnvDedicated, env, c.dedicated, want)
		}
	}
}

// TestMemoryTypes holds memoryType's choice of a type for each kind to the
// memory types three kinds of device offer: a discrete GPU (NVIDIA's on
// Linux: device memory, host memory uncached and cached, and the
// device-local host-visible window of resizable BAR), lavapipe's one type
// of everything, and an integrated GPU's device-local types only. Host
// must land in the host's memory wherever the device has memory that is
// not device-local, and in host-visible memory where it has none.
func TestMemoryTypes(t *testing.T) {
	const (
		dl  = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyDeviceLocalBit)
		hv  = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostVisibleBit)
		hc  = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostCoherentBit)
		hca = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostCachedBit)
	)
	for _, tc := range []struct {
		name  string
		types []vulkan.MemoryPropertyFlags
		want  map[MemoryKind]int
	}{
		{"discrete", []vulkan.MemoryPropertyFlags{0, dl, hv | hc, hv | hc | hca, dl | hv | hc},
			map[MemoryKind]int{DeviceLocal: 1, Upload: 2, Readback: 3, Host: 2}},
		{"discrete, cached host memory first", []vulkan.MemoryPropertyFlags{dl, hv | hc | hca, dl | hv | hc, hv | hc},
			map[MemoryKind]int{DeviceLocal: 0, Upload: 1, Readback: 1, Host: 3}},
		{"discrete, cached host memory only", []vulkan.MemoryPropertyFlags{dl, dl | hv | hc, hv | hc | hca},
			map[MemoryKind]int{DeviceLocal: 0, Upload: 2, Readback: 2, Host: 2}},
		{"lavapipe", []vulkan.MemoryPropertyFlags{dl | hv | hc | hca},
			map[MemoryKind]int{DeviceLocal: 0, Upload: 0, Readback: 0, Host: 0}},
		{"integrated", []vulkan.MemoryPropertyFlags{dl, dl | hv | hc, dl | hv | hc | hca},
			map[MemoryKind]int{DeviceLocal: 0, Upload: 1, Readback: 2, Host: 1}},
	} {
		c := &Context{}
		for _, f := range tc.types {
			c.memTypes = append(c.memTypes, memType{flags: f})
		}
		for _, kind := range []MemoryKind{DeviceLocal, Upload, Readback, Host} {
			got, err := c.memoryType(^uint32(0), kind)
			if err != nil || got != tc.want[kind] {
				t.Errorf("%s: %s memory: type %d (%v), want %d", tc.name, kind, got, err, tc.want[kind])
			}
		}
	}
}
