package experiments

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

// TestTimerTuning checks the tuning argument of the timers: the CPU timer,
// which has no kernel parameters, refuses a non-zero one and times with the
// zero one; both time hata at the hash width Tuning.Rbit sets; the Vulkan
// timer (where a device opens) refuses a key the method
// does not use, naming it, before building anything, reports the step's
// levels of dependent dispatches (the CPU timer none), and refuses to time
// one-byte keys where a step ran again with uint16 keys.
func TestTimerTuning(t *testing.T) {
	s := ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 64, D: 16}
	budget := ref.Budget{K: 8}
	if _, err := (CPU{}).Time("dense", s, budget, 1, vk.Tuning{Tile: 2}); err == nil || !strings.Contains(err.Error(), "tile=2") {
		t.Errorf("CPU.Time with tile=2 = %v, want an error naming tile=2", err)
	}
	if tm, err := (CPU{}).Time("dense", s, budget, 1, vk.Tuning{}); err != nil || tm.Median <= 0 {
		t.Errorf("CPU.Time with the zero tuning = %+v, %v; want a positive median", tm, err)
	}
	// The hash width (Tuning.Rbit): the codes a step of hata reads are
	// rows*N*rbit/8 bytes, on both timers; dense has none and refuses it.
	hs := ref.Shape{B: 1, Hq: 4, Hkv: 2, N: 512, D: 64}
	wider := int64(hs.B*hs.Hkv*hs.N) * (256 - 128) / 8
	bytesAt := func(tm Timer, rbit int) int64 {
		t.Helper()
		got, err := tm.Time("hata", hs, ref.Budget{K: 16}, 1, vk.Tuning{Rbit: rbit})
		if err != nil {
			t.Fatalf("%T.Time(hata) with rbit=%d: %v", tm, rbit, err)
		}
		return got.Bytes
	}
	if b128, b256 := bytesAt(CPU{}, 0), bytesAt(CPU{}, 256); b256-b128 != wider {
		t.Errorf("CPU.Time(hata): %d bytes at rbit 128, %d at 256; want %d more", b128, b256, wider)
	}
	if _, err := (CPU{}).Time("dense", s, budget, 1, vk.Tuning{Rbit: 256}); err == nil || !strings.Contains(err.Error(), "rbit") {
		t.Errorf("CPU.Time(dense) with rbit=256 = %v, want an error naming rbit", err)
	}
	v, err := OpenVulkan("")
	if err != nil {
		if os.Getenv("HATA_VK_REQUIRE") != "" {
			t.Fatalf("no Vulkan device and $HATA_VK_REQUIRE is set: %v", err)
		}
		t.Skipf("no Vulkan device: %v", err)
	}
	defer v.Close()
	if _, err := v.Time("streaming", s, budget, 1, vk.Tuning{ScoreChunk: 512}); err == nil || !strings.Contains(err.Error(), "scorechunk") {
		t.Errorf("Vulkan.Time(streaming) with scorechunk=512 = %v, want an error naming scorechunk", err)
	}
	// The latency roofline's count: HATA's step is encode, score, select
	// and the attention (and its merge, where it is a dispatch of its own)
	// one after another; the CPU has no dispatches. (vk's TestBatchLevels
	// checks the count itself; a Vulkan Time takes seconds on lavapipe.)
	// (At rbit 256, whose bytes are MustMove's: a Vulkan Time takes seconds
	// on lavapipe.)
	tm, err := v.Time("hata", hs, ref.Budget{K: 16}, 2, vk.Tuning{Rbit: 256})
	if err != nil || tm.Levels < 4 || tm.Levels > 5 {
		t.Errorf("Vulkan.Time(hata).Levels = %d, %v; want 4 or 5", tm.Levels, err)
	}
	if want := MustMove("hata", hs, Traffic{K: 16, Rbit: 256}); tm.Bytes != want || want-MustMove("hata", hs, Traffic{K: 16}) != wider {
		t.Errorf("Vulkan.Time(hata) with rbit=256: %d bytes, want %d (%d more than at rbit 128)", tm.Bytes, want, wider)
	}
	if tm.HostBytes != 0 {
		t.Errorf("Vulkan.Time(hata): %d bytes from host memory, want 0 (the cache in device memory)", tm.HostBytes)
	}
	// With the cache in host memory (hostcache=1) the selected rows cross
	// the bus; the codes stay on the device.
	if tm, err := v.Time("hata", hs, ref.Budget{K: 16}, 1, vk.Tuning{HostCache: 1}); err != nil || tm.HostBytes != CacheBytes("hata", hs, Traffic{K: 16}) || tm.HostBytes == 0 {
		t.Errorf("Vulkan.Time(hata) with hostcache=1: %d bytes from host memory, %v; want %d", tm.HostBytes, err, CacheBytes("hata", hs, Traffic{K: 16}))
	}
	if tm, err := (CPU{}).Time("hata", hs, ref.Budget{K: 16}, 1, vk.Tuning{}); err != nil || tm.Levels != 0 {
		t.Errorf("CPU.Time(hata).Levels = %d, %v; want 0", tm.Levels, err)
	}
	// One-byte keys on every step (keybytes=1, where select_groups runs:
	// chunks of 4096) time a step only where no timed step ran again with
	// uint16 keys: at the whole cache every row's threshold passes 255, and
	// the timer refuses. By default a warm-up step of each of the 64 copies
	// (the timer's, of this 2 MB cache) runs again and the timed steps, 70
	// so that every copy has some, keep uint16 keys.
	ks := ref.Shape{B: 1, Hq: 4, Hkv: 1, N: 8192, D: 64}
	k8 := vk.Tuning{KeyBytes: 1, ScoreChunk: 4096}
	if _, err := v.Time("hata", ks, ref.Budget{K: 16}, 2, k8); err != nil {
		t.Errorf("Vulkan.Time(hata) with %s at 16 tokens: %v", k8, err)
	}
	if _, err := v.Time("hata", ks, ref.Full, 2, k8); err == nil || !strings.Contains(err.Error(), "uint16 keys") {
		t.Errorf("Vulkan.Time(hata) with %s at the whole cache = %v, want an error saying steps ran again with uint16 keys", k8, err)
	}
	if _, err := v.Time("hata", ks, ref.Full, 70, vk.Tuning{ScoreChunk: 4096}); err != nil {
		t.Errorf("Vulkan.Time(hata) with scorechunk=4096 at the whole cache: %v", err)
	}
}

// TestFlushModes checks $HATA_BENCH_L2FLUSH: unset evicts L2 and the TLBs,
// l2 only L2, 0 nothing, and any other value is refused, naming it, by
// Flush and by the Vulkan timer (where a device opens) before it builds
// anything. (TestTimerTuning times steps after the default flush.)
func TestFlushModes(t *testing.T) {
	v := checkTimerEnv(t, EnvL2Flush, Flush, map[string]FlushMode{"": FlushPages, "l2": FlushL2, "0": FlushNone})
	v.Close()
}

// checkTimerEnv checks a variable of the Vulkan timer: parse returns want[v]
// with env set to each v, and refuses "yes", naming it, as the Vulkan timer
// does (where a device opens; the test is skipped where none does) before it
// builds anything. It returns the backend, which the caller closes, with env
// reset to "".
func checkTimerEnv[T comparable](t *testing.T, env string, parse func() (T, error), want map[string]T) *Vulkan {
	t.Helper()
	for v, w := range want {
		t.Setenv(env, v)
		if got, err := parse(); err != nil || got != w {
			t.Errorf("$%s=%q: %v, %v; want %v", env, v, got, err, w)
		}
	}
	t.Setenv(env, "yes")
	if _, err := parse(); err == nil || !strings.Contains(err.Error(), `"yes"`) {
		t.Errorf(`$%s="yes": error %v, want one naming "yes"`, env, err)
	}
	v, err := OpenVulkan("")
	if err != nil {
		if os.Getenv("HATA_VK_REQUIRE") == "1" {
			t.Fatal(err)
		}
		t.Skipf("no Vulkan device: %v", err)
	}
	s := ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 256, D: 16}
	if _, err := v.Time("hata", s, ref.Budget{K: 8}, 1, vk.Tuning{}); err == nil || !strings.Contains(err.Error(), `"yes"`) {
		t.Errorf(`Vulkan.Time with $%s="yes" = %v, want an error naming "yes"`, env, err)
	}
	t.Setenv(env, "")
	return v
}

// TestDeviceMemory checks that the Vulkan backend's device record says how
// its buffers are allocated, as $HATA_VK_DEDICATED chose.
func TestDeviceMemory(t *testing.T) {
	for env, want := range map[string]string{"": "dedicated allocations", "0": "plain allocations"} {
		t.Setenv(vk.EnvDedicated, env)
		v, err := OpenVulkan("")
		if err != nil {
			if os.Getenv("HATA_VK_REQUIRE") == "1" {
				t.Fatal(err)
			}
			t.Skipf("no Vulkan device: %v", err)
		}
		if got := v.Device().Memory; !strings.HasPrefix(got, want) {
			t.Errorf("$%s=%q: Device().Memory = %q, want it to start %q", vk.EnvDedicated, env, got, want)
		}
		v.Close()
	}
}

// TestTwin checks $HATA_BENCH_TWIN: unset and 0 run no other step, 1 one
// of another instance after every flush and before every timed step (and
// twinWarmup before them, and one more where Time compares the two steps'
// kernels), counted through twinStepped, B/N the same with the other
// instance at B batch rows and N tokens, and any other value is refused,
// naming it, by Twin and by the Vulkan timer (where a device opens) before
// it builds anything; the device record says which, and Timing.Twin which
// kernels the two steps share: at the same shape all of them.
func TestTwin(t *testing.T) {
	v := checkTimerEnv(t, EnvTwin, Twin, map[string]TwinShape{"": {}, "0": {}, "1": {On: true}, "2/512": {On: true, B: 2, N: 512}})
	defer v.Close()
	for _, bad := range []string{"2/", "/512", "0/512", "2/0", "2/x", "1/2/3", "99999999/64", "1/99999999"} {
		t.Setenv(EnvTwin, bad)
		if _, err := Twin(); err == nil || !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("$%s=%q: error %v, want one naming the value", EnvTwin, bad, err)
		}
	}
	// A 4 MiB cache: Time replicates smaller ones to 128 MiB, and
	// lavapipe runs every copy's warm-up step.
	s := ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 16384, D: 64}
	steps := 0
	twinStepped = func() { steps++ }
	defer func() { twinStepped = nil }()
	const reps = 3
	for _, c := range []struct {
		env   string
		steps int
		timer string
		twin  string // Timing.Twin's start
	}{
		{"0", 0, "a flush of L2 and the TLBs", ""},
		{"1", twinWarmup + 1 + 2*reps, "a flush of L2 and the TLBs, then another instance's step ($HATA_BENCH_TWIN=1)",
			"the other instance runs 5 of the timed step's 5 kernels: copy spec="},
		{"2/512", twinWarmup + 1 + 2*reps, "a flush of L2 and the TLBs, then a step of another instance of B=2 N=512 ($HATA_BENCH_TWIN=2/512)",
			"the other instance runs "},
	} {
		t.Setenv(EnvTwin, c.env)
		steps = 0
		tm, err := v.Time("hata", s, ref.Budget{K: 8}, reps, vk.Tuning{})
		if err != nil || tm.Median <= 0 {
			t.Errorf("$%s=%s: Vulkan.Time(hata) = %+v, %v; want a positive median", EnvTwin, c.env, tm, err)
		}
		if steps != c.steps {
			t.Errorf("$%s=%s: the other instance stepped %d times, want %d", EnvTwin, c.env, steps, c.steps)
		}
		if got := v.Device().Timer; got != c.timer {
			t.Errorf("$%s=%s: Device().Timer = %q, want %q", EnvTwin, c.env, got, c.timer)
		}
		if !strings.HasPrefix(tm.Twin, c.twin) || (c.twin == "") != (tm.Twin == "") {
			t.Errorf("$%s=%s: Timing.Twin = %q, want it to start %q", EnvTwin, c.env, tm.Twin, c.twin)
		}
		t.Logf("$%s=%s: %s", EnvTwin, c.env, tm.Twin)
		if c.env == "1" && !strings.HasSuffix(tm.Twin, "the timed step's alone: none; the other's alone: none") {
			t.Errorf("$%s=%s: Timing.Twin = %q, want no kernel of one step alone", EnvTwin, c.env, tm.Twin)
		}
	}
}

// brokenStep is a benchable whose decode returns out and sel, as a kernel
// broken on the benchmark's device might.
type brokenStep struct {
	ref.Method
	out []float32
	sel [][]int32
}

func (b brokenStep) Decode([]float32, ref.Budget) (*ref.Result, error) {
	return &ref.Result{Out: b.out, Selected: b.sel}, nil
}
func (brokenStep) PrefillRandom(int, int, int, int, uint32) error { return nil }
func (brokenStep) Timings() vk.Timings                            { return vk.Timings{} }

// TestCheckedStep checks that a timed step's result is held to
// ref.CheckResult, with an error that names the method, the shape and what
// is wrong, and that a good step passes.
func TestCheckedStep(t *testing.T) {
	s := ref.Shape{B: 1, Hq: 2, Hkv: 1, N: 8, D: 2}
	q := make([]float32, s.B*s.Hq*s.D)
	good := brokenStep{out: make([]float32, 4), sel: [][]int32{{1, 4}}}
	if err := checkedStep(good, "hata", s, q, ref.Budget{K: 2}, 2); err != nil {
		t.Fatalf("a good step: %v", err)
	}
	nan := brokenStep{out: []float32{0, 0, float32(math.NaN()), 0}, sel: [][]int32{{1, 4}}}
	err := checkedStep(nan, "hata", s, q, ref.Budget{K: 2}, 2)
	if err == nil || !strings.Contains(err.Error(), "vk hata B=1 N=8") || !strings.Contains(err.Error(), "NaN at row 1") {
		t.Errorf("a NaN output: %v, want an error naming the method, the shape and the NaN's row", err)
	}
	lost := brokenStep{out: make([]float32, 4), sel: [][]int32{{4, 4}}}
	if err := checkedStep(lost, "quest", s, q, ref.Budget{K: 2}, 2); err == nil || !strings.Contains(err.Error(), "not strictly ascending") {
		t.Errorf("a repeated token: %v, want an error naming it", err)
	}
}

func TestCacheCopies(t *testing.T) {
	for _, c := range []struct {
		bytes int64
		cpu   bool
		want  int
	}{
		{33554432, false, 4}, // B1/8K at Llama-3.1-8B's heads: 32 MiB
		{1 << 30, false, 1},  // past L2
		{4096, false, 64},    // a tiny cache: capped, not 32768
		{33554432, true, 1},  // lavapipe: one
	} {
		if got := cacheCopies(c.bytes, c.cpu); got != c.want {
			t.Errorf("cacheCopies(%d, cpu %v) = %d, want %d", c.bytes, c.cpu, got, c.want)
		}
	}
}

// TestShapeTuning holds the timed kinds' parameters to their keys: rbit
// for the hashing methods only, host_cache for every method, paired_kv for
// those that read a paired cache, and unset paired_kv to vk's rule: a cache
// in host memory paired but the exact top-k's and H2O's.
func TestShapeTuning(t *testing.T) {
	yes, no := true, false
	for _, c := range []struct {
		s      Shape
		method string
		want   vk.Tuning
	}{
		{Shape{Rbit: 256}, "dense", vk.Tuning{}},
		{Shape{Rbit: 256}, "hata/naive", vk.Tuning{Rbit: 256}},
		// host_cache with paired_kv unset: paired where the step reads no
		// key without its value.
		{Shape{Rbit: 128, HostCache: true}, "quest", vk.Tuning{HostCache: 1, PairedKV: 1}},
		{Shape{Rbit: 64, HostCache: true}, "lsh", vk.Tuning{Rbit: 64, HostCache: 1, PairedKV: 1}},
		{Shape{Rbit: 128, HostCache: true}, "hata", vk.Tuning{Rbit: 128, HostCache: 1, PairedKV: 1}},
		{Shape{Rbit: 128, HostCache: true}, "dense", vk.Tuning{HostCache: 1, PairedKV: 1}},
		{Shape{Rbit: 128, HostCache: true}, "topk", vk.Tuning{HostCache: 1}},
		{Shape{Rbit: 128, HostCache: true}, "h2o", vk.Tuning{HostCache: 1}},
		{Shape{Rbit: 128, HostCache: true}, "hata/naive", vk.Tuning{Rbit: 128, HostCache: 1}},
		// paired_kv = true where the method reads a paired cache, only there.
		{Shape{Rbit: 128, HostCache: true, PairedKV: &yes}, "hata", vk.Tuning{Rbit: 128, HostCache: 1, PairedKV: 1}},
		{Shape{Rbit: 128, PairedKV: &yes}, "dense", vk.Tuning{PairedKV: 1}},
		{Shape{Rbit: 128, HostCache: true, PairedKV: &yes}, "topk", vk.Tuning{HostCache: 1, PairedKV: 1}},
		{Shape{Rbit: 128, HostCache: true, PairedKV: &yes}, "loki", vk.Tuning{HostCache: 1, PairedKV: 1}},
		{Shape{Rbit: 128, PairedKV: &yes}, "hata/naive", vk.Tuning{Rbit: 128}},
		{Shape{Rbit: 128, PairedKV: &yes}, "hata/fused", vk.Tuning{Rbit: 128, PairedKV: 1}},
		// paired_kv = false: apart wherever the method could pair.
		{Shape{Rbit: 128, HostCache: true, PairedKV: &no}, "hata", vk.Tuning{Rbit: 128, HostCache: 1, PairedKV: 2}},
		{Shape{Rbit: 128, HostCache: true, PairedKV: &no}, "quest", vk.Tuning{HostCache: 1, PairedKV: 2}},
		{Shape{Rbit: 128, HostCache: true, PairedKV: &no}, "hata/naive", vk.Tuning{Rbit: 128, HostCache: 1, PairedKV: 2}},
		{Shape{Rbit: 128, HostCache: true, PairedKV: &no}, "topk", vk.Tuning{HostCache: 1, PairedKV: 2}},
		// In device memory a cache is apart anyway: nothing to tune (the
		// CPU backend refuses any kernel parameter).
		{Shape{Rbit: 128, PairedKV: &no}, "hata", vk.Tuning{Rbit: 128}},
		{Shape{Rbit: 128, PairedKV: &no}, "dense", vk.Tuning{}},
	} {
		if got := c.s.tuning(c.method); got != c.want {
			t.Errorf("%+v.tuning(%q) = %+v, want %+v", c.s, c.method, got, c.want)
		}
	}
}

// TestMemoryNote checks that the speed figure's panel titles say
// where the timed caches lie and how: host_cache, and which methods' K and V
// are paired, by paired_kv or, unset, by vk's rule over the methods timed.
func TestMemoryNote(t *testing.T) {
	tab := &Table{Columns: []string{"method", "b", "n", "clock", "median_us", "speedup"},
		Rows: [][]string{{"dense", "1", "1024", "clock x", "10", "1"}, {"hata", "1", "1024", "clock x", "2", "5"}}}
	yes, no := true, false
	all := []string{"dense", "hata", "loki", "quest", "topk"}
	for _, c := range []struct {
		s       Shape
		methods []string
		want    string
	}{
		{Shape{}, all, ""},
		{Shape{PairedKV: &no}, all, ""},
		{Shape{PairedKV: &yes}, []string{"dense", "hata"}, ", K and V paired"},
		{Shape{PairedKV: &yes}, []string{"hata", "hata/naive"}, ", K and V paired but hata/naive's"},
		{Shape{HostCache: true, PairedKV: &yes}, all, ", K/V in host memory, K and V paired"},
		{Shape{HostCache: true, PairedKV: &no}, all, ", K/V in host memory"},
		{Shape{HostCache: true}, all, ", K/V in host memory, K and V paired but topk's"},
		{Shape{HostCache: true}, []string{"dense", "topk", "h2o"}, ", K/V in host memory, K and V paired but topk's, h2o's"},
		{Shape{HostCache: true}, []string{"topk", "hata/naive"}, ", K/V in host memory"},
	} {
		if got := c.s.memoryNote(c.methods); got != c.want {
			t.Errorf("%+v.memoryNote(%v) = %q, want %q", c.s, c.methods, got, c.want)
		}
	}
	// The title carries the note.
	sc := &SpeedConfig{Shape: Shape{HostCache: true}, Methods: []string{"dense", "hata"}, Batches: []int{1}, Ns: []int{1024}, Budget: 0.0156}
	figs, err := sc.figures(tab)
	if err != nil {
		t.Fatal(err)
	}
	if title := figs[0].Fig.Panels[0].Title.Text; !strings.Contains(title, "clock x, K/V in host memory, K and V paired)") {
		t.Errorf("speed figure's title %q does not carry the memory note", title)
	}
}

// TestHostLayoutIdentity holds the resolved config's record of the host
// layout rule to its purpose: results timed with host_cache before the
// rule (their config.json without host_layout) have another identity than
// the same config now, so that a run never resumes or relabels their points;
// configs the rule does not touch keep their identity.
func TestHostLayoutIdentity(t *testing.T) {
	for _, c := range []struct {
		toml    string
		differs bool
	}{
		{"host_cache = true\n", true},
		{"host_cache = true\npaired_kv = false\n", false},
		{"", false},
	} {
		exp, err := parse("s.toml", "kind = \"speed\"\n"+c.toml, Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		resolved, hash, err := identity(exp)
		if err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(string(resolved), `"host_layout": "by method"`); has != c.differs {
			t.Errorf("%q: resolved config records host_layout: %v, want %v:\n%s", c.toml, has, c.differs, resolved)
		}
		old := strings.Replace(string(resolved), `"host_layout": "by method",`, "", 1) // as written before the rule
		oldExp, err := decodeResolved([]byte(old))
		if err != nil {
			t.Fatal(err)
		}
		_, oldHash, err := identity(oldExp)
		if err != nil {
			t.Fatal(err)
		}
		if (oldHash != hash) != c.differs {
			t.Errorf("%q: the identity of its results before the rule differs: %v, want %v", c.toml, oldHash != hash, c.differs)
		}
	}
}
