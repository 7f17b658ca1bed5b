package vk_test

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/vk"
)

// HATA on the GPU, checked against the reference: the same ref.Method
// interface, the same cache and query, and the selection and output
// compared. The GPU projects in float32 where ref uses float64, so a code
// bit whose projection lies within rounding of 0 may differ on inputs like
// these; the vk tests use inputs that make every stage exact (reftest's
// dyadic values) and require the codes, scores and selection to match bit
// for bit. On lavapipe this prints "llvmpipe (...): 63 tokens a KV head,
// the reference's selection 100%, output within 2.0e-07 of it". With no
// GPU, vk.Open("") finds lavapipe if Mesa's Vulkan drivers are installed.
// (No Output line: what it prints depends on the device.)
func Example() {
	ctx, err := vk.Open("") // $HATA_VK_DEVICE, or a discrete GPU, then integrated, then a CPU device
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()

	const b, hq, hkv, n, d = 1, 32, 8, 4096, 128 // Llama-3.1-8B's heads
	rng := rand.New(rand.NewPCG(1, 1))
	randn := func(m int) []float32 {
		x := make([]float32, m)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	kv, err := ref.NewKV(b, hkv, n, d, randn(b*hkv*n*d), randn(b*hkv*n*d)) // K, V: [B][Hkv][N][D]
	if err != nil {
		log.Fatal(err)
	}
	q := randn(b * hq * d) // [B][Hq][D]
	w, err := ref.RandomHashWeights(hkv, d, 128, 2)
	if err != nil {
		log.Fatal(err)
	}
	budget, err := ref.ParseBudget(0.0156)
	if err != nil {
		log.Fatal(err)
	}

	gpu, err := ctx.NewMethod("hata", hkv, d, ref.Options{W: w})
	if err != nil {
		log.Fatal(err)
	}
	defer gpu.(io.Closer).Close()
	cpu, err := ref.New("hata", hkv, d, ref.Options{W: w})
	if err != nil {
		log.Fatal(err)
	}
	var res [2]*ref.Result
	for i, m := range []ref.Method{gpu, cpu} {
		if err := m.Prefill(kv); err != nil {
			log.Fatal(err)
		}
		if res[i], err = m.Decode(q, budget); err != nil {
			log.Fatal(err)
		}
	}
	rel, err := ref.RelL2(res[0].Out, res[1].Out)
	if err != nil {
		log.Fatal(err)
	}
	recall, err := ref.Recall(res[0].Selected, res[1].Selected)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d tokens a KV head, the reference's selection %.0f%%, output within %.1e of it\n",
		ctx.Info.Name, len(res[0].Selected[0]), 100*recall, rel)
}
