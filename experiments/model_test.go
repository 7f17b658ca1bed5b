package experiments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The model kinds run the committed checkpoint (../weights) on tiny
// settings: prompts of 100-200 tokens, a few methods, one or two budgets.
// Budget 1 (the whole cache) is in most sweeps because there every top-k
// method must reproduce dense attention exactly, which is what these tests
// hold the pipeline to; the numbers at small budgets are only checked for
// range (what they are is PAPER.md's business).

// modelPaths points a model config at the repository's files from the
// package directory. The training text is a committed text that is not the
// held-out text (.data/train.txt is git-ignored).
const modelPaths = `[model]
dir = "../weights"
heldout = "../train/heldout.txt"
train_text = "../train/README.md"
`

const tinyNIAH = `kind = "niah"
name = "tniah"
methods = ["dense", "hata", "topk"]
budgets = [0.0625, 1]
contexts = [110]
depths = [0, 1]
trials = 1
[hash]
dir = "../weights/hash"
` + modelPaths

const tinyPerplexity = `kind = "perplexity"
name = "tppl"
methods = ["dense", "hata", "loki"]
budgets = [0.0625, 1]
windows = 1
length = 40
prompts = 1
prompt_bytes = 40
tokens = 4
[hash]
dir = ""
steps = 3
positions = 2
[options]
rbit = 32
loki_basis = "calibration"
` + modelPaths + `train_windows = 1
train_tokens = 64
`

const tinyThroughput = `kind = "throughput"
name = "ttp"
methods = ["dense", "hata", "streaming"]
contexts = [96, 128]
warmup = 1
tokens = 3
[hash]
dir = "../weights/hash"
` + modelPaths

const tinyModelBudget = `kind = "model_budget"
name = "tmb"
methods = ["hata", "lsh", "topk", "loki", "quest"]
budgets = [0.05, 1]
samples = 2
[trace]
tokens = 128
[hash]
weights = "../weights/hash/hash_weight_layer_02.npy"
` + modelPaths

const tinyModelRbit = `kind = "model_rbit"
name = "tmr"
rbits = [32, 64]
budgets = [0.05]
samples = 2
[trace]
tokens = 128
[hash]
steps = 3
positions = 2
` + modelPaths

// timingColumnsOf are the columns of a kind that hold wall-clock times, left
// out when two runs are compared.
var timingColumnsOf = map[string][]string{"throughput": {"seconds", "mean_ms", "median_ms", "tokens_per_s", "speedup", "prefill_s"}}

// stable returns the CSV of t without the columns in drop.
func stable(t *testing.T, path string, drop []string) string {
	t.Helper()
	tab, err := ReadCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range tab.Rows {
		for _, c := range tab.Columns {
			if !slices.Contains(drop, c) {
				b.WriteString(tab.Str(i, c) + ",")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestModelKinds runs every model kind end to end and checks what must hold
// whatever the model: complete rows, dense reproduced at the full budget,
// budgets read the fraction they say, the figures written. Then it
// interrupts the same sweep after its first points and resumes it: the
// resumed run computes only the missing points, reuses the cached traces and
// weights, and writes the CSV an uninterrupted run writes (less the
// wall-clock columns); a third run computes nothing.
func TestModelKinds(t *testing.T) {
	near := func(a, b float64) bool { return a-b < 1e-9*b && b-a < 1e-9*b }
	for _, tc := range []struct {
		kind, text string
		stop       int // points stored before the interruption
		check      func(t *testing.T, tab *Table, dir, stderr string)
	}{
		{"niah", tinyNIAH, 1, func(t *testing.T, tab *Table, dir, stderr string) {
			// 2 cells x (dense + 2 methods x 2 budgets)
			if len(tab.Rows) != 2*5 {
				t.Fatalf("%d rows, want 10", len(tab.Rows))
			}
			dense := map[string][2]float64{}
			for i := range tab.Rows {
				if tab.Str(i, "method") == "dense" {
					dense[tab.Str(i, "depth")] = [2]float64{tab.Float(i, "accuracy"), tab.Float(i, "digit_accuracy")}
				}
			}
			for i := range tab.Rows {
				cell := tab.Str(i, "depth")
				a, d, read := tab.Float(i, "accuracy"), tab.Float(i, "digit_accuracy"), tab.Float(i, "read_frac")
				if !(a >= 0 && a <= 1 && d >= 0 && d <= 1) {
					t.Errorf("row %v: accuracy out of [0, 1]", tab.Rows[i])
				}
				switch tab.Str(i, "budget") {
				case "1":
					if w := dense[cell]; a != w[0] || d != w[1] || read != 1 {
						t.Errorf("%s at the full budget, depth %s: accuracy %v digits %v read %v; dense %v, read 1", tab.Str(i, "method"), cell, a, d, read, w)
					}
				case "0.0625":
					if !(read > 0.04 && read < 0.07) {
						t.Errorf("%s at budget 0.0625 read %v of the cache", tab.Str(i, "method"), read)
					}
				default:
					t.Errorf("row %v: budget not in the config", tab.Rows[i])
				}
			}
		}},
		{"perplexity", tinyPerplexity, 2, func(t *testing.T, tab *Table, dir, stderr string) {
			if len(tab.Rows) != 1+2*2 {
				t.Fatalf("%d rows, want 5", len(tab.Rows))
			}
			if !strings.Contains(stderr, "training") || !strings.Contains(stderr, "calibrating Loki") {
				t.Errorf("stderr %q: want hash training and Loki calibration on the training text", stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "hash", "hash_weight_layer_02.npy")); err != nil {
				t.Errorf("trained hash weights not cached: %v", err)
			}
			if tab.Str(0, "method") != "dense" || tab.Float(0, "agreement") != 1 || tab.Float(0, "read_frac") != 1 {
				t.Errorf("first row %v, want the dense reference", tab.Rows[0])
			}
			for i := range tab.Rows {
				bpb, ag, g := tab.Float(i, "bits_per_byte"), tab.Float(i, "agreement"), tab.Float(i, "greedy_agreement")
				if !(bpb > 0.1 && bpb < 10 && ag >= 0 && ag <= 1 && g >= 0 && g <= 1) || tab.Str(i, "predicted") != "19" {
					t.Errorf("row %v out of range (want 19 predictions, 0.1 < bits/byte < 10)", tab.Rows[i])
				}
				if i > 0 && tab.Str(i, "budget") == "1" {
					if bpb != tab.Float(0, "bits_per_byte") || ag != 1 || g != 1 || tab.Float(i, "first_divergence") != 4 {
						t.Errorf("%s at the full budget: %v; want dense's bits/byte %v and agreement 1", tab.Str(i, "method"), tab.Rows[i], tab.Float(0, "bits_per_byte"))
					}
				}
			}
		}},
		{"throughput", tinyThroughput, 3, func(t *testing.T, tab *Table, dir, stderr string) {
			if len(tab.Rows) != 2*3 {
				t.Fatalf("%d rows, want 6", len(tab.Rows))
			}
			for i := range tab.Rows {
				tps, sp := tab.Float(i, "tokens_per_s"), tab.Float(i, "speedup")
				mean, med := tab.Float(i, "mean_ms"), tab.Float(i, "median_ms")
				if !(tps > 0) || !(sp > 0) || !near(tps*med, 1000) || !near(3*mean, 1000*tab.Float(i, "seconds")) {
					t.Errorf("row %v: want tokens/s = 1000/median_ms > 0, a speedup, and mean_ms = seconds/3 in ms", tab.Rows[i])
				}
				read := tab.Float(i, "read_frac")
				switch tab.Str(i, "method") {
				case "dense":
					if sp != 1 || read != 1 {
						t.Errorf("dense row %v: want speedup 1 and read 1", tab.Rows[i])
					}
				default:
					if !(read > 0.005 && read < 0.03) {
						t.Errorf("%s at 1.56%% read %v of the cache", tab.Str(i, "method"), read)
					}
				}
			}
		}},
		{"model_budget", tinyModelBudget, 3, func(t *testing.T, tab *Table, dir, stderr string) {
			if len(tab.Rows) != 5*2 {
				t.Fatalf("%d rows, want 10", len(tab.Rows))
			}
			for _, tr := range []string{"trace-eval", "trace-train"} { // train: Loki's calibration
				if _, err := os.Stat(filepath.Join(dir, tr, "layer_02_kpre.npy")); err != nil {
					t.Errorf("%s: %v", tr, err)
				}
			}
			for i := range tab.Rows {
				m, b, rec, l2 := tab.Str(i, "method"), tab.Str(i, "budget"), tab.Float(i, "recall"), tab.Float(i, "rel_l2")
				if !(rec >= 0 && rec <= 1) || tab.Str(i, "n") != "96" {
					t.Errorf("row %v: recall out of [0, 1] or n not 96 (keys 0..95 of the first position, 95, of 128 tokens)", tab.Rows[i])
				}
				if m == "topk" && rec != 1 || b == "1" && (rec != 1 || l2 > 1e-6) {
					t.Errorf("%s at budget %s: recall %v, rel_l2 %v; want the oracle's recall 1 (and error 0 at the full budget)", m, b, rec, l2)
				}
			}
		}},
		{"model_rbit", tinyModelRbit, 2, func(t *testing.T, tab *Table, dir, stderr string) {
			if len(tab.Rows) != 2*2 {
				t.Fatalf("%d rows, want 4", len(tab.Rows))
			}
			for _, f := range []string{"W_rbit32.npy", "W_rbit64.npy", "trace-train/layer_02_q.npy"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			root := t.TempDir()
			full, want, stderr, err := runTiny(t, context.Background(), tc.text, filepath.Join(root, "full"), Overrides{}, runHooks{})
			if err != nil {
				t.Fatalf("%v\nstderr: %s", err, stderr)
			}
			if want == 0 {
				t.Errorf("no decode step ran on the worker's backend")
			}
			var rec struct {
				Figures []string `json:"figures"`
				Missing []int    `json:"missing"`
			}
			readJSON(t, filepath.Join(full, resultsFile), &rec)
			if len(rec.Missing) != 0 || len(rec.Figures) == 0 {
				t.Errorf("results.json: missing %v, figures %v; want none missing and some figures", rec.Missing, rec.Figures)
			}
			for _, f := range rec.Figures {
				if st, err := os.Stat(filepath.Join(full, f)); err != nil || st.Size() < 1000 {
					t.Errorf("figure %s: %v", f, err)
				}
			}
			csv := tc.kind + ".csv"
			tab, err := ReadCSV(filepath.Join(full, csv))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, tab, full, stderr)

			out := filepath.Join(root, "resumed")
			ctx, cancel := context.WithCancel(context.Background())
			_, first, _, err := runTiny(t, ctx, tc.text, out, Overrides{}, runHooks{afterPoint: func(n int) {
				if n == tc.stop {
					cancel()
				}
			}})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
			}
			dir, second, stderr, err := runTiny(t, context.Background(), tc.text, out, Overrides{}, runHooks{})
			if err != nil {
				t.Fatal(err)
			}
			if first+second != want || first == 0 || second == 0 {
				t.Errorf("interrupted + resumed runs: %d + %d decode steps, want the uninterrupted %d split between them", first, second, want)
			}
			if strings.Contains(stderr, "training") || strings.Contains(stderr, "tracing") {
				t.Errorf("resumed run retrained or retraced (stderr %q); want the cached weights and traces", stderr)
			}
			drop := timingColumnsOf[tc.kind]
			if got, w := stable(t, filepath.Join(dir, csv), drop), stable(t, filepath.Join(full, csv), drop); got != w {
				t.Errorf("resumed %s:\n%s\nwant the uninterrupted\n%s", csv, got, w)
			}
			if _, n, _, err := runTiny(t, context.Background(), tc.text, out, Overrides{}, runHooks{}); err != nil || n != 0 {
				t.Errorf("re-run of a finished sweep: %d decode steps, err %v; want 0, nil", n, err)
			}
		})
	}
}

// TestModelInputsChanged checks that a resumed run whose checkpoint or texts
// changed is refused rather than mixed into the old points.
func TestModelInputsChanged(t *testing.T) {
	root := t.TempDir()
	held := filepath.Join(root, "heldout.txt")
	text := readFile(t, "../train/heldout.txt")[:20000]
	if err := os.WriteFile(held, text, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(tinyThroughput, `heldout = "../train/heldout.txt"`, `heldout = "`+filepath.ToSlash(held)+`"`, 1)
	cfg = strings.Replace(cfg, `contexts = [96, 128]`, `contexts = [96]`, 1)
	ctx, cancel := context.WithCancel(context.Background())
	_, _, _, err := runTiny(t, ctx, cfg, root, Overrides{}, runHooks{afterPoint: func(int) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	if err := os.WriteFile(held, bytes.ToUpper(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = runTiny(t, context.Background(), cfg, root, Overrides{}, runHooks{})
	if err == nil || !strings.Contains(err.Error(), "heldout.txt changed") {
		t.Errorf("resume with a changed held-out text: err = %v, want one naming heldout.txt", err)
	}
}

// TestCheckInputsRecord checks checkInputs on its record, inputs.json: the
// first call writes it, a call over the same files passes, a changed file
// is refused by name, a record that does not parse is an error naming it
// with the way out, and one that cannot be read is that read's error.
func TestCheckInputsRecord(t *testing.T) {
	dir, text := t.TempDir(), filepath.Join(t.TempDir(), "text.txt")
	os.WriteFile(text, []byte("one"), 0o644)
	e := &env{dir: dir, stderr: io.Discard}
	if err := checkInputs(e, "../weights", []string{text}); err != nil {
		t.Fatalf("first run: %v", err)
	}
	var sums map[string]string
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, inputsFile)), &sums); err != nil || len(sums) != 5 {
		t.Errorf("the record after the first run: %v, err %v; want config.json, 3 shards and the text", sums, err)
	}
	if err := checkInputs(e, "../weights", []string{text}); err != nil {
		t.Errorf("same files again: %v", err)
	}
	os.WriteFile(text, []byte("two"), 0o644)
	if err := checkInputs(e, "../weights", []string{text}); err == nil || !strings.Contains(err.Error(), "text.txt changed") {
		t.Errorf("changed text: err = %v, want one naming text.txt", err)
	}
	record := filepath.Join(dir, inputsFile)
	os.WriteFile(record, []byte("{"), 0o644)
	err := checkInputs(e, "../weights", []string{text})
	if err == nil || !strings.Contains(err.Error(), record) || !strings.Contains(err.Error(), "remove it to accept the current files") {
		t.Errorf("unparsable record: err = %v, want one naming %s and saying to remove it", err, record)
	}
	os.Remove(record)
	os.Mkdir(record, 0o755)
	err = checkInputs(e, "../weights", []string{text})
	if err == nil || !strings.Contains(err.Error(), "is a directory") || strings.Contains(err.Error(), "remove it") {
		t.Errorf("unreadable record: err = %v, want the read's error alone", err)
	}
}

// TestModelConfigErrors checks the model kinds' own validation.
func TestModelConfigErrors(t *testing.T) {
	for _, tc := range []struct{ text, key string }{
		{"kind = \"niah\"\ncontexts = [50]\n", "contexts"},
		{"kind = \"niah\"\ndepths = [1.5]\n", "depths"},
		{"kind = \"perplexity\"\nbudgets = [16]\n", "budgets"},
		{"kind = \"perplexity\"\n[model]\ntrain_text = \"train/heldout.txt\"\n", "model.train_text"},
		{"kind = \"throughput\"\ntokens = 0\n", "tokens"},
		{"kind = \"model_budget\"\nsamples = 2\n[trace]\npositions = [1, 2, 3]\n", "trace.positions"},
		{"kind = \"model_rbit\"\n[hash]\nweights = \"w.npy\"\n", "hash.weights"},
	} {
		_, err := parse("bad.toml", tc.text, Overrides{})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%q: err = %v, want a ConfigError for key %q", tc.text, err, tc.key)
		}
	}
}

// readJSON decodes the JSON file at path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(readFile(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestModelFilesCheckedFirst: a model kind whose training text (or
// checkpoint, or held-out text) is missing fails before any point, naming
// the key and what makes the file, and leaves no results directory; the
// same kind that does not read the training text runs without it.
func TestModelFilesCheckedFirst(t *testing.T) {
	for _, c := range []struct{ old, new, key string }{
		{`train_text = "../train/README.md"`, `train_text = "../no/train.txt"`, "model.train_text: stat ../no/train.txt"},
		{`dir = "../weights"`, `dir = "../no-weights"`, "model.dir: stat ../no-weights/config.json"},
		{`heldout = "../train/heldout.txt"`, `heldout = "../no/heldout.txt"`, "model.heldout"},
	} {
		root := t.TempDir()
		cfg := writeConfig(t, "p.toml", strings.Replace(tinyPerplexity, c.old, c.new, 1))
		_, err := RunContext(context.Background(), cfg, Overrides{Out: root}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: err = %v, want one naming %q", c.new, err, c.key)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("%s: the failed run left %d entries in its results root", c.new, len(entries))
		}
	}
	// Trained weights given and Loki's basis from the prefill: the training
	// text is not read, so its absence is no error.
	text := strings.Replace(tinyPerplexity, `train_text = "../train/README.md"`, `train_text = "../no/train.txt"`, 1)
	text = strings.Replace(strings.Replace(text, `dir = ""`, `dir = "../weights/hash"`, 1), `loki_basis = "calibration"`, `loki_basis = "prefill"`, 1)
	text = strings.Replace(text, "rbit = 32", "rbit = 128", 1)
	exp, err := parse("p.toml", text, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	f, train := exp.(fileReader).readsFiles()
	if train || f.check(train) != nil {
		t.Errorf("perplexity with weights and loki_basis = prefill: reads the training text %v, check %v; want neither", train, f.check(train))
	}
}
