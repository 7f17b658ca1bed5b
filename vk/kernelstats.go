package vk

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"unsafe"

	"github.com/vulkan-go/vulkan"
)

// Statistic is one compiler statistic of a kernel's executable, as the driver
// names it (NVIDIA: "Register Count", "Shared Memory Size", ...).
type Statistic struct {
	Name        string
	Description string
	// Value is a bool, int64, uint64 or float64, as the driver reports it
	// (VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32/INT64/UINT64/FLOAT64);
	// nil for a format this package does not know.
	Value any
}

// String formats the value: integers as integers, floats with %g, bools as
// true or false.
func (s Statistic) String() string {
	switch v := s.Value.(type) {
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return "?"
}

// Float returns the value as a float64 (a bool as 0 or 1), and whether there
// is one.
func (s Statistic) Float() (float64, bool) {
	switch v := s.Value.(type) {
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// ExecutableStats is one executable of a kernel's pipeline (a compute
// pipeline usually has one) with its statistics, in the driver's order.
type ExecutableStats struct {
	Name         string
	Description  string
	SubgroupSize uint32 // 0 when the driver does not say
	Stats        []Statistic
}

// Stat returns the statistic named name, and whether there is one.
func (e ExecutableStats) Stat(name string) (Statistic, bool) {
	for _, s := range e.Stats {
		if s.Name == name {
			return s, true
		}
	}
	return Statistic{}, false
}

// KernelStat is the compiler statistics of one kernel of a context.
type KernelStat struct {
	Shader      string   // KernelSpec.Shader
	Workgroup   uint32   // specialization constant 0
	Spec        []uint32 // KernelSpec.Spec
	Label       string   // Kernel.Label: "shader spec=..."
	Executables []ExecutableStats
}

// Stats returns the executables of the kernel's pipeline with the compiler's
// statistics of each (VK_KHR_pipeline_executable_properties). It fails,
// wrapping ErrKernelStatsOff, when the context was opened without
// Options.KernelStats, and, wrapping ErrNoKernelStats and naming the device,
// when the device cannot capture them. Do not call it while the kernel is
// being freed.
func (k *Kernel) Stats() ([]ExecutableStats, error) {
	c := k.ctx
	if c.statsErr != nil {
		return nil, fmt.Errorf("vk: kernel %s: %w", k.spec.Shader, c.statsErr)
	}
	if k.pipe == vulkan.NullPipeline {
		return nil, fmt.Errorf("vk: kernel %s: freed", k.spec.Shader)
	}
	exes, err := c.fns.PipelineExecutables(unsafe.Pointer(k.pipe))
	if err != nil {
		return nil, fmt.Errorf("vk: kernel %s: %w", k.spec.Shader, err)
	}
	out := make([]ExecutableStats, len(exes))
	for i, e := range exes {
		out[i] = ExecutableStats{Name: e.Name, Description: e.Description, SubgroupSize: e.SubgroupSize}
		for _, s := range e.Stats {
			out[i].Stats = append(out[i].Stats, Statistic{Name: s.Name, Description: s.Description, Value: s.Value})
		}
	}
	return out, nil
}

// KernelStats returns the compiler statistics of every kernel the context
// holds now (its shared kernels and every NewKernel not yet freed), sorted by
// shader name, then specialization constants; see Kernel.Stats for the
// errors. A caller prints them after a benchmark; no kernel may be freed
// meanwhile.
func (c *Context) KernelStats() ([]KernelStat, error) {
	if c.statsErr != nil {
		return nil, fmt.Errorf("vk: %w", c.statsErr)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("vk: context is closed")
	}
	var ks []*Kernel
	for r := range c.live {
		if k, ok := r.(*Kernel); ok {
			ks = append(ks, k)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(ks, func(a, b *Kernel) int {
		return cmp.Or(cmp.Compare(a.spec.Shader, b.spec.Shader), slices.Compare(a.spec.Spec, b.spec.Spec),
			cmp.Compare(a.spec.key(), b.spec.key()))
	})
	out := make([]KernelStat, 0, len(ks))
	for _, k := range ks {
		exes, err := k.Stats()
		if err != nil {
			return nil, err
		}
		out = append(out, KernelStat{Shader: k.spec.Shader, Workgroup: k.Workgroup(), Spec: slices.Clone(k.spec.Spec), Label: k.Label(), Executables: exes})
	}
	return out, nil
}

// Recorded returns, for every kernel the context holds now (as KernelStats
// lists them), the dispatches of it recorded into batches so far, by
// Kernel.Label (kernels of one label add up). Two readings around a step
// say which kernels it dispatched: `hata bench` compares the timed step's
// with the other instance's ($HATA_BENCH_TWIN), whose steps warm only the
// code of the kernels the two share.
func (c *Context) Recorded() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	for r := range c.live {
		if k, ok := r.(*Kernel); ok {
			out[k.Label()] += k.recorded.Load()
		}
	}
	return out
}
