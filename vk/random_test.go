package vk

import (
	"math"
	"testing"

	"github.com/hata-go/hata/ref"
	"github.com/hata-go/hata/ref/reftest"
)

// TestFillRandom fills buffers on the device, reads them back and compares
// every element with RandomValue computed on the host: exactly for float32,
// within half a float16 ulp for float16 (packHalf2x16's rounding mode is the
// driver's). A range may continue another (fillRandom's first word), up to
// and past 2^32 elements, where the indices wrap as RandomValue's do.
func TestFillRandom(t *testing.T) {
	c := device(t)
	const words = 5000
	for _, f16 := range []bool{false, true} {
		// first words: the start, across 2^31 words (2^32 float16
		// elements), across 2^32 words, and past it.
		for _, first := range []uint64{0, 1<<31 - 1000, 1<<32 - 3000, 3<<32 + 17} {
			buf, err := c.NewBuffer("random", 4*words+64, DeviceLocal)
			if err != nil {
				t.Fatal(err)
			}
			defer buf.Free()
			if err := c.fillRandom(buf.Range(64, 4*words), f16, 7, 3, first); err != nil {
				t.Fatal(err)
			}
			raw := make([]byte, 4*words)
			if err := c.Read(buf, 64, raw); err != nil {
				t.Fatal(err)
			}
			if !f16 {
				got := bytesF32(raw)
				for i, g := range got {
					if want := RandomValue(7, uint32(first+uint64(i))) * 3; g != want {
						t.Fatalf("f32 element %d from word %d = %v, want %v", i, first, g, want)
					}
				}
				continue
			}
			for i := 0; i < 2*words; i++ {
				h := uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
				g := float64(halfFloat(h))
				want := float64(RandomValue(7, uint32(2*first+uint64(i))) * 3)
				ulp := math.Ldexp(1, int(math.Floor(math.Log2(math.Abs(want))))-10)
				if math.Abs(g-want) > ulp/2+1e-12 && math.Abs(want) > 1e-4 {
					t.Fatalf("f16 element %d from word %d = %v, want %v within half an ulp (%v)", i, first, g, want, ulp/2)
				}
			}
		}
	}
	if err := c.FillRandom(Range{Off: 2, Size: 8}, false, 1, 1); err == nil {
		t.Error("FillRandom at offset 2: want an error")
	}
}

// TestDensePrefillRandom checks that a cache filled on the device attends
// like ref.Dense over the same values rebuilt on the host.
func TestDensePrefillRandom(t *testing.T) {
	c := device(t)
	m, err := c.NewDense(DenseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const b, hkv, hq, n, d = 2, 2, 4, 300, 64
	if err := m.PrefillRandom(b, hkv, n, d, 11); err != nil {
		t.Fatal(err)
	}
	k, v := RandomKV(b, hkv, n, m.Cap(), d, 11)
	kv, err := ref.NewKV(b, hkv, n, d, k, v)
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float32, b*hq*d)
	for i := range q {
		q[i] = RandomValue(99, uint32(i)) * 4
	}
	got, err := m.Decode(q, ref.Full)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.Dense(q, kv)
	if err := reftest.CheckClose(got.Out, want, sparse32(t, q, kv, nil), d); err != nil {
		t.Error(err)
	}
}
