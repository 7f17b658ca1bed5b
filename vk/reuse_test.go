package vk

import (
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestPrefillAfterClose checks that every method prefilled again after its
// Close (NewMethod's doc) decodes as it did before: hata and lsh freed their
// hash weights at Close and dereferenced the nil buffer at the next Prefill.
func TestPrefillAfterClose(t *testing.T) {
	ctx := device(t)
	const b, hq, hkv, n, d = 1, 4, 2, 40, 16
	rng := rand.New(rand.NewPCG(3, 4))
	kv, q := randomKV(rng, b, hkv, n, d, F32), normal(rng, b*hq*d, 1)
	w, err := ref.RandomHashWeights(hkv, d, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Methods {
		m, err := ctx.NewMethod(name, hkv, d, ref.Options{W: w})
		if err != nil {
			t.Fatalf("NewMethod(%s): %v", name, err)
		}
		var res [2]*ref.Result
		for i := range res {
			if err := m.Prefill(kv); err != nil {
				t.Fatalf("%s: Prefill %d: %v", name, i, err)
			}
			if res[i], err = m.Decode(q, ref.Budget{K: 4}); err != nil {
				t.Fatalf("%s: Decode %d: %v", name, i, err)
			}
			if err := m.(io.Closer).Close(); err != nil {
				t.Fatalf("%s: Close %d: %v", name, i, err)
			}
		}
		if !slices.Equal(res[0].Out, res[1].Out) || !slices.EqualFunc(res[0].Selected, res[1].Selected, slices.Equal) {
			t.Errorf("%s: the decode after Close and Prefill = %v %v, want the first's %v %v",
				name, res[1].Out[:4], res[1].Selected, res[0].Out[:4], res[0].Selected)
		}
	}
}
