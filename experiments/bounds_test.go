package experiments

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
)

// boundCase is a config that Load must refuse for a value with no sensible
// size: a *ConfigError at line of the file (or of -set when flag) naming key,
// whose message says each of want.
type boundCase struct {
	text string
	set  []string
	flag bool
	line int
	key  string
	want []string
}

// TestTooLarge checks that values that would make a point allocate more
// than MaxTensorBytes in one host tensor, or that are beyond a key's own
// bound, are config errors naming the key, its line and the size, not a Go
// crash during the run.
func TestTooLarge(t *testing.T) {
	limit := "more than the 16 GiB limit of one tensor"
	for _, tc := range []boundCase{
		// The synthetic input: the cache, the queries, the training sequence.
		{text: "kind = \"budget\"\n[synth]\nn = 20000000\n", line: 3, key: "synth.n",
			want: []string{"20000000 with synth.b=1, synth.hkv=8, synth.d=128", "the K cache [B][Hkv][N][D]", "76.3 GiB", limit}},
		{text: "kind = \"budget\"\n", set: []string{"synth.n=9223372036854775807"}, flag: true, line: 1, key: "synth.n",
			want: []string{"9223372036854775807", "EiB", limit}},
		{text: "kind = \"budget\"\n", set: []string{"synth.hq=4000000000000"}, flag: true, line: 1, key: "synth.hq",
			want: []string{"the queries [B][Hq][D]", "1.82 PiB", limit}},
		{text: "kind = \"budget\"\n[synth]\nb = 1000000000000\n", line: 3, key: "synth.b", want: []string{"14.6 EiB", limit}},
		{text: "kind = \"budget\"\n[synth]\nd = 100000000\n", line: 3, key: "synth.d", want: []string{"TiB", limit}},
		{text: "kind = \"budget\"\ntrain.n = 1000000000000\n", line: 2, key: "train.n",
			want: []string{"the training sequence's queries [Hq][N][D]", limit}},
		{text: "kind = \"budget\"\n[synth]\nn = 4194305\nhq = 8\nhkv = 8\n", set: []string{"methods=['hata','topk']"}, line: 3, key: "synth.n",
			want: []string{"16 GiB,", limit}},
		{text: "kind = \"rbit\"\n[synth]\nn = 20000000\n", line: 3, key: "synth.n", want: []string{limit}},
		{text: "kind = \"training\"\n\n[train]\nn = 20000000\n", line: 4, key: "train.n", want: []string{limit}},
		{text: "kind = \"training\"\n\n[train]\nn = 2\n", line: 4, key: "train.n", want: []string{"2: the training sequence", "sinks"}},
		// The methods' tensors: hash training, MagicPIG.
		{text: "kind = \"budget\"\nhash.positions = 65536\n[synth]\nn = 8192\n", line: 2, key: "hash.positions",
			want: []string{"hash training's pairs", "256 GiB", limit}},
		{text: "kind = \"budget\"\nmethods = [\"magicpig\"]\n[synth]\nhkv = 32\nn = 40000\n[options]\nmagicpig_l = 4096\n", line: 7, key: "options.magicpig_l",
			want: []string{"MagicPIG's key codes", limit}},
		// Keys with a bound of their own.
		{text: "kind = \"budget\"\n", set: []string{"options.magicpig_l=1000000000000"}, flag: true, line: 1, key: "options.magicpig_l",
			want: []string{"want in [1, 4096]"}},
		{text: "kind = \"budget\"\n[hash]\npositions = 1000000000000\n", line: 3, key: "hash.positions", want: []string{"want in [1, 65536]"}},
		{text: "kind = \"budget\"\n[synth]\nneedles = 9223372036854775807\n", line: 3, key: "synth.needles", want: []string{"sinks+needles <= n"}},
		{text: "kind = \"budget\"\n[synth]\nn = 200000\nneedles = 100000\n", line: 4, key: "synth.needles", want: []string{"at most 65536"}},
		// The timing kinds: on the CPU, the cache is the host's.
		{text: "kind = \"speed\"\nhq = 4000000000000\n", line: 2, key: "hq", want: []string{"want in [1, 1024]"}},
		{text: "kind = \"speed\"\nd = 2048\n", line: 2, key: "d", want: []string{"want an even number in [2, 1024]"}},
		{text: "kind = \"speed\"\nbatches = [1024]\nns = [16777216]\n", line: 3, key: "ns",
			want: []string{"16777216 with batches=1024, hkv=8, d=128", "the K cache", "64 TiB", limit}},
		{text: "kind = \"speed\"\nbatches = [17]\nns = [262144]\n", line: 3, key: "ns", want: []string{"17 GiB", limit}},
		{text: "kind = \"speed\"\ndevices = [\"vk:0\"]\nmethods = [\"h2o\"]\nbatches = [1024]\nns = [16777216]\n", line: 5, key: "ns",
			want: []string{"H2O's score history", limit}},
		{text: "kind = \"breakdown\"\nb = 1024\nns = [16777216]\nvariants = [\"hata\"]\n", line: 3, key: "ns",
			want: []string{"16777216 with b=1024", limit}},
		// The model kinds: token counts.
		{text: "kind = \"perplexity\"\nprompts = 1\ntokens = 1000000000000\nmethods = [\"streaming\"]\n", line: 3, key: "tokens",
			want: []string{"want in [1, 100000]"}},
		{text: "kind = \"perplexity\"\nlength = 1000000000000\n", line: 2, key: "length", want: []string{"want in [3, 1048576]"}},
		{text: "kind = \"perplexity\"\nprompt_bytes = 1000000000000\n", line: 2, key: "prompt_bytes", want: []string{"want in [1, 1048576]"}},
		{text: "kind = \"niah\"\n[model]\ntrain_tokens = 1000000000000\n", line: 3, key: "model.train_tokens", want: []string{"want in [16, 1048576]"}},
		{text: "kind = \"throughput\"\nwarmup = 1000000000000\n", line: 2, key: "warmup", want: []string{"want in [0, 100000]"}},
		{text: "kind = \"niah\"\n[model]\ntrain_windows = 1000\ntrain_tokens = 1048576\n[hash]\ndir = \"\"\npositions = 65536\n", line: 7, key: "hash.positions",
			want: []string{"hash training's pairs of one KV head", limit}},
	} {
		path := writeConfig(t, "c.toml", tc.text)
		_, err := Load(path, Overrides{Set: tc.set})
		file := path
		if tc.flag {
			file = "flag -set"
		}
		configErr(t, err, file, tc.line, tc.key)
		for _, w := range tc.want {
			if err != nil && !strings.Contains(err.Error(), w) {
				t.Errorf("%q %v: error %q, want it to say %q", tc.text, tc.set, err, w)
			}
		}
	}
}

// TestLargeButBounded checks configs at the edge of the bounds, and large
// ones whose size is not the host's: they load.
func TestLargeButBounded(t *testing.T) {
	for _, tc := range []struct{ what, text string }{
		// The K cache and the training queries exactly 16 GiB.
		{"a 16 GiB cache", "kind = \"budget\"\nmethods = [\"hata\", \"topk\"]\n[synth]\nn = 4194304\nhq = 8\nhkv = 8\n"},
		// The pairs are no tensor of a point that does not train hata.
		{"many positions, no hata", "kind = \"budget\"\nmethods = [\"topk\"]\nhash.positions = 65536\n[synth]\nn = 8192\n"},
		// MagicPIG's tables count only when it runs.
		{"many tables, no magicpig", "kind = \"budget\"\nmethods = [\"topk\"]\n[synth]\nhkv = 32\nn = 40000\n[options]\nmagicpig_l = 4096\n"},
		{"the paper's speed sweep on the CPU", "kind = \"speed\"\ndevices = [\"cpu\"]\nbatches = [1, 8]\nns = [8192, 262144]\n"},
		{"a 16 GiB timed cache", "kind = \"speed\"\nbatches = [16]\nns = [262144]\n"},
		// On a GPU the cache is the device's to refuse.
		{"the largest timed cache on a GPU", "kind = \"speed\"\ndevices = [\"vk:0\"]\nbatches = [1024]\nns = [16777216]\n"},
		{"the largest shapes", "kind = \"speed\"\ndevices = [\"vk:0\"]\nhq = 1024\nhkv = 1024\nd = 1024\nmethods = [\"dense\"]\n"},
		{"the model kinds' longest", "kind = \"perplexity\"\nlength = 1048576\nprompt_bytes = 1048576\ntokens = 100000\n"},
		// Pretrained hash weights: no training pairs.
		{"many positions, hash.dir set", "kind = \"niah\"\n[model]\ntrain_windows = 1000\ntrain_tokens = 1048576\n[hash]\npositions = 65536\n"},
	} {
		checkLoads(t, tc.what, writeConfig(t, "c.toml", tc.text))
	}
}

// TestCheckStepSize checks hata bench's check of a step's host tensors: on a
// GPU only what the host holds counts, and the error names the flag.
func TestCheckStepSize(t *testing.T) {
	keys := StepKeys{B: "-b", Hq: "-hq", Hkv: "-hkv", N: "-n", D: "-d", Rbit: "-opt rbit"}
	big := ref.Shape{B: 1024, Hq: 32, Hkv: 8, N: 1 << 24, D: 128}
	if err := CheckStepSize("hata", big, 128, true, keys); err != nil {
		t.Errorf("hata on a GPU at %v: %v, want nil (the cache is on the device)", big, err)
	}
	err := CheckStepSize("hata", big, 128, false, keys)
	var k interface{ ConfigKey() string }
	if !errors.As(err, &k) || k.ConfigKey() != "-n" || !strings.Contains(err.Error(), "-b 1024, -hkv 8, -d 128") {
		t.Errorf("hata on the CPU at %v: %v, want an error naming -n with -b 1024, -hkv 8, -d 128", big, err)
	}
	if err := CheckStepSize("h2o/variant", big, 128, true, keys); err == nil || !strings.Contains(err.Error(), "H2O's score history") {
		t.Errorf("h2o on a GPU at %v: %v, want its host score history refused", big, err)
	}
	// D is two dimensions of Loki's basis: the message names it once.
	deep := ref.Shape{B: 1, Hq: 1024, Hkv: 1024, N: 1, D: 2048}
	err = CheckStepSize("loki", deep, 128, true, keys)
	if err == nil || !strings.Contains(err.Error(), "-hkv: 1024 with -d 2048: Loki's basis") || strings.Count(err.Error(), "-d 2048") != 1 {
		t.Errorf("loki at %v: %v, want Loki's basis refused, naming -hkv with -d 2048 once", deep, err)
	}
	wide := ref.Shape{B: 1, Hq: 1024, Hkv: 1024, N: 1024, D: 1024}
	if err := CheckStepSize("loki", wide, 128, true, keys); err != nil {
		t.Errorf("loki at %v: %v, want nil (an 8 GiB basis)", wide, err)
	}
}

// TestTensorBytes checks the overflow-safe size of a tensor and the size's
// formatting.
func TestTensorBytes(t *testing.T) {
	for _, tc := range []struct {
		t    tensor
		want uint64
	}{
		{tensor{"", 32, []factor{{"a", 8, 1}, {"b", 128, 1}}}, 4096},
		{tensor{"", 1, []factor{{"a", 3, 1}}}, 1},
		{tensor{"", 32, []factor{{"a", math.MaxInt, 1}, {"b", math.MaxInt, 1}}}, math.MaxUint64},
		{tensor{"", 64, []factor{{"a", 1 << 62, 1}}}, math.MaxUint64},
	} {
		if got := tc.t.bytes(); got != tc.want {
			t.Errorf("%v: bytes %d, want %d", tc.t.dims, got, tc.want)
		}
	}
	for _, tc := range []struct {
		b    float64
		want string
	}{{512, "512 B"}, {16 << 30, "16 GiB"}, {76.29 * (1 << 30), "76.3 GiB"}, {math.Exp2(72), "4096 EiB"}, {1.2345 * math.Exp2(72), "5.06e+03 EiB"}} {
		if got := fmtSize(tc.b); got != tc.want {
			t.Errorf("fmtSize(%v) = %q, want %q", tc.b, got, tc.want)
		}
	}
}

// TestTrainWeightsPairsBound checks that hash training on a sequence whose
// shape validation did not know (a trace) refuses pairs over MaxTensorBytes
// before drawing any.
func TestTrainWeightsPairsBound(t *testing.T) {
	ts := &trainSet{shape: ref.Shape{B: 1, Hq: 32, Hkv: 8, N: 1 << 20, D: 128}} // no data: it must not be read
	h := defaultHashSource()
	h.Positions = 1 << 16
	_, err := trainWeights(context.Background(), ts, h, 128, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "hash.positions: 65536 with Hq=32, N=1048576") || !strings.Contains(err.Error(), "16 GiB limit") {
		t.Errorf("trainWeights with %d positions on %v: %v, want the pairs refused, naming hash.positions", h.Positions, ts.shape, err)
	}
}
