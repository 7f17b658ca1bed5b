package vk

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
)

// BenchmarkSparseDecode times one decode step of the top-k methods at the
// paper's speed shapes (Llama-3.1-8B attention: Hq=32, Hkv=8, D=128; fp16
// K/V; rbit 128; budget 1.56%) with GPU timestamps, and reports the median
// time of every stage and of the kernels together (upload and readback left
// out), in µs. Caches are filled on the device (PrefillRandom) and, when
// small, replicated and cycled so that no step finds the previous step's
// codes or rows in L2. It opens its own context without poisoning. On a CPU
// device only a small shape runs. $HATA_BENCH_METHODS (comma-separated,
// e.g. "hata,hata/naive,dense") narrows the methods.
//
//	go test -run '^$' -bench SparseDecode -benchtime 30x ./vk/
func BenchmarkSparseDecode(b *testing.B) {
	ctx, err := OpenWith(Options{})
	if err != nil {
		b.Skipf("no Vulkan device: %v", err)
	}
	defer ctx.Close()
	type shape struct{ b, n int }
	shapes := []shape{{8, 32768}, {8, 131072}, {1, 262144}, {1, 131072}}
	if ctx.Info.Type == DeviceCPU {
		shapes = []shape{{1, 4096}}
	}
	// "+warm": the same with SparseOptions.Prologue = 256 MB (a busy GPU and
	// a cold L2 before every step).
	methods := []string{"hata", "hata+warm", "hata/naive", "lsh", "topk", "loki", "quest", "dense"}
	if s := os.Getenv("HATA_BENCH_METHODS"); s != "" {
		methods = strings.Split(s, ",")
	}
	const hq, hkv, d = 32, 8, 128
	budget := ref.Budget{Ratio: 0.0156}
	for _, sh := range shapes {
		for _, method := range methods {
			base, warm := strings.CutSuffix(method, "+warm")
			name, variant, _ := strings.Cut(base, "/")
			b.Run(fmt.Sprintf("%s_B%d_N%d", strings.NewReplacer("/", "-", "+", "-").Replace(method), sh.b, sh.n), func(b *testing.B) {
				// Replicate until the per-step traffic of all copies is
				// over 256 MB (H200 L2: 60 MB), within 48 GB of caches.
				k, _ := budget.Tokens(sh.n)
				step := int64(sh.b*hkv) * (int64(sh.n)*16 + int64(k)*2*d*2)
				cache := int64(2*sh.b*hkv*sh.n*d*2) + int64(sh.b*hkv*sh.n)*16
				copies := int(min(max(1, (256<<20+step-1)/step), max(1, (48<<30)/cache)))
				if ctx.Info.Type == DeviceCPU {
					copies = 1
				}
				var ms []ref.Method
				defer func() {
					for _, m := range ms {
						m.(io.Closer).Close()
					}
				}()
				for i := range copies {
					m, err := ctx.BenchMethod(name, variant, hkv, d, Tuning{})
					if err != nil {
						b.Fatal(err)
					}
					if warm {
						coreOf(m).opt.Prologue = 256 << 20
					}
					ms = append(ms, m)
					pr, ok := m.(interface {
						PrefillRandom(b, hkv, n, d int, seed uint32) error
					})
					if !ok {
						b.Skipf("%s: no PrefillRandom", method)
					}
					if err := pr.PrefillRandom(sh.b, hkv, sh.n, d, uint32(2*i+1)); err != nil {
						b.Fatal(err)
					}
				}
				q := make([]float32, sh.b*hq*d)
				for i := range q {
					q[i] = RandomValue(12345, uint32(i))
				}
				stages := map[string][]float64{}
				var totals []float64
				for i := range b.N + 3 {
					m := ms[i%len(ms)]
					var t Timings
					if st, ok := m.(interface {
						Step([]float32, ref.Budget) (Timings, error)
					}); ok {
						if t, err = st.Step(q, budget); err != nil {
							b.Fatal(err)
						}
					} else {
						if _, err := m.Decode(q, budget); err != nil {
							b.Fatal(err)
						}
						t = m.(interface{ Timings() Timings }).Timings()
					}
					if i < 3 {
						continue
					}
					var total float64
					for _, s := range t.Stages {
						switch s.Name {
						case "upload", "readback", "poison":
							continue
						}
						stages[s.Name] = append(stages[s.Name], s.Ns)
						total += s.Ns
					}
					totals = append(totals, total)
				}
				b.ReportMetric(medianF(totals)/1e3, "us/step")
				var parts []string
				for _, s := range []string{"encode", "score", "select", "gather", "attend", "split", "merge"} {
					if xs := stages[s]; len(xs) > 0 {
						b.ReportMetric(medianF(xs)/1e3, s+"_us")
						parts = append(parts, fmt.Sprintf("%s %.1f", s, medianF(xs)/1e3))
					}
				}
				b.Logf("%s B=%d N=%d k=%d copies=%d: %.1f us (%s)", method, sh.b, sh.n, k, copies, medianF(totals)/1e3, strings.Join(parts, ", "))
			})
		}
	}
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
