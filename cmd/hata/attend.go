package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hata-go/hata/experiments"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
	"github.com/hata-go/hata/vk"
)

func init() {
	commands["attend"] = command{"one decode step of one layer on .npy tensors", runAttend}
}

// attendFlags are the flags of hata attend.
type attendFlags struct {
	method, device, vkdevice               string
	q, k, v, w                             string
	budget                                 float64
	out, indices, qcodes, kcodes           string
	rbit, sink, recent                     int
	seed                                   uint64
	normWeighted                           bool
	lokiChannels, pageSize, magicK, magicL int
	given                                  map[string]bool // the flags on the command line
}

// methodFlags are the flags only some methods read, with those methods: a
// flag given for another method is a usage error, not a setting silently
// ignored.
var methodFlags = map[string][]string{
	"sink": {"hata", "lsh", "streaming", "magicpig"}, "recent": {"hata", "lsh", "magicpig"},
	"normweighted": {"hata", "lsh"}, "rbit": {"lsh"}, "seed": {"lsh", "magicpig"},
	"loki-channels": {"loki"}, "page": {"quest"}, "magicpig-k": {"magicpig"}, "magicpig-l": {"magicpig"},
}

// runAttend implements hata attend: one decode step of one layer, from .npy
// inputs to .npy outputs, all written or none.
func runAttend(args []string, stdout, stderr io.Writer) error {
	var f attendFlags
	fs := flag.NewFlagSet("hata attend", flag.ContinueOnError)
	fs.StringVar(&f.method, "method", "hata", "method: "+strings.Join(ref.MethodNames, "|"))
	fs.StringVar(&f.device, "device", "cpu", "cpu (the pure-Go reference) or vulkan")
	fs.StringVar(&f.vkdevice, "vkdevice", "", "Vulkan device NAME substring or INDEX (default: $HATA_VK_DEVICE, else discrete > integrated > CPU)")
	fs.StringVar(&f.q, "q", "", "queries .npy [B,Hq,d] float32|float16")
	fs.StringVar(&f.k, "k", "", "keys .npy [B,Hkv,N,d] float32|float16 (post-RoPE)")
	fs.StringVar(&f.v, "v", "", "values .npy [B,Hkv,N,d] float32|float16")
	fs.StringVar(&f.w, "w", "", "hash weights [Hkv,d,rbit]: W.npy (float32|float16) or the authors' hash_weight_layer_NN.pt (hata; lsh: in place of random ones)")
	fs.Float64Var(&f.budget, "budget", 0.0156, "X >= 1: k tokens; 0 < X < 1: ratio of N (k = floor(N*X), at least 1)")
	fs.StringVar(&f.out, "o", "", "output .npy [B,Hq,d] float32 (required)")
	fs.StringVar(&f.indices, "indices", "", "selected tokens .npy [B,Hkv,k] int32, ascending (dense: all N; magicpig: padded with -1)")
	fs.StringVar(&f.qcodes, "qcodes", "", "query codes .npy [B,Hq,rbit/32] uint32 (hata, lsh)")
	fs.StringVar(&f.kcodes, "kcodes", "", "key codes .npy [B,Hkv,N,rbit/32] uint32 (hata, lsh)")
	fs.IntVar(&f.rbit, "rbit", ref.DefaultRbit, "lsh: bits of the random projection")
	fs.Uint64Var(&f.seed, "seed", 1, "lsh, magicpig: seed of the random projections")
	fs.IntVar(&f.sink, "sink", 0, "hata, lsh: first tokens always selected (inside k); streaming, magicpig: attention sinks (their default 4)")
	fs.IntVar(&f.recent, "recent", 0, "hata, lsh: last tokens always selected (inside k); magicpig: last tokens attended exactly (its default 64)")
	fs.BoolVar(&f.normWeighted, "normweighted", false, "hata, lsh: rank by ||k||*sum(1-2*Ham/rbit) (the authors' eval scripts) instead of Hamming distance")
	fs.IntVar(&f.lokiChannels, "loki-channels", 32, "loki: leading PCA channels scored")
	fs.IntVar(&f.pageSize, "page", 32, "quest: tokens per page")
	fs.IntVar(&f.magicK, "magicpig-k", 10, "magicpig: bits per SimHash table")
	fs.IntVar(&f.magicL, "magicpig-l", 150, "magicpig: tables")
	usageLine(fs, stderr, "usage: hata attend -q q.npy -k k.npy -v v.npy -o out.npy [-method m] [-w W] [-budget X] [flags]")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	f.given = givenFlags(fs)
	if err := f.check(); err != nil {
		return err
	}
	if err := f.checkOutputs(); err != nil {
		return err
	}
	backend, closeBackend, err := openBackend(f.device, f.vkdevice)
	if err != nil {
		return err
	}
	defer closeBackend()

	in, err := loadAttendInputs(&f)
	if err != nil {
		return err
	}
	budget, _ := ref.ParseBudget(f.budget) // checked in f.check
	opts := ref.Options{
		W: in.w, Rbit: f.rbit, Seed: f.seed, Windows: ref.Windows{Sink: f.sink, Recent: f.recent},
		NormWeighted: f.normWeighted, LokiChannels: f.lokiChannels, PageSize: f.pageSize,
		MagicPIGK: f.magicK, MagicPIGL: f.magicL,
	}
	// ref reads 0 as "the default" in these; -sink 0 means none.
	none := func(n int) int { return cmp.Or(n, -1) }
	if f.given["sink"] {
		opts.SinkTokens, opts.MagicPIGSink = none(f.sink), none(f.sink)
	}
	if f.given["recent"] {
		opts.MagicPIGLocal = none(f.recent)
	}
	m, err := backend.NewMethod(f.method, in.kv.Hkv, in.kv.D, opts)
	if err != nil {
		return err
	}
	if err := m.Prefill(in.kv); err != nil {
		return err
	}
	res, err := m.Decode(in.q, budget)
	if err != nil {
		return err
	}
	return writeAttendOutputs(&f, in, m, res)
}

// check validates the flags that need no file.
func (f *attendFlags) check() error {
	if err := oneOf("method", f.method, ref.MethodNames); err != nil {
		return err
	}
	if err := oneOf("device", f.device, []string{"cpu", "vulkan"}); err != nil {
		return err
	}
	for _, p := range []struct{ name, v string }{{"q", f.q}, {"k", f.k}, {"v", f.v}, {"o", f.out}} {
		if p.v == "" {
			return usagef("-%s is required", p.name)
		}
	}
	if f.method == "hata" && f.w == "" {
		return usagef("-method hata needs -w (W.npy [Hkv,d,rbit] or hash_weight_layer_NN.pt); -method lsh uses random weights")
	}
	if f.w != "" && f.method != "hata" && f.method != "lsh" {
		return usagef("-w is used by hata and lsh only, not %s", f.method)
	}
	if (f.qcodes != "" || f.kcodes != "") && f.method != "hata" && f.method != "lsh" {
		return usagef("-qcodes and -kcodes exist for the hashing methods (hata, lsh) only, not %s", f.method)
	}
	for _, name := range slices.Sorted(maps.Keys(methodFlags)) {
		if methods := methodFlags[name]; f.given[name] && !slices.Contains(methods, f.method) {
			return usagef("-%s is read by %s only, not %s", name, strings.Join(methods, ", "), f.method)
		}
	}
	if _, err := ref.ParseBudget(f.budget); err != nil {
		return usagef("-budget: %v", err)
	}
	if f.rbit < 32 || f.rbit%32 != 0 || f.rbit > vk.MaxTuningRbit {
		return usagef("-rbit %d: want a multiple of 32 in [32, %d]", f.rbit, vk.MaxTuningRbit)
	}
	if f.sink < 0 || f.recent < 0 || f.lokiChannels < 1 || f.pageSize < 1 || f.magicK < 1 || f.magicL < 1 {
		return usagef("-sink, -recent must be >= 0 and -loki-channels, -page, -magicpig-k, -magicpig-l >= 1")
	}
	if f.magicK > 32 || f.magicL > experiments.MaxMagicPIGTables {
		return usagef("-magicpig-k %d, -magicpig-l %d: want at most 32 bits a table and %d tables", f.magicK, f.magicL, experiments.MaxMagicPIGTables)
	}
	// lsh takes -w's weights instead of drawing random ones, and then
	// never reads what would draw them.
	for _, name := range []string{"rbit", "seed"} {
		if f.method == "lsh" && f.w != "" && f.given[name] {
			return usagef("-%s is not read with -w: lsh takes the weights of -w instead of drawing them from -rbit and -seed", name)
		}
	}
	return nil
}

// checkOutputs checks every output path before anything is computed or
// written: no output may be an input or another output (compared as files, so
// ./q.npy, a symlink or a hard link to q.npy count as q.npy), and each must be
// a regular file or a new name in an existing directory.
func (f *attendFlags) checkOutputs() error {
	ins := []struct{ name, path string }{{"q", f.q}, {"k", f.k}, {"v", f.v}, {"w", f.w}}
	outs := []struct{ name, path string }{{"o", f.out}, {"indices", f.indices}, {"qcodes", f.qcodes}, {"kcodes", f.kcodes}}
	for i, o := range outs {
		if o.path == "" {
			continue
		}
		for _, in := range ins {
			if in.path != "" && sameFile(o.path, in.path) {
				return usagef("-%s %s would overwrite an input, -%s %s", o.name, o.path, in.name, in.path)
			}
		}
		for _, prev := range outs[:i] {
			if prev.path != "" && sameFile(o.path, prev.path) {
				return usagef("-%s %s and -%s %s name the same file", prev.name, prev.path, o.name, o.path)
			}
		}
		if err := checkDestination("-"+o.name, o.path); err != nil {
			return err
		}
	}
	return nil
}

// checkDestination reports whether a file can be written at path by renaming a
// temporary file over it: path must be an existing regular file or a new name
// in an existing directory. flag names the flag in the error.
func checkDestination(flag, path string) error {
	info, err := os.Stat(path)
	switch {
	case err == nil && info.IsDir():
		return usagef("%s %s: is a directory", flag, path)
	case err == nil && !info.Mode().IsRegular():
		return usagef("%s %s: not a regular file", flag, path)
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return nil
}

// sameFile reports whether paths a and b name the same file: the same path
// once made absolute and cleaned, the same existing file (through symlinks or
// hard links), or the same name in the same directory for files not yet made.
func sameFile(a, b string) bool {
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	if errA != nil || errB != nil {
		return a == b
	}
	if absA == absB {
		return true
	}
	infoA, errA := os.Stat(absA)
	infoB, errB := os.Stat(absB)
	if errA == nil && errB == nil {
		return os.SameFile(infoA, infoB)
	}
	if filepath.Base(absA) != filepath.Base(absB) {
		return false
	}
	dirA, errA := os.Stat(filepath.Dir(absA))
	dirB, errB := os.Stat(filepath.Dir(absB))
	return errA == nil && errB == nil && os.SameFile(dirA, dirB)
}

// attendInputs are the validated tensors of one decode step.
type attendInputs struct {
	q  []float32 // q: [B][Hq][D]
	hq int
	kv *ref.KV
	w  *ref.HashWeights // [Hkv][D][Rbit], nil unless -w
}

// loadAttendInputs reads and cross-checks q, k, v and W.
func loadAttendInputs(f *attendFlags) (*attendInputs, error) {
	q, err := loadFloat(f.q, "q", "[B,Hq,d]", 3)
	if err != nil {
		return nil, err
	}
	k, err := loadFloat(f.k, "k", "[B,Hkv,N,d]", 4)
	if err != nil {
		return nil, err
	}
	v, err := loadFloat(f.v, "v", "[B,Hkv,N,d]", 4)
	if err != nil {
		return nil, err
	}
	if !equalShape(k.Shape, v.Shape) {
		return nil, fmt.Errorf("k %s has shape %v but v %s has shape %v: they must match", f.k, k.Shape, f.v, v.Shape)
	}
	b, hq, d := q.Shape[0], q.Shape[1], q.Shape[2]
	hkv, n := k.Shape[1], k.Shape[2]
	switch {
	case b != k.Shape[0]:
		return nil, fmt.Errorf("q %s has shape %v [B,Hq,d] and k %s has shape %v [B,Hkv,N,d]: batch %d != %d", f.q, q.Shape, f.k, k.Shape, b, k.Shape[0])
	case d != k.Shape[3]:
		return nil, fmt.Errorf("q %s has shape %v [B,Hq,d] and k %s has shape %v [B,Hkv,N,d]: head dim %d != %d", f.q, q.Shape, f.k, k.Shape, d, k.Shape[3])
	case hkv == 0 || hq%hkv != 0:
		return nil, fmt.Errorf("q %s has shape %v and k %s has shape %v: Hq=%d is not a multiple of Hkv=%d", f.q, q.Shape, f.k, k.Shape, hq, hkv)
	case b == 0 || hq == 0 || n == 0 || d == 0:
		return nil, fmt.Errorf("q %s has shape %v and k %s has shape %v: every dimension must be >= 1", f.q, q.Shape, f.k, k.Shape)
	}
	for _, t := range []struct {
		name string
		x    []float32
	}{{"q " + f.q, q.F32}, {"k " + f.k, k.F32}, {"v " + f.v, v.F32}} {
		if err := tensorio.CheckFinite(t.name, t.x); err != nil {
			return nil, err
		}
	}
	kv, err := ref.NewKV(b, hkv, n, d, k.F32, v.F32)
	if err != nil {
		return nil, err
	}
	in := &attendInputs{q: q.F32, hq: hq, kv: kv}
	if f.w != "" {
		in.w, err = tensorio.ReadHashWeights(f.w)
		if err != nil {
			return nil, err
		}
		if in.w.Hkv != hkv || in.w.D != d {
			return nil, fmt.Errorf("W %s has shape [%d %d %d] [Hkv,d,rbit] but k %s has shape %v: want Hkv=%d and d=%d",
				f.w, in.w.Hkv, in.w.D, in.w.Rbit, f.k, k.Shape, hkv, d)
		}
	}
	return in, nil
}

// loadFloat reads a float32 or float16 .npy tensor of the given rank.
func loadFloat(path, name, axes string, rank int) (*tensorio.Array, error) {
	a, err := tensorio.ReadNPY(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if a.Dtype != tensorio.Float32 && a.Dtype != tensorio.Float16 {
		return nil, fmt.Errorf("%s %s: dtype %s, want float32 or float16", name, path, a.Dtype)
	}
	if len(a.Shape) != rank {
		return nil, fmt.Errorf("%s %s: shape %v has rank %d, want rank %d %s", name, path, a.Shape, len(a.Shape), rank, axes)
	}
	return a, nil
}

// equalShape reports whether two shapes are the same.
func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// writeAttendOutputs writes every requested output, all or none.
func writeAttendOutputs(f *attendFlags, in *attendInputs, m ref.Method, res *ref.Result) error {
	kv := in.kv
	var st staged
	defer st.abort()
	if err := st.float32(f.out, []int{kv.B, in.hq, kv.D}, res.Out); err != nil {
		return err
	}
	if f.indices != "" {
		shape, idx := indexTensor(res.Selected, kv)
		if err := st.int32(f.indices, shape, idx); err != nil {
			return err
		}
	}
	if f.qcodes != "" || f.kcodes != "" {
		c, ok := m.(ref.Coder)
		if !ok {
			return fmt.Errorf("%s on this device does not expose hash codes", m.Name())
		}
		qc, kc, err := c.Codes()
		if err != nil {
			return err
		}
		words := len(qc) / (kv.B * in.hq)
		if f.qcodes != "" {
			if err := st.uint32(f.qcodes, []int{kv.B, in.hq, words}, qc); err != nil {
				return err
			}
		}
		if f.kcodes != "" {
			if err := st.uint32(f.kcodes, []int{kv.B, kv.Hkv, kv.N, words}, kc); err != nil {
				return err
			}
		}
	}
	return st.commit()
}

// indexTensor lays out the selected sets as [B,Hkv,k] int32. Dense attention
// selects every token (k = N); rows of different lengths (MagicPIG's sampled
// sets) are padded with -1 to the longest.
func indexTensor(sel [][]int32, kv *ref.KV) ([]int, []int32) {
	if sel == nil {
		sel = make([][]int32, kv.B*kv.Hkv)
		for r := range sel {
			for t := range kv.N {
				sel[r] = append(sel[r], int32(t))
			}
		}
	}
	k := 0
	for _, row := range sel {
		k = max(k, len(row))
	}
	idx := make([]int32, len(sel)*k)
	for r, row := range sel {
		for i := range k {
			idx[r*k+i] = -1
			if i < len(row) {
				idx[r*k+i] = row[i]
			}
		}
	}
	return []int{kv.B, kv.Hkv, k}, idx
}

// staged writes output files under temporary names and renames them into
// place only on commit, so a failing command leaves no output behind.
type staged struct {
	tmp, final []string
}

// add writes the file that will become path with write, under a new temporary
// name in path's directory (so that no file of the user's is touched before
// commit).
func (s *staged) add(path string, write func(tmp string) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-hata-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f.Close()
	s.tmp, s.final = append(s.tmp, f.Name()), append(s.final, path)
	if err := write(f.Name()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// float32 stages x: shape as a float32 .npy file at path.
func (s *staged) float32(path string, shape []int, x []float32) error {
	return s.add(path, func(tmp string) error { return tensorio.WriteNPYFloat32(tmp, shape, x) })
}

// int32 stages x: shape as an int32 .npy file at path.
func (s *staged) int32(path string, shape []int, x []int32) error {
	return s.add(path, func(tmp string) error { return tensorio.WriteNPYInt32(tmp, shape, x) })
}

// uint32 stages x: shape as a uint32 .npy file at path.
func (s *staged) uint32(path string, shape []int, x []uint32) error {
	return s.add(path, func(tmp string) error { return tensorio.WriteNPYUint32(tmp, shape, x) })
}

// commit renames every staged file into place.
func (s *staged) commit() error {
	for i := range s.tmp {
		if err := os.Rename(s.tmp[i], s.final[i]); err != nil {
			return err
		}
		s.tmp[i] = ""
	}
	s.tmp = nil
	return nil
}

// abort removes the staged files that were not committed.
func (s *staged) abort() {
	for _, t := range s.tmp {
		if t != "" {
			os.Remove(t)
		}
	}
}
