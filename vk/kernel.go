package vk

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/hata-go/hata/shaders"
	"github.com/hata-go/hata/vk/internal/spirv"
	"github.com/hata-go/hata/vk/internal/vkc"
	"github.com/vulkan-go/vulkan"
)

// KernelSpec names a compute kernel: an embedded SPIR-V entry point with its
// bindings, push constants and specialization constants.
type KernelSpec struct {
	// Shader is the entry point's name in package shaders, e.g. "dense_merge".
	Shader string
	// Bindings is the number of storage buffers, bindings 0..Bindings-1 of set 0.
	Bindings int
	// Push is a value of the kernel's push-constant struct (its type is what
	// matters), or nil when the shader declares none. The struct must mirror
	// the shader's block: NewKernel compares the two.
	Push any
	// Spec are the specialization constants by constant_id 0, 1, ...; id 0 is
	// the workgroup size (`layout(local_size_x_id = 0) in;`). The shader must
	// declare exactly these ids.
	Spec []uint32
}

// key identifies a spec for SharedKernel's cache.
func (s KernelSpec) key() string {
	t := reflect.TypeOf(s.Push)
	return fmt.Sprintf("%s/%d/%v/%v", s.Shader, s.Bindings, t, s.Spec)
}

// Kernel is a compute pipeline.
type Kernel struct {
	ctx           *Context
	spec          KernelSpec
	pushType      reflect.Type // nil: no push constants
	pushSize      uint32
	dsl           vulkan.DescriptorSetLayout
	layout        vulkan.PipelineLayout
	module        vulkan.ShaderModule
	pipe          vulkan.Pipeline
	shared        bool
	fullSubgroups bool          // created requiring full subgroups (Context's fullSG)
	recorded      atomic.Uint64 // dispatches of it recorded (Batch.Dispatch): Context.Recorded
}

// Name returns the shader's name.
func (k *Kernel) Name() string { return k.spec.Shader }

// Label names the kernel as `hata bench -kernelstats` does: its shader and
// its specialization constants, "dense_split_f16 spec=128,16,128,4,5,1".
func (k *Kernel) Label() string {
	spec := make([]string, len(k.spec.Spec))
	for i, v := range k.spec.Spec {
		spec[i] = strconv.FormatUint(uint64(v), 10)
	}
	return k.spec.Shader + " spec=" + strings.Join(spec, ",")
}

// Workgroup returns the workgroup size (specialization constant 0).
func (k *Kernel) Workgroup() uint32 { return k.spec.Spec[0] }

// FullSubgroups reports whether the kernel's pipeline requires full
// subgroups: the device has DeviceInfo.FullSubgroups, Options.NoFullSubgroups
// is off and the workgroup is a multiple of the largest subgroup size.
func (k *Kernel) FullSubgroups() bool { return k.fullSubgroups }

// SharedKernel returns the context's kernel for s, creating it on first use.
// The context owns it: do not Free it.
func (c *Context) SharedKernel(s KernelSpec) (*Kernel, error) {
	if err := c.checkOpen(); err != nil {
		return nil, fmt.Errorf("vk: kernel %s: %w", s.Shader, err)
	}
	key := s.key()
	c.mu.Lock()
	k, ok := c.kernels[key]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := c.NewKernel(s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	old, ok := c.kernels[key]
	if !ok {
		k.shared = true
		c.kernels[key] = k
	}
	c.mu.Unlock()
	if ok { // lost a race: keep the first
		k.Free()
		return old, nil
	}
	return k, nil
}

// NewKernel builds the pipeline of s. It checks the push-constant struct
// against the block the SPIR-V declares, the specialization constants against
// the ids it declares, and the workgroup size against the device's limits.
func (c *Context) NewKernel(s KernelSpec) (*Kernel, error) {
	fail := func(format string, a ...any) (*Kernel, error) {
		return nil, fmt.Errorf("vk: kernel %s: %s", s.Shader, fmt.Sprintf(format, a...))
	}
	if err := c.checkOpen(); err != nil {
		return fail("%v", err)
	}
	raw, err := c.spirv(s.Shader)
	if err != nil {
		return nil, err
	}
	code, err := spirv.Words(raw)
	if err != nil {
		return fail("%v", err)
	}
	block, hasPush, err := spirv.PushConstants(code)
	if err != nil {
		return fail("%v", err)
	}
	if s.Bindings < 1 || s.Bindings > bindingsPerSet {
		return fail("%d bindings, want 1 to %d", s.Bindings, bindingsPerSet)
	}
	if lim := c.Info.Limits.MaxStorageBuffersPerStage; uint32(s.Bindings) > lim {
		return fail("%d storage buffers, the device allows %d per kernel (maxPerStageDescriptorStorageBuffers)", s.Bindings, lim)
	}
	k := &Kernel{ctx: c, spec: s}
	switch {
	case hasPush && s.Push == nil:
		return fail("the shader declares %d bytes of push constants, the spec gives no struct", block.Size)
	case !hasPush && s.Push != nil:
		return fail("the spec gives push constants %T, the shader declares none", s.Push)
	case hasPush:
		k.pushType = reflect.TypeOf(s.Push)
		if err := CheckPushLayout(k.pushType, block); err != nil {
			return fail("%v", err)
		}
		k.pushSize = uint32(k.pushType.Size())
		if k.pushSize > c.Info.Limits.MaxPushConstantsSize || k.pushSize > 128 {
			return fail("%d bytes of push constants, over 128 or the device's %d", k.pushSize, c.Info.Limits.MaxPushConstantsSize)
		}
	}
	ids, err := spirv.SpecIDs(code)
	if err != nil {
		return fail("%v", err)
	}
	want := make([]uint32, len(s.Spec))
	for i := range want {
		want[i] = uint32(i)
	}
	if !slices.Equal(ids, want) {
		return fail("the shader declares specialization constants %v, the spec gives ids %v", ids, want)
	}
	if len(s.Spec) == 0 || s.Spec[0] == 0 {
		return fail("specialization constant 0 (the workgroup size) is missing or 0")
	}
	lim := c.Info.Limits
	if s.Spec[0] > lim.MaxComputeWorkGroupSize[0] || s.Spec[0] > lim.MaxComputeWorkGroupInvocations {
		return fail("workgroup size %d over the device's %d / %d invocations", s.Spec[0], lim.MaxComputeWorkGroupSize[0], lim.MaxComputeWorkGroupInvocations)
	}
	if err := k.build(code); err != nil {
		k.destroy()
		return nil, fmt.Errorf("vk: kernel %s: %w", s.Shader, err)
	}
	if err := c.track(k); err != nil {
		k.destroy()
		return nil, err
	}
	return k, nil
}

// build creates the descriptor-set layout, pipeline layout, shader module
// and pipeline.
func (k *Kernel) build(code []uint32) error {
	f := k.ctx.fns
	dsl, err := f.CreateDescriptorSetLayout(k.spec.Bindings)
	if err != nil {
		return err
	}
	k.dsl = vulkan.DescriptorSetLayout(dsl)
	layout, err := f.CreatePipelineLayout(dsl, k.pushSize)
	if err != nil {
		return err
	}
	k.layout = vulkan.PipelineLayout(layout)
	module, err := f.CreateShaderModule(code)
	if err != nil {
		return err
	}
	k.module = vulkan.ShaderModule(module)
	var flags uint32
	if k.ctx.statsErr == nil {
		flags = vkc.PipelineCreateCaptureStatistics
	}
	var stage uint32
	if k.ctx.fullSG && k.spec.Spec[0]%max(k.ctx.Info.MaxSubgroupSize, 1) == 0 {
		stage = vkc.ShaderStageRequireFullSubgroups
		k.fullSubgroups = true
	}
	pipe, err := f.CreateComputePipeline(module, layout, k.spec.Spec, flags, stage)
	if err != nil {
		return err
	}
	k.pipe = vulkan.Pipeline(pipe)
	return nil
}

// Free destroys the kernel (not a SharedKernel's), or where a batch that
// may still run it is stuck, has its context hold it until that batch is
// seen finished (see Batch). Its descriptor sets must have been freed.
func (k *Kernel) Free() {
	if k == nil || k.shared || k.pipe == vulkan.NullPipeline && k.dsl == vulkan.NullDescriptorSetLayout {
		return
	}
	k.ctx.untrack(k)
	dead := &Kernel{ctx: k.ctx, dsl: k.dsl, layout: k.layout, module: k.module, pipe: k.pipe}
	k.dsl, k.layout, k.module, k.pipe = vulkan.NullDescriptorSetLayout, vulkan.NullPipelineLayout, vulkan.NullShaderModule, vulkan.NullPipeline
	k.ctx.retire(dead)
}

func (k *Kernel) release() { k.destroy() }

func (k *Kernel) destroy() {
	dev := k.ctx.dev
	destroyHandle(dev, &k.pipe, vulkan.DestroyPipeline)
	destroyHandle(dev, &k.module, vulkan.DestroyShaderModule)
	destroyHandle(dev, &k.layout, vulkan.DestroyPipelineLayout)
	destroyHandle(dev, &k.dsl, vulkan.DestroyDescriptorSetLayout)
}

// CheckPushLayout reports whether the Go struct type t mirrors the SPIR-V
// push-constant block b: the same number of fields (blank padding fields
// included, matched to no member), each at the member's offset with its size
// and scalar kind (uint32, int32, float32, or arrays of them), and the same
// total size.
func CheckPushLayout(t reflect.Type, b spirv.Block) error {
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("push constants %v: want a struct", t)
	}
	var fields []reflect.StructField
	for i := range t.NumField() {
		if f := t.Field(i); f.Name != "_" {
			fields = append(fields, f)
		}
	}
	if len(fields) != len(b.Members) {
		return fmt.Errorf("push constants %v: %d fields, the shader's block has %d members", t, len(fields), len(b.Members))
	}
	for i, f := range fields {
		m := b.Members[i]
		ft := f.Type
		if ft.Kind() == reflect.Array {
			ft = ft.Elem()
		}
		var kind spirv.Kind
		switch ft.Kind() {
		case reflect.Uint32:
			kind = spirv.Uint
		case reflect.Int32:
			kind = spirv.Int
		case reflect.Float32:
			kind = spirv.Float
		default:
			return fmt.Errorf("push constants %v: field %s is %v, want uint32, int32, float32 or an array of them", t, f.Name, f.Type)
		}
		switch {
		case uint32(f.Offset) != m.Offset:
			return fmt.Errorf("push constants %v: field %s at offset %d, the shader's member %d at %d", t, f.Name, f.Offset, i, m.Offset)
		case uint32(f.Type.Size()) != m.Size:
			return fmt.Errorf("push constants %v: field %s of %d bytes, the shader's member %d of %d", t, f.Name, f.Type.Size(), i, m.Size)
		case kind != m.Kind || m.Bits != 32:
			return fmt.Errorf("push constants %v: field %s is %v, the shader's member %d is %v%d", t, f.Name, f.Type, i, m.Kind, m.Bits)
		}
	}
	if uint32(t.Size()) != b.Size {
		return fmt.Errorf("push constants %v: %d bytes, the shader's block %d", t, t.Size(), b.Size)
	}
	return nil
}

// Set is a descriptor set binding buffer ranges to a kernel's bindings.
type Set struct {
	k      *Kernel
	pool   vulkan.DescriptorPool
	set    vulkan.DescriptorSet
	ranges []Range
}

// NewSet binds ranges[i] to binding i of k. Each range must start at a
// multiple of minStorageBufferOffsetAlignment, have a size that is a
// multiple of 4, and be at most maxStorageBufferRange bytes long (bind larger
// tensors in pieces; see the package documentation).
func (k *Kernel) NewSet(ranges ...Range) (*Set, error) {
	c := k.ctx
	if len(ranges) != k.spec.Bindings {
		return nil, fmt.Errorf("vk: kernel %s: %d buffers bound, it has %d bindings", k.spec.Shader, len(ranges), k.spec.Bindings)
	}
	lim := c.Info.Limits
	for i, r := range ranges {
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("vk: kernel %s binding %d: %w", k.spec.Shader, i, err)
		}
		switch {
		case r.Size == 0 || r.Size%4 != 0:
			return nil, fmt.Errorf("vk: kernel %s binding %d (%q): size %d, want a positive multiple of 4", k.spec.Shader, i, r.Buf.name, r.Size)
		case r.Size > lim.MaxStorageBufferRange:
			return nil, fmt.Errorf("vk: kernel %s binding %d (%q): %s over maxStorageBufferRange %s", k.spec.Shader, i, r.Buf.name, bytesString(r.Size), bytesString(lim.MaxStorageBufferRange))
		case lim.MinStorageBufferOffsetAlignment > 0 && r.Off%lim.MinStorageBufferOffsetAlignment != 0:
			return nil, fmt.Errorf("vk: kernel %s binding %d (%q): offset %d not a multiple of minStorageBufferOffsetAlignment %d", k.spec.Shader, i, r.Buf.name, r.Off, lim.MinStorageBufferOffsetAlignment)
		}
	}
	pool, set, err := c.allocSet(k.dsl)
	if err != nil {
		return nil, fmt.Errorf("vk: kernel %s: %w", k.spec.Shader, err)
	}
	s := &Set{k: k, pool: pool, set: set, ranges: slices.Clone(ranges)}
	bufs := make([]unsafe.Pointer, len(ranges))
	offs := make([]uint64, len(ranges))
	sizes := make([]uint64, len(ranges))
	for i, r := range ranges {
		bufs[i], offs[i], sizes[i] = unsafe.Pointer(r.Buf.buf), r.Off, r.Size
	}
	if err := c.fns.UpdateDescriptorSet(unsafe.Pointer(set), bufs, offs, sizes); err != nil {
		s.destroy()
		return nil, err
	}
	if err := c.track(s); err != nil {
		s.destroy()
		return nil, err
	}
	return s, nil
}

// Free returns the set to its pool, or where a batch that may still use it
// is stuck, has its context hold it until that batch is seen finished (see
// Batch).
func (s *Set) Free() {
	if s == nil || s.set == vulkan.NullDescriptorSet {
		return
	}
	s.k.ctx.untrack(s)
	dead := &Set{k: s.k, pool: s.pool, set: s.set}
	s.set = vulkan.NullDescriptorSet
	s.k.ctx.retire(dead)
}

func (s *Set) release() { s.destroy() }

func (s *Set) destroy() {
	c := s.k.ctx
	c.mu.Lock()
	defer c.mu.Unlock()
	set := s.set
	vulkan.FreeDescriptorSets(c.dev, s.pool, 1, &set)
	s.set = vulkan.NullDescriptorSet
}

// Descriptor pools hold setsPerPool sets of up to bindingsPerSet storage
// buffers each; the context adds pools as they fill.
const (
	setsPerPool    = 64
	bindingsPerSet = 16
)

// allocSet allocates a descriptor set of layout dsl from the context's pools.
func (c *Context) allocSet(dsl vulkan.DescriptorSetLayout) (vulkan.DescriptorPool, vulkan.DescriptorSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return vulkan.NullDescriptorPool, vulkan.NullDescriptorSet, fmt.Errorf("context is closed")
	}
	try := func(p vulkan.DescriptorPool) (vulkan.DescriptorSet, int32) {
		set, r := c.fns.AllocateDescriptorSet(unsafe.Pointer(p), unsafe.Pointer(dsl))
		return vulkan.DescriptorSet(set), r
	}
	for _, p := range slices.Backward(c.pools) {
		set, r := try(p)
		if r == vkc.Success {
			return p, set, nil
		}
		if r != vkc.ErrorOutOfPoolMemory && r != vkc.ErrorFragmentedPool {
			return vulkan.NullDescriptorPool, vulkan.NullDescriptorSet, vkc.Check("vkAllocateDescriptorSets", r)
		}
	}
	pp, err := c.fns.CreateDescriptorPool(setsPerPool, setsPerPool*bindingsPerSet)
	if err != nil {
		return vulkan.NullDescriptorPool, vulkan.NullDescriptorSet, err
	}
	p := vulkan.DescriptorPool(pp)
	c.pools = append(c.pools, p)
	set, rr := try(p)
	if err := vkc.Check("vkAllocateDescriptorSets", rr); err != nil {
		return vulkan.NullDescriptorPool, vulkan.NullDescriptorSet, err
	}
	return p, set, nil
}

// spirv returns the SPIR-V of the entry point name: the file name.spv of
// Options.SPIRVDir when there is one, else the built-in one.
func (c *Context) spirv(name string) ([]byte, error) {
	if c.spirvDir != "" {
		path := filepath.Join(c.spirvDir, name+".spv")
		raw, err := os.ReadFile(path)
		switch {
		case err == nil:
			c.mu.Lock()
			c.replaced[name] = true
			c.mu.Unlock()
			return raw, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("vk: kernel %s: %w", name, err)
		}
	}
	return shaders.SPIRV(name)
}

// SPIRVDir returns the directory of replacement kernels in use
// (Options.SPIRVDir or $HATA_VK_SPIRV), "" for none.
func (c *Context) SPIRVDir() string { return c.spirvDir }

// ReplacedKernels returns, sorted, the kernels built so far from
// Options.SPIRVDir instead of the built-in SPIR-V (none without it), so
// that a benchmark can say which of its kernels were experiments.
func (c *Context) ReplacedKernels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.replaced))
}
