package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hata-go/hata/model"
	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/tensorio"
)

func init() {
	commands["generate"] = command{"continue a prompt with the project's small model, attention by any method", runGenerate}
	commands["traces"] = command{"dump the per-layer q/k/v of a prompt from the project's small model", runTraces}
}

// maxPromptBytes bounds what promptOf reads of a -prompt-file (a device
// such as /dev/zero never ends); the model's max_seq_len is checked later.
const maxPromptBytes = 64 << 20

// promptOf returns the prompt from the positional arguments or -prompt-file.
func promptOf(pos []string, file string) (string, error) {
	switch {
	case file != "" && len(pos) > 0:
		return "", usagef("give the prompt as an argument or with -prompt-file, not both")
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxPromptBytes+1))
		if err != nil {
			return "", err
		}
		if len(b) > maxPromptBytes {
			return "", usagef("-prompt-file %s: over %d MiB, far past any model's context (a byte a token)", file, maxPromptBytes>>20)
		}
		return string(b), nil
	case len(pos) == 0:
		return "", usagef("no prompt: give it as an argument or with -prompt-file")
	}
	return strings.Join(pos, " "), nil
}

// runGenerate implements hata generate: text on stdout, speed on stderr.
func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata generate", flag.ContinueOnError)
	dir := fs.String("model", "weights", "checkpoint directory (config.json + safetensors)")
	method := fs.String("method", "dense", "attention of the decode steps: "+strings.Join(ref.MethodNames, "|"))
	wdir := fs.String("w", "weights/hash", "hata: directory of hash_weight_layer_LL.npy (hata train writes them)")
	budgetX := fs.Float64("budget", 0.0156, "X >= 1: k tokens; 0 < X < 1: ratio of N")
	device := fs.String("device", "cpu", "cpu or vulkan")
	vkdev := fs.String("vkdevice", "", "Vulkan device NAME substring or INDEX")
	maxTok := fs.Int("n", 128, "tokens to generate at most (fewer where the prompt nears the model's max_seq_len)")
	temp := fs.Float64("temp", 0, "sampling temperature; 0 is greedy")
	seed := fs.Uint64("seed", 1, "sampling seed (and lsh's random projections)")
	denseLayers := fs.Int("dense-layers", 0, "leading layers kept dense: 0 is the paper's 2, -1 none")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file")
	usageLine(fs, stderr, "usage: hata generate [-method m] [-budget X] [flags] PROMPT...   (or -prompt-file FILE)")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	prompt, err := promptOf(pos, *promptFile)
	if err != nil {
		return err
	}
	if err := oneOf("method", *method, ref.MethodNames); err != nil {
		return err
	}
	given := givenFlags(fs)
	switch {
	case given["w"] && *method != "hata": // as hata attend refuses a method's flag given with another
		return usagef("-w is read by hata only, not %s (lsh draws random weights from -seed)", *method)
	case given["budget"] && *method == "dense":
		return usagef("-budget is read by the sparse methods, not dense, which reads every token")
	}
	if err := oneOf("device", *device, []string{"cpu", "vulkan"}); err != nil {
		return err
	}
	budget, err := ref.ParseBudget(*budgetX)
	if err != nil {
		return usagef("-budget: %v", err)
	}
	switch {
	case *maxTok < 1:
		return usagef("-n %d: want >= 1", *maxTok)
	case !(*temp >= 0) || math.IsInf(*temp, 0):
		return usagef("-temp %v: want a finite value >= 0", *temp)
	case *denseLayers < -1:
		return usagef("-dense-layers %d: want -1 (none), 0 (the paper's %d) or a number of layers", *denseLayers, model.PaperDenseLayers)
	}
	m, err := model.Load(*dir)
	if err != nil {
		return err
	}
	nl := m.Config.NLayers
	if *denseLayers > nl {
		return usagef("-dense-layers %d: the model %s has %d layers", *denseLayers, *dir, nl)
	}
	if err := checkPromptLen(m, prompt, *dir); err != nil {
		return err
	}
	dc := model.DecodeConfig{DenseLayers: *denseLayers, Budget: budget}
	dense := dc.Dense() // the layers kept dense
	var ws map[int]*ref.HashWeights
	if *method == "hata" && dense < nl {
		if ws, err = m.LoadHashWeights(*wdir); err != nil {
			return err
		}
		for l := dense; l < nl; l++ {
			if ws[l] == nil {
				return fmt.Errorf("-w %s has no hash weights for layer %d, which -dense-layers %d leaves sparse (layers %d..%d)", *wdir, l, *denseLayers, dense, nl-1)
			}
		}
	}
	be, closeBackend, err := openBackend(*device, *vkdev)
	if err != nil {
		return err
	}
	defer closeBackend()
	ctx, stop := interruptible()
	defer stop()
	opts := model.GenerateOptions{
		DecodeConfig: dc,
		MaxTokens:    *maxTok, Temperature: *temp, Seed: *seed,
	}
	if *method != "dense" {
		opts.Methods = m.MethodFactory(be.NewMethod, *method, ref.Options{Seed: *seed}, ws)
	}
	text, st, err := m.Generate(ctx, prompt, opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, text)
	var full string
	if st.ContextFull {
		full = fmt.Sprintf(" (stopped at the model's max_seq_len of %d, short of -n %d)", m.Config.MaxSeqLen, *maxTok)
	}
	read := fmt.Sprintf("%.1f%% of each sparse layer's cache read", 100*st.AttendedFraction)
	if dense >= nl {
		read = fmt.Sprintf("no sparse layer (-dense-layers %d keeps all %d dense)", *denseLayers, nl)
	}
	fmt.Fprintf(stderr, "%s on %s: %d prompt tokens, %d generated%s, prefill %.2fs, decode %.1f tokens/s, %s\n",
		*method, *device, st.PromptTokens, st.Tokens, full, st.PrefillSeconds, st.TokensPerSecond, read)
	return nil
}

// runTraces implements hata traces: the trace directory of one prompt.
func runTraces(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata traces", flag.ContinueOnError)
	dir := fs.String("model", "weights", "checkpoint directory (config.json + safetensors)")
	out := fs.String("out", "", "trace directory to write, new or empty (required)")
	layersFlag := fs.String("layers", "all", "layers: all, or a comma list")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file")
	usageLine(fs, stderr, "usage: hata traces -out DIR [-layers all|2,3] [-model DIR] PROMPT...   (or -prompt-file FILE)")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("-out is required")
	}
	prompt, err := promptOf(pos, *promptFile)
	if err != nil {
		return err
	}
	var layers []int
	if *layersFlag != "all" {
		for _, f := range strings.Split(*layersFlag, ",") {
			l, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || l < 0 {
				return usagef("-layers %q: %q is not a layer number", *layersFlag, f)
			}
			layers = append(layers, l)
		}
	}
	m, err := model.Load(*dir)
	if err != nil {
		return err
	}
	for _, l := range layers {
		if l >= m.Config.NLayers {
			return usagef("-layers %q: layer %d, and the model %s has %d (0..%d)", *layersFlag, l, *dir, m.Config.NLayers, m.Config.NLayers-1)
		}
	}
	if err := checkPromptLen(m, prompt, *dir); err != nil {
		return err
	}
	if _, _, _, err := newDirMode("-out", *out); err != nil { // before the prefill, which can take minutes
		return err
	}
	// The first Ctrl-C waits for the prefill (it cannot stop it) and then
	// stops before anything is written; once the write has begun it is
	// finished, so that the temporary directory is renamed or removed.
	ctx, stop := interruptible()
	defer stop()
	tr, err := m.Traces(m.Encode(prompt), layers)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: nothing written to %s", *out)
	}
	err = writeNewDir("-out", *out, func(tmp string) error { return tensorio.WriteTrace(tmp, m.TraceMeta(prompt), tr) })
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, *out)
	return nil
}

// checkPromptLen returns an error where prompt, as m's tokens, is longer than
// the context m was trained for (its max_seq_len); dir names the model.
func checkPromptLen(m *model.Model, prompt, dir string) error {
	if n := len(m.Encode(prompt)); n > m.Config.MaxSeqLen {
		return fmt.Errorf("the prompt is %d tokens (its bytes and BOS), more than the max_seq_len of %d of the model %s", n, m.Config.MaxSeqLen, dir)
	}
	return nil
}

// newDirMode checks that a new directory can be made at path: nothing is
// there, or an empty directory is (empty is then true; it will be replaced),
// and the directory it goes in can be written. It returns where the new
// directory goes (abs: path made absolute, or where a symlink at path points,
// so that the link keeps pointing at it) and the permissions it should have:
// the empty one's, else 0755. Where the working directory is path or below
// it, replacing path would leave the shell in a removed directory: an error.
// flag names the flag in the error.
func newDirMode(flag, path string) (abs string, mode os.FileMode, empty bool, err error) {
	if abs, err = filepath.Abs(path); err != nil {
		return "", 0, false, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if wd, err := os.Getwd(); err == nil {
		if real, err := filepath.EvalSymlinks(wd); err == nil {
			wd = real
		}
		if rel, err := filepath.Rel(abs, wd); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "", 0, false, usagef("%s %s: is the working directory or holds it, which the new directory would replace; name another", flag, path)
		}
	}
	if err := checkWritable(flag, path, filepath.Dir(abs)); err != nil {
		return "", 0, false, err
	}
	info, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return abs, 0o755, false, nil
	case err != nil:
		return "", 0, false, fmt.Errorf("%s %s: %w", flag, path, err)
	case !info.IsDir():
		return "", 0, false, usagef("%s %s: exists and is not a directory", flag, path)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return "", 0, false, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(entries) > 0 {
		return "", 0, false, usagef("%s %s: directory exists and is not empty (remove it or name a new one)", flag, path)
	}
	return abs, info.Mode().Perm(), true, nil
}

// checkWritable returns an error where no file can be made in dir, or, where
// dir does not exist yet, in the nearest directory above it that does (a
// read-only file system, another user's directory): checked before work
// that takes minutes, not found at its end. flag and path name the flag and
// its value in the error.
func checkWritable(flag, path, dir string) error {
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	probe, err := os.MkdirTemp(dir, ".hata-write-check-*")
	if err != nil {
		return fmt.Errorf("%s %s: cannot write in %s: %w", flag, path, dir, err)
	}
	return os.Remove(probe)
}

// writeNewDir makes the directory path, all or nothing: write fills a
// temporary directory beside it, which is then renamed to path. path must be
// new or an empty directory (newDirMode); on any error nothing is left behind,
// not even the parent directories this made.
func writeNewDir(flag, path string, write func(tmp string) error) error {
	abs, mode, wasEmpty, err := newDirMode(flag, path)
	if err != nil {
		return err
	}
	undo, err := makeDirs(filepath.Dir(abs))
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp-hata-*")
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = write(tmp)
	}
	if err == nil && wasEmpty {
		err = os.Remove(abs) // os.Rename replaces no directory; this fails if it is no longer empty
	}
	if err == nil {
		if err = os.Rename(tmp, abs); err != nil && wasEmpty {
			os.Mkdir(abs, mode)
		}
	}
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		undo()
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return nil
}
