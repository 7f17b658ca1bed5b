package vk

import (
	"io"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref"
)

// TestFullSubgroups checks the full-subgroup request (DeviceInfo.FullSubgroups,
// Options.NoFullSubgroups). Every GPU method takes one step on a context that
// requests full subgroups and on one that does not: every kernel the first
// built whose workgroup is a multiple of the largest subgroup size requires
// them, and no other kernel does; the second's kernels require none; and the
// two steps give the same selections and outputs bit for bit. A kernel whose
// workgroup is not a multiple, where the request would be invalid, is built
// without it. Under HATA_VK_VALIDATE=1 the validation layer checks that each
// request is legal (the feature enabled, the workgroup a multiple).
func TestFullSubgroups(t *testing.T) {
	device(t)
	if !testCtx.Info.FullSubgroups {
		t.Skipf("device %q cannot require full subgroups (Vulkan 1.3's computeFullSubgroups)", testCtx.Info.Name)
	}
	on, off := testContext(t, Options{}), testContext(t, Options{NoFullSubgroups: true})
	q := benchQuery(11)
	for _, name := range Methods {
		a, b := benchStep(t, on, name, Tuning{}, q), benchStep(t, off, name, Tuning{}, q)
		ra, err := a.Decode(q, ref.Budget{K: 40})
		if err != nil {
			t.Fatalf("%s, full subgroups: %v", name, err)
		}
		rb, err := b.Decode(q, ref.Budget{K: 40})
		if err != nil {
			t.Fatalf("%s, without: %v", name, err)
		}
		checkSameResult(t, name+", full subgroups", rb, ra)
		a.(io.Closer).Close()
		b.(io.Closer).Close()
	}

	checkFullSubgroups(t, "", on)
	for _, k := range builtKernels(off) {
		if k.FullSubgroups() {
			t.Errorf("%s: FullSubgroups() = true on a context opened with NoFullSubgroups", k.Label())
		}
	}
	if maxSG := on.Info.MaxSubgroupSize; maxSG > 1 {
		k, err := on.NewKernel(KernelSpec{Shader: "touch", Bindings: 2, Push: touchPush{}, Spec: []uint32{maxSG / 2}})
		if err != nil {
			t.Fatalf("a workgroup of %d: %v", maxSG/2, err)
		}
		if k.FullSubgroups() {
			t.Errorf("%s: FullSubgroups() = true with a workgroup of %d, not a multiple of %d", k.Label(), maxSG/2, maxSG)
		}
		k.Free()
	}
}

// builtKernels returns every kernel c has built and not freed: the shared
// ones and those made by NewKernel.
func builtKernels(c *Context) []*Kernel {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ks []*Kernel
	for _, k := range c.kernels {
		ks = append(ks, k)
	}
	for r := range c.live {
		if k, ok := r.(*Kernel); ok && !k.shared {
			ks = append(ks, k)
		}
	}
	return ks
}

// checkSameResult checks that a step with something turned on (on: the warm
// workgroups, full subgroups) selected the same tokens as the one without
// (off) and wrote the same output bits.
func checkSameResult(t *testing.T, where string, off, on *ref.Result) {
	t.Helper()
	if d := cmp.Diff(off.Selected, on.Selected); d != "" {
		t.Errorf("%s: the selection differs from the step's without (-without +with):\n%s", where, d)
	}
	if len(on.Out) != len(off.Out) {
		t.Errorf("%s: %d outputs, %d without", where, len(on.Out), len(off.Out))
		return
	}
	for i := range off.Out {
		if math.Float32bits(off.Out[i]) != math.Float32bits(on.Out[i]) {
			t.Errorf("%s: out[%d] = %v, %v without", where, i, on.Out[i], off.Out[i])
			return
		}
	}
}

// TestFullSubgroupsExtension opens a context that enables full subgroups
// through VK_EXT_subgroup_size_control, as on a device before Vulkan 1.3
// (Options.subgroupExt), and checks that HATA's and dense's kernels require them
// there and give the same bits as on the shared context. Under
// HATA_VK_VALIDATE=1 the validation layer checks the extension's path (its
// feature structure, the extension enabled) as it does 1.3's.
func TestFullSubgroupsExtension(t *testing.T) {
	device(t)
	if !testCtx.Info.FullSubgroups {
		t.Skipf("device %q cannot require full subgroups", testCtx.Info.Name)
	}
	ext := testContext(t, Options{subgroupExt: true})
	q := benchQuery(12)
	for _, name := range []string{"hata", "dense"} {
		got, err := benchStep(t, ext, name, Tuning{}, q).Decode(q, ref.Budget{K: 40})
		if err != nil {
			t.Fatalf("%s through the extension: %v", name, err)
		}
		want, err := benchStep(t, testCtx, name, Tuning{}, q).Decode(q, ref.Budget{K: 40})
		if err != nil {
			t.Fatal(err)
		}
		checkSameResult(t, name+", full subgroups through the extension", want, got)
	}
	checkFullSubgroups(t, " through the extension", ext)
}

// checkFullSubgroups checks that every kernel c built requires full
// subgroups exactly where its workgroup is a multiple of the largest
// subgroup size, and that some kernel does.
func checkFullSubgroups(t *testing.T, where string, c *Context) {
	t.Helper()
	maxSG, requested := c.Info.MaxSubgroupSize, 0
	for _, k := range builtKernels(c) {
		want := k.Workgroup()%maxSG == 0
		if k.FullSubgroups() != want {
			t.Errorf("%s%s: FullSubgroups() = %v with a workgroup of %d and subgroups of up to %d, want %v", k.Label(), where, k.FullSubgroups(), k.Workgroup(), maxSG, want)
		}
		if want {
			requested++
		}
	}
	if requested == 0 {
		t.Errorf("no kernel required full subgroups%s", where)
	}
}
