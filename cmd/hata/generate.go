package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/hata-go/hata/model"
	"github.com/hata-go/hata/ref"
)

func init() {
	commands["generate"] = command{"continue a prompt with the project's small model, attention by any method", runGenerate}
	commands["traces"] = command{"dump the per-layer q/k/v of a prompt from the project's small model", runTraces}
}

// promptOf returns the prompt from the positional arguments or -prompt-file.
func promptOf(pos []string, file string) (string, error) {
	switch {
	case file != "" && len(pos) > 0:
		return "", usagef("give the prompt as an argument or with -prompt-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
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
	maxTok := fs.Int("n", 128, "tokens to generate at most")
	temp := fs.Float64("temp", 0, "sampling temperature; 0 is greedy")
	seed := fs.Uint64("seed", 1, "sampling seed (and lsh's random projections)")
	denseLayers := fs.Int("dense-layers", 0, "leading layers kept dense: 0 is the paper's 2, -1 none")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file")
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
	if err := oneOf("device", *device, []string{"cpu", "vulkan"}); err != nil {
		return err
	}
	budget, err := ref.ParseBudget(*budgetX)
	if err != nil {
		return usagef("-budget: %v", err)
	}
	m, err := model.Load(*dir)
	if err != nil {
		return err
	}
	var ws map[int]*ref.HashWeights
	if *method == "hata" {
		if ws, err = m.LoadHashWeights(*wdir); err != nil {
			return err
		}
	}
	be, closeBackend, err := openBackend(*device, *vkdev)
	if err != nil {
		return err
	}
	defer closeBackend()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := model.GenerateOptions{
		DecodeConfig: model.DecodeConfig{DenseLayers: *denseLayers, Budget: budget},
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
	fmt.Fprintf(stderr, "%s on %s: %d prompt tokens, %d generated, prefill %.2fs, decode %.1f tokens/s, %.1f%% of each sparse layer's cache read\n",
		*method, *device, st.PromptTokens, st.Tokens, st.PrefillSeconds, st.TokensPerSecond, 100*st.AttendedFraction)
	return nil
}

// runTraces implements hata traces: the trace directory of one prompt.
func runTraces(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata traces", flag.ContinueOnError)
	dir := fs.String("model", "weights", "checkpoint directory (config.json + safetensors)")
	out := fs.String("out", "", "trace directory to write (required)")
	layersFlag := fs.String("layers", "all", "layers: all, or a comma list")
	promptFile := fs.String("prompt-file", "", "read the prompt from this file")
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
	if err := m.WriteTraces(*out, prompt, layers); err != nil {
		return err
	}
	fmt.Fprintln(stdout, *out)
	return nil
}
