package main

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/ref/reftest"
	"github.com/hata-go/hata/tensorio"
	"github.com/hata-go/hata/vk"
)

// TestAttendVulkanMatchesCPU runs hata attend with -device vulkan and -device
// cpu on the same dyadic inputs (exact products, see reftest) and compares the
// files: indices and codes exactly, outputs within float32 rounding.
func TestAttendVulkanMatchesCPU(t *testing.T) {
	needVulkan(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(2, 2))
	const b, hq, hkv, n, d, rbit = 2, 4, 2, 77, 64, 64
	files := map[string][]int{"q": {b, hq, d}, "k": {b, hkv, n, d}, "v": {b, hkv, n, d}, "w": {hkv, d, rbit}}
	for name, shape := range files {
		size := 1
		for _, x := range shape {
			size *= x
		}
		if err := tensorio.WriteNPYFloat32(filepath.Join(dir, name+".npy"), shape, reftest.Dyadic(rng, size)); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, method := range vk.Methods {
		outs := map[string]map[string]*tensorio.Array{}
		for _, dev := range []string{"cpu", "vulkan"} {
			args := []string{"attend", "-method", method, "-device", dev, "-budget", "9",
				"-q", p("q.npy"), "-k", p("k.npy"), "-v", p("v.npy"), "-o", p(dev + "-out.npy"), "-indices", p(dev + "-idx.npy")}
			names := []string{"out", "idx"}
			if method == "hata" || method == "lsh" {
				args = append(args, "-qcodes", p(dev+"-qc.npy"), "-kcodes", p(dev+"-kc.npy"))
				names = append(names, "qc", "kc")
			}
			if method == "hata" {
				args = append(args, "-w", p("w.npy"))
			}
			if st, _, e := hata(args...); st != 0 {
				t.Fatalf("%s -device %s: status %d: %s", method, dev, st, e)
			}
			outs[dev] = map[string]*tensorio.Array{}
			for _, nm := range names {
				outs[dev][nm] = readF32(t, p(dev+"-"+nm+".npy"))
			}
		}
		cpu, gpu := outs["cpu"], outs["vulkan"]
		for nm, a := range cpu {
			g := gpu[nm]
			if nm == "out" {
				if d := cmp.Diff(a.Shape, g.Shape); d != "" {
					t.Errorf("%s out shape (-cpu +vulkan):\n%s", method, d)
				}
				for i := range a.F32 {
					if math.Abs(float64(a.F32[i]-g.F32[i])) > 1e-5 {
						t.Errorf("%s out[%d]: cpu %v, vulkan %v", method, i, a.F32[i], g.F32[i])
						break
					}
				}
				continue
			}
			if d := cmp.Diff(a, g); d != "" {
				t.Errorf("%s %s differs (-cpu +vulkan):\n%s", method, nm, d)
			}
		}
	}
}

// envRequire = 1 makes a Vulkan test that finds no device fail instead of
// skip (CI sets it; see vk's tests).
const envRequire = "HATA_VK_REQUIRE"

// needVulkan skips the test when no Vulkan device opens, or fails it when
// $HATA_VK_REQUIRE is set.
func needVulkan(t *testing.T) {
	t.Helper()
	ctx, err := vk.Open("")
	if err != nil {
		if os.Getenv(envRequire) != "" {
			t.Fatalf("no Vulkan device and $%s is set: %v", envRequire, err)
		}
		t.Skipf("no Vulkan device (set $%s to fail instead): %v", envRequire, err)
	}
	ctx.Close()
}

// TestBenchDense runs hata bench for dense at a tiny shape on whatever Vulkan
// device there is, with the merge folded into the split pass and as a
// dispatch of its own, and checks the table's rows (their levels, floor
// and merge column) and the header's gather roofline; an unknown method is
// a usage error.
func TestBenchDense(t *testing.T) {
	needVulkan(t)
	st, out, e := hata("bench", "-method", "dense", "-b", "1", "-n", "500", "-hq", "4", "-hkv", "2", "-d", "64", "-reps", "3",
		"-opt", "sepmerge=2", "-opt", "sepmerge=1")
	if st != 0 {
		t.Fatalf("hata bench: status %d: %s", st, e)
	}
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "dense" {
			rows = append(rows, f)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("%d dense rows, want 2 (sepmerge=2, sepmerge=1):\n%s", len(rows), out)
	}
	for i, row := range rows {
		if len(row) != 18 || row[1] != "1" || row[2] != "500" {
			t.Fatalf("dense row %d: %q, want 18 columns for B=1 N=500:\n%s", i, row, out)
		}
		if us, err := strconv.ParseFloat(row[4], 64); err != nil || us <= 0 {
			t.Errorf("row %d: median_us = %q, want a positive number; table:\n%s", i, row[4], out)
		}
		// Its latency roofline: the split pass, and the merge where it runs
		// apart; a floor of that many dispatch floors plus the bytes.
		separate := i == 1
		wantLevels := map[bool]string{false: "1", true: "2"}[separate]
		if row[14] != wantLevels {
			t.Errorf("row %d (separate merge %v): levels = %q, want %s; table:\n%s", i, separate, row[14], wantLevels, out)
		}
		if fl, err := strconv.ParseFloat(row[15], 64); err != nil || fl <= 0 {
			t.Errorf("row %d: floor_us = %q, want a positive number; table:\n%s", i, row[15], out)
		}
		// The merge column times the merge dispatch, and is empty ("-")
		// where the split pass merges.
		if us, err := strconv.ParseFloat(row[9], 64); separate && (err != nil || us <= 0) || !separate && row[9] != "-" {
			t.Errorf("row %d (separate merge %v): merge = %q, want a positive time only for a separate merge; table:\n%s", i, separate, row[9], out)
		}
		if row[17] != map[bool]string{false: "sepmerge=2", true: "sepmerge=1"}[separate] {
			t.Errorf("row %d: opt %q; table:\n%s", i, row[17], out)
		}
	}
	if !strings.Contains(out, "# floor_us: levels (dispatches one after another in a step) x ") {
		t.Errorf("no floor_us line in the header:\n%s", out)
	}
	// The header's rooflines include the gathers of K/V rows (2*d bytes).
	if !strings.Contains(out, "# random-gather bandwidth (128-byte rows at random over ") {
		t.Errorf("no random-gather line for d=64 (128-byte rows) in the header:\n%s", out)
	}
	if st, _, _ := hata("bench", "-method", "flash"); st != 2 {
		t.Errorf("bench -method flash: status %d, want 2", st)
	}
}

// TestBenchKernelStats runs hata bench -kernelstats for dense at a tiny shape:
// the table as usual, then one line per kernel with its statistics on a
// device with VK_KHR_pipeline_executable_properties, or a warning naming the
// extension on stderr (and status 0) on one without it, lavapipe.
func TestBenchKernelStats(t *testing.T) {
	needVulkan(t)
	ctx, err := vk.Open("")
	if err != nil {
		t.Fatal(err)
	}
	supported := ctx.Info.KernelStats
	ctx.Close()
	st, out, e := hata("bench", "-kernelstats", "-method", "dense", "-b", "1", "-n", "500", "-hq", "4", "-hkv", "2", "-d", "64", "-reps", "2")
	if st != 0 {
		t.Fatalf("hata bench -kernelstats: status %d: %s", st, e)
	}
	if !strings.Contains(out, "\ndense ") {
		t.Errorf("no dense row in:\n%s", out)
	}
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "kernel ") {
			lines = append(lines, line)
		}
	}
	if !supported {
		if !strings.Contains(e, "VK_KHR_pipeline_executable_properties") || len(lines) > 0 {
			t.Errorf("without the extension: stderr %q, %d kernel lines; want a warning naming it and none", e, len(lines))
		}
		return
	}
	copyLine := false
	for _, l := range lines {
		if strings.HasPrefix(l, "kernel copy spec=") && strings.Count(l, "=") > 1 {
			copyLine = true
		}
	}
	if !copyLine {
		t.Errorf("no statistics line for the copy kernel in:\n%s\nstderr: %s", out, e)
	}
	t.Logf("\n%s", strings.Join(lines, "\n"))
}
