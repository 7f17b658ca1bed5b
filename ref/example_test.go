package ref_test

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/hata-go/hata/ref"
)

// randn returns n N(0, 1) values from rng.
func randn(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// One decode step of HATA against dense attention: the query heads point at
// three of 1024 cached keys (a retrieval step), and HATA reads 1.56% of the
// cache, chosen by the Hamming distance of 128-bit codes. With untrained
// (random) weights it finds the needles but only 40% of the exact top-k's
// tokens. Most of its output's error against dense is the budget's, which
// the exact top-k of the same 15 tokens pays too.
func Example() {
	const b, hq, hkv, n, d = 1, 4, 1, 1024, 64
	rng := rand.New(rand.NewPCG(1, 2))
	kv, err := ref.NewKV(b, hkv, n, d, randn(rng, b*hkv*n*d), randn(rng, b*hkv*n*d)) // K, V: [B][Hkv][N][D]
	if err != nil {
		panic(err)
	}
	needles := []int32{100, 500, 900}
	q := make([]float32, b*hq*d) // q: [B][Hq][D], each head the sum of the needles' keys
	for h := range hq {
		for _, t := range needles {
			for i, x := range kv.Key(0, 0, int(t)) {
				q[h*d+i] += x
			}
		}
	}
	// Untrained weights (random-projection LSH); ref.TrainLayer learns them.
	w, err := ref.RandomHashWeights(hkv, d, 128, 3)
	if err != nil {
		panic(err)
	}
	m := ref.NewHATA(w, ref.Windows{}, false)
	if err := m.Prefill(kv); err != nil {
		panic(err)
	}
	budget, err := ref.ParseBudget(0.0156)
	if err != nil {
		panic(err)
	}
	res, err := m.Decode(q, budget)
	if err != nil {
		panic(err)
	}
	dense, err := ref.Dense(q, kv)
	if err != nil {
		panic(err)
	}
	rel, err := ref.RelL2(res.Out, dense)
	if err != nil {
		panic(err)
	}
	// The exact top-k of the same budget (the oracle HATA approximates).
	oracle := ref.NewTopK()
	if err := oracle.Prefill(kv); err != nil {
		panic(err)
	}
	top, err := oracle.Decode(q, budget)
	if err != nil {
		panic(err)
	}
	relTop, err := ref.RelL2(top.Out, dense)
	if err != nil {
		panic(err)
	}
	recall, err := ref.Recall(res.Selected, top.Selected)
	if err != nil {
		panic(err)
	}
	found := 0
	for _, t := range needles {
		if _, ok := slices.BinarySearch(res.Selected[0], t); ok {
			found++
		}
	}
	fmt.Printf("HATA read %d of %d tokens, %d of the 3 needles among them\n", len(res.Selected[0]), n, found)
	fmt.Printf("recall of the exact top-%d: %.2f\n", len(top.Selected[0]), recall)
	fmt.Printf("relative L2 error against dense: HATA %.3f, exact top-k %.3f\n", rel, relTop)
	// Output:
	// HATA read 15 of 1024 tokens, 3 of the 3 needles among them
	// recall of the exact top-15: 0.40
	// relative L2 error against dense: HATA 0.436, exact top-k 0.338
}

// Every method through one interface (ref.Method): built by name, prefilled
// with a cache, then one decode step at a budget of 16 tokens. Dense reads
// every token; MagicPIG samples a number of tokens that varies (its budget
// sets nothing); the others read exactly 16.
func ExampleNew() {
	const b, hq, hkv, n, d = 1, 4, 2, 256, 32
	rng := rand.New(rand.NewPCG(4, 5))
	kv, err := ref.NewKV(b, hkv, n, d, randn(rng, b*hkv*n*d), randn(rng, b*hkv*n*d))
	if err != nil {
		panic(err)
	}
	q := randn(rng, b*hq*d)
	w, err := ref.RandomHashWeights(hkv, d, 128, 6) // hata needs weights; lsh draws its own
	if err != nil {
		panic(err)
	}
	for _, name := range ref.MethodNames {
		m, err := ref.New(name, hkv, d, ref.Options{W: w})
		if err != nil {
			panic(err)
		}
		if err := m.Prefill(kv); err != nil {
			panic(err)
		}
		res, err := m.Decode(q, ref.Budget{K: 16})
		if err != nil {
			panic(err)
		}
		read := n // dense: Selected is nil, every token is read
		if res.Selected != nil {
			read = len(res.Selected[0])
		}
		fmt.Printf("%-9s reads %3d tokens of KV head 0\n", m.Name(), read)
	}
	// Output:
	// dense     reads 256 tokens of KV head 0
	// topk      reads  16 tokens of KV head 0
	// hata      reads  16 tokens of KV head 0
	// lsh       reads  16 tokens of KV head 0
	// loki      reads  16 tokens of KV head 0
	// quest     reads  16 tokens of KV head 0
	// streaming reads  16 tokens of KV head 0
	// h2o       reads  16 tokens of KV head 0
	// magicpig  reads  80 tokens of KV head 0
}

// The selection rule every implementation follows: the k smallest scores,
// ties to the smaller token index, with the windows' tokens forced in and
// counted inside k.
func ExampleSelectSmallest() {
	scores := []int32{3, 1, 2, 1, 1, 0, 3} // summed Hamming distances of 7 tokens
	fmt.Println(ref.SelectSmallest(scores, 3, ref.Windows{}))
	fmt.Println(ref.SelectSmallest(scores, 4, ref.Windows{}))
	fmt.Println(ref.SelectSmallest(scores, 4, ref.Windows{Sink: 1, Recent: 1}))
	// Output:
	// [1 3 5]
	// [1 3 4 5]
	// [0 1 5 6]
}

// A code's bit j is 1 where x·W[:, j] > 0, strictly: a projection of exactly
// 0 gives 0. Here W: [1][4][32] holds in column j the signs of j's four low
// bits (+1 for a set bit), and the columns 16-31 are zero.
func ExampleHashWeights_Encode() {
	const d, rbit = 4, 32
	wf := make([]float32, d*rbit) // W: [Hkv=1][D][Rbit]
	for i := range d {
		for j := range 16 {
			wf[i*rbit+j] = -1
			if j>>i&1 == 1 {
				wf[i*rbit+j] = 1
			}
		}
	}
	w, err := ref.NewHashWeights(1, d, rbit, wf)
	if err != nil {
		panic(err)
	}
	code := make([]uint32, w.Words())
	w.Encode(0, []float32{1, -2, 0.5, 3}, code)
	fmt.Printf("%032b\n", code[0]) // bit 31 first: bits 5, 8, 9, 11-15 are set
	// Output:
	// 00000000000000001111101100100000
}

// Learning the hash of one layer: training pairs drawn from a prompt's trace
// (q: [Hq][N][D], k: [Hkv][N][D]) for each KV head, then a few steps of the
// paper's loss. The loss falls; HATA.md gives the 300 steps of the paper.
func ExampleTrainLayer() {
	const hq, hkv, n, d = 2, 1, 128, 16
	rng := rand.New(rand.NewPCG(7, 8))
	s := ref.Shape{B: 1, Hq: hq, Hkv: hkv, N: n, D: d}
	q, k := randn(rng, hq*n*d), randn(rng, hkv*n*d)
	var sets []*ref.TrainPairs
	for h := range hkv {
		p, err := ref.Samples(q, k, s, h, 4, rng)
		if err != nil {
			panic(err)
		}
		sets = append(sets, p)
	}
	cfg := ref.DefaultTrainConfig()
	cfg.Steps = 30
	var first, last float64
	w, err := ref.TrainLayer(sets, 32, cfg, func(head, step int, t ref.LossTerms) {
		if step == 0 {
			first = t.Total
		}
		last = t.Total
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("W: [%d][%d][%d], loss fell: %v\n", w.Hkv, w.D, w.Rbit, last < first)
	// Output:
	// W: [1][16][32], loss fell: true
}
