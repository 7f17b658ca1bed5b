package experiments

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

// Backend is a place where methods run: the CPU (package ref) or a GPU
// (package vk). The runner gives each backend one worker goroutine.
type Backend interface {
	// Name is the device spec the backend was opened with, e.g. "cpu", "vk:0".
	Name() string
	// Device describes the hardware, for results.json.
	Device() DeviceInfo
	// NewMethod builds method name (one of ref.MethodNames) for a cache of
	// hkv KV heads of dimension d.
	NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error)
}

// DeviceInfo describes a backend's device.
type DeviceInfo struct {
	Name   string `json:"name"`   // e.g. "NVIDIA H200", "CPU amd64 x2"
	Driver string `json:"driver"` // driver version, or the Go version for the CPU
	API    string `json:"api"`    // e.g. "Vulkan 1.3.280", "Go (package ref)"
	// Memory says how the backend allocates its buffers where that changes
	// the times (Vulkan: dedicated allocations or plain ones, session 27).
	Memory string `json:"memory,omitempty"`
	// Timer says what precedes every timed step where the backend times on
	// a GPU (Vulkan: the flush, $HATA_BENCH_L2FLUSH, and another instance's
	// step, $HATA_BENCH_TWIN).
	Timer string `json:"timer,omitempty"`
}

// Timer is implemented by backends that can time a decode step (speed and
// breakdown experiments). The Vulkan backend times with GPU timestamps; the
// CPU backend with wall-clock medians, labelled as such in Timing.Clock.
type Timer interface {
	// Time builds method (a name of ref.MethodNames, optionally followed by
	// "/variant" for a kernel variant the backend knows) with the kernel
	// parameters tuning (the zero vk.Tuning: the defaults; a backend without
	// such parameters refuses any other) on random inputs of shape, runs reps
	// decode steps at budget after warm-up, and returns the median time and
	// stage times.
	Time(method string, shape ref.Shape, budget ref.Budget, reps int, tuning vk.Tuning) (Timing, error)
}

// Stages are the stage names of a decode step, in order: the columns of the speed rows.
// A timer reports the stages it can separate; the rest of the step is "other".
var Stages = []string{"encode", "score", "select", "attend", "merge"}

// Timing is the timing of one decode step configuration.
type Timing struct {
	// Clock says what measured it: "gpu-timestamp" or "cpu-wallclock".
	Clock string
	// Median is the median time of one decode step over the reps.
	Median time.Duration
	// Stages holds median stage times by name (a subset of Stages).
	Stages map[string]time.Duration
	// Bytes is the memory traffic of one step (bytes read and written); 0
	// when unknown. GB/s in the rows is Bytes/Median.
	Bytes int64
	// HostBytes is the part of Bytes read from host memory over the bus:
	// the K/V cache's (CacheBytes) where the vk tuning key hostcache put
	// the cache there; 0 otherwise.
	HostBytes int64
	// CopyGBps is the device's copy bandwidth (bytes read + written per
	// second, in GB/s) measured in the same run: every row's roofline. 0 when
	// the backend has none (the CPU).
	CopyGBps float64
	// Levels is how many dispatches of one step ran one after another
	// (vk.Timings.Levels): with the device's dependent-dispatch floor, the
	// step's latency roofline. 0 when unknown (the CPU).
	Levels int
	// Trace, when the point was timed with its kernels traced (the vk
	// tuning key trace), says where each traced kernel's workgroups spent
	// their time, one "kernel: summary" per kernel in the step's order (the
	// median over the steps of vk.TraceSummary), then the warm workgroups'
	// ("warm select: ...", vk.HATA.WarmTraces); nil otherwise.
	Trace []string
	// Spans, when the point was timed with its kernels traced, is the sum of
	// the traced kernels' spans (each the median over the steps of its
	// first workgroup's start to its last one's end): Median less Spans is
	// what the step spends between its kernels, its dispatch boundaries and
	// any kernel not traced (BENCHMARKS.md's account of the targets); 0
	// otherwise.
	Spans time.Duration
	// Spanned is the kernels whose spans Spans sums: the step's traced
	// kernels, not the warm workgroups that run beside them.
	Spanned int
	// Raw, when the point was timed with its kernels traced, is the clock
	// readings of the last timed step's traced kernels, in the step's order
	// (hata bench -tracecsv); nil otherwise.
	Raw []vk.KernelTrace
	// Twin, where another instance stepped before every timed step
	// ($HATA_BENCH_TWIN), says which of the timed step's kernels that
	// instance's step ran too (the only ones whose code it warms); ""
	// otherwise.
	Twin string
}

// methodChecker is implemented by backends that cannot run every method: a
// Vulkan device has no kernels of magicpig ("auto" computes it on the CPU,
// but cannot time it there).
type methodChecker interface {
	// CheckMethod returns an error where the backend cannot run method (a
	// name of ref.MethodNames, for Timer.Time perhaps with a "/variant"):
	// built by NewMethod, or timed by Time where timed is set.
	CheckMethod(method string, timed bool) error
}

// methodLister is implemented by the experiments whose config names the
// methods its points run (key "methods"); timed says that they run through
// Timer.Time.
type methodLister interface {
	methodNames() (names []string, timed bool)
}

// exclusive is implemented by the experiments that measure time (speed,
// breakdown, throughput): two of their points on one device at once would
// slow each other down, so every device may run one worker.
type exclusive interface {
	measuresTime()
}

// checkDevices returns an error, before any point runs, where a backend of
// bes cannot run one of the methods exp names, so that a run does not fail
// every such point one by one; and, where exp measures time, where two of
// bes are one device.
func checkDevices(exp experiment, bes []Backend) error {
	if _, ok := exp.(exclusive); ok {
		seen := map[string]string{} // device key -> the spec that opened it
		for _, b := range bes {
			k := deviceKey(b)
			if first, dup := seen[k]; dup {
				return fmt.Errorf("devices: %s and %s are one device (%s): this kind measures time, and two points at once on one device would slow each other down; list each device once", first, b.Name(), b.Device().Name)
			}
			seen[k] = b.Name()
		}
	}
	if g, ok := exp.(interface{ gpuCache() string }); ok && g.gpuCache() != "" {
		for _, b := range bes {
			if _, cpu := b.(CPU); !cpu {
				continue
			}
			if g.gpuCache() == "host_cache" {
				return fmt.Errorf("host_cache: device %s keeps every cache in host memory already, and times no kernels that read it over a bus: time it on a GPU (-vkdevice 0)", b.Name())
			}
			return fmt.Errorf("%s: device %s runs no GPU kernels, whose cache layout this is: time it on a GPU (-vkdevice 0)", g.gpuCache(), b.Name())
		}
	}
	l, ok := exp.(methodLister)
	if !ok {
		return nil
	}
	names, timed := l.methodNames()
	for _, b := range bes {
		mc, ok := b.(methodChecker)
		if !ok {
			continue
		}
		for _, m := range names {
			if err := mc.CheckMethod(m, timed); err != nil {
				return fmt.Errorf("methods: device %s cannot run %s: %w", b.Name(), m, err)
			}
		}
	}
	return nil
}

// backends holds the openers of device specs by prefix ("cpu", "vk").
var (
	backendsMu sync.Mutex
	backends   = map[string]func(arg string) (Backend, error){
		"cpu": func(arg string) (Backend, error) {
			if arg != "" {
				return nil, fmt.Errorf("device cpu takes no argument, got %q", arg)
			}
			return CPU{}, nil
		},
	}
)

// RegisterBackend makes device specs "prefix" and "prefix:arg" open with
// open(arg). The Vulkan backend registers "vk", so that "vk:0" is device 0.
func RegisterBackend(prefix string, open func(arg string) (Backend, error)) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	backends[prefix] = open
}

// OpenBackend opens the device spec "prefix[:arg]".
func OpenBackend(spec string) (Backend, error) {
	prefix, arg, _ := strings.Cut(spec, ":")
	backendsMu.Lock()
	open, ok := backends[prefix]
	var known []string
	for k := range backends {
		known = append(known, k)
	}
	backendsMu.Unlock()
	if !ok {
		sort.Strings(known)
		return nil, fmt.Errorf("device %q: unknown backend %q (known: %s)", spec, prefix, strings.Join(known, ", "))
	}
	b, err := open(arg)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", spec, err)
	}
	return b, nil
}

// CPU is the backend of package ref: every method as specified, in float64
// accumulation, on the host's cores.
type CPU struct{}

var _ Backend = CPU{}
var _ Timer = CPU{}

// Name implements Backend.
func (CPU) Name() string { return "cpu" }

// Device implements Backend.
func (CPU) Device() DeviceInfo {
	return DeviceInfo{
		Name:   fmt.Sprintf("CPU %s/%s x%d", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		Driver: runtime.Version(),
		API:    "Go (package ref)",
	}
}

// NewMethod implements Backend with ref.New.
func (CPU) NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	return ref.New(name, hkv, d, o)
}

// CheckMethod implements methodChecker: the reference runs every method,
// but none of the GPU's kernel variants ("hata/naive").
func (CPU) CheckMethod(method string, _ bool) error {
	if _, variant, ok := strings.Cut(method, "/"); ok {
		return fmt.Errorf("the CPU reference has no kernel variants (%q is the GPU's); run it on a GPU (-vkdevice 0)", variant)
	}
	return nil
}

// deviceKey returns what identifies the device b runs on: "cpu" for the
// reference, "vk#N" for Vulkan device N whatever spec named it.
func deviceKey(b Backend) string {
	if v, ok := b.(*Vulkan); ok {
		return fmt.Sprintf("vk#%d", v.Ctx.Info.Index)
	}
	return b.Device().Name
}
