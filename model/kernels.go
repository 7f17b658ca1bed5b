package model

import (
	"math"
	"runtime"

	"github.com/hata-go/hata/ref"
)

// The kernels of the forward pass: plain float32 loops, parallel over
// independent output rows. Each output element is computed by one goroutine in
// a fixed order, so results do not depend on the schedule.

// dot returns sum_i a[i]*b[i] in float32 with four partial sums (the order of
// a blocked BLAS, as PyTorch's CPU matmul uses). len(b) >= len(a).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// rmsnorm writes RMSNorm(x) * w to out; x, w, out: [Dim].
//
//	out[i] = x[i] / sqrt(mean_j x[j]^2 + eps) * w[i]
//
// PyTorch: xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.
// The sum of squares accumulates in float64.
func rmsnorm(out, x, w []float32, eps float64) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	r := float32(1 / math.Sqrt(ss/float64(len(x))+eps))
	for i := range x {
		out[i] = x[i] * r * w[i]
	}
}

// matmul computes out = x W^T for n rows at once, as nn.Linear does:
//
//	out[t][o] = sum_i x[t][i] * w[o][i]
//
// x: [n][in], w: [outDim][in], out: [n][outDim]. Rows of W are split among
// goroutines; tokens are taken in blocks of 16 so a block of x stays in cache
// while the rows of W stream past it.
func matmul(out, x, w []float32, n, in, outDim int) {
	parallelRange(outDim, func(lo, hi int) {
		for t0 := 0; t0 < n; t0 += 16 {
			t1 := min(n, t0+16)
			for o := lo; o < hi; o++ {
				wr := w[o*in : (o+1)*in]
				for t := t0; t < t1; t++ {
					out[t*outDim+o] = dot(x[t*in:(t+1)*in], wr)
				}
			}
		}
	})
}

// silu returns x * sigmoid(x) (PyTorch's F.silu).
func silu(x float32) float32 { return x / (1 + float32(math.Exp(-float64(x)))) }

// swiglu writes silu(gate) * up into gate, elementwise: the SwiGLU MLP's
// silu(w1(x)) * w3(x).
func swiglu(gate, up []float32) {
	for i := range gate {
		gate[i] = silu(gate[i]) * up[i]
	}
}

// causalAttention computes dense causal attention over a whole prompt, the
// attention of prefill: query position t of head h attends to key positions
// 0..t of KV head h/G.
//
//	s_u   = q_t·k_u / sqrt(D)                    u <= t
//	out_t = sum_u softmax(s)_u v_u
//
// q: [Hq][N][D], k, v: [Hkv][N][D], out: [N][Hq*D] (token-major, the layout
// o_proj reads). Scores and values accumulate in float32, the softmax
// normaliser in float64. ref.Prefill is the float64 specification it is
// tested against.
func causalAttention(out, q, k, v []float32, hq, hkv, n, d int) {
	g := hq / hkv
	scale := float32(1 / math.Sqrt(float64(d)))
	const rows = 16 // query positions per work item
	blocks := (n + rows - 1) / rows
	ref.ParallelFor(hq*blocks, func(i int) {
		h, b := i/blocks, i%blocks
		kh := k[(h/g)*n*d : (h/g+1)*n*d] // kh: [N][D]
		vh := v[(h/g)*n*d : (h/g+1)*n*d] // vh: [N][D]
		s := make([]float32, n)          // s: [N] scores of one query
		acc := make([]float32, d)        // acc: [D]
		for t := b * rows; t < min(n, (b+1)*rows); t++ {
			qt := q[(h*n+t)*d : (h*n+t+1)*d]
			m := float32(math.Inf(-1))
			for u := 0; u <= t; u++ {
				s[u] = dot(qt, kh[u*d:(u+1)*d]) * scale
				m = max(m, s[u])
			}
			clear(acc)
			var z float64
			for u := 0; u <= t; u++ {
				p := float32(math.Exp(float64(s[u] - m)))
				z += float64(p)
				vu := vh[u*d : (u+1)*d]
				for c := range acc {
					acc[c] += p * vu[c]
				}
			}
			o := out[t*hq*d+h*d : t*hq*d+(h+1)*d]
			for c := range o {
				o[c] = float32(float64(acc[c]) / z)
			}
		}
	})
}

// argmax returns the index of the largest entry of x, the smallest index on
// ties.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// workers returns the number of goroutines the kernels use.
func workers() int { return runtime.GOMAXPROCS(0) }

// parallelRange splits [0, n) into contiguous chunks, one or a few per
// goroutine, and calls f(lo, hi) on each.
func parallelRange(n int, f func(lo, hi int)) {
	w := workers()
	if w <= 1 || n < 2*w {
		f(0, n)
		return
	}
	chunks := 4 * w
	size := (n + chunks - 1) / chunks
	ref.ParallelFor((n+size-1)/size, func(c int) { f(c*size, min(n, (c+1)*size)) })
}
