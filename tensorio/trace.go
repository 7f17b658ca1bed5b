package tensorio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A trace is what one prompt's prefill leaves in the attention layers of a
// model, the input of hash training and of the accuracy experiments. It is a
// directory holding, per layer LL (two digits or more):
//
//	layer_LL_q.npy     [Hq][N][D]   post-RoPE queries of positions 0..N-1
//	layer_LL_k.npy     [Hkv][N][D]  post-RoPE keys
//	layer_LL_v.npy     [Hkv][N][D]  values
//	layer_LL_kpre.npy  [Hkv][N][D]  pre-RoPE keys (optional; Loki's PCA)
//	meta.json          {"model": ..., "prompt": ..., "rope_theta": ...} (optional)
//
// in float32 or float16 (any float dtype is read). The same tensors may
// instead live, under the same names without the extension, in one or more
// .safetensors files in the directory; ReadTrace also accepts the path of a
// single .safetensors file.

// TraceMeta describes where a trace came from (meta.json). Other keys in the
// file are ignored.
type TraceMeta struct {
	Model  string `json:"model"`
	Prompt string `json:"prompt"` // as text; JSON holds only valid UTF-8, see PromptBytes
	// PromptBytes are the prompt's bytes where they are not valid UTF-8
	// (the model reads bytes), which Prompt's JSON string would replace with
	// U+FFFD; base64 in the file. Empty otherwise.
	PromptBytes []byte  `json:"prompt_bytes,omitempty"`
	RopeTheta   float64 `json:"rope_theta"`
}

// Trace is an opened trace: the layers it holds and where each tensor lives.
// Layer loads one layer on demand.
type Trace struct {
	Dir    string
	Layers []int      // ascending layer numbers that have q, k and v
	Meta   *TraceMeta // nil without meta.json

	src map[traceKey]traceSource
}

// LayerTrace is one layer of a trace.
type LayerTrace struct {
	Hq, Hkv, N, D int
	Q             []float32 // Q: [Hq][N][D], post-RoPE
	K             []float32 // K: [Hkv][N][D], post-RoPE
	V             []float32 // V: [Hkv][N][D]
	KPre          []float32 // KPre: [Hkv][N][D], pre-RoPE; nil when absent
}

type traceKey struct {
	layer int
	part  string // q, k, v, kpre
}

type traceSource struct {
	npy string       // an .npy file, or
	st  *SafeTensors // a tensor of a safetensors file
	key string
}

func (s traceSource) String() string {
	if s.st != nil {
		return s.st.Name + ":" + s.key
	}
	return s.npy
}

func (s traceSource) read() (*Array, error) {
	if s.st != nil {
		return s.st.Read(s.key)
	}
	return ReadNPY(s.npy)
}

var traceName = regexp.MustCompile(`^layer_([0-9]{1,6})_(q|k|v|kpre)$`)

// traceParts lists a layer's tensors, the required ones first.
var traceParts = []string{"q", "k", "v", "kpre"}

// ReadTrace opens the trace in dir (or the single .safetensors file dir): it
// lists the layers and checks that each has q, k and v, reads meta.json, and
// loads no tensor data. A tensor present twice (in an .npy file and in a
// safetensors file, or in two safetensors files) is an error naming both.
func ReadTrace(dir string) (*Trace, error) {
	t := &Trace{Dir: dir, src: map[traceKey]traceSource{}}
	add := func(name string, s traceSource) error {
		m := traceName.FindStringSubmatch(name)
		if m == nil {
			return nil
		}
		l, _ := strconv.Atoi(m[1])
		k := traceKey{l, m[2]}
		if old, dup := t.src[k]; dup {
			return fmt.Errorf("trace %s: tensor %s is in both %s and %s", dir, name, old, s)
		}
		t.src[k] = s
		return nil
	}
	addSafetensors := func(path string) error {
		st, err := OpenSafetensors(path)
		if err != nil {
			return err
		}
		for _, n := range st.Names {
			if err := add(n, traceSource{st: st, key: n}); err != nil {
				return err
			}
		}
		return nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if !info.IsDir() {
		if !strings.HasSuffix(dir, ".safetensors") {
			return nil, fmt.Errorf("trace %s: not a directory nor a .safetensors file", dir)
		}
		if err := addSafetensors(dir); err != nil {
			return nil, err
		}
	} else {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			switch {
			case e.IsDir():
			case strings.HasSuffix(e.Name(), ".npy"):
				err = add(strings.TrimSuffix(e.Name(), ".npy"), traceSource{npy: path})
			case strings.HasSuffix(e.Name(), ".safetensors"):
				err = addSafetensors(path)
			}
			if err != nil {
				return nil, err
			}
		}
		if t.Meta, err = readTraceMeta(filepath.Join(dir, "meta.json")); err != nil {
			return nil, err
		}
	}
	layers := map[int]bool{}
	for k := range t.src {
		layers[k.layer] = true
	}
	for l := range layers {
		for _, p := range traceParts[:3] {
			if _, ok := t.src[traceKey{l, p}]; !ok {
				have := t.src[traceKey{l, "q"}]
				if have.npy == "" && have.st == nil {
					have = t.src[traceKey{l, "k"}]
				}
				return nil, fmt.Errorf("trace %s: layer %d has %s but no layer_%02d_%s", dir, l, have, l, p)
			}
		}
		t.Layers = append(t.Layers, l)
	}
	slices.Sort(t.Layers)
	if len(t.Layers) == 0 {
		return nil, fmt.Errorf("trace %s: no layer_LL_q/k/v tensors (.npy files or .safetensors entries)", dir)
	}
	return t, nil
}

// readTraceMeta reads meta.json; a missing file gives nil.
func readTraceMeta(path string) (*TraceMeta, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m TraceMeta
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// Layer loads layer l and checks its shapes: q [Hq][N][D]; k, v and kpre
// [Hkv][N][D] with the same N and D; Hq a multiple of Hkv; every value finite.
func (t *Trace) Layer(l int) (*LayerTrace, error) {
	if _, ok := t.src[traceKey{l, "q"}]; !ok {
		return nil, fmt.Errorf("trace %s: no layer %d (have %v)", t.Dir, l, t.Layers)
	}
	arrays := map[string]*Array{}
	for _, p := range traceParts {
		s, ok := t.src[traceKey{l, p}]
		if !ok {
			continue
		}
		a, err := s.read()
		if err != nil {
			return nil, err
		}
		if !a.IsFloat() {
			return nil, fmt.Errorf("%s: dtype %s, want a floating type", s, a.Dtype)
		}
		if len(a.Shape) != 3 {
			return nil, fmt.Errorf("%s: shape %v, want 3 dimensions [heads, N, D]", s, a.Shape)
		}
		if err := CheckFinite(s.String(), a.F32); err != nil {
			return nil, err
		}
		arrays[p] = a
	}
	q, k := arrays["q"].Shape, arrays["k"].Shape
	qs, ks := t.src[traceKey{l, "q"}], t.src[traceKey{l, "k"}]
	if q[1] != k[1] || q[2] != k[2] {
		return nil, fmt.Errorf("trace layer %d: %s has shape %v, %s has %v: want the same N and D", l, qs, q, ks, k)
	}
	if k[0] == 0 || q[0]%k[0] != 0 {
		return nil, fmt.Errorf("trace layer %d: %s has %d heads, %s has %d: want Hq a positive multiple of Hkv", l, qs, q[0], ks, k[0])
	}
	if q[1] == 0 || q[2] == 0 {
		return nil, fmt.Errorf("trace layer %d: %s has shape %v: want N, D >= 1", l, qs, q)
	}
	for _, p := range traceParts[2:] {
		if a, ok := arrays[p]; ok && !slices.Equal(a.Shape, k) {
			return nil, fmt.Errorf("trace layer %d: %s has shape %v, %s has %v: want the same", l, t.src[traceKey{l, p}], a.Shape, ks, k)
		}
	}
	lt := &LayerTrace{Hq: q[0], Hkv: k[0], N: q[1], D: q[2], Q: arrays["q"].F32, K: arrays["k"].F32, V: arrays["v"].F32}
	if a, ok := arrays["kpre"]; ok {
		lt.KPre = a.F32
	}
	return lt, nil
}

// Validate checks the lengths of lt's tensors against its shape.
func (lt *LayerTrace) Validate() error {
	if lt.Hq < 1 || lt.Hkv < 1 || lt.N < 1 || lt.D < 1 || lt.Hq%lt.Hkv != 0 {
		return fmt.Errorf("layer trace Hq=%d Hkv=%d N=%d D=%d: want all >= 1 and Hq a multiple of Hkv", lt.Hq, lt.Hkv, lt.N, lt.D)
	}
	kn := lt.Hkv * lt.N * lt.D
	for _, c := range []struct {
		name string
		x    []float32
		want int
	}{{"Q", lt.Q, lt.Hq * lt.N * lt.D}, {"K", lt.K, kn}, {"V", lt.V, kn}, {"KPre", lt.KPre, kn}} {
		if c.name == "KPre" && c.x == nil {
			continue
		}
		if len(c.x) != c.want {
			return fmt.Errorf("layer trace Hq=%d Hkv=%d N=%d D=%d: len(%s) = %d, want %d", lt.Hq, lt.Hkv, lt.N, lt.D, c.name, len(c.x), c.want)
		}
	}
	return nil
}

// WriteTraceLayer writes layer l of a trace into dir as float32 .npy files,
// each atomically (KPre only when set).
func WriteTraceLayer(dir string, l int, lt *LayerTrace) error {
	if err := lt.Validate(); err != nil {
		return fmt.Errorf("trace %s layer %d: %w", dir, l, err)
	}
	for _, c := range []struct {
		part string
		x    []float32
		h    int
	}{{"q", lt.Q, lt.Hq}, {"k", lt.K, lt.Hkv}, {"v", lt.V, lt.Hkv}, {"kpre", lt.KPre, lt.Hkv}} {
		if c.x == nil {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("layer_%02d_%s.npy", l, c.part))
		if err := WriteNPYFloat32(path, []int{c.h, lt.N, lt.D}, c.x); err != nil {
			return err
		}
	}
	return nil
}

// WriteTrace writes a whole trace into dir (created if missing): every layer
// with WriteTraceLayer and, when meta is not nil, meta.json, each file
// atomically.
func WriteTrace(dir string, meta *TraceMeta, layers map[int]*LayerTrace) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ls := make([]int, 0, len(layers))
	for l := range layers {
		ls = append(ls, l)
	}
	slices.Sort(ls)
	for _, l := range ls {
		if l < 0 {
			return fmt.Errorf("trace %s: layer %d: want a layer number >= 0", dir, l)
		}
		if err := WriteTraceLayer(dir, l, layers[l]); err != nil {
			return err
		}
	}
	if meta == nil {
		return nil
	}
	js, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "meta.json"), func(w io.Writer) error {
		_, err := w.Write(append(js, '\n'))
		return err
	})
}
