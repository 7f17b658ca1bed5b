package experiments

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hata-go/hata/tensorio"
)

// writeConfig writes a config file named name into a temporary directory.
func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigDefaults(t *testing.T) {
	path := writeConfig(t, "mine.toml", "kind = \"budget\"\n")
	exp, err := Load(path, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultBudget()
	want.Name, want.Devices = "mine", []string{"cpu"}
	if !reflect.DeepEqual(exp, want) {
		t.Errorf("Load(kind only) = %+v\nwant the defaults %+v", exp, want)
	}
	for _, kind := range Kinds {
		checkLoads(t, "kind "+kind+", its defaults,", writeConfig(t, kind+".toml", "kind = \""+kind+"\"\n"))
	}
}

// checkLoads asserts that the config file at path (what, in a failure)
// loads, validates and gives points.
func checkLoads(t *testing.T, what, path string) {
	t.Helper()
	exp, err := Load(path, Overrides{})
	if err != nil {
		t.Errorf("%s: Load error %v", what, err)
		return
	}
	if len(exp.points()) == 0 {
		t.Errorf("%s: no points", what)
	}
}

func TestConfigOverrides(t *testing.T) {
	path := writeConfig(t, "f.toml", `kind = "budget"
name = "fromfile"
budgets = [0.01, 0.02]
samples = 3
[synth]
n = 512
hq = 8
hkv = 2
`)
	exp, err := Load(path, Overrides{
		Set:     []string{"synth.n=256", "methods=['topk','quest']", "name=fromflag"},
		Devices: []string{"cpu", "cpu"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := exp.(*BudgetConfig)
	for _, chk := range []struct {
		what      string
		got, want any
	}{
		{"synth.n (flag over file)", c.Synth.N, 256},
		{"synth.hq (file over default)", c.Synth.Hq, 8},
		{"synth.d (default)", c.Synth.D, 128},
		{"samples (file)", c.Samples, 3},
		{"methods (flag)", c.Methods, []string{"topk", "quest"}},
		{"budgets (file)", c.Budgets, []float64{0.01, 0.02}},
		{"name (flag, unquoted string)", c.Name, "fromflag"},
		{"devices (flag)", c.Devices, []string{"cpu", "cpu"}},
	} {
		if !reflect.DeepEqual(chk.got, chk.want) {
			t.Errorf("%s = %v, want %v", chk.what, chk.got, chk.want)
		}
	}
}

// configErr asserts that err is a *ConfigError at file:line naming key.
func configErr(t *testing.T, err error, file string, line int, key string) {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v, want a *ConfigError", err)
	}
	if ce.File != file || ce.Line != line || ce.Key != key {
		t.Errorf("error = %q: file %q line %d key %q; want %q line %d key %q", err, ce.File, ce.Line, ce.Key, file, line, key)
	}
	if line > 0 && !strings.Contains(err.Error(), file+":"+itoa(line)) {
		t.Errorf("error %q does not say %s:%d", err, file, line)
	}
	if key != "" && !strings.Contains(err.Error(), key) {
		t.Errorf("error %q does not name key %q", err, key)
	}
}

func itoa(i int) string { return fmtInt(i) }

// configErrCase is a config text, loaded with the -set overrides set, that
// Load must refuse with a *ConfigError at line of the file (the config file,
// or "flag -set" when flag) naming key.
type configErrCase struct {
	name string // the config file's name; "" is c.toml
	text string
	set  []string
	flag bool
	line int
	key  string
}

// checkConfigErrs runs configErr over the cases.
func checkConfigErrs(t *testing.T, cases []configErrCase) {
	t.Helper()
	for _, tc := range cases {
		name := tc.name
		if name == "" {
			name = "c.toml"
		}
		path := writeConfig(t, name, tc.text)
		_, err := Load(path, Overrides{Set: tc.set})
		file := path
		if tc.flag {
			file = "flag -set"
		}
		configErr(t, err, file, tc.line, tc.key)
	}
}

func TestUnknownKeys(t *testing.T) {
	checkConfigErrs(t, []configErrCase{
		{name: "typo.toml", text: `kind = "budget"
methods = ["hata"]

[synth]
n = 1024
needel_boost = 3
`, line: 6, key: "synth.needel_boost"},
		{name: "table.toml", text: "kind = \"rbit\"\nbudgets = [0.01]\n[speed]\nreps = 3\n", line: 3, key: "speed"},
		// A key of another kind is unknown to this one.
		{name: "other.toml", text: "kind = \"speed\"\n\nrbits = [32]\n", line: 3, key: "rbits"},
		{name: "ok.toml", text: "kind = \"budget\"\n", set: []string{"samples=2", "synth.bogus=1"}, flag: true, line: 2, key: "synth.bogus"},
		{name: "nokind.toml", text: "name = \"x\"\n", line: 0, key: "kind"},
		{name: "badkind.toml", text: "\nkind = \"budgt\"\n", line: 2, key: "kind"},
		{name: "syntax.toml", text: "kind = \"budget\"\nsamples = = 3\n", line: 2, key: "samples"},
		// An unclosed header is reported at its own line, by its name (the
		// parser stops on the next line, in the table before).
		{name: "header.toml", text: "kind = \"budget\"\n[synth]\nn = 256\n[train\nn = 256\n", line: 4, key: "train"},
		{name: "array.toml", text: "kind = \"budget\"\n[synth]\nn = 256\n[[hash]\nsteps = 2\n", line: 4, key: "hash"},
		{name: "quoted.toml", text: "kind = \"budget\"\n[synth]\nn = 256\n[\"train\nn = 2\n", line: 4, key: "train"},
		{name: "type.toml", text: "kind = \"budget\"\n\nsamples = \"four\"\n", line: 3, key: "samples"},
		// A -set value that opens an array (or a table, or a string) but does
		// not parse is that error, not a string of the key's wrong type.
		{name: "ok.toml", text: "kind = \"budget\"\n", set: []string{"budgets=[0.1,"}, flag: true, key: "budgets"},
		{name: "ok.toml", text: "kind = \"budget\"\n", set: []string{`name="fig`}, flag: true, key: "name"},
		// A name with a control character would make a directory of that name.
		{name: "ok.toml", text: "kind = \"budget\"\n", set: []string{`name="a\nb"`}, flag: true, line: 1, key: "name"},
	})
	// A key set twice takes the last value, as flags do; a bare value that
	// TOML reads as a number or a date is a string where the key is one.
	for _, c := range []struct {
		set  []string
		name string
	}{
		{[]string{"name=a", "name=b"}, "b"},
		{[]string{"name=2024"}, "2024"},
		{[]string{"name=2024-06-01", "samples=3"}, "2024-06-01"},
		{[]string{"name=true"}, "true"},
	} {
		exp, err := Load(writeConfig(t, "ok.toml", "kind = \"budget\"\n"), Overrides{Set: c.set})
		if err != nil || exp.common().Name != c.name {
			t.Errorf("-set %q: %v, name %q; want name %q", c.set, err, exp.common().Name, c.name)
		}
	}
	if exp, err := Load(writeConfig(t, "ok.toml", "kind = \"budget\"\n"), Overrides{Set: []string{"samples=2", "samples=3"}}); err != nil || exp.(*BudgetConfig).Samples != 3 {
		t.Errorf("-set samples=2 -set samples=3: %v; want samples 3", err)
	}
	// A number where the key is a number is not quoted: samples="x" stays an error.
	checkConfigErrs(t, []configErrCase{{text: "kind = \"budget\"\n", set: []string{"samples=two"}, flag: true, line: 1, key: "samples"}})
	// A bare string is still quoted for the user.
	if exp, err := Load(writeConfig(t, "ok.toml", "kind = \"budget\"\n"), Overrides{Set: []string{"name=fig5-h200"}}); err != nil || exp.common().Name != "fig5-h200" {
		t.Errorf("-set name=fig5-h200: %v", err)
	}
	_, err := Load(writeConfig(t, "ok.toml", "kind = \"budget\"\n"), Overrides{Set: []string{"budgets=[0.1,"}})
	if err == nil || !strings.Contains(err.Error(), "not a TOML value") || strings.Contains(err.Error(), "type string") {
		t.Errorf("-set budgets=[0.1,: %v, want it called not a TOML value", err)
	}
}

func TestOutOfRange(t *testing.T) {
	checkConfigErrs(t, []configErrCase{
		{text: "kind = \"budget\"\n[synth]\nhq = 32\nhkv = 5\n", line: 4, key: "synth.hkv"},
		{text: "kind = \"budget\"\nbudgets = [0.01, -2]\n", line: 2, key: "budgets"},
		{text: "kind = \"budget\"\nmethods = [\"hata\", \"nope\"]\n", line: 2, key: "methods"},
		{text: "kind = \"budget\"\n[options]\nrbit = 100\n", line: 3, key: "options.rbit"},
		{text: "kind = \"budget\"\nsamples = 0\n", line: 2, key: "samples"},
		{text: "kind = \"budget\"\ntrain.seed = 1001\n", line: 2, key: "train.seed"},
		{text: "kind = \"budget\"\nsample_seed = -1\n", line: 2, key: "sample_seed"},
		{text: "kind = \"budget\"\n[hash]\nseed = -5\n", line: 3, key: "hash.seed"},
		{text: "kind = \"budget\"\n", set: []string{"train.seed=-5"}, flag: true, line: 1, key: "train.seed"},
		{text: "kind = \"rbit\"\nrbits = [32, 48]\n", line: 2, key: "rbits"},
		{text: "kind = \"speed\"\nns = [1024, 0]\n", line: 2, key: "ns"},
		{text: "kind = \"speed\"\nmethods = [\"dense\", \"dense/bogus\"]\n", line: 2, key: "methods"},
		{text: "kind = \"breakdown\"\nvariants = [\"hata/naive\", \"hata/bogus\"]\n", line: 2, key: "variants"},
		{text: "kind = \"breakdown\"\nb = 0\n", line: 2, key: "b"},
		{text: "kind = \"speed\"\n\nrbit = 100\n", line: 3, key: "rbit"},
		{text: "kind = \"breakdown\"\nrbit = 2048\n", line: 2, key: "rbit"},
		{text: "kind = \"training\"\neval_every = 0\n", line: 2, key: "eval_every"},
		{text: "kind = \"budget\"\ninput = \"trace\"\n", line: 0, key: "trace.dir"}, // a default out of range: no line
		// An override out of range is reported at the flag.
		{text: "kind = \"budget\"\n", set: []string{"synth.group_corr=2"}, flag: true, line: 1, key: "synth.group_corr"},
	})
}

func TestKeyLine(t *testing.T) {
	src := `kind = "x"   # comment
a.b = 1
[t]
x = 2
"quoted key" = 3
[t.u]
y = [
  1, 2,
]
`
	for _, tc := range []struct {
		key  []string
		want int
	}{
		{[]string{"kind"}, 1}, {[]string{"a", "b"}, 2}, {[]string{"a"}, 2}, {[]string{"t"}, 3},
		{[]string{"t", "x"}, 4}, {[]string{"t", "quoted key"}, 5}, {[]string{"t", "u", "y"}, 7},
		{[]string{"x"}, 0}, {[]string{"t", "z"}, 0},
	} {
		if got := keyLine(src, tc.key); got != tc.want {
			t.Errorf("keyLine(%v) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/*.toml")
	if err != nil || len(files) < 6 {
		t.Fatalf("configs/*.toml: %v files, %v; want quick, fig5, fig7, fig8, fig9, training", len(files), err)
	}
	for _, f := range files {
		checkLoads(t, f, f)
	}
}

func TestParseShard(t *testing.T) {
	if s, err := ParseShard("1/3"); err != nil || s != (Shard{1, 3}) {
		t.Errorf("ParseShard(1/3) = %v, %v", s, err)
	}
	for _, bad := range []string{"3/3", "-1/2", "1", "a/b", "0/0"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) = nil error", bad)
		}
	}
}

// TestEveryRangeCheck sets each checked key, one at a time, to a value out of
// its range through -set and wants the ConfigError to name that key: every
// branch of the configs' range checks (synth's, the method options', the
// hash's, the model kinds') is reached, so none can name the wrong key or
// let a bad value through unnoticed.
func TestEveryRangeCheck(t *testing.T) {
	budget, model := "kind = \"budget\"\n", "kind = \"model_budget\"\nsamples = 2\n"
	for _, tc := range []struct {
		text, set, key string
	}{
		{budget, "synth.b=0", "synth.b"},
		{budget, "synth.hq=0", "synth.hq"},
		{budget, "synth.n=0", "synth.n"},
		{budget, "synth.theta=1", "synth.theta"},
		{budget, "synth.rank=0", "synth.rank"},
		{budget, "synth.rank=129", "synth.rank"},
		{budget, "synth.rank_decay=0", "synth.rank_decay"},
		{budget, "synth.rank_decay=1.5", "synth.rank_decay"},
		{budget, "synth.low_freq_tilt=9", "synth.low_freq_tilt"},
		{budget, "synth.noise=-1", "synth.noise"},
		{budget, "synth.outlier_pairs=33", "synth.outlier_pairs"},
		{budget, "synth.outlier_scale=-1", "synth.outlier_scale"},
		{budget, "synth.query_bias=-1", "synth.query_bias"},
		{budget, "synth.key_norm=-1", "synth.key_norm"},
		{budget, "synth.sinks=-1", "synth.sinks"},
		{budget, "synth.sinks=1,synth.outlier_pairs=0", "synth.sinks"},
		{budget, "synth.sink_boost=-1", "synth.sink_boost"},
		{budget, "synth.needles=-1", "synth.needles"},
		{budget, "synth.needles=70000,synth.n=200000", "synth.needles"},
		{budget, "synth.needle_boost=-1", "synth.needle_boost"},
		{budget, "synth.recency_window=-1", "synth.recency_window"},
		{budget, "synth.recency_boost=-1", "synth.recency_boost"},
		{budget, "synth.needles=1,synth.needle_positions=[1.0]", "synth.needle_positions"},
		{budget, "synth.needles=2,synth.needle_positions=[0.001,0.5]", "synth.needle_positions"}, // among the sinks
		{budget, "synth.n=8", "synth.needles"},                                                   // spread evenly, among the sinks
		{budget, "options.sink=-1", "options.sink"},
		{budget, "options.recent=-1", "options.recent"},
		{budget, "options.loki_channels=0", "options.loki_channels"},
		{budget, `options.loki_basis="pca"`, "options.loki_basis"},
		{budget, "options.page_size=0", "options.page_size"},
		{budget, "options.sink_tokens=-1", "options.sink_tokens"},
		{budget, "options.magicpig_k=33", "options.magicpig_k"},
		{budget, "methods=[]", "methods"},
		{budget, `methods=["hata","hata"]`, "methods"},
		{budget, "budgets=[]", "budgets"},
		{budget, "hash.steps=-1", "hash.steps"},
		{budget, "hash.lr=0", "hash.lr"},
		{budget, "hash.positions=0", "hash.positions"},
		{budget, `hash.weights="no/such/w.npy"`, "hash.weights"},
		{model, `model.dir=""`, "model.dir"},
		{model, `model.heldout=""`, "model.heldout"},
		{model, `model.train_text=""`, "model.train_text"},
		{model, "model.dense_layers=-1", "model.dense_layers"},
		{model, "model.train_windows=0", "model.train_windows"},
		{model, "trace.layer=-1", "trace.layer"},
		{model, "trace.tokens=3", "trace.tokens"},
		{model, "trace.offset=-1", "trace.offset"},
		{model, "trace.train_offset=-1", "trace.train_offset"},
		{"kind = \"throughput\"\n", "offset=-1", "offset"},
		{"kind = \"speed\"\n", `methods=["dense","hata/"]`, "methods"},
		{model, "trace.positions=[5,5]", "trace.positions"},
		{model, "trace.tokens=8,samples=5", "samples"},
		{budget, `input="trace",trace.dir="t",samples=2,trace.positions=[7,7]`, "trace.positions"},
	} {
		_, err := parse("c.toml", tc.text, Overrides{Set: strings.Split(tc.set, ",")})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("-set %s: err = %v, want a ConfigError for key %q", tc.set, err, tc.key)
		}
	}
}

// TestWriteDefaults: the defaults of every kind, written as TOML, load back
// as a config equal to the kind's defaults (name from the file's name,
// devices ["cpu"]), so that what hata run -defaults prints is every key
// there is, spelled as the parser takes it.
func TestWriteDefaults(t *testing.T) {
	for _, kind := range Kinds {
		var b strings.Builder
		if err := WriteDefaults(&b, kind); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !strings.Contains(b.String(), "kind = \""+kind+"\"") || strings.Contains(b.String(), "name = ") {
			t.Errorf("%s: the defaults name their kind and leave name out:\n%s", kind, b.String())
		}
		got, err := parse(kind+".toml", b.String(), Overrides{})
		if err != nil {
			t.Errorf("%s: the written defaults do not load: %v\n%s", kind, err, b.String())
			continue
		}
		// The keys left empty, which the header names, are keys of the kind.
		if _, list, ok := strings.Cut(b.String(), "not written below: "); ok {
			list, _, _ = strings.Cut(list, ".\n")
			for _, k := range strings.Split(list, ", ") {
				v := "[]"
				switch k {
				case "weights_by_rbit":
					v = "{}"
				case "paired_kv":
					v = "true"
				}
				if _, err := parse(kind+".toml", b.String(), Overrides{Set: []string{k + "=" + v}}); err != nil {
					t.Errorf("%s: the header names %s, which -set %s=%s refuses: %v", kind, k, k, v, err)
				}
			}
		} else if kind == "budget" {
			t.Errorf("budget: the header does not name the keys left empty (synth.needle_positions, trace.positions)")
		}
		want, _ := newExperiment(kind)
		want.common().Name, want.common().Devices = kind, []string{"cpu"}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: the written defaults load as another config:\n%+v\nwant\n%+v", kind, got, want)
		}
	}
	if err := WriteDefaults(io.Discard, "bugdet"); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Errorf("WriteDefaults(bugdet): %v, want an error listing the kinds", err)
	}
}

// TestWeightsFileChecked: a weights file of another shape or width than the
// synthetic layer's is a key error when the config loads, before any point.
func TestWeightsFileChecked(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, "w.npy") // [Hkv=2][D=16][Rbit=64]
	if err := tensorio.WriteNPYFloat32(w, []int{2, 16, 64}, make([]float32, 2*16*64)); err != nil {
		t.Fatal(err)
	}
	base := "kind = \"budget\"\nmethods = [\"hata\"]\n[synth]\nhq = 4\nhkv = 2\nd = 16\nn = 256\nrank = 8\n[options]\nrbit = 64\n[hash]\nweights = \"" + w + "\"\n"
	if _, err := parse("ok.toml", base, Overrides{}); err != nil {
		t.Fatalf("weights of the layer's shape: %v", err)
	}
	for _, c := range []struct{ text, key, want string }{
		{strings.Replace(base, "hkv = 2", "hkv = 1", 1), "hash.weights", "synth.hkv=1 synth.d=16"},
		{strings.Replace(base, "rbit = 64", "rbit = 128", 1), "hash.weights", "has rbit 64, the experiment uses 128"},
		{strings.Replace(base, w, filepath.Join(dir, "none.npy"), 1), "hash.weights", "none.npy"},
	} {
		_, err := parse("c.toml", c.text, Overrides{})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(ce.Msg, c.want) {
			t.Errorf("err = %v, want a ConfigError for %s saying %q", err, c.key, c.want)
		}
	}
	// The rbit ablation's files, by width.
	rb := "kind = \"rbit\"\nrbits = [64]\nweights_by_rbit = { \"64\" = \"" + w + "\" }\n[synth]\nhq = 4\nhkv = 2\nd = 16\nn = 256\nrank = 8\n"
	if _, err := parse("ok.toml", rb, Overrides{}); err != nil {
		t.Fatalf("rbit weights of the layer's shape: %v", err)
	}
	_, err := parse("c.toml", strings.Replace(rb, "d = 16", "d = 32", 1), Overrides{})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "weights_by_rbit" || !strings.Contains(ce.Msg, "synth.d=32") {
		t.Errorf("rbit weights of another D: %v, want a ConfigError for weights_by_rbit", err)
	}
}
