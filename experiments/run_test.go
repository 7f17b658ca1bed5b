package experiments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hata-go/hata/experiments/synth"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

// tiny is a budget sweep small enough to run in about a second: 5 methods x
// 3 budgets x 2 decode steps on a layer of 4 query heads, 2 KV heads, d 32 and
// 384 tokens, with hata's weights trained for a few steps.
const tiny = `kind = "budget"
name = "tiny"
methods = ["hata", "topk", "quest", "streaming", "dense"]
budgets = [0.02, 0.05, 0.25]
samples = 2
[synth]
hq = 4
hkv = 2
d = 32
n = 384
rank = 16
[train]
n = 256
[hash]
steps = 6
positions = 2
[options]
rbit = 32
`

// counting is the CPU backend with a count of the decode steps it runs. It
// has no Timer.
type counting struct {
	name    string
	decodes *atomic.Int64
}

func (c counting) Device() DeviceInfo { return CPU{}.Device() }

func (c counting) Name() string {
	if c.name != "" {
		return c.name
	}
	return "cpu"
}

func (c counting) NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	m, err := CPU{}.NewMethod(name, hkv, d, o)
	if err != nil {
		return nil, err
	}
	return countingMethod{m, c.decodes}, nil
}

type countingMethod struct {
	ref.Method
	decodes *atomic.Int64
}

func (m countingMethod) Decode(q []float32, b ref.Budget) (*ref.Result, error) {
	m.decodes.Add(1)
	return m.Method.Decode(q, b)
}

// runTiny runs the config text with the given overrides into out, on a
// counting backend per device, and returns the results directory, the
// decode count and stderr.
func runTiny(t *testing.T, ctx context.Context, text, out string, ov Overrides, hooks runHooks) (string, int64, string, error) {
	t.Helper()
	exp, err := parse("tiny.toml", text, ov)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	if hooks.backends == nil {
		for i := range exp.common().Devices {
			hooks.backends = append(hooks.backends, counting{name: "cpu" + strings.Repeat("'", i), decodes: &n})
		}
	}
	ov.Out = out
	var stderr bytes.Buffer
	dir, err := runExperiment(ctx, exp, ov, &stderr, hooks)
	return dir, n.Load(), stderr.String(), err
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResume(t *testing.T) {
	root := t.TempDir()
	const points, samples = 15, 2

	// The reference: one uninterrupted run.
	full, decodes, _, err := runTiny(t, context.Background(), tiny, filepath.Join(root, "full"), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	if decodes != points*samples {
		t.Errorf("uninterrupted run: %d decode steps, want points*samples = %d", decodes, points*samples)
	}
	want := readFile(t, filepath.Join(full, "budget.csv"))
	if rows := strings.Count(string(want), "\n") - 1; rows != points {
		t.Fatalf("budget.csv has %d rows, want %d:\n%s", rows, points, want)
	}

	// Interrupt after 6 points (as Ctrl-C would), and leave a half-written
	// temporary file behind as kill -9 would.
	out := filepath.Join(root, "resumed")
	ctx, cancel := context.WithCancel(context.Background())
	dir, decodes, stderr1, err := runTiny(t, ctx, tiny, out, Overrides{}, runHooks{afterPoint: func(n int) {
		if n == 6 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	if decodes != 6*samples {
		t.Errorf("interrupted run: %d decode steps, want 6 points * %d = %d", decodes, samples, 6*samples)
	}
	files, _ := filepath.Glob(filepath.Join(dir, pointsDir, "*.json"))
	if len(files) != 6 {
		t.Errorf("interrupted run left %d point files, want 6", len(files))
	}
	if _, err := os.Stat(filepath.Join(dir, "budget.csv")); err == nil {
		t.Errorf("interrupted run assembled budget.csv; want it only when the run completes")
	}
	if err := os.WriteFile(filepath.Join(dir, pointsDir, tempPrefix+"abc.json-123"), []byte(`{"key": "trunc`), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr1, "training") {
		t.Errorf("first run did not train hata's weights (stderr %q)", stderr1)
	}

	// Resume: only the 9 missing points are computed, hata's weights are read
	// back from W.npy, and the CSV is byte for byte the uninterrupted one.
	dir, decodes, stderr2, err := runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	if decodes != (points-6)*samples {
		t.Errorf("resumed run: %d decode steps, want the 9 missing points * %d = %d", decodes, samples, (points-6)*samples)
	}
	if strings.Contains(stderr2, "training") {
		t.Errorf("resumed run retrained hata's weights; want W.npy reused (stderr %q)", stderr2)
	}
	if got := readFile(t, filepath.Join(dir, "budget.csv")); !bytes.Equal(got, want) {
		t.Errorf("resumed budget.csv differs from the uninterrupted run:\n%s\nwant\n%s", got, want)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, pointsDir, tempPrefix+"*")); len(tmp) != 0 {
		t.Errorf("temporary files left in points/: %v", tmp)
	}

	// A third run computes nothing.
	if _, decodes, _, err = runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{}); err != nil || decodes != 0 {
		t.Errorf("re-run of a finished sweep: %d decode steps, err %v; want 0, nil", decodes, err)
	}

	// A changed config is refused; devices and description are not part of it.
	_, _, _, err = runTiny(t, context.Background(), tiny, out, Overrides{Set: []string{"synth.n=320"}}, runHooks{})
	var changed *ConfigChangedError
	if !errors.As(err, &changed) {
		t.Errorf("re-run with synth.n changed: err = %v, want *ConfigChangedError", err)
	}
	if _, _, _, err = runTiny(t, context.Background(), tiny, out, Overrides{Set: []string{"description=other"}, Devices: []string{"cpu", "cpu"}}, runHooks{}); err != nil {
		t.Errorf("re-run with other devices and description: %v", err)
	}
}

func TestCorruptPointRecomputed(t *testing.T) {
	out := t.TempDir()
	dir, _, _, err := runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	want := readFile(t, filepath.Join(dir, "budget.csv"))
	files, _ := filepath.Glob(filepath.Join(dir, pointsDir, "*.json"))
	if err := os.WriteFile(files[3], []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, decodes, stderr, err := runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	if decodes != 2 || !strings.Contains(stderr, "unreadable") {
		t.Errorf("re-run with one corrupt point file: %d decodes (want 2), stderr %q", decodes, stderr)
	}
	if got := readFile(t, filepath.Join(dir, "budget.csv")); !bytes.Equal(got, want) {
		t.Errorf("CSV after recomputing a corrupt point differs")
	}
}

func TestShardMergeAndDevices(t *testing.T) {
	root := t.TempDir()
	full, _, _, err := runTiny(t, context.Background(), tiny, filepath.Join(root, "full"), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	want := readFile(t, filepath.Join(full, "budget.csv"))

	var shards []string
	var total int64
	for i := range 3 {
		dir, decodes, _, err := runTiny(t, context.Background(), tiny, root, Overrides{Shard: Shard{i, 3}}, runHooks{})
		if err != nil {
			t.Fatalf("shard %d/3: %v", i, err)
		}
		if !strings.HasSuffix(dir, "tiny.shard-"+itoa(i)+"-of-3") {
			t.Errorf("shard %d/3 wrote to %s", i, dir)
		}
		total += decodes
		shards = append(shards, dir)
	}
	if total != 15*2 {
		t.Errorf("three shards ran %d decode steps, want every point once: %d", total, 30)
	}
	merged := filepath.Join(root, "merged")
	if err := Merge(merged, io.Discard, shards[0], shards[1]); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Merge of 2 of 3 shards: err = %v, want one about missing points", err)
	}
	if err := Merge(merged, io.Discard, shards...); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(merged, "budget.csv")); !bytes.Equal(got, want) {
		t.Errorf("merged shards:\n%s\nwant the unsharded CSV\n%s", got, want)
	}
	// The hash weights the shards trained are kept, for a resume in merged.
	if got, want := readFile(t, filepath.Join(merged, "W.npy")), readFile(t, filepath.Join(full, "W.npy")); !bytes.Equal(got, want) {
		t.Errorf("merged W.npy differs from the unsharded run's (%d and %d bytes)", len(got), len(want))
	}

	// Shards that read other model inputs (a model kind's inputs.json) do
	// not merge; shards that read the same do, and merged keeps the record.
	for i, sums := range []string{`{"weights/model.safetensors": "aa"}`, `{"weights/model.safetensors": "aa"}`, `{"weights/model.safetensors": "bb"}`} {
		if err := os.WriteFile(filepath.Join(shards[i], inputsFile), []byte(sums), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	merged3 := filepath.Join(root, "merged3")
	if err := Merge(merged3, io.Discard, shards...); err == nil || !strings.Contains(err.Error(), "read different model inputs") {
		t.Errorf("Merge of shards of other inputs: err = %v, want a refusal", err)
	}
	if _, err := os.Stat(merged3); err == nil {
		t.Errorf("a refused merge made %s", merged3)
	}
	if err := Merge(merged3, io.Discard, shards[0], shards[1]); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Merge of two shards of the same inputs: %v, want only points missing", err)
	}
	if got := string(readFile(t, filepath.Join(merged3, inputsFile))); got != `{"weights/model.safetensors": "aa"}` {
		t.Errorf("merged inputs.json = %q, want the shards'", got)
	}

	// Shards of another config do not merge.
	other, _, _, err := runTiny(t, context.Background(), tiny, filepath.Join(root, "other"), Overrides{Set: []string{"samples=1"}, Shard: Shard{0, 3}}, runHooks{})
	if err == nil {
		err = Merge(filepath.Join(root, "merged2"), io.Discard, shards[1], other)
	}
	if err == nil || !strings.Contains(err.Error(), "different configs") {
		t.Errorf("Merge of shards of two configs: err = %v, want a refusal", err)
	}

	// Two devices, one worker each: the same CSV except the device column.
	two, _, _, err := runTiny(t, context.Background(), tiny, filepath.Join(root, "two"), Overrides{Devices: []string{"cpu", "cpu"}}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(readFile(t, filepath.Join(two, "budget.csv"))), "cpu'", "cpu")
	if got != string(want) {
		t.Errorf("two devices:\n%s\nwant\n%s", got, want)
	}
}

func TestResultsFiles(t *testing.T) {
	dir, _, _, err := runTiny(t, context.Background(), tiny, t.TempDir(), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(readFile(t, filepath.Join(dir, "budget.png"))))
	if err != nil {
		t.Fatalf("budget.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
		t.Errorf("budget.png is %dx%d pixels, want a readable figure", b.Dx(), b.Dy())
	}
	svg := string(readFile(t, filepath.Join(dir, "budget.svg")))
	for _, s := range []string{"<svg", "hata", "quest", "token budget"} {
		if !strings.Contains(svg, s) {
			t.Errorf("budget.svg lacks %q", s)
		}
	}
	rec := string(readFile(t, filepath.Join(dir, resultsFile)))
	for _, s := range []string{`"commit"`, `"date"`, `"driver"`, `"api"`, `"config_hash"`, `"budget.png"`, `"done": 15`, `"missing": []`} {
		if !strings.Contains(rec, s) {
			t.Errorf("results.json lacks %s:\n%s", s, rec)
		}
	}
	// The metrics obey their definitions: dense has error 0 and reads all;
	// the oracle has recall 1 and the largest mass at each budget.
	tb, err := ReadCSV(filepath.Join(dir, "budget.csv"))
	if err != nil {
		t.Fatal(err)
	}
	mass := map[string]float64{}
	for i := range tb.Rows {
		m, b := tb.Str(i, "method"), tb.Str(i, "budget")
		switch m {
		case "dense":
			if tb.Float(i, "rel_l2") != 0 || tb.Float(i, "read_frac") != 1 {
				t.Errorf("dense at %s: rel_l2 %v read_frac %v, want 0 and 1", b, tb.Float(i, "rel_l2"), tb.Float(i, "read_frac"))
			}
		case "topk":
			if tb.Float(i, "recall") != 1 {
				t.Errorf("topk at %s: recall %v, want 1", b, tb.Float(i, "recall"))
			}
			mass[b] = tb.Float(i, "mass")
		}
	}
	for i := range tb.Rows {
		if m := tb.Str(i, "method"); m != "dense" && tb.Float(i, "mass") > mass[tb.Str(i, "budget")]+1e-12 {
			t.Errorf("%s at %s keeps mass %v > the oracle's %v", m, tb.Str(i, "budget"), tb.Float(i, "mass"), mass[tb.Str(i, "budget")])
		}
	}
}

func TestTraceInput(t *testing.T) {
	// A trace of one synthetic layer: queries at every position.
	c := synth.Default()
	c.Hq, c.Hkv, c.D, c.N, c.Rank = 4, 2, 32, 300, 16
	m, err := synth.New(c)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Sample(5)
	traceDir := t.TempDir()
	if err := tensorio.WriteTraceLayer(traceDir, 3, &tensorio.LayerTrace{Hq: c.Hq, Hkv: c.Hkv, N: c.N, D: c.D,
		Q: m.TraceQueries(s), K: s.K, V: s.V, KPre: s.Kpre}); err != nil {
		t.Fatal(err)
	}
	text := `kind = "budget"
input = "trace"
methods = ["topk", "loki", "dense", "hata"]
budgets = [0.05, 32]
samples = 2
[trace]
dir = "` + traceDir + `"
layer = 3
[hash]
steps = 3
positions = 2
[options]
rbit = 32
loki_channels = 8
`
	dir, _, _, err := runTiny(t, context.Background(), text, t.TempDir(), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := ReadCSV(filepath.Join(dir, "budget.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Rows) != 8 {
		t.Fatalf("%d rows, want 4 methods x 2 budgets", len(tb.Rows))
	}
	for i := range tb.Rows {
		// Positions spread over [N/2, N): the first step has N = 150+75-1+1 = 225 tokens.
		if n := tb.Str(i, "n"); n != "225" {
			t.Errorf("row %d: n = %s, want 225 (the first decode position 224 attends to keys 0..224)", i, n)
		}
		if tb.Str(i, "method") == "topk" && tb.Float(i, "recall") != 1 {
			t.Errorf("topk on a trace: recall %v, want 1", tb.Float(i, "recall"))
		}
		if tb.Str(i, "budget") == "32" && tb.Str(i, "k") != "32" {
			t.Errorf("absolute budget 32: k = %s", tb.Str(i, "k"))
		}
	}
	// More samples than the trace's second half has positions (150 of 300
	// tokens): each would be a step averaged twice.
	_, _, _, err = runTiny(t, context.Background(), strings.Replace(text, "samples = 2", "samples = 151", 1), t.TempDir(), Overrides{}, runHooks{})
	if err == nil || !strings.Contains(err.Error(), "samples = 151: the second half of the trace's 300 tokens holds 150 decode positions") {
		t.Errorf("samples past the trace's positions: err = %v, want one saying how many it holds", err)
	}
}

func TestRbitAndTrainingKinds(t *testing.T) {
	synthSmall := "\n[synth]\nhq = 4\nhkv = 2\nd = 32\nn = 256\nrank = 16\n[train]\nn = 256\n"
	rbit := `kind = "rbit"
rbits = [32, 64]
budgets = [0.05]
samples = 1
[hash]
steps = 3
positions = 2` + synthSmall
	dir, _, _, err := runTiny(t, context.Background(), rbit, t.TempDir(), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := ReadCSV(filepath.Join(dir, "rbit.csv"))
	if len(tb.Rows) != 4 {
		t.Errorf("rbit: %d rows, want trained/random x 2 widths", len(tb.Rows))
	}
	for _, f := range []string{"W_rbit32.npy", "W_rbit64.npy", "rbit.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("rbit: %v", err)
		}
	}

	training := `kind = "training"
rbits = [32]
eval_every = 2
samples = 1
[hash]
steps = 5
positions = 2` + synthSmall
	dir, _, _, err = runTiny(t, context.Background(), training, t.TempDir(), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	tb, _ = ReadCSV(filepath.Join(dir, "training.csv"))
	if len(tb.Rows) != 6 {
		t.Fatalf("training: %d rows, want steps 0..5", len(tb.Rows))
	}
	for i := range tb.Rows {
		step := tb.Str(i, "step")
		if step != itoa(i) {
			t.Errorf("row %d is step %s", i, step)
		}
		hasRecall := tb.Str(i, "recall") != ""
		if want := step == "0" || step == "2" || step == "4" || step == "5"; hasRecall != want {
			t.Errorf("step %s: recall %q, want it only at the checkpoints 0 2 4 5", step, tb.Str(i, "recall"))
		}
		if l := tb.Float(i, "loss"); !(l > 0) {
			t.Errorf("step %s: loss %v", step, l)
		}
	}
	if tb.Float(5, "decorrelation") >= tb.Float(0, "decorrelation") {
		t.Errorf("decorrelation term did not fall: step 0 %v, step 5 %v", tb.Float(0, "decorrelation"), tb.Float(5, "decorrelation"))
	}
}

func TestSpeedOnCPU(t *testing.T) {
	speed := `kind = "speed"
methods = ["dense", "hata", "quest"]
batches = [1]
ns = [256, 512]
reps = 3
hq = 4
hkv = 2
d = 32
budget = 0.1
`
	dir, _, _, err := runTiny(t, context.Background(), speed, t.TempDir(), Overrides{}, runHooks{backends: []Backend{CPU{}}})
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := ReadCSV(filepath.Join(dir, "speed.csv"))
	if len(tb.Rows) != 6 {
		t.Fatalf("speed: %d rows, want 3 methods x 2 lengths", len(tb.Rows))
	}
	for i := range tb.Rows {
		m := tb.Str(i, "method")
		if tb.Str(i, "clock") != "cpu-wallclock" || !(tb.Float(i, "median_us") > 0) {
			t.Errorf("%s: clock %q median %v, want cpu-wallclock and a time", m, tb.Str(i, "clock"), tb.Float(i, "median_us"))
		}
		if m == "dense" && tb.Float(i, "speedup") != 1 {
			t.Errorf("dense speedup %v, want 1", tb.Float(i, "speedup"))
		}
		if m == "hata" && (tb.Str(i, "score_us") == "" || tb.Str(i, "attend_us") == "" || !(tb.Float(i, "gbps") > 0)) {
			t.Errorf("hata row lacks stage times or GB/s: %v", tb.Rows[i])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "speed.png")); err != nil {
		t.Error(err)
	}
	// rbit: hata's codes are rows*n*rbit/8 bytes of its step's; the other
	// methods' bytes do not change.
	dir256, _, _, err := runTiny(t, context.Background(), speed, t.TempDir(), Overrides{Set: []string{"rbit=256"}}, runHooks{backends: []Backend{CPU{}}})
	if err != nil {
		t.Fatal(err)
	}
	tb256, _ := ReadCSV(filepath.Join(dir256, "speed.csv"))
	for i := range tb.Rows {
		m, n := tb.Str(i, "method"), int64(tb.Float(i, "n"))
		want := int64(tb.Float(i, "bytes"))
		if m == "hata" {
			want += 1 * 2 * n * (256 - 128) / 8 // B*Hkv rows
		}
		j := slices.IndexFunc(tb256.Rows, func(r []string) bool { return r[0] == m && r[2] == tb.Str(i, "n") })
		if j < 0 {
			t.Fatalf("%s N=%d: no row at rbit 256", m, n)
		}
		if got := int64(tb256.Float(j, "bytes")); got != want {
			t.Errorf("%s N=%d at rbit 256: %d bytes, want %d", m, n, got, want)
		}
	}

	// The CPU has no kernel variants: the run fails before any point.
	bd := `kind = "breakdown"
variants = ["hata", "hata/fused"]
ns = [256]
reps = 3
hq = 4
hkv = 2
d = 32
`
	bdRoot := t.TempDir()
	_, decodes, _, err := runTiny(t, context.Background(), bd, bdRoot, Overrides{}, runHooks{backends: []Backend{CPU{}}})
	if err == nil || !strings.Contains(err.Error(), `device cpu cannot run hata/fused: the CPU reference has no kernel variants ("fused"`) {
		t.Errorf("breakdown with a variant on the CPU: err = %v, want it refused before any point", err)
	}
	if entries, _ := os.ReadDir(bdRoot); decodes != 0 || len(entries) != 0 {
		t.Errorf("breakdown with a variant on the CPU: %d decodes, %d entries in the results root; want none", decodes, len(entries))
	}

	// A timed kind on one device listed twice: two points at once would
	// slow each other down.
	_, _, _, err = runTiny(t, context.Background(), strings.Replace(bd, `"hata/fused"`, `"dense"`, 1), t.TempDir(), Overrides{}, runHooks{backends: []Backend{CPU{}, CPU{}}})
	if err == nil || !strings.Contains(err.Error(), "devices: cpu and cpu are one device") {
		t.Errorf("breakdown on the CPU listed twice: err = %v, want it refused", err)
	}

	// A cache in host memory, or paired, is a GPU's question: the CPU
	// refuses it before any point, as it refuses variants.
	for _, key := range []string{"host_cache", "paired_kv"} {
		hcRoot := t.TempDir()
		_, decodes, _, err = runTiny(t, context.Background(), speed+key+" = true\n", hcRoot, Overrides{}, runHooks{backends: []Backend{CPU{}}})
		if err == nil || !strings.Contains(err.Error(), key+": device cpu") {
			t.Errorf("speed with %s on the CPU: err = %v, want it refused naming %s", key, err, key)
		}
		if entries, _ := os.ReadDir(hcRoot); decodes != 0 || len(entries) != 0 {
			t.Errorf("speed with %s on the CPU: %d decodes, %d entries in the results root; want none", key, decodes, len(entries))
		}
	}
	// paired_kv = false asks for the CPU's own layout: it runs.
	if _, _, _, err := runTiny(t, context.Background(), speed+"paired_kv = false\n", t.TempDir(), Overrides{}, runHooks{backends: []Backend{CPU{}}}); err != nil {
		t.Errorf("speed with paired_kv = false on the CPU: %v", err)
	}

	// A backend without a Timer cannot run a speed sweep.
	_, _, _, err = runTiny(t, context.Background(), speed, t.TempDir(), Overrides{}, runHooks{})
	if err == nil || !strings.Contains(err.Error(), "Timer") {
		t.Errorf("speed on a backend without Timer: err = %v", err)
	}
}

// TestKillHelper is the child of TestKill9: with HATA_KILL_OUT set it runs
// the tiny sweep into that directory and hangs after 4 points, to be killed.
func TestKillHelper(t *testing.T) {
	out := os.Getenv("HATA_KILL_OUT")
	if out == "" {
		t.Skip("helper process of TestKill9")
	}
	runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{afterPoint: func(n int) {
		if n == 4 {
			time.Sleep(time.Hour)
		}
	}})
}

func TestKill9(t *testing.T) {
	root := t.TempDir()
	full, _, _, err := runTiny(t, context.Background(), tiny, filepath.Join(root, "full"), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	want := readFile(t, filepath.Join(full, "budget.csv"))

	out := filepath.Join(root, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
	cmd.Env = append(os.Environ(), "HATA_KILL_OUT="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(out, "tiny", pointsDir, "*.json"))
		if len(files) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the helper stored %d points in 60 s", len(files))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to clean up
		t.Fatal(err)
	}
	cmd.Wait()

	dir, decodes, _, err := runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	if decodes != (15-4)*2 {
		t.Errorf("run after kill -9: %d decode steps, want the 11 missing points * 2 = 22", decodes)
	}
	if got := readFile(t, filepath.Join(dir, "budget.csv")); !bytes.Equal(got, want) {
		t.Errorf("CSV after kill -9 and resume differs from the uninterrupted run:\n%s\nwant\n%s", got, want)
	}
}

// TestGitCommit checks the order of the commit a result records: the
// link-time commit first; without it (test binaries carry no VCS stamp) the
// checkout's HEAD, marked as such, and "unknown" without git.
func TestGitCommit(t *testing.T) {
	old := buildCommit
	defer func() { buildCommit = old }()
	buildCommit = "0123abc"
	if got := gitCommit(); got != "0123abc" {
		t.Errorf("gitCommit() with a link-time commit = %q, want it", got)
	}
	buildCommit = ""
	got := gitCommit()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		if got != "unknown" {
			t.Errorf("gitCommit() without git = %q, want unknown", got)
		}
		return
	}
	if want := strings.TrimSpace(string(head)) + " (checkout HEAD)"; got != want {
		t.Errorf("gitCommit() without a link-time commit = %q, want %q", got, want)
	}
}

// broken is a backend whose methods cannot be made: with panics set,
// NewMethod panics instead of returning an error.
type broken struct {
	counting
	panics bool
}

func (b broken) NewMethod(name string, hkv, d int, o ref.Options) (ref.Method, error) {
	if b.panics {
		panic("broken backend")
	}
	return nil, errors.New("broken backend")
}

// TestForeignResultsDir: a results directory without config.json that holds
// anything but empty directories is refused by run and merge, and the
// user's file in it is left as it was; one that holds only an empty points/
// (a run stopped before its config was written) is taken.
func TestForeignResultsDir(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join(out, "tiny")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(dir, "budget.csv")
	if err := os.WriteFile(user, []byte("a,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, n, _, err := runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{})
	if err == nil || !strings.Contains(err.Error(), user) || !strings.Contains(err.Error(), "not a results directory") {
		t.Errorf("run into a directory holding a user's file: %v, want an error naming %s", err, user)
	}
	if n != 0 {
		t.Errorf("%d decode steps ran in a refused directory", n)
	}
	if err := Merge(dir, io.Discard, t.TempDir()); err == nil {
		t.Error("merge of a non-results directory: no error")
	}
	shard, _, _, err := runTiny(t, context.Background(), tiny, t.TempDir(), Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Merge(dir, io.Discard, shard); err == nil || !strings.Contains(err.Error(), user) {
		t.Errorf("merge into a directory holding a user's file: %v, want an error naming %s", err, user)
	}
	if b := readFile(t, user); string(b) != "a,b\n" {
		t.Errorf("the user's file now holds %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		t.Errorf("a refused directory got a %s", configFile)
	}

	// A user's file named as this program's temporary files are is the
	// user's all the same, outside points/.
	hidden := filepath.Join(t.TempDir(), "tiny")
	if err := os.MkdirAll(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(hidden, tempPrefix+"notes.txt")
	if err := os.WriteFile(notes, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := runTiny(t, context.Background(), tiny, filepath.Dir(hidden), Overrides{}, runHooks{}); err == nil || !strings.Contains(err.Error(), notes) {
		t.Errorf("run into a directory holding %s: %v, want an error naming it", notes, err)
	}
	if b, err := os.ReadFile(notes); err != nil || string(b) != "mine" {
		t.Errorf("%s: %q (%v), want the user's file as it was", notes, b, err)
	}

	stopped := filepath.Join(t.TempDir(), "tiny")
	if err := os.MkdirAll(filepath.Join(stopped, pointsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := runTiny(t, context.Background(), tiny, filepath.Dir(stopped), Overrides{}, runHooks{}); err != nil {
		t.Errorf("run into a directory holding only an empty %s/: %v", pointsDir, err)
	}
}

// TestFailedRunLeavesNothing: a run that finishes no point (every point's
// method fails, or panics) makes no results directory, so that the same
// config, corrected, runs under the same name; a panic in a point is that
// point's error, not a crash. A failing run never removes a directory (one
// with finished points, or one another run is filling).
func TestFailedRunLeavesNothing(t *testing.T) {
	// Without hata no weights are trained: nothing is written before a
	// point is. (With it the trained weights are kept for a re-run, in a
	// results directory of their own.)
	noHash := Overrides{Set: []string{`methods=["topk", "dense"]`}}
	corrected := Overrides{Set: []string{`methods=["topk", "dense"]`, "samples=1"}} // another config
	for _, panics := range []bool{false, true} {
		out := t.TempDir()
		bad := runHooks{backends: []Backend{broken{panics: panics}}}
		_, _, _, err := runTiny(t, context.Background(), tiny, out, noHash, bad)
		want := "broken backend"
		if panics {
			want = "internal error: broken backend"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("panics %v: %v, want an error with %q", panics, err, want)
		}
		if _, err := os.Stat(filepath.Join(out, "tiny")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("panics %v: the failed run's directory is left (%v)", panics, err)
		}
		if _, _, _, err := runTiny(t, context.Background(), tiny, out, corrected, runHooks{}); err != nil {
			t.Errorf("panics %v: the corrected config after a failed run: %v", panics, err)
		}
	}

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _, _, err := runTiny(t, ctx, tiny, out, Overrides{}, runHooks{afterPoint: func(n int) { cancel() }})
	if err == nil {
		t.Fatal("cancelled run: no error")
	}
	if _, _, _, err := runTiny(t, context.Background(), tiny, out, Overrides{}, runHooks{backends: []Backend{broken{}}}); err == nil {
		t.Fatal("failing run: no error")
	}
	if pts, _, err := readPoints(dir); err != nil || len(pts) == 0 {
		t.Errorf("a directory with finished points: %d points left (%v)", len(pts), err)
	}
}

// gpuLike is the counting backend with the Vulkan backend's rule of the
// methods it can run (Vulkan.CheckMethod, which needs no device).
type gpuLike struct {
	counting
	rule *Vulkan
}

func (g gpuLike) CheckMethod(method string, timed bool) error {
	return g.rule.CheckMethod(method, timed)
}

// TestMethodsCheckedFirst checks that a run whose devices include a GPU
// without kernels for one of its methods (magicpig) fails before any point
// runs and before its results directory is made, naming the device, the
// method and what to do; that "auto" (the CPU fallback) runs it; and that a
// timed kind refuses it even there.
func TestMethodsCheckedFirst(t *testing.T) {
	var n atomic.Int64
	cpu := counting{decodes: &n}
	out := t.TempDir()
	vkOnly := gpuLike{counting{name: "vk:0", decodes: &n}, &Vulkan{spec: "vk:0"}}
	set := Overrides{Set: []string{"methods=['topk','magicpig']", "budgets=[0.05]"}}
	dir, _, _, err := runTiny(t, context.Background(), tiny, out, set, runHooks{backends: []Backend{cpu, vkOnly}})
	if err == nil || !strings.Contains(err.Error(), "device vk:0 cannot run magicpig") || !strings.Contains(err.Error(), `devices = ["auto"]`) {
		t.Errorf("magicpig on a GPU: %v, want an error naming the device, the method and devices = [\"auto\"]", err)
	}
	if n.Load() != 0 {
		t.Errorf("magicpig on a GPU: %d decode steps ran before the error", n.Load())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("magicpig on a GPU: %s was made (%v)", dir, err)
	}
	auto := gpuLike{counting{name: "vk:0+cpu", decodes: &n}, &Vulkan{spec: "vk:0", cpuFallback: true}}
	if _, _, _, err := runTiny(t, context.Background(), tiny, out, set, runHooks{backends: []Backend{auto}}); err != nil {
		t.Errorf("magicpig with the CPU fallback: %v", err)
	}
	if n.Load() == 0 {
		t.Error("magicpig with the CPU fallback: no decode step ran")
	}
	speed := "kind = \"speed\"\nmethods = [\"dense\", \"magicpig\"]\n"
	exp, err := parse("speed.toml", speed, Overrides{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	_, err = runExperiment(context.Background(), exp, Overrides{Out: out}, io.Discard, runHooks{backends: []Backend{auto}})
	if err == nil || !strings.Contains(err.Error(), "no GPU kernels to time") {
		t.Errorf("timing magicpig on a GPU with the CPU fallback: %v, want an error", err)
	}
}

// TestResumeKeepsDevices: a resumed run's results.json names the devices of
// the runs before it too, which computed some of its points.
func TestResumeKeepsDevices(t *testing.T) {
	root := t.TempDir()
	dir, _, _, err := runTiny(t, context.Background(), tiny, root, Overrides{}, runHooks{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, resultsFile)
	var rec Record
	readJSON(t, path, &rec)
	earlier := DeviceRecord{Spec: "vk:0", DeviceInfo: DeviceInfo{Name: "an earlier run's GPU"}}
	rec.Devices = append(rec.Devices, earlier)
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := runTiny(t, context.Background(), tiny, root, Overrides{}, runHooks{}); err != nil {
		t.Fatal(err)
	}
	var after Record
	readJSON(t, path, &after)
	if len(after.Devices) != 2 || after.Devices[0].Spec != "cpu" || after.Devices[1] != earlier {
		t.Errorf("results.json devices after a resume: %+v, want this run's cpu and the earlier run's vk:0", after.Devices)
	}
}

// otherDevice is the counting backend under another spec and device, as a
// GPU's would be, to tell its points and results.json record apart from the
// CPU's.
type otherDevice struct{ counting }

func (otherDevice) Name() string { return "vk:0" }

func (otherDevice) Device() DeviceInfo {
	return DeviceInfo{Name: "a GPU", Driver: "its driver", API: "Vulkan 1.3"}
}

// TestInterruptedRunKeepsDevices: a run interrupted before it assembled
// (Ctrl-C) wrote no results.json, but the points it finished are in the
// CSV a resumed run assembles: results.json names its device too.
func TestInterruptedRunKeepsDevices(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	gpu := otherDevice{counting{decodes: &n}}
	dir, _, _, err := runTiny(t, ctx, tiny, root, Overrides{}, runHooks{
		backends:   []Backend{gpu},
		afterPoint: func(n int) { cancel() },
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	if _, _, _, err := runTiny(t, context.Background(), tiny, root, Overrides{}, runHooks{}); err != nil {
		t.Fatal(err)
	}
	csv := string(readFile(t, filepath.Join(dir, "budget.csv")))
	if !strings.Contains(csv, ",vk:0\n") || !strings.Contains(csv, ",cpu\n") {
		t.Fatalf("the resumed run's CSV has not points of both devices:\n%s", csv)
	}
	var rec Record
	readJSON(t, filepath.Join(dir, resultsFile), &rec)
	want := []DeviceRecord{{Spec: "cpu", DeviceInfo: CPU{}.Device()}, {Spec: "vk:0", DeviceInfo: gpu.Device()}}
	if !slices.Equal(rec.Devices, want) {
		t.Errorf("results.json devices %+v, want %+v: the interrupted run computed points of the CSV", rec.Devices, want)
	}
}

// TestResumeAtAnotherCommit checks that results.json names every build
// behind its CSV: a run interrupted after its first point at one commit and
// resumed at another lists both in commits, in the order of the points,
// and the later one as commit (the build that wrote the record).
func TestResumeAtAnotherCommit(t *testing.T) {
	old := buildCommit
	defer func() { buildCommit = old }()
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	buildCommit = "1111111"
	dir, _, _, err := runTiny(t, ctx, tiny, root, Overrides{}, runHooks{afterPoint: func(n int) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	buildCommit = "2222222"
	if _, _, _, err := runTiny(t, context.Background(), tiny, root, Overrides{}, runHooks{}); err != nil {
		t.Fatal(err)
	}
	var rec Record
	readJSON(t, filepath.Join(dir, resultsFile), &rec)
	if want := []string{"1111111", "2222222"}; rec.Commit != "2222222" || !slices.Equal(rec.Commits, want) {
		t.Errorf("results.json commit %q, commits %q; want 2222222 and %q", rec.Commit, rec.Commits, want)
	}
}
