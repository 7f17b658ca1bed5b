package vk

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestStatisticString checks that a statistic's value is formatted by its
// type: integers as integers, floats shortest, bools as words.
func TestStatisticString(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
		f    float64
	}{
		{int64(-3), "-3", -3},
		{uint64(168), "168", 168},
		{float64(0.25), "0.25", 0.25},
		{float64(1e6), "1e+06", 1e6},
		{true, "true", 1},
		{false, "false", 0},
	} {
		s := Statistic{Name: "x", Value: c.v}
		if got := s.String(); got != c.want {
			t.Errorf("Statistic{%T %v}.String() = %q, want %q", c.v, c.v, got, c.want)
		}
		if f, ok := s.Float(); !ok || f != c.f {
			t.Errorf("Statistic{%T %v}.Float() = %v, %v, want %v, true", c.v, c.v, f, ok, c.f)
		}
	}
	if _, ok := (Statistic{}).Float(); ok {
		t.Error("Statistic{}.Float(): want no value")
	}
}

// TestKernelStatsOff checks that a context opened without KernelStats says so
// from Kernel.Stats and Context.KernelStats.
func TestKernelStatsOff(t *testing.T) {
	c := device(t)
	if c.statsErr == nil {
		t.Skipf("the test context captures kernel statistics ($%s)", EnvKernelStats)
	}
	if _, err := c.DispatchFloor(2, 1, 1); err != nil { // makes the shared copy kernel
		t.Fatal(err)
	}
	k, err := c.SharedKernel(KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{copyWorkgroup}})
	if err != nil {
		t.Fatal(err)
	}
	want := ErrKernelStatsOff
	if !errors.Is(c.statsErr, ErrKernelStatsOff) {
		want = ErrNoKernelStats // $HATA_VK_KERNELSTATS on a device without the extension
	}
	if _, err := k.Stats(); !errors.Is(err, want) {
		t.Errorf("Kernel.Stats() = %v, want %v", err, want)
	}
	if _, err := c.KernelStats(); !errors.Is(err, want) {
		t.Errorf("Context.KernelStats() = %v, want %v", err, want)
	}
}

// TestKernelStats opens a context with Options.KernelStats, builds and runs
// the copy kernel (shared) and one more copy kernel of its own, and checks,
// on a device with VK_KHR_pipeline_executable_properties, that both report
// at least one executable with at least one statistic, in KernelStats' order,
// and that a freed kernel leaves the list; on a device without it, that the
// context still works and the statistics calls name the extension and the
// device. The validation layer must stay silent either way (the capture flag
// is legal only with the extension and its feature enabled).
func TestKernelStats(t *testing.T) {
	device(t) // skips without a device
	c, err := OpenWith(Options{Validate: envValidate(), Poison: true, KernelStats: true})
	if err != nil {
		t.Fatalf("OpenWith(KernelStats): %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			c.Close()
		}
	})
	if _, err := c.DispatchFloor(4, 2, 2); err != nil {
		t.Fatalf("DispatchFloor with KernelStats: %v", err)
	}
	own, err := c.NewKernel(KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{64}})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := c.KernelStats()
	if !c.Info.KernelStats {
		for _, err := range []error{err, func() error { _, err := own.Stats(); return err }()} {
			if !errors.Is(err, ErrNoKernelStats) || !strings.Contains(err.Error(), "VK_KHR_pipeline_executable_properties") ||
				!strings.Contains(err.Error(), c.Info.Name) {
				t.Errorf("statistics on %q: error %v, want ErrNoKernelStats naming the extension and the device", c.Info.Name, err)
			}
		}
		own.Free()
		closeSilent(t, c)
		closed = true
		t.Skipf("%s (%s %s) lacks VK_KHR_pipeline_executable_properties: no statistics to check (the NVIDIA driver has it)",
			c.Info.Name, c.Info.DriverName, c.Info.DriverInfo)
	}
	if err != nil {
		t.Fatalf("KernelStats: %v", err)
	}
	var got [][]uint32
	for _, ks := range stats {
		if ks.Shader != "copy" {
			continue
		}
		got = append(got, ks.Spec)
		if ks.Workgroup != ks.Spec[0] {
			t.Errorf("copy %v: workgroup %d, want %d", ks.Spec, ks.Workgroup, ks.Spec[0])
		}
		if len(ks.Executables) == 0 {
			t.Errorf("copy %v: no executables", ks.Spec)
		}
		for _, e := range ks.Executables {
			if len(e.Stats) == 0 {
				t.Errorf("copy %v executable %q: no statistics", ks.Spec, e.Name)
			}
			var line []string
			for _, s := range e.Stats {
				if s.Name == "" || s.Value == nil {
					t.Errorf("copy %v executable %q: statistic %+v without a name or value", ks.Spec, e.Name, s)
				}
				line = append(line, s.Name+"="+s.String())
			}
			t.Logf("copy %v %q (subgroup %d): %s", ks.Spec, e.Name, e.SubgroupSize, strings.Join(line, ", "))
		}
	}
	if want := [][]uint32{{64}, {copyWorkgroup}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("copy kernels listed %v, want %v (sorted by spec)", got, want)
	}
	if !slices.IsSortedFunc(stats, func(a, b KernelStat) int {
		return cmp.Or(strings.Compare(a.Shader, b.Shader), slices.Compare(a.Spec, b.Spec))
	}) {
		t.Errorf("KernelStats not sorted by shader, then spec")
	}
	own.Free()
	if _, err := own.Stats(); err == nil {
		t.Error("Stats of a freed kernel: want an error")
	}
	stats, err = c.KernelStats()
	if err != nil {
		t.Fatal(err)
	}
	for _, ks := range stats {
		if ks.Shader == "copy" && ks.Spec[0] == 64 {
			t.Errorf("a freed kernel is still listed: %+v", ks)
		}
	}
	closeSilent(t, c)
	closed = true
}

// closeSilent closes c and fails the test on any validation message it
// recorded.
func closeSilent(t *testing.T, c *Context) {
	t.Helper()
	c.Close()
	if msgs := c.ValidationMessages(0); len(msgs) > 0 {
		t.Errorf("%d validation messages:\n%s", len(msgs), strings.Join(msgs, "\n"))
	}
}

// TestRecorded checks that Context.Recorded counts the dispatches recorded
// of each kernel by its label: a chain of 3 copies run 2 times after a
// warm-up records 9 of the copy kernel, and no other kernel's count moves.
func TestRecorded(t *testing.T) {
	c := device(t)
	if _, err := c.DispatchFloor(1, 1, 1); err != nil { // makes the shared copy kernel
		t.Fatal(err)
	}
	k, err := c.SharedKernel(KernelSpec{Shader: "copy", Bindings: 2, Push: copyPush{}, Spec: []uint32{copyWorkgroup}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.Label(), fmt.Sprintf("copy spec=%d", copyWorkgroup); got != want {
		t.Errorf("Label() = %q, want %q", got, want)
	}
	before := c.Recorded()
	if _, err := c.DispatchFloor(3, 1, 2); err != nil {
		t.Fatal(err)
	}
	after := c.Recorded()
	for l, n := range after {
		want := before[l]
		if l == k.Label() {
			want += 9
		}
		if n != want {
			t.Errorf("Recorded()[%q] = %d after the chain, want %d (before it %d)", l, n, want, before[l])
		}
	}
	if _, ok := after[k.Label()]; !ok {
		t.Errorf("Recorded() has no %q: %v", k.Label(), after)
	}
}
