package main

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hata-go/hata/experiments"
	"github.com/hata-go/hata/internal/atomicfile"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

func init() {
	commands["bench"] = command{"time one decode step on the GPU (GPU timestamps, bytes, bandwidth, roofline)", runBench}
}

// benchEnv is the environment hata bench reads, for its usage (README.md
// and BENCHMARKS.md say what each was for).
var benchEnv = `environment:
  $` + experiments.EnvL2Flush + `  unset: every timed step after a flush of L2 and the TLBs; l2: L2 only; 0: none
  $` + experiments.EnvTwin + `     1: a step of another instance of the method after every flush; B/N: one of B rows and N tokens (hata bench names the kernels the two share)
  $` + vk.EnvDedicated + `   0: every buffer in a plain allocation (default: those of 2 MiB and more dedicated)
  $` + vk.EnvHostHugePages + ` 1: host buffers (hostcache=1 caches) from memory mapped in transparent huge pages, imported
  $` + vk.EnvSPIRV + `       a directory whose <kernel>.spv replace the built-in kernels (tools/lab-ab.sh)
  $` + vk.EnvDevice + `      the default Vulkan device (as -vkdevice)
`

// runBench implements hata bench: every (method, B, N) point timed with
// experiments.Vulkan's Timer, once per -opt set of kernel parameters, and
// printed with the bytes it must move, the bandwidth it achieved and the copy
// bandwidth measured in the same run.
func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata bench", flag.ContinueOnError)
	methods := fs.String("method", "dense,hata", "methods, comma separated; a kernel variant as name/variant (hata/naive)")
	batches := fs.String("b", "1,8", "batch sizes, comma separated")
	ns := fs.String("n", "32768,131072", "context lengths, comma separated")
	budgetX := fs.Float64("budget", 0.0156, "X >= 1: k tokens; 0 < X < 1: ratio of N")
	reps := fs.Int("reps", 50, "timed decode steps per point (the median is reported), after a warm-up of at least 5 steps, one of every copy of the cache, and 300 ms and, on a GPU, 250 ms of copies that raise its clocks")
	hq := fs.Int("hq", 32, "query heads (Llama-3.1-8B: 32)")
	hkv := fs.Int("hkv", 8, "KV heads (Llama-3.1-8B: 8; Llama-2-7B: 32)")
	d := fs.Int("d", 128, "head dimension")
	kernelStats := fs.Bool("kernelstats", false, "after the table, print every kernel's compiler statistics (registers, shared memory, ...; VK_KHR_pipeline_executable_properties), one line per kernel")
	traceCSV := fs.String("tracecsv", "", "with -opt trace=1: write every traced point's clock readings, per workgroup of each traced kernel in its last timed step, to this CSV file, rewritten as each traced point finishes (columns method,b,n,opt,kernel,workgroup,point,ns; ns from the kernel's earliest workgroup start)")
	vkdev := fs.String("vkdevice", "", "Vulkan device NAME substring or INDEX (default: $HATA_VK_DEVICE, else discrete > integrated > CPU)")
	var optFlags listFlag
	fs.Var(&optFlags, "opt", "kernel parameters to time every point with, key=value pairs separated by commas; repeat the flag or separate sets with ; "+
		"to time each point once per set (- for the defaults, which no -opt means). Keys: "+strings.Join(vk.TuningKeys(), ", ")+" (see vk.Tuning)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hata bench [-method m,...] [-b 1,8] [-n 32768,...] [-opt k=v,...;...] [flags]")
		fs.PrintDefaults()
		fmt.Fprint(stderr, benchEnv)
	}
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	budget, err := ref.ParseBudget(*budgetX)
	if err != nil {
		return usagef("-budget: %v", err)
	}
	bs, err := intList("b", *batches)
	if err != nil {
		return err
	}
	nl, err := intList("n", *ns)
	if err != nil {
		return err
	}
	ml := strings.Split(*methods, ",")
	for _, m := range ml {
		name, variant, slash := strings.Cut(m, "/")
		if err := oneOf("method", name, ref.MethodNames); err != nil {
			return err
		}
		if slash && variant == "" {
			return usagef("-method %s: no variant after the slash (the default kernels are %s alone)", m, name)
		}
		if !slices.Contains(vk.Methods, name) {
			return usagef("-method %s: it has no GPU kernels to time (GPU methods: %s)", m, strings.Join(vk.Methods, ", "))
		}
		if err := vk.CheckVariant(name, variant); err != nil {
			return usagef("-method %s: %v", m, err)
		}
	}
	opts, err := parseOpts(optFlags)
	if err != nil {
		return err
	}
	for _, m := range ml {
		for _, t := range opts {
			if err := t.Check(m); err != nil {
				return usagef("-opt %q with -method %s: %v", t.String(), m, err)
			}
		}
	}
	if *reps < 1 || *hq < 1 || *hkv < 1 || *hq%*hkv != 0 || *d < 1 {
		return usagef("want -reps >= 1, -hq a multiple of -hkv, and positive sizes")
	}
	if err := checkBenchShape(ml, opts, bs, nl, *hq, *hkv, *d); err != nil {
		return err
	}
	if *traceCSV != "" {
		if !slices.ContainsFunc(opts, func(t vk.Tuning) bool { return t.Trace != 0 }) {
			return usagef("-tracecsv %s: no -opt set traces the kernels (add trace=1 to one)", *traceCSV)
		}
		// The file is written once the first traced point is timed: a
		// directory that is not there fails now, not after the point.
		if fi, err := os.Stat(filepath.Dir(*traceCSV)); err != nil || !fi.IsDir() {
			return usagef("-tracecsv %s: its directory %s does not exist", *traceCSV, filepath.Dir(*traceCSV))
		}
	}
	traces := newTraceCSV(*traceCSV) // rewritten as each traced point finishes
	o := vk.EnvOptions(*vkdev)
	o.KernelStats = *kernelStats
	v, err := experiments.OpenVulkanWith(o)
	if err != nil {
		return err
	}
	defer v.Close()
	one, read, err := printBenchHeader(v, stdout, ref.Shape{Hq: *hq, Hkv: *hkv, D: *d}, budget, *reps)
	if err != nil {
		return err
	}
	hostRead := 0.0 // the host memory's read-only bandwidth, where a row puts its cache there
	if slices.ContainsFunc(opts, func(t vk.Tuning) bool { return t.HostCache != 0 }) {
		if hostRead, err = printHostHeader(v, stdout, *d); err != nil {
			return err
		}
	}
	// Fixed-width rows, printed as each point finishes, so a run cut short
	// still shows what it measured; the rows of one method and point are
	// adjacent, one per -opt set (the last column, "-" for the defaults).
	// speedup is over the fastest dense row of the same B and N above whose
	// cache lies in the same memory (device, or host with hostcache=1: so
	// that HATA-off's rows read against dense over an offloaded cache);
	// floor_us is printBenchHeader's.
	fmt.Fprintf(stdout, benchRow, "method", "B", "N", "k", "median_us", "encode", "score", "select", "attend", "merge", "MB", "GB/s", "copy_GB/s", "of_copy", "levels", "floor_us", "speedup", "opt")
	var failed []string
	for _, b := range bs {
		for _, n := range nl {
			var dense [2]float64 // the fastest dense row with the cache in device memory, in host memory
			for _, m := range ml {
				for _, tuning := range opts {
					tuning = tuning.ForMethod(m) // the row says whether its host cache is paired
					opt := cmp.Or(tuning.String(), "-")
					s := ref.Shape{B: b, Hq: *hq, Hkv: *hkv, N: n, D: *d}
					k, _ := budget.Tokens(n)
					t, err := v.Time(m, s, budget, *reps, tuning)
					if err != nil {
						failed = append(failed, fmt.Sprintf("%s B=%d N=%d opt %s: %v", m, b, n, opt, err))
						fmt.Fprintf(stdout, benchRow, m, b, n, k, "failed", "", "", "", "", "", "", "", "", "", "", "", "", opt)
						continue
					}
					us := t.Median.Seconds() * 1e6
					host := min(tuning.HostCache, 1)
					if m == "dense" && (dense[host] == 0 || us < dense[host]) {
						dense[host] = us
					}
					// The traces are on disk before the row is printed: a
					// run cut short keeps those of every point it showed.
					if err := traces.add(m, b, n, opt, t.Raw); err != nil {
						return err
					}
					printBenchRow(stdout, m, s, k, opt, t, dense[host], one, read, hostRead)
				}
			}
		}
	}
	if *kernelStats {
		printKernelStats(v.Ctx, stdout, stderr)
	}
	if dir := v.Ctx.SPIRVDir(); dir != "" {
		fmt.Fprintf(stdout, "# kernels built from %s: %s\n", dir, cmp.Or(strings.Join(v.Ctx.ReplacedKernels(), ", "), "none"))
	}
	if err := traces.close(); err != nil {
		return err
	}
	for _, f := range failed {
		fmt.Fprintln(stderr, f)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d points failed", len(failed), len(bs)*len(nl)*len(ml)*len(opts))
	}
	return nil
}

// printBenchHeader prints hata bench's header: the device, the timer's
// settings, and the rooflines measured now, on this device, that every row
// is read against (the dependent-dispatch floors, the page walks, the read
// and gather bandwidths, the load latencies, whether two queues overlap). It
// returns the one-workgroup dispatch floor in ns and the read-only bandwidth
// in bytes/s, each row's floor_us. s gives the heads and the head dimension
// (its B and N are unused).
func printBenchHeader(v *experiments.Vulkan, stdout io.Writer, s ref.Shape, budget ref.Budget, reps int) (one, read float64, err error) {
	dev := v.Device()
	fmt.Fprintf(stdout, "# %s, driver %s, %s; one decode step of one layer, Hq=%d Hkv=%d d=%d, fp16 K/V, budget %v\n",
		dev.Name, dev.Driver, dev.API, s.Hq, s.Hkv, s.D, budget)
	if dir := v.Ctx.SPIRVDir(); dir != "" {
		fmt.Fprintf(stdout, "# experimental kernels: the .spv files of %s replace the built-in kernels of the same name ($%s)\n", dir, vk.EnvSPIRV)
	}
	fmt.Fprintf(stdout, "# GPU timestamps: median of %d steps after a 300 ms warm-up; bytes = what must move (experiments.MustMove); copy = copy-kernel bandwidth in this run\n", reps)
	fmt.Fprintf(stdout, "# median_us: the kernels timed as one span; stage columns: %d more steps with a timestamp per stage, each timestamp included (so they may add up to more)\n", reps)
	mode, err := experiments.Flush()
	if err != nil {
		return 0, 0, err
	}
	flushL2, flushPages := v.FlushSizes()
	switch mode {
	case experiments.FlushNone:
		fmt.Fprintf(stdout, "# no flush before the timed steps ($%s=0): a step may find in L2 and in the TLBs what the step before it left\n", experiments.EnvL2Flush)
	case experiments.FlushL2:
		fmt.Fprintf(stdout, "# every timed step follows a read of %d MiB that evicts L2, but not the TLBs ($%s=l2)\n", flushL2>>20, experiments.EnvL2Flush)
	default:
		fmt.Fprintf(stdout, "# every timed step follows a read of %d MiB that evicts L2 and a load in every 64 KiB of %d MiB more that evicts the TLBs, as a model's other layers would ($%s=l2: L2 only, 0: none)\n", flushL2>>20, flushPages>>20, experiments.EnvL2Flush)
	}
	twin, err := experiments.Twin()
	if err != nil {
		return 0, 0, err
	}
	if twin.On {
		fmt.Fprintf(stdout, "# after every flush %s runs before the timed one (its own cache and buffers): a diagnostic of what a cold step waits for that the two share, the kernels' code among it\n", twin)
	}
	if v.Ctx.Dedicated() {
		fmt.Fprintf(stdout, "# buffers of 2 MiB and more (the K/V cache, ...) in dedicated allocations, which the driver may map with large pages ($%s=0: plain ones)\n", vk.EnvDedicated)
	} else {
		fmt.Fprintf(stdout, "# every buffer in a plain allocation, none dedicated ($%s=0)\n", vk.EnvDedicated)
	}
	if v.Ctx.HostHugePages() {
		fmt.Fprintf(stdout, "# host buffers (hostcache=1 caches) in memory this process maps in transparent huge pages, imported by the device ($%s=1)\n", vk.EnvHostHugePages)
	}
	// The latency roofline beside the bandwidth one: what a dependent
	// dispatch costs when it moves nothing, on one workgroup and on enough
	// of them to occupy every compute unit.
	wide := uint32(max(v.Ctx.Info.ComputeUnits, 1)) * 4
	one, err1 := v.Ctx.DispatchFloor(64, 1, 20)
	full, err2 := v.Ctx.DispatchFloor(64, wide, 20)
	if err := cmp.Or(err1, err2); err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(stdout, "# dependent-dispatch floor (64 barrier-separated copy dispatches of 16 B per invocation, median of 20): %.2f us with 1 workgroup, %.2f us with %d workgroups of 256\n",
		one/1e3, full/1e3, wide)
	// The same after the timer's L2 read (one flush for the four chains),
	// where every stage of a timed step runs: of one kernel, and of as many
	// distinct kernels, each cold.
	cold, err := v.Ctx.NewL2Flush(flushL2)
	if err != nil {
		return 0, 0, err
	}
	var floors [2][4]float64
	for i, flush := range []*vk.L2Flush{cold, nil} {
		for j, kernels := range []vk.ChainKernels{vk.ChainOne, vk.ChainCopies, vk.ChainSizes, vk.ChainLarge} {
			if floors[i][j], err = v.Ctx.ColdDispatchFloor(8, kernels, flush, 20); err != nil {
				cold.Close()
				return 0, 0, err
			}
		}
	}
	cold.Close()
	fmt.Fprintf(stdout, "# dependent dispatches after the L2 flush (8 one-workgroup copies, median of 20): %.2f us a level of one pipeline, %.2f of 8 pipelines of the same kernel, %.2f of 8 distinct kernels, %.2f of 8 distinct kernels of kilobytes of code (bigcode); without the flush %.2f, %.2f, %.2f and %.2f\n",
		floors[0][0]/1e3, floors[0][1]/1e3, floors[0][2]/1e3, floors[0][3]/1e3, floors[1][0]/1e3, floors[1][1]/1e3, floors[1][2]/1e3, floors[1][3]/1e3)
	// What the TLB flush costs a kernel that gathers from a cache, in the
	// allocations the cache has and in the others (session 27).
	if mode == experiments.FlushPages {
		size := min(4<<30, flushPages/4) // beside the flush's pages, at most 5/8 of the largest heap
		if v.Ctx.Info.Type == vk.DeviceCPU {
			size = 8 << 20
		}
		f, err := v.NewFlush(mode)
		if err != nil {
			return 0, 0, err
		}
		plain, ded, err := v.Ctx.PageWalkCost(f, size, 20)
		f.Close()
		if err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(stdout, "# page walks (a 16-byte load every MiB of %d MiB after the flush, less the same loads warm, median of 20): %.1f ns a MiB in plain allocations, %.1f in dedicated ones\n",
			size>>20, plain, ded)
	}
	// The read-only roofline, for the kernels that only stream their cache
	// (dense attention), beside each row's copy bandwidth.
	rsize := min(uint64(1<<30), uint64(v.Ctx.Info.Limits.MaxStorageBufferRange))
	if v.Ctx.Info.Type == vk.DeviceCPU {
		rsize = 64 << 20
	}
	if read, err = v.Ctx.ReadBandwidth(rsize, 20); err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(stdout, "# read-only bandwidth (read kernel over %d MiB, 16-byte loads, median of 20): %s GB/s\n", rsize>>20, fmtGBps(read))
	// The top-k methods' roofline: their attention reads a K row and a V
	// row of 2*d bytes (float16) per selected token, at random.
	if row := uint64(2 * s.D); row >= 16 && row <= 4096 && row&(row-1) == 0 {
		gather, _, err := v.Ctx.GatherBandwidth(row, rsize, 20)
		if err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(stdout, "# random-gather bandwidth (%d-byte rows at random over %d MiB, median of 20): %s GB/s\n", row, rsize>>20, fmtGBps(gather))
	}
	// And what one dependent load costs inside a kernel (on an idle device),
	// from the last-level cache and from memory.
	flush := min(256<<20, uint64(v.Ctx.Info.Limits.MaxStorageBufferRange))
	l2, err1 := v.Ctx.LoadLatency(1<<20, 0, 20)
	mem, err2 := v.Ctx.LoadLatency(1<<20, flush, 20)
	busy, err3 := v.Ctx.LoadedLatency(flush, 20)
	if err := cmp.Or(err1, err2, err3); err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(stdout, "# dependent-load latency (one invocation following a chain, links 4 KiB + 128 B apart, median of 20): %.0f ns from the last-level cache, %.0f ns from memory (%d MiB filled before each chain), %.0f ns while the other workgroups copy %d MiB\n",
		l2, mem, flush>>20, busy, flush>>20)
	// Whether kernels from two queues run side by side: the question behind
	// splitting a step's rows over two queues (BENCHMARKS.md, session 9).
	chain := 256
	if v.Ctx.Info.Type == vk.DeviceCPU {
		chain = 16 // lavapipe: a dispatch costs tens of microseconds
	}
	ov, err := v.Ctx.QueueOverlap(chain, 10)
	if err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(stdout, "# two chains of %d dependent 1-workgroup dispatches (host wall time, median of 10): %s\n", chain, ov)
	// floor_us: the step's latency and bandwidth roofline, its levels of
	// dependent dispatches at the one-workgroup floor plus its bytes at the
	// read-only bandwidth (BENCHMARKS.md's floor): no step with this chain
	// of dispatches moving these bytes runs faster on this device.
	fmt.Fprintf(stdout, "# floor_us: levels (dispatches one after another in a step) x %.2f us + MB at %s GB/s\n", one/1e3, fmtGBps(read))
	return one, read, nil
}

// printHostHeader prints the rooflines of a K/V cache in host memory (the
// rows of -opt hostcache=1, the paper's HATA-off): what a kernel streams from
// host memory over the bus, and what it gathers from there in rows of a K
// or V row (2*d bytes). It returns the streaming bandwidth in bytes/s, with
// which those rows' floor_us counts their cache's bytes.
func printHostHeader(v *experiments.Vulkan, stdout io.Writer, d int) (float64, error) {
	size := uint64(1 << 30)
	if v.Ctx.Info.Type == vk.DeviceCPU {
		size = 64 << 20
	}
	size = min(size, uint64(v.Ctx.Info.Limits.MaxStorageBufferRange))
	read, err := v.Ctx.HostReadBandwidth(size, 20)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "# host memory (the K/V cache of hostcache=1 rows): read-only bandwidth over %d MiB %s GB/s", size>>20, fmtGBps(read))
	if row := uint64(2 * d); row >= 16 && row <= 4096 && row&(row-1) == 0 {
		gather, _, err := v.Ctx.HostGatherBandwidth(row, size, 20)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(stdout, ", random gathers of %d-byte rows %s GB/s", row, fmtGBps(gather))
	}
	fmt.Fprintf(stdout, " (median of 20); floor_us counts those rows' cache bytes at the read-only one\n")
	return read, nil
}

// fmtGBps formats a bandwidth in bytes/s as GB/s: whole GB/s on a GPU, two
// decimals below 10 GB/s (lavapipe's, which %.0f printed as 0).
func fmtGBps(b float64) string {
	if b < 10e9 {
		return strconv.FormatFloat(b/1e9, 'f', 2, 64)
	}
	return strconv.FormatFloat(b/1e9, 'f', 0, 64)
}

// benchRow is the format of hata bench's fixed-width rows, the method's
// column wide enough for hata/threekernel: method, B, N, k, median_us, the
// five stages, MB, GB/s, copy_GB/s, of_copy, levels, floor_us, speedup, opt.
const benchRow = "%-16s %2v %7v %6v %10v %8v %8v %8v %8v %7v %9v %7v %9v %7v %6v %8v %8v %s\n"

// printBenchRow prints the row of method m timed as t at shape s (k tokens
// selected, kernel parameters opt), and its trace lines:
// speedup over dense (the fastest dense row of the shape so far, 0 if none),
// floor_us from the dispatch floor one (ns) and the read bandwidth read
// (bytes/s) of printBenchHeader, and of the bytes read from host memory
// (Timing.HostBytes) at hostRead, printHostHeader's.
func printBenchRow(stdout io.Writer, m string, s ref.Shape, k int, opt string, t experiments.Timing, dense, one, read, hostRead float64) {
	us := t.Median.Seconds() * 1e6
	stage := func(n string) string {
		if x, ok := t.Stages[n]; ok {
			return strconv.FormatFloat(x.Seconds()*1e6, 'f', 1, 64)
		}
		return "-"
	}
	gbps := float64(t.Bytes) / t.Median.Seconds() / 1e9
	speedup := "-"
	if dense > 0 {
		speedup = strconv.FormatFloat(dense/us, 'f', 2, 64) + "x"
	}
	f1 := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
	// small: one decimal from 10 up, three significant digits below, so
	// that a small step's megabytes and lavapipe's bandwidths do not print
	// as 0.0.
	small := func(x float64) string {
		if x < 10 {
			return strconv.FormatFloat(x, 'g', 3, 64)
		}
		return f1(x)
	}
	floorNs := float64(t.Levels)*one + float64(t.Bytes-t.HostBytes)/read*1e9
	if t.HostBytes > 0 {
		floorNs += float64(t.HostBytes) / hostRead * 1e9
	}
	floor := f1(floorNs / 1e3)
	fmt.Fprintf(stdout, benchRow, m, s.B, s.N, k, f1(us), stage("encode"), stage("score"), stage("select"), stage("attend"), stage("merge"),
		small(float64(t.Bytes)/1e6), small(gbps), small(t.CopyGBps), fmt.Sprintf("%.0f%%", 100*gbps/t.CopyGBps),
		t.Levels, floor, speedup, opt)
	if t.Twin != "" {
		fmt.Fprintf(stdout, "# twin %s B=%d N=%d %s: %s\n", m, s.B, s.N, opt, t.Twin)
	}
	for _, tr := range t.Trace {
		fmt.Fprintf(stdout, "# trace %s B=%d N=%d %s: %s\n", m, s.B, s.N, opt, tr)
	}
	if t.Spans > 0 && t.Levels > 0 {
		between := (t.Median - t.Spans).Seconds() * 1e6
		fmt.Fprintf(stdout, "# trace %s B=%d N=%d %s: between the kernels %s us, %s a level over %d levels (the step %s us less the spans of its %d traced kernels, %s: dispatch boundaries and any kernel not traced)\n",
			m, s.B, s.N, opt, f1(between), f1(between/float64(t.Levels)), t.Levels, f1(us), t.Spanned, f1(t.Spans.Seconds()*1e6))
	}
}

// checkBenchShape checks the shape flags against the bounds of a timed
// step, before anything is printed or allocated: each of -b, -n, -hq and -d
// within its largest value (experiments.MaxBatch, ...), and every host tensor
// of each method's largest step, with each -opt set's hash width, within
// experiments.MaxTensorBytes (experiments.CheckStepSize). The usage error
// names the flag at fault.
func checkBenchShape(methods []string, opts []vk.Tuning, bs, ns []int, hq, hkv, d int) error {
	for _, f := range []struct {
		name   string
		values []int
		most   int
	}{{"b", bs, experiments.MaxBatch}, {"n", ns, experiments.MaxTokens},
		{"hq", []int{hq}, experiments.MaxHeads}, {"d", []int{d}, experiments.MaxHeadDim}} {
		if x := slices.Max(f.values); x > f.most {
			return usagef("-%s %d: want at most %d", f.name, x, f.most)
		}
	}
	if d%8 != 0 {
		return usagef("-d %d: the timed caches are float16, read in 16-byte vectors: want a multiple of 8", d)
	}
	s := ref.Shape{B: slices.Max(bs), Hq: hq, Hkv: hkv, N: slices.Max(ns), D: d}
	keys := experiments.StepKeys{B: "-b", Hq: "-hq", Hkv: "-hkv", N: "-n", D: "-d", Rbit: "-opt rbit"}
	for _, m := range methods {
		for _, t := range opts {
			err := experiments.CheckStepSize(m, s, cmp.Or(t.Rbit, ref.DefaultRbit), true, keys)
			var k interface{ ConfigKey() string }
			if errors.As(err, &k) { // "-d: 512 with ...": say "-d 512 with ..."
				return usagef("%s %s", k.ConfigKey(), strings.TrimPrefix(err.Error(), k.ConfigKey()+": "))
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// traceCSV is -tracecsv's file: every traced point's readings, kept
// encoded, and the file rewritten whole, atomically, as each traced point
// finishes, so that it is always complete and holds every point timed so
// far (a run cut short by Ctrl-C, SIGTERM or a failure keeps them).
type traceCSV struct {
	path    string       // "": no -tracecsv
	buf     bytes.Buffer // the header and the rows so far
	written bool         // the file holds buf
}

// newTraceCSV returns path's traceCSV, its rows none yet ("": no file).
func newTraceCSV(path string) *traceCSV {
	f := &traceCSV{path: path}
	w := csv.NewWriter(&f.buf)
	w.Write([]string{"method", "b", "n", "opt", "kernel", "workgroup", "point", "ns"})
	w.Flush()
	return f
}

// add appends the rows of a point's traced kernels (traceCSVRows) and, when
// there are any, rewrites the file.
func (f *traceCSV) add(method string, b, n int, opt string, kts []vk.KernelTrace) error {
	if f.path == "" || len(kts) == 0 {
		return nil
	}
	w := csv.NewWriter(&f.buf)
	for _, kt := range kts {
		w.WriteAll(traceCSVRows(method, b, n, opt, kt)) // into a buffer: no error
	}
	return f.write()
}

// close writes the file, with its header alone, if no point was traced.
func (f *traceCSV) close() error {
	if f.path == "" || f.written {
		return nil
	}
	return f.write()
}

// write writes the file atomically: it is as it was or complete.
func (f *traceCSV) write() error {
	if err := atomicfile.WriteBytes(f.path, "."+filepath.Base(f.path)+".tmp-*", f.buf.Bytes()); err != nil {
		return fmt.Errorf("-tracecsv: %w", err)
	}
	f.written = true
	return nil
}

// traceCSVRows returns -tracecsv's rows of one traced kernel of a point:
// method, b, n, opt, kernel, workgroup, point (start, or the phase the
// reading ends), and the reading in the clock's ticks (nanoseconds on the
// devices measured) from the kernel's earliest workgroup start.
func traceCSVRows(method string, b, n int, opt string, kt vk.KernelTrace) [][]string {
	names := append([]string{"start"}, kt.Phases...)
	var rows [][]string
	for w, pts := range kt.Offsets() {
		for p, ns := range pts {
			rows = append(rows, []string{method, strconv.Itoa(b), strconv.Itoa(n), opt, kt.Kernel,
				strconv.Itoa(w), names[min(p, len(names)-1)], strconv.FormatInt(ns, 10)})
		}
	}
	return rows
}

// printKernelStats writes the compiler statistics of every kernel ctx holds,
// one line per kernel: "kernel", the shader, its specialization constants,
// and each statistic as name=value in the driver's order (the executable's
// name first when the pipeline has several). When the device cannot say, it
// writes why to stderr: the benchmark itself succeeded.
func printKernelStats(ctx *vk.Context, stdout, stderr io.Writer) {
	stats, err := ctx.KernelStats()
	if err != nil {
		fmt.Fprintf(stderr, "hata bench: warning: -kernelstats: %v\n", err)
		return
	}
	fmt.Fprintf(stdout, "# kernel statistics (VK_KHR_pipeline_executable_properties): shader, spec constants (id 0 = workgroup size), then name=value as the driver reports them\n")
	for _, k := range stats {
		var parts []string
		for _, e := range k.Executables {
			var kv []string
			for _, st := range e.Stats {
				kv = append(kv, st.Name+"="+st.String())
			}
			p := strings.Join(kv, ", ")
			if len(k.Executables) > 1 {
				p = "[" + e.Name + "] " + p
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(stdout, "kernel %s: %s\n", k.Label, strings.Join(parts, "; "))
	}
}

// intList parses a comma-separated list of positive integers.
func intList(flagName, s string) ([]int, error) {
	var xs []int
	for _, f := range strings.Split(s, ",") {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || x < 1 {
			return nil, usagef("-%s %q: %q is not a positive integer", flagName, s, f)
		}
		xs = append(xs, x)
	}
	return xs, nil
}

// listFlag collects the values of a flag that may be repeated.
type listFlag []string

// String implements flag.Value.
func (l *listFlag) String() string { return strings.Join(*l, ";") }

// Set implements flag.Value.
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// parseOpts parses the values of -opt into the kernel parameter sets to time
// every point with: each value is one or more sets separated by semicolons,
// each set key=value pairs separated by commas (keys of vk.TuningKeys, values
// positive integers, no key twice) or "-" for the defaults. No value means
// one set, the defaults.
func parseOpts(values []string) ([]vk.Tuning, error) {
	if len(values) == 0 {
		return []vk.Tuning{{}}, nil
	}
	var sets []vk.Tuning
	for _, value := range values {
		for _, set := range strings.Split(value, ";") {
			set = strings.TrimSpace(set)
			switch set {
			case "":
				return nil, usagef("-opt %q: an empty set of parameters (write - for the defaults)", value)
			case "-":
				sets = append(sets, vk.Tuning{})
				continue
			}
			var t vk.Tuning
			seen := map[string]bool{}
			for _, pair := range strings.Split(set, ",") {
				key, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				key, val = strings.TrimSpace(key), strings.TrimSpace(val)
				switch {
				case !ok:
					return nil, usagef("-opt %q: %q is not key=value", set, pair)
				case !slices.Contains(vk.TuningKeys(), key):
					return nil, usagef("-opt %q: unknown key %q (want one of %s)", set, key, strings.Join(vk.TuningKeys(), ", "))
				case seen[key]:
					return nil, usagef("-opt %q: key %s given twice", set, key)
				}
				seen[key] = true
				x, err := strconv.Atoi(val)
				if err != nil || x < 1 {
					return nil, usagef("-opt %q: %s=%q: want a positive integer (leave the key out for its default)", set, key, val)
				}
				if err := t.Set(key, x); err != nil {
					return nil, usagef("-opt %q: %v", set, err)
				}
			}
			sets = append(sets, t)
		}
	}
	return sets, nil
}
