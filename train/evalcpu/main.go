// Command evalcpu runs the model's CPU evaluations at small sizes: hash
// training on training text, then needle-in-a-haystack, perplexity versus
// budget and greedy agreement for dense attention, HATA (trained hash),
// LSH (random hash) and the other top-k baselines. It writes the rows as JSON.
//
//	go run ./train/evalcpu -out train/cpu_eval.json
//
// It reads weights/, train/heldout.txt and the hash weights in weights/hash/;
// when those are missing it trains them on .data/train.txt (rebuilt by
// train/prepare_data.sh): 4 windows of 1024 tokens, 8 query positions per KV
// head each (-hash-seqs, -hash-len, -hash-positions), ref.DefaultTrainConfig,
// 128 bits, every layer from the third on; -hash-only stops there.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"time"

	"github.com/hata-go/hata/model"
	"github.com/hata-go/hata/ref"
)

func main() {
	out := flag.String("out", "train/cpu_eval.json", "where to write the rows")
	weights := flag.String("weights", "weights", "checkpoint directory")
	trainText := flag.String("train", ".data/train.txt", "training text for the hash weights")
	heldout := flag.String("heldout", "train/heldout.txt", "held-out text")
	hashDir := flag.String("hash-dir", "weights/hash", "trained hash weights: loaded if present, else trained and saved there")
	hashSeqs := flag.Int("hash-seqs", 4, "training sequences for the hash weights")
	hashLen := flag.Int("hash-len", 1024, "tokens per hash-training sequence")
	hashPos := flag.Int("hash-positions", 8, "query positions sampled per KV head and sequence")
	hashOnly := flag.Bool("hash-only", false, "stop once the hash weights are trained (or loaded)")
	hashAnswers := flag.Int("hash-answers", 0, "also train on this many pass-key prompts of training text, at the positions that predict the key")
	pplLen := flag.Int("ppl-len", 1024, "tokens per perplexity window")
	pplWin := flag.Int("ppl-windows", 2, "perplexity windows")
	trials := flag.Int("trials", 2, "NIAH prompts per cell")
	flag.Parse()
	ctx := context.Background()
	m, err := model.Load(*weights)
	if err != nil {
		log.Fatal(err)
	}
	c := m.Config
	hay, err := os.ReadFile(*heldout)
	if err != nil {
		log.Fatal(err)
	}
	ws, err := m.LoadHashWeights(*hashDir)
	if err != nil {
		log.Printf("%v: training hash weights", err)
		if ws, err = trainHash(m, *trainText, *hashSeqs, *hashLen, *hashPos, *hashAnswers); err != nil {
			log.Fatal(err)
		}
		if err := model.SaveHashWeights(*hashDir, ws); err != nil {
			log.Fatal(err)
		}
	}
	if *hashOnly {
		return
	}

	methods := []model.MethodSpec{model.Dense}
	for _, name := range []string{"hata", "lsh", "topk", "loki", "quest", "streaming", "h2o"} {
		methods = append(methods, model.MethodSpec{Name: name, Factory: m.RefFactory(name, ref.Options{Seed: 1}, ws)})
	}
	budgets := []ref.Budget{{Ratio: 0.0156}, {Ratio: 0.0313}}
	res := map[string]any{"config": c, "budgets": budgets}

	t0 := time.Now()
	nh, err := m.NIAH(ctx, model.NIAHConfig{Haystack: hay, Contexts: []int{512, 1024, 2048}, Depths: []float64{0, 0.25, 0.5, 0.75, 1},
		Trials: *trials, Methods: methods, Budgets: budgets, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	res["niah"] = nh
	log.Printf("niah in %.0fs", time.Since(t0).Seconds())

	t0 = time.Now()
	pp, err := m.Perplexity(ctx, model.PerplexityConfig{Text: hay, Windows: *pplWin, Length: *pplLen, Methods: methods, Budgets: budgets})
	if err != nil {
		log.Fatal(err)
	}
	res["perplexity"] = pp
	log.Printf("perplexity in %.0fs", time.Since(t0).Seconds())
	for _, r := range pp {
		fmt.Printf("ppl %-9s %-6s %.4f bits/byte  agreement %.3f  read %.4f\n", r.Method, r.Budget, r.BitsPerByte, r.Agreement, r.AttendedFraction)
	}

	t0 = time.Now()
	var prompts []string
	for i := range 4 {
		off := (2*i + 1) * (len(hay) - 600) / 8
		prompts = append(prompts, string(hay[off:off+600]))
	}
	ag, err := m.Agreement(ctx, model.AgreementConfig{Prompts: prompts, Tokens: 32, Methods: methods, Budgets: budgets})
	if err != nil {
		log.Fatal(err)
	}
	res["agreement"] = ag
	log.Printf("agreement in %.0fs", time.Since(t0).Seconds())
	for _, r := range ag {
		fmt.Printf("agree %-9s %-6s %.3f  first divergence %.1f\n", r.Method, r.Budget, r.Agreement, r.FirstDivergence)
	}
	acc := map[string][2]int{}
	for _, r := range nh {
		k := r.Method + "@" + r.Budget
		a := acc[k]
		acc[k] = [2]int{a[0] + r.Correct, a[1] + r.Trials}
	}
	for k, a := range acc {
		fmt.Printf("niah %-16s %d/%d\n", k, a[0], a[1])
	}
	b, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

// trainHash trains hash weights for every sparse layer (from
// model.PaperDenseLayers on) on n evenly spaced windows of length tokens of the
// training text.
func trainHash(m *model.Model, path string, n, length, positions, answers int) (map[int]*ref.HashWeights, error) {
	tr, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (build it with train/prepare_data.sh)", err)
	}
	c := m.Config
	t0 := time.Now()
	var seqs [][]int
	for i := range n {
		off := (i*2 + 1) * (len(tr) - length) / (2 * n)
		seqs = append(seqs, append([]int{c.BOSTokenID}, model.EncodeBytes(tr[off:off+length-1])...))
	}
	var layers []int
	for l := model.PaperDenseLayers; l < c.NLayers; l++ {
		layers = append(layers, l)
	}
	// Pass-key prompts of training text (model.NIAHPrompt's needle and
	// question, keys and depths of their own), each followed by its key:
	// the hash also learns from the positions where the model retrieves.
	o := model.HashTraining{Seed: 1, Positions: positions}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range answers {
		key := fmt.Sprint(10000 + rng.IntN(90000))
		off := rng.IntN(len(tr) - 2*length)
		p, err := model.NIAHPrompt(tr[off:off+2*length], length, rng.Float64(), key)
		if err != nil {
			return nil, fmt.Errorf("answer prompt %d: %w", i, err)
		}
		p[0] = c.BOSTokenID // NIAHPrompt leaves BOS to the caller
		o.AnswerSeqs = append(o.AnswerSeqs, append(p, model.EncodeBytes([]byte(" "+key))...))
		o.AnswerLen = len(key)
	}
	ws, err := m.TrainHash(seqs, layers, o)
	if err != nil {
		return nil, err
	}
	log.Printf("hash weights for layers %v trained in %.0fs", layers, time.Since(t0).Seconds())
	return ws, nil
}
