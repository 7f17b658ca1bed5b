package vk

import (
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestUseAfterClose checks that a method, buffer or batch used after its
// context closed (or after its own Free) fails with an error saying so,
// instead of calling Vulkan on destroyed objects, which aborted the process.
func TestUseAfterClose(t *testing.T) {
	ctx := testContext(t, Options{})
	const b, hq, hkv, n, d = 1, 4, 2, 40, 16
	rng := rand.New(rand.NewPCG(1, 2))
	kv, q := randomKV(rng, b, hkv, n, d, F32), normal(rng, b*hq*d, 1)
	w, err := ref.RandomHashWeights(hkv, d, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]ref.Method, len(Methods))
	for i, name := range Methods {
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
