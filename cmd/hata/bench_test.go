package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hata-go/hata/experiments"
	"github.com/hata-go/hata/vk"
)

// TestParseOpts checks -opt's parsing: sets from repeated flags and from
// semicolons, "-" for the defaults, and usage errors that name the flag, the
// set, and the key or value at fault.
func TestParseOpts(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   []vk.Tuning
	}{
		{nil, []vk.Tuning{{}}},
		{[]string{"tile=2"}, []vk.Tuning{{Tile: 2}}},
		{[]string{"tile=2;tile=4,splits=16;scorechunk=1024,selectchunk=2048"},
			[]vk.Tuning{{Tile: 2}, {Tile: 4, Splits: 16}, {ScoreChunk: 1024, SelectChunk: 2048}}},
		{[]string{"-", "workgroup=64, targetworkgroups=528 ,mintokens=64"},
			[]vk.Tuning{{}, {Workgroup: 64, TargetWorkgroups: 528, MinTokens: 64}}},
		{[]string{"splits=3", " - ;tile=1"}, []vk.Tuning{{Splits: 3}, {}, {Tile: 1}}},
	} {
		got, err := parseOpts(c.values)
		if err != nil {
			t.Errorf("parseOpts(%q): %v", c.values, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("parseOpts(%q) (-want +got):\n%s", c.values, diff)
		}
	}
	for _, c := range []struct {
		value string
		want  []string // in the message, besides "-opt"
	}{
		{"tile=x", []string{"tile", `"x"`, "positive integer"}},
		{"tile=0", []string{"tile", `"0"`}},
		{"splits=-3", []string{"splits", `"-3"`}},
		{"tile=2.5", []string{"tile", `"2.5"`}},
		{"tile=", []string{"tile", `""`}},
		{"tyle=2", []string{`"tyle"`, "unknown key", "selectchunk"}},
		{"Tile=2", []string{`"Tile"`, "unknown key"}},
		{"tile", []string{`"tile"`, "key=value"}},
		{"tile=2,tile=4", []string{"tile", "twice"}},
		{"tile=2;", []string{"empty set"}},
		{"tile=2,", []string{`""`, "key=value"}},
		{"tile=2;splits=1x", []string{`"splits=1x"`, "splits", `"1x"`}},
	} {
		_, err := parseOpts([]string{c.value})
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseOpts(%q) = %v, want a usage error", c.value, err)
			continue
		}
		for _, w := range append(c.want, "-opt") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("parseOpts(%q) = %q, want it to name %s", c.value, err, w)
			}
		}
	}
}

// TestBenchOptUsage checks that hata bench refuses, with status 2 and before
// opening a device, a method without GPU kernels, an -opt key that one of
// the methods does not use, a malformed -opt, and a -tracecsv without trace=1 or into a directory that
// is not there.
func TestBenchOptUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"-method", "dense,hata", "-opt", "scorechunk=1024"}, []string{"scorechunk", "dense"}},
		{[]string{"-method", "hata/naive", "-opt", "tile=2", "-opt", "sepmerge=1"}, []string{"sepmerge", "hata"}},
		{[]string{"-method", "streaming", "-opt", "tile=2;selectchunk=4096"}, []string{"selectchunk", "streaming"}},
		{[]string{"-method", "quest", "-opt", "sepmerge=3"}, []string{"sepmerge=3"}},
		{[]string{"-method", "h2o", "-opt", "selectchunk=512"}, []string{"selectchunk", "h2o"}},
		{[]string{"-method", "magicpig", "-opt", "tile=2"}, []string{"magicpig"}},
		{[]string{"-method", "magicpig"}, []string{"magicpig", "no GPU kernels"}},
		{[]string{"-method", "dense,hata", "-opt", "-;rbit=256"}, []string{"rbit", "dense"}},
		{[]string{"-method", "hata", "-opt", "rbit=48"}, []string{"rbit=48", "multiple of 32"}},
		{[]string{"-opt", "tile=two"}, []string{"-opt", "tile", `"two"`}},
		{[]string{"-method", "dense", "-opt", "-;tile=2", "-tracecsv", "t.csv"}, []string{"-tracecsv", "t.csv", "trace=1"}},
		{[]string{"-method", "dense", "-opt", "trace=1", "-tracecsv", "no/such/dir/t.csv"}, []string{"-tracecsv", "no/such/dir", "does not exist"}},
		// Found before the device (a helper audit found them as failed rows after the header).
		{[]string{"-method", "hata", "-opt", "projworkgroup=16"}, []string{"projworkgroup=16", "power of two from 32 to 1024"}},
		{[]string{"-method", "hata", "-opt", "trace=2"}, []string{"trace=2", "want 1"}},
		{[]string{"-method", "hata/"}, []string{"-method hata/", "no variant after the slash"}},
	} {
		st, _, e := hata(append([]string{"bench"}, c.args...)...)
		if st != 2 {
			t.Errorf("bench %q: status %d, want 2 (stderr %q)", c.args, st, e)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(e, w) {
				t.Errorf("bench %q: stderr %q, want it to name %s", c.args, e, w)
			}
		}
	}
}

// TestBenchShapeUsage checks that shape flags past the bounds of a timed
// step, or that make a host tensor of it larger than
// experiments.MaxTensorBytes, are usage errors naming the flag, before
// anything is printed or any device opened (no Vulkan needed).
func TestBenchShapeUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"-method", "hata", "-d", "1000000000000"}, []string{"-d 1000000000000", "at most 1024"}},
		{[]string{"-d", "100000000"}, []string{"-d 100000000", "at most 1024"}},
		{[]string{"-hq", "4000000000"}, []string{"-hq 4000000000", "at most 1024"}},
		{[]string{"-b", "1,2000"}, []string{"-b 2000", "at most 1024"}},
		{[]string{"-n", "1024,99999999"}, []string{"-n 99999999", "at most 16777216"}},
		{[]string{"-method", "dense/bogus"}, []string{"-method dense/bogus", "no kernel variant"}},
		{[]string{"-method", "dense", "-d", "63"}, []string{"-d 63", "multiple of 8"}},
		{[]string{"-method", "hata,quest/naive"}, []string{"-method quest/naive", "have halves"}},
		{[]string{"-method", "hata/bogus"}, []string{"-method hata/bogus", "onekernel"}},
		{[]string{"-method", "dense,h2o", "-b", "1024", "-n", "16777216"},
			[]string{"-n 16777216 with -b 1024, -hkv 8", "H2O's score history", "16 GiB limit"}},
	} {
		st, out, e := hata(append([]string{"bench"}, c.args...)...)
		if st != 2 || out != "" {
			t.Errorf("bench %q: status %d, stdout %q, want 2 and nothing (stderr %q)", c.args, st, out, e)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(e, w) {
				t.Errorf("bench %q: stderr %q, want it to say %s", c.args, e, w)
			}
		}
	}
}

// TestBenchHelp checks that hata bench -h lists, after its flags, every
// environment variable the bench reads, and exits 0.
func TestBenchHelp(t *testing.T) {
	st, _, e := hata("bench", "-h")
	if st != 0 {
		t.Errorf("bench -h: status %d, want 0 (stderr %q)", st, e)
	}
	for _, w := range []string{"-opt", "environment:", "$" + experiments.EnvL2Flush, "$" + experiments.EnvTwin, "B/N",
		"$" + vk.EnvDedicated, "$" + vk.EnvHostHugePages, "$" + vk.EnvSPIRV, "$" + vk.EnvDevice} {
		if !strings.Contains(e, w) {
			t.Errorf("bench -h: stderr %q, want it to name %s", e, w)
		}
	}
}

// TestBenchOpt runs hata bench for dense and streaming with two -opt sets,
// the defaults and one more with the cache in host memory (hostcache=1), on
// whatever Vulkan device there is, and checks one row per method and set,
// in order, each naming its set; the host memory's rooflines in the header;
// and each streaming row's speedup over the dense row of its own set (the
// cache in the same memory).
func TestBenchOpt(t *testing.T) {
	needVulkan(t)
	// N=4096 x Hkv=8 x d=128: a 17 MB cache, replicated only 8 times past
	// the timer's 128 MiB (a small N means hundreds of prefills).
	st, out, e := hata("bench", "-method", "dense,streaming", "-b", "1", "-n", "4096", "-hq", "16", "-hkv", "8", "-d", "128", "-reps", "2",
		"-opt", "-", "-opt", "splits=2,tile=2,hostcache=1")
	if st != 0 {
		t.Fatalf("hata bench: status %d: %s", st, e)
	}
	if !strings.Contains(out, "\n# host memory (the K/V cache of hostcache=1 rows): read-only bandwidth") {
		t.Errorf("no header line of the host memory's rooflines:\n%s", out)
	}
	var got [][2]string
	dense := map[string]float64{} // each set's dense median
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 18 || f[0] != "dense" && f[0] != "streaming" {
			continue
		}
		got = append(got, [2]string{f[0], f[17]})
		us, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			t.Fatalf("row %q: median %q: %v", line, f[4], err)
		}
		if f[0] == "dense" {
			dense[f[17]] = us
			continue
		}
		// The speedup is of the unrounded medians: within the range the
		// printed ones (to 0.1 us) allow, to its own rounding (0.01).
		sp, err := strconv.ParseFloat(strings.TrimSuffix(f[16], "x"), 64)
		d := dense[f[17]]
		if lo, hi := (d-0.05)/(us+0.05)-0.005, (d+0.05)/max(us-0.05, 1e-9)+0.005; err != nil || sp < lo || sp > hi {
			t.Errorf("row %q: speedup %s, want %.2f-%.2fx (over dense with the same opt set, %.1f us)", line, f[16], lo, hi, d)
		}
	}
	// The host cache's rows name the pairing vk.Tuning.ForMethod gave them
	// (both methods read the cache only in their attention).
	var want [][2]string
	for _, m := range []string{"dense", "streaming"} {
		for _, o := range []string{"-", "tile=2,splits=2,hostcache=1,pairedkv=1"} {
			want = append(want, [2]string{m, o})
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (method, opt) (-want +got):\n%s\ntable:\n%s", diff, out)
	}
}

// TestBenchTrace checks that -opt trace=1 prints, after a top-k method's
// row, where its traced attention spent its time (on a device with a shader
// clock; lavapipe has one); for HATA every traced kernel's line in the
// step's order, its warm split's, and the time between its own kernels.
func TestBenchTrace(t *testing.T) {
	needVulkan(t)
	st, out, e := hata("bench", "-method", "streaming", "-b", "1", "-n", "1024", "-hq", "8", "-hkv", "2", "-d", "64", "-reps", "2",
		"-opt", "trace=1")
	if st != 0 {
		if strings.Contains(e, "VK_KHR_shader_clock") {
			t.Skipf("no shader clock: %s", e)
		}
		t.Fatalf("hata bench: status %d: %s", st, e)
	}
	if !strings.Contains(out, "# trace streaming B=1 N=1024 trace=1: sparse_split: ") || !strings.Contains(out, "fold") {
		t.Errorf("no trace line after the traced row:\n%s", out)
	}
	// HATA: its score kernel's line, the select's, then the attention's.
	// warm=3 (vk.WarmLate) runs the warm split beside the select, which the
	// rule does not at 1024 tokens a row.
	st, out, e = hata("bench", "-method", "hata", "-b", "1", "-n", "1024", "-hq", "8", "-hkv", "2", "-d", "64", "-reps", "2",
		"-opt", "trace=1,warm=3")
	if st != 0 {
		t.Fatalf("hata bench -method hata: status %d: %s", st, e)
	}
	const pre = "# trace hata B=1 N=1024 trace=1,warm=3: "
	score := strings.Index(out, pre+"hata_score: ")
	sel := strings.Index(out, pre+"select: ")
	attn := strings.Index(out, pre+"sparse_split: ")
	if score < 0 || sel < score || attn < sel || !strings.Contains(out, "histogram") || !strings.Contains(out, "threshold") {
		t.Errorf("want hata_score's trace line, then the select's, then sparse_split's:\n%s", out)
	}
	// Then the warm split's: one workgroup, and where it started in the step.
	warm := strings.Index(out, pre+"warm sparse_split: 1 workgroups")
	if warm < attn || !strings.Contains(out[warm:], "after hata_encode_q's first workgroup") {
		t.Errorf("want the warm split's trace line, with its start, after sparse_split's:\n%s", out)
	}
	// Then what the step spends between its kernels: its median less the
	// spans of the step's own four, per level.
	between := regexp.MustCompile(regexp.QuoteMeta(pre) + `between the kernels (-?[0-9.]+) us, (-?[0-9.]+) a level over ([0-9]+) levels \(the step ([0-9.]+) us less the spans of its 4 traced kernels, ([0-9.]+):`).FindStringSubmatch(out)
	if between == nil || strings.Index(out, between[0]) < max(attn, warm) {
		t.Fatalf("no line of the time between the kernels after the traces:\n%s", out)
	}
	x := make([]float64, 5)
	for i := range x {
		x[i], _ = strconv.ParseFloat(between[i+1], 64)
	}
	if spans := x[3] - x[0]; x[4] <= 0 || math.Abs(spans-x[4]) > 0.11 || math.Abs(x[1]*x[2]-x[0]) > 0.05*x[2]+0.06 {
		t.Errorf("between %v us, %v a level over %v levels, step %v less spans %v: do not add up", x[0], x[1], x[2], x[3], x[4])
	}
}

// snapshotWriter is a stdout that, when a line starting with prefix is
// written to it, reads the file at path as it is then into got (once).
type snapshotWriter struct {
	bytes.Buffer
	prefix, path string
	got          []byte
	err          error
	done         bool
}

func (w *snapshotWriter) Write(p []byte) (int, error) {
	if !w.done && bytes.HasPrefix(p, []byte(w.prefix)) {
		w.got, w.err = os.ReadFile(w.path)
		w.done = true
	}
	return w.Buffer.Write(p)
}

// TestBenchTraceCSV runs hata bench -tracecsv for dense and streaming, one
// set traced and one not, and checks the file: its header, rows of the
// traced set only, every workgroup of each traced kernel with its start and
// each phase's end in order, and the earliest start at 0. It checks too
// that the file is written as the points finish, not at the end: when
// streaming's first row is printed, the file already holds dense's traces,
// complete, and nothing of streaming's (a run cut short there keeps them).
func TestBenchTraceCSV(t *testing.T) {
	needVulkan(t)
	path := filepath.Join(t.TempDir(), "trace.csv")
	stdout := &snapshotWriter{prefix: "streaming ", path: path}
	var stderr bytes.Buffer
	st := run([]string{"bench", "-method", "dense,streaming", "-b", "1", "-n", "1024", "-hq", "8", "-hkv", "2", "-d", "64", "-reps", "2",
		"-opt", "-;splits=3,trace=1", "-tracecsv", path}, stdout, &stderr)
	e := stderr.String()
	if st != 0 {
		if strings.Contains(e, "VK_KHR_shader_clock") {
			t.Skipf("no shader clock: %s", e)
		}
		t.Fatalf("hata bench: status %d: %s", st, e)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"method", "b", "n", "opt", "kernel", "workgroup", "point", "ns"}; len(rows) == 0 || !slices.Equal(rows[0], want) {
		t.Fatalf("header %v, want %v", rows[:min(len(rows), 1)], want)
	}
	type wg struct{ kernel, w string }
	points := map[wg][]string{}
	last := map[wg]int64{}
	first := map[string]int64{}
	for _, r := range rows[1:] {
		if r[1] != "1" || r[2] != "1024" || r[3] != "splits=3,trace=1" {
			t.Fatalf("row %v: want B 1, N 1024 and the traced set only", r)
		}
		k := wg{r[0] + "/" + r[4], r[5]}
		ns, err := strconv.ParseInt(r[7], 10, 64)
		if err != nil || ns < 0 || (len(points[k]) > 0 && ns < last[k]) {
			t.Errorf("row %v: ns %q not a reading at or after the workgroup's previous one (%d)", r, r[7], last[k])
		}
		if _, ok := first[k.kernel]; !ok || ns < first[k.kernel] {
			first[k.kernel] = ns
		}
		points[k] = append(points[k], r[6])
		last[k] = ns
	}
	// dense: 2 rows x 3 splits; streaming's attention: 2 rows x 3 splits.
	for kernel, phases := range map[string][]string{"dense/dense_split": vk.DenseTracePhases, "streaming/sparse_split": vk.TracePhases} {
		for w := range 6 {
			if got, want := points[wg{kernel, strconv.Itoa(w)}], append([]string{"start"}, phases...); !slices.Equal(got, want) {
				t.Errorf("%s workgroup %d: points %v, want %v", kernel, w, got, want)
			}
		}
		if first[kernel] != 0 {
			t.Errorf("%s: earliest reading %d, want 0", kernel, first[kernel])
		}
	}
	if len(points) != 12 {
		t.Errorf("%d traced workgroups, want 12", len(points))
	}
	if !stdout.done || stdout.err != nil {
		t.Fatalf("the trace file when streaming's first row was printed: printed %v, read error %v; stdout:\n%s", stdout.done, stdout.err, stdout.String())
	}
	early, err := csv.NewReader(bytes.NewReader(stdout.got)).ReadAll()
	if err == nil && len(early) == 0 {
		err = errors.New("empty")
	}
	if err != nil {
		t.Fatalf("the trace file when streaming's first row was printed: %v", err)
	}
	var dense []string
	for _, r := range rows[1:] {
		if r[0] == "dense" {
			dense = append(dense, strings.Join(r, ","))
		}
	}
	var got []string
	for _, r := range early[1:] {
		got = append(got, strings.Join(r, ","))
	}
	if !slices.Equal(early[0], rows[0]) || len(dense) == 0 || !slices.Equal(got, dense) {
		t.Errorf("the trace file when streaming's first row was printed: header %v and %d rows, want the header %v and dense's %d rows of the final file",
			early[0], len(got), rows[0], len(dense))
	}
}
