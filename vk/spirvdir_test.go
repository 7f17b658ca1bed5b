package vk

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hata-go/hata/shaders"
)

// invertCopy is copy.comp with the same interface whose copy is
// inverted (dst = ~src): a replacement kernel whose use shows in its output.
const invertCopy = `#version 450
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };
layout(push_constant) uniform PushConstants { uint n; } pc;
void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) dst[i] = ~src[i];
}
`

// copySpec is the copy kernel runCopy runs in these tests.
var copySpec = KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{64}}

// runCopy runs a kernel of copy.comp's interface, spec (built anew, so from
// the context's SPIR-V directory when it has one), over the uvec4 of src,
// into a destination cleared first, and returns the destination. An error
// is the kernel's build's.
func runCopy(t *testing.T, c *Context, spec KernelSpec, src []uint32) ([]uint32, error) {
	t.Helper()
	size := uint64(4 * len(src))
	in, err := c.NewBuffer("copy source", size, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Free()
	out, err := c.NewBuffer("copy destination", size, DeviceLocal)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	data := make([]byte, size)
	for i, v := range src {
		binary.LittleEndian.PutUint32(data[4*i:], v)
	}
	if err := c.Write(Region{Dst: in, Data: data}, Region{Dst: out, Data: make([]byte, size)}); err != nil {
		t.Fatal(err)
	}
	k, err := c.NewKernel(spec)
	if err != nil {
		return nil, err
	}
	defer k.Free()
	set, err := k.NewSet(in.Whole(), out.Whole())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Free()
	b, err := c.NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	if err := b.Begin(); err != nil {
		t.Fatal(err)
	}
	b.Dispatch(k, set, copyPush{N: uint32(len(src) / 4)}, 2, 1, 1)
	if _, err := b.Submit(); err != nil {
		t.Fatal(err)
	}
	if err := c.Read(out, 0, data); err != nil {
		t.Fatal(err)
	}
	got := make([]uint32, len(src))
	for i := range got {
		got[i] = binary.LittleEndian.Uint32(data[4*i:])
	}
	return got, nil
}

// TestSPIRVDir checks Options.SPIRVDir, the kernel lab's way to time a
// changed kernel without rebuilding the program: a kernel whose .spv is in
// the directory is built from it (an inverting copy, compiled here with
// glslc, inverts; the test skips without glslc, which CI installs), the
// others stay built in, ReplacedKernels names exactly the replaced ones, a
// file that breaks the kernel's interface or is no SPIR-V is refused naming
// the kernel, and a missing directory fails OpenWith naming the variable.
func TestSPIRVDir(t *testing.T) {
	device(t)
	dir := t.TempDir()
	compileKernel(t, dir, "copy", invertCopy)
	src := make([]uint32, 1024)
	for i := range src {
		src[i] = uint32(i) * 2654435761
	}

	c := testContext(t, Options{SPIRVDir: dir})
	if c.SPIRVDir() != dir || len(c.ReplacedKernels()) != 0 {
		t.Errorf("before any kernel: SPIRVDir %q, replaced %v; want %q and none", c.SPIRVDir(), c.ReplacedKernels(), dir)
	}
	got, err := runCopy(t, c, copySpec, src)
	if err != nil {
		t.Fatalf("the replaced copy kernel: %v", err)
	}
	for i, v := range got {
		if v != ^src[i] {
			t.Fatalf("replaced copy: dst[%d] = %#x, want ^%#x = %#x (the built-in kernel ran?)", i, v, src[i], ^src[i])
		}
	}
	// A kernel not in the directory is the built-in one.
	if _, err := c.NewKernel(KernelSpec{Shader: "fill_random", Bindings: 1, Push: randomPush{}, Spec: []uint32{64}}); err != nil {
		t.Fatalf("fill_random, not in the directory: %v", err)
	}
	if r := c.ReplacedKernels(); !slices.Equal(r, []string{"copy"}) {
		t.Errorf("ReplacedKernels = %v, want [copy]", r)
	}
	// Without the directory the same run copies.
	got, err = runCopy(t, device(t), copySpec, src)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, src) {
		t.Error("the test context's copy kernel does not copy")
	}

	// Files that are not the kernel: another kernel's SPIR-V (its push
	// constants differ), bytes that are no SPIR-V, a directory.
	bad := t.TempDir()
	merge, err := shaders.SPIRV("dense_merge")
	if err != nil {
		t.Fatal(err)
	}
	c = testContext(t, Options{SPIRVDir: bad})
	for _, tc := range []struct {
		name string
		make func(path string) error
	}{
		{"another kernel", func(p string) error { return os.WriteFile(p, merge, 0o644) }},
		{"not SPIR-V", func(p string) error { return os.WriteFile(p, []byte("not SPIR-V\n"), 0o644) }},
		{"a directory", func(p string) error { return os.Mkdir(p, 0o755) }},
	} {
		path := filepath.Join(bad, "copy.spv")
		os.RemoveAll(path)
		if err := tc.make(path); err != nil {
			t.Fatal(err)
		}
		if _, err := runCopy(t, c, copySpec, src); err == nil || !strings.Contains(err.Error(), "copy") {
			t.Errorf("%s as copy.spv: error %v, want one naming the kernel", tc.name, err)
		}
	}

	missing := filepath.Join(dir, "missing")
	if c, err := OpenWith(Options{Device: testCtx.Info.Name, SPIRVDir: missing}); err == nil {
		c.Close()
		t.Errorf("OpenWith(SPIRVDir %s): no error", missing)
	} else if !strings.Contains(err.Error(), EnvSPIRV) || !strings.Contains(err.Error(), missing) {
		t.Errorf("OpenWith(SPIRVDir %s): %v, want an error naming the directory and $%s", missing, err, EnvSPIRV)
	}
}

// compileKernel compiles the GLSL compute shader src with glslc into
// dir/<name>.spv, a replacement for the built-in kernel name in a SPIR-V
// directory (Options.SPIRVDir); the test skips where glslc is missing (CI
// installs it).
func compileKernel(t *testing.T, dir, name, src string) {
	t.Helper()
	glslc, err := exec.LookPath("glslc")
	if err != nil {
		t.Skipf("no glslc to compile a replacement %s kernel (Debian: apt install glslc)", name)
	}
	comp := filepath.Join(dir, name+".comp")
	if err := os.WriteFile(comp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(glslc, "--target-env=vulkan1.2", "-o", filepath.Join(dir, name+".spv"), comp).CombinedOutput(); err != nil {
		t.Fatalf("glslc: %v\n%s", err, out)
	}
}
