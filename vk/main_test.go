package vk

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// EnvRequire = 1 makes a test that finds no Vulkan device fail instead of
// skipping (CI sets it).
const EnvRequire = "HATA_VK_REQUIRE"

// EnvSubgroup = N makes TestSubgroupSize check that the test device runs
// subgroups of N lanes. make test reruns the kernels' tests with lavapipe's
// subgroups of 4 lanes (LP_NATIVE_VECTOR_WIDTH=128) and sets it, so that the
// rerun cannot pass on the default 8 without saying so.
const EnvSubgroup = "HATA_VK_SUBGROUP"

// lavapipeICD is Mesa's CPU driver; TestMain pins the loader to it unless the
// environment chooses a device or driver, so tests are deterministic on
// machines with several drivers.
const lavapipeICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"

var (
	testCtx *Context // shared by every device test; nil when none opened
	testErr error    // why testCtx is nil
)

func TestMain(m *testing.M) {
	if os.Getenv(EnvDevice) == "" && os.Getenv("VK_DRIVER_FILES") == "" && os.Getenv("VK_ICD_FILENAMES") == "" {
		if _, err := os.Stat(lavapipeICD); err == nil {
			os.Setenv("VK_DRIVER_FILES", lavapipeICD)
		}
	}
	testCtx, testErr = OpenWith(Options{Validate: envValidate(), Poison: true})
	code := m.Run()
	if testCtx != nil {
		n := testCtx.ValidationCount()
		testCtx.Close()
		if msgs := testCtx.ValidationMessages(n); len(msgs) > 0 {
			fmt.Fprintf(os.Stderr, "vk: %d validation messages while closing the test context:\n%s\n", len(msgs), strings.Join(msgs, "\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// device returns the shared test context, skipping the test when there is
// none (failing it under HATA_VK_REQUIRE=1), and fails the test if the
// validation layer reports anything while it runs.
func device(t *testing.T) *Context {
	t.Helper()
	if testCtx == nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("no Vulkan device and %s=1: %v", EnvRequire, testErr)
		}
		t.Skipf("no Vulkan device (set %s=1 to fail instead): %v", EnvRequire, testErr)
	}
	n := testCtx.ValidationCount()
	t.Cleanup(func() {
		if msgs := testCtx.ValidationMessages(n); len(msgs) > 0 {
			t.Errorf("%d validation messages:\n%s", len(msgs), strings.Join(msgs, "\n"))
		} else if c := testCtx.ValidationCount(); c != n {
			t.Errorf("%d validation messages (beyond the 256 kept)", c-n)
		}
	})
	return testCtx
}

// testContext opens a context of its own on the test device with o's
// options, its Device, Validate ($HATA_VK_VALIDATE) and Poison set as the
// shared one's, and closes it when the test ends, failing the test on any
// validation message it recorded.
func testContext(t *testing.T, o Options) *Context {
	t.Helper()
	device(t)
	o.Device, o.Validate, o.Poison = testCtx.Info.Name, envValidate(), true
	c, err := OpenWith(o)
	if err != nil {
		t.Fatalf("OpenWith(%+v): %v", o, err)
	}
	t.Cleanup(func() { closeSilent(t, c) })
	return c
}

// sparse32 is reftest.Sparse32 (the float32 calibration of CheckClose) over a
// selection the kernels under test made: a token outside the cache fails the
// test with the row and token, instead of panicking in the reference.
func sparse32(t *testing.T, q []float32, kv *ref.KV, selected [][]int32) []float32 {
	t.Helper()
	out, err := reftest.Sparse32(q, kv, selected)
	if err != nil {
		t.Fatalf("float32 attention over the selection: %v", err)
	}
	return out
}

// TestSubgroupSize checks the test device's subgroup size against
// $HATA_VK_SUBGROUP where it is set (see EnvSubgroup).
func TestSubgroupSize(t *testing.T) {
	want := os.Getenv(EnvSubgroup)
	if want == "" {
		t.Skipf("%s is not set", EnvSubgroup)
	}
	ctx := device(t)
	if got := fmt.Sprint(ctx.Info.SubgroupSize); got != want || ctx.Info.MinSubgroupSize != ctx.Info.MaxSubgroupSize {
		t.Fatalf("device %q runs subgroups of %d lanes (%d to %d), want %s (%s)", ctx.Info.Name, ctx.Info.SubgroupSize, ctx.Info.MinSubgroupSize, ctx.Info.MaxSubgroupSize, want, EnvSubgroup)
	}
}
