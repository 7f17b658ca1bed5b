package experiments

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/BurntSushi/toml"
)

// Common are the keys every experiment config has.
type Common struct {
	// Name is the results directory, <out>/<name>. Default: the config file's
	// base name without extension.
	Name string `toml:"name" json:"name"`
	// Kind selects the experiment: budget, rbit, training, speed or breakdown;
	// on the project's small model niah, perplexity, throughput, model_budget
	// or model_rbit. Required.
	Kind string `toml:"kind" json:"kind"`
	// Description is free text, copied to results.json. Not part of the
	// config's identity.
	Description string `toml:"description" json:"description"`
	// Devices lists the backends that compute points, one worker each:
	// "cpu" (package ref) or "vk:N" (Vulkan device N, once registered).
	// Default ["cpu"]. Not part of the config's identity: a resumed run may
	// use other devices; every row names the device that computed it.
	Devices []string `toml:"devices" json:"devices"`
}

func (c *Common) common() *Common { return c }

// Kinds lists the experiment kinds, in the order of the paper's figures.
var Kinds = []string{"budget", "rbit", "training", "speed", "breakdown",
	"niah", "perplexity", "throughput", "model_budget", "model_rbit"}

// newExperiment returns the experiment of kind with its documented defaults.
func newExperiment(kind string) (experiment, error) {
	switch kind {
	case "budget":
		return defaultBudget(), nil
	case "rbit":
		return defaultRbit(), nil
	case "training":
		return defaultTraining(), nil
	case "speed":
		return defaultSpeed(), nil
	case "breakdown":
		return defaultBreakdown(), nil
	case "niah":
		return defaultNIAH(), nil
	case "perplexity":
		return defaultPerplexity(), nil
	case "throughput":
		return defaultThroughput(), nil
	case "model_budget":
		return defaultModelBudget(), nil
	case "model_rbit":
		return defaultModelRbit(), nil
	}
	return nil, fmt.Errorf("kind %q: want one of %s", kind, strings.Join(Kinds, ", "))
}

// WriteDefaults writes every key of kind (one of Kinds) with its default
// value, as a TOML config that loads as it is: what a config of that kind
// holds when it sets nothing but its kind. name is left out (it defaults to
// the config file's base name). The keys' meanings are the doc comments of
// the kind's Go type, which the header names.
func WriteDefaults(w io.Writer, kind string) error {
	exp, err := newExperiment(kind)
	if err != nil {
		return err
	}
	c := exp.common()
	c.Devices = []string{"cpu"}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(exp); err != nil {
		return fmt.Errorf("kind %q: %w", kind, err)
	}
	typ := reflect.TypeOf(exp).Elem().Name()
	fmt.Fprintf(w, "# Every key of kind %q with its default (hata run -defaults %s).\n", kind, kind)
	fmt.Fprintf(w, "# What each means: go doc github.com/hata-go/hata/experiments.%s, and the types it holds.\n", typ)
	if empty := emptyKeys(reflect.ValueOf(exp).Elem(), ""); len(empty) > 0 {
		fmt.Fprintf(w, "# Empty or unset by default, so not written below: %s.\n", strings.Join(empty, ", "))
	}
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line != `name = ""`+"\n" {
			io.WriteString(w, line)
		}
	}
	return nil
}

// emptyKeys returns the TOML keys under prefix of the struct v whose value is
// a nil slice, map or pointer (a key whose default is "unset", as speed's
// paired_kv), which the TOML encoder leaves out.
func emptyKeys(v reflect.Value, prefix string) []string {
	var keys []string
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && fv.Kind() == reflect.Struct:
			keys = append(keys, emptyKeys(fv, prefix)...) // embedded: its keys are the parent's
		case name == "":
		case fv.Kind() == reflect.Struct:
			keys = append(keys, emptyKeys(fv, prefix+name+".")...)
		case (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map || fv.Kind() == reflect.Pointer) && fv.IsNil():
			keys = append(keys, prefix+name)
		}
	}
	return keys
}

// ConfigError is a config problem with the place it comes from: the file (or
// "flag -set") and line of the key when the key is written there.
type ConfigError struct {
	File string // the config file, or "flag -set" for an override
	Line int    // 1-based line of the key; 0 when the key is not written (a default)
	Key  string // dotted TOML key, e.g. "synth.n"; "" for a file-level problem
	Msg  string
}

// Error formats the error as file:line: key: message.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// keyError is a value out of range, before its position is known. Validation
// code returns it; Load turns it into a ConfigError with file and line.
type keyError struct{ key, msg string }

func (e *keyError) Error() string     { return e.key + ": " + e.msg }
func (e *keyError) ConfigKey() string { return e.key }

func badKey(key, format string, args ...any) error {
	return &keyError{key: key, msg: fmt.Sprintf(format, args...)}
}

// MaxTensorBytes is the most that one host tensor of an experiment point, or
// of a step hata bench times, may take: 16 GiB. Validation computes from the
// config the size of every large tensor a point allocates on the host (the
// synthetic K/V cache, the queries, the attention probabilities, the
// hash-training pairs, MagicPIG's tables, ...) and refuses a config with one
// over the limit, naming the key at fault, so that a value out of proportion
// (a typo in synth.n, say) is an error when the config loads instead of a Go
// out-of-memory crash during the run. 16 GiB is twice the largest tensor of
// the shipped configs and of the paper's shapes run on the CPU (the speed
// sweep's K cache at B=8, N=256K, Hkv=8, D=128 in float32: 8 GiB). A point
// holds a few such tensors at once, so its memory is a small multiple of the
// limit; a run that needs more than the machine has still fails, as the
// machine's allocator decides.
const MaxTensorBytes = 16 << 30

// factor is one dimension of a tensor: the key (or flag) that sets it, its
// value, and the value it usually has. Of the factors of a tensor over the
// limit, the one furthest above its usual value is the key reported.
type factor struct {
	key   string
	n     int
	usual int
}

// tensor is a large host allocation of a point: its name and layout, e.g.
// "the K cache [B][Hkv][N][D] of float32", the bits of one element, and its
// dimensions.
type tensor struct {
	name string
	bits uint64
	dims []factor
}

// bytes returns the tensor's size in bytes, math.MaxUint64 when that does
// not fit in 64 bits. A negative dimension counts as 0.
func (t tensor) bytes() uint64 {
	s := t.bits
	for _, f := range t.dims {
		hi, lo := bits.Mul64(s, uint64(max(f.n, 0)))
		if hi != 0 {
			return math.MaxUint64
		}
		s = lo
	}
	return (s + 7) / 8
}

// check reports a tensor over MaxTensorBytes as a keyError naming the factor
// furthest above its usual value, with the other factors and the size.
func (t tensor) check() error {
	if t.bytes() <= MaxTensorBytes {
		return nil
	}
	blame, worst := 0, 0.0
	size := float64(t.bits) / 8
	for i, f := range t.dims {
		size *= float64(f.n)
		if r := float64(f.n) / float64(max(f.usual, 1)); r > worst {
			blame, worst = i, r
		}
	}
	f := t.dims[blame]
	var others []string
	seen := map[string]bool{f.key: true}
	for _, o := range t.dims {
		if seen[o.key] {
			continue // the blamed key, or one that is two dimensions (D of [D][D])
		}
		seen[o.key] = true
		if strings.HasPrefix(o.key, "-") { // a flag, as the command line writes it
			others = append(others, fmt.Sprintf("%s %d", o.key, o.n))
		} else {
			others = append(others, fmt.Sprintf("%s=%d", o.key, o.n))
		}
	}
	with := ""
	if len(others) > 0 {
		with = " with " + strings.Join(others, ", ")
	}
	return badKey(f.key, "%d%s: %s would take %s, more than the %s limit of one tensor",
		f.n, with, t.name, fmtSize(size), fmtSize(MaxTensorBytes))
}

// checkTensors reports the first of ts over MaxTensorBytes (see tensor.check).
func checkTensors(ts ...tensor) error {
	for _, t := range ts {
		if err := t.check(); err != nil {
			return err
		}
	}
	return nil
}

// fmtSize formats a size in bytes with a binary unit, e.g. "76.3 GiB".
func fmtSize(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	for b >= 1024 && u < len(units)-1 {
		b /= 1024
		u++
	}
	if b == math.Trunc(b) && b < 1e6 {
		return fmt.Sprintf("%.0f %s", b, units[u])
	}
	return fmt.Sprintf("%.3g %s", b, units[u])
}

// prefixKey qualifies the key of a validation error from a sub-table (synth's
// *KeyError, for example) with the table's name.
func prefixKey(prefix string, err error) error {
	var k interface{ ConfigKey() string }
	if err == nil || !errors.As(err, &k) {
		return err
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, k.ConfigKey()+": ")
	return &keyError{key: prefix + "." + k.ConfigKey(), msg: msg}
}

// Overrides are what the command line adds to a config file. Flags override
// the file, which overrides the kind's defaults.
type Overrides struct {
	// Set holds "key=value" assignments in TOML syntax applied after the file,
	// e.g. "synth.n=8192", "budgets=[0.01,0.02]", "name=quick2"; a value that
	// is not valid TOML is taken as a string. (-set, repeatable.)
	Set []string
	// Devices replaces the config's devices when not empty (-vkdevice 0,1
	// becomes ["vk:0", "vk:1"]).
	Devices []string
	// Shard runs every Shard.N-th point starting at Shard.I (-shard i/n); the
	// zero value runs them all.
	Shard Shard
	// Out is the results root; default "results".
	Out string
}

// Shard selects the points i, i+n, i+2n, ... of a sweep.
type Shard struct{ I, N int }

// ParseShard parses the -shard flag "i/n", with 0 <= i < n.
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want i/n with 0 <= i < n", s)
	}
	return Shard{I: i, N: n}, nil
}

// all reports whether the shard is the whole sweep.
func (s Shard) all() bool { return s.N <= 1 }

// has reports whether point index i belongs to the shard.
func (s Shard) has(i int) bool { return s.all() || i%s.N == s.I }

// String formats the shard as i/n, as -shard takes it.
func (s Shard) String() string {
	if s.all() {
		return "0/1"
	}
	return fmt.Sprintf("%d/%d", s.I, s.N)
}

// Load reads the config file at path, applies the overrides' Set and
// Devices, and validates the result. Unknown keys and values out of range are
// *ConfigError values naming the file, the line and the key.
func Load(path string, ov Overrides) (experiment, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, string(src), ov)
}

// parse is Load on the text src of the file called path.
func parse(path, src string, ov Overrides) (experiment, error) {
	var head struct {
		Kind string `toml:"kind"`
	}
	if _, err := toml.Decode(src, &head); err != nil {
		return nil, tomlError(path, src, err)
	}
	if head.Kind == "" {
		return nil, &ConfigError{File: path, Key: "kind", Msg: "missing; want one of " + strings.Join(Kinds, ", ")}
	}
	exp, err := newExperiment(head.Kind)
	if err != nil {
		return nil, &ConfigError{File: path, Line: keyLine(src, []string{"kind"}), Key: "kind", Msg: err.Error()}
	}
	md, err := toml.Decode(src, exp)
	if err != nil {
		return nil, tomlError(path, src, err)
	}
	if err := undecoded(path, src, md, head.Kind); err != nil {
		return nil, err
	}
	if err := negativeSeed(path, src); err != nil {
		return nil, err
	}
	where := func(key string) (string, int) { return path, keyLine(src, strings.Split(key, ".")) }
	if len(ov.Set) > 0 {
		osrc, omd, err := decodeOverrides(ov.Set, exp)
		if err != nil {
			return nil, err
		}
		if err := undecoded("flag -set", osrc, omd, head.Kind); err != nil {
			return nil, err
		}
		if err := negativeSeed("flag -set", osrc); err != nil {
			return nil, err
		}
		if exp.common().Kind != head.Kind {
			return nil, &ConfigError{File: "flag -set", Key: "kind", Msg: "cannot change the kind of " + path}
		}
		fileWhere := where
		where = func(key string) (string, int) {
			if l := keyLine(osrc, strings.Split(key, ".")); l > 0 {
				return "flag -set", l
			}
			return fileWhere(key)
		}
	}
	c := exp.common()
	if c.Name == "" {
		c.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if len(ov.Devices) > 0 {
		c.Devices = slices.Clone(ov.Devices)
	}
	if len(c.Devices) == 0 {
		c.Devices = []string{"cpu"}
	}
	if err := validateCommon(c); err != nil {
		return nil, located(err, where)
	}
	if err := exp.validate(); err != nil {
		return nil, located(err, where)
	}
	return exp, nil
}

// validateCommon checks the keys every kind has.
func validateCommon(c *Common) error {
	if c.Name == "" || strings.ContainsAny(c.Name, `/\`) || c.Name == "." || c.Name == ".." ||
		strings.ContainsFunc(c.Name, unicode.IsControl) {
		return badKey("name", "%q, want a plain directory name", c.Name)
	}
	for _, d := range c.Devices {
		if d == "" {
			return badKey("devices", "empty device name")
		}
	}
	return nil
}

// located turns a keyError into a ConfigError with the file and line where
// the key is written.
func located(err error, where func(key string) (string, int)) error {
	var k interface{ ConfigKey() string }
	if !errors.As(err, &k) {
		return err
	}
	file, line := where(k.ConfigKey())
	msg := strings.TrimPrefix(err.Error(), k.ConfigKey()+": ")
	if line == 0 {
		msg += " (the default; set it in the file)"
	}
	return &ConfigError{File: file, Line: line, Key: k.ConfigKey(), Msg: msg}
}

// undecoded reports the keys of the document that the kind's struct has no
// field for.
func undecoded(file, src string, md toml.MetaData, kind string) error {
	keys := md.Undecoded()
	if len(keys) == 0 {
		return nil
	}
	var errs []error
	var reported []string
	for _, k := range keys {
		name := k.String()
		if slices.ContainsFunc(reported, func(p string) bool { return strings.HasPrefix(name, p+".") }) {
			continue // inside an unknown table already reported
		}
		reported = append(reported, name)
		errs = append(errs, &ConfigError{File: file, Line: keyLine(src, k), Key: k.String(),
			Msg: fmt.Sprintf("unknown key for kind %q", kind)})
	}
	return errors.Join(errs...)
}

// tomlError adds the file name (and the line, which BurntSushi/toml knows for
// syntax and type errors) to a decoding error.
func tomlError(file, src string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line, key := pe.Position.Line, pe.LastKey
		if l, name, ok := openHeader(src, line); ok {
			line, key = l, name // the parser is past the header's line, in the table before
		}
		return &ConfigError{File: file, Line: line, Key: key, Msg: pe.Message}
	}
	// Type mismatches come as plain errors: toml: line N (last key "k"): msg.
	if m := decodeErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		if line == 0 {
			line = keyLine(src, strings.Split(m[2], "."))
		}
		return &ConfigError{File: file, Line: line, Key: m[2], Msg: m[3]}
	}
	return &ConfigError{File: file, Msg: err.Error()}
}

// openHeader returns the line, at line or the one before it in the TOML
// text src, that opens a table header ("[" or "[[") without closing it, and
// the header's name as written; ok is false when neither does.
func openHeader(src string, line int) (l int, name string, ok bool) {
	lines := strings.Split(src, "\n")
	for l = min(line, len(lines)); l >= max(line-1, 1); l-- {
		t := strings.TrimSpace(lines[l-1])
		if closing := "]"; strings.HasPrefix(t, "[") {
			if strings.HasPrefix(t, "[[") {
				closing = "]]"
			}
			if strings.HasSuffix(t, closing) {
				continue
			}
			return l, strings.Trim(t, "[]\"' \t"), true
		}
	}
	return line, "", false
}

// negativeSeed reports a negative value of a seed key (seed, sample_seed)
// in the TOML text src of file: the seeds are unsigned, and BurntSushi/toml
// would store -1 as 2^64-1 without a word.
func negativeSeed(file, src string) error {
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		return tomlError(file, src, err)
	}
	var walk func(prefix []string, m map[string]any) error
	walk = func(prefix []string, m map[string]any) error {
		for k, v := range m {
			key := append(slices.Clone(prefix), k)
			switch v := v.(type) {
			case map[string]any:
				if err := walk(key, v); err != nil {
					return err
				}
			case int64:
				if v < 0 && strings.HasSuffix(k, "seed") {
					return &ConfigError{File: file, Line: keyLine(src, key), Key: strings.Join(key, "."), Msg: fmt.Sprintf("%d, want a seed >= 0", v)}
				}
			}
		}
		return nil
	}
	return walk(nil, doc)
}

// tomlMessage is a decoding error's message without its position (a -set
// value is one line of its own).
func tomlMessage(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Message
	}
	return err.Error()
}

// decodeErr matches BurntSushi/toml's decoding errors that carry the key.
var decodeErr = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// overrideSource turns -set assignments into a TOML document, quoting a value
// that is not valid TOML on its own (a bare string, name=fig5-h200), and the
// bare values of the keys in quote. A value that opens an array, an inline
// table or a string but does not parse is an error that quotes it, not a
// string it was never meant to be. A key set twice takes its last value.
func overrideSource(set []string, quote map[string]bool) (string, error) {
	var keys []string
	lines := map[string]string{}
	for _, s := range set {
		k, v, ok := strings.Cut(s, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return "", &ConfigError{File: "flag -set", Msg: fmt.Sprintf("%q: want key=value", s)}
		}
		line := k + " = " + v
		var probe map[string]any
		if _, err := toml.Decode(line, &probe); err != nil || (quote[k] && bare(v)) {
			if err != nil && !bare(v) {
				return "", &ConfigError{File: "flag -set", Key: k, Msg: fmt.Sprintf("%q is not a TOML value: %v", v, tomlMessage(err))}
			}
			line = k + " = " + strconv.Quote(v)
		}
		if _, seen := lines[k]; !seen {
			keys = append(keys, k)
		}
		lines[k] = line // a key set again: the last value wins, as flags do
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(lines[k] + "\n")
	}
	return b.String(), nil
}

// bare reports whether the -set value v is not written as a TOML array,
// table or string (it does not open with one of [{"').
func bare(v string) bool { return !strings.ContainsAny(v[:min(len(v), 1)], `[{"'`) }

// decodeOverrides decodes the -set values into exp and returns their TOML
// text and metadata. A bare value the TOML reads as a number, a date or a
// boolean where the key is a string (-set name=2024) is taken as that
// string, as a bare word already is (-set name=fig5-h200).
func decodeOverrides(set []string, exp experiment) (string, toml.MetaData, error) {
	quote := map[string]bool{}
	for {
		osrc, err := overrideSource(set, quote)
		if err != nil {
			return "", toml.MetaData{}, err
		}
		md, err := toml.Decode(osrc, exp)
		if err == nil {
			return osrc, md, nil
		}
		cerr := tomlError("flag -set", osrc, err)
		var ce *ConfigError
		if errors.As(cerr, &ce) && strings.HasSuffix(ce.Msg, "destination has type string") && !quote[ce.Key] {
			quote[ce.Key] = true // decoding again sets every key again
			continue
		}
		return "", toml.MetaData{}, cerr
	}
}

// keyLine returns the 1-based line where the dotted key is assigned in the
// TOML text src, or 0 when it is not. BurntSushi/toml keeps key positions
// private, so this scans the text: table headers [a.b] set the prefix and
// "k = ..." lines (bare, quoted or dotted keys) assign prefix.k. A key that is
// itself a table is found at its header. Lines inside multi-line strings are
// not told apart; the configs of this project have none.
func keyLine(src string, key []string) int {
	want := strings.Join(key, ".")
	var prefix []string
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "["):
			inner := strings.Trim(strings.SplitN(line, "]", 2)[0], "[ ")
			if p, ok := splitKey(inner); ok {
				prefix = p
				if strings.Join(p, ".") == want {
					return i + 1
				}
			}
			continue
		}
		lhs, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, ok := splitKey(lhs)
		if !ok {
			continue
		}
		full := append(slices.Clone(prefix), k...)
		if strings.Join(full, ".") == want {
			return i + 1
		}
		// A dotted assignment a.b.c = ... also defines the tables a and a.b.
		for j := 1; j < len(full); j++ {
			if strings.Join(full[:j], ".") == want {
				return i + 1
			}
		}
	}
	return 0
}

// splitKey splits a TOML key (bare, "quoted" or 'literal' parts joined by
// dots) into its parts.
func splitKey(s string) ([]string, bool) {
	var parts []string
	s = strings.TrimSpace(s)
	for s != "" {
		var part string
		switch s[0] {
		case '"', '\'':
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return nil, false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := strings.IndexAny(s, ". \t")
			if end < 0 {
				end = len(s)
			}
			part, s = s[:end], s[end:]
			for _, r := range part {
				if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
					return nil, false
				}
			}
		}
		parts = append(parts, part)
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
	return parts, len(parts) > 0
}

// identity returns the resolved config as JSON and its hash, less what does
// not change results (devices, description). Two runs with the same identity
// compute the same points and may share a results directory.
func identity(exp experiment) (resolved []byte, hash string, err error) {
	resolved, err = json.MarshalIndent(exp, "", "  ")
	if err != nil {
		return nil, "", err
	}
	// Re-decode into a fresh value so that clearing fields leaves exp alone.
	clone, err := newExperiment(exp.common().Kind)
	if err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal(resolved, clone); err != nil {
		return nil, "", err
	}
	clone.common().Devices, clone.common().Description = nil, ""
	canon, err := json.Marshal(clone)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(canon)
	return resolved, hex.EncodeToString(sum[:]), nil
}

// decodeResolved reads back a resolved config written by identity.
func decodeResolved(data []byte) (experiment, error) {
	var head struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	exp, err := newExperiment(head.Kind)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(exp); err != nil {
		return nil, err
	}
	return exp, nil
}
