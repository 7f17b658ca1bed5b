// Package ref is the pure-Go reference of decode attention: dense attention, HATA
// (hash-aware top-k attention, Gong et al., Findings of ACL 2025) and the top-k
// baselines it is compared with. It is the specification that every GPU kernel,
// experiment and figure of this project is held against, so it is written for
// reading: one file per concept of the paper, plain loops, and a shape comment on
// every tensor.
//
// Conventions (see HATA.md and PAPER.md at the repository root):
//
//	B    batch                     Hq   query heads
//	Hkv  key/value heads           G    = Hq/Hkv, the GQA group size
//	N    cached tokens             D    head dimension
//	Rbit hash bits (multiple of 32) k   token budget per (batch, KV head)
//
// Tensors are flat []float32 slices in row-major (C) order; the shape comment
// beside each one names its axes, e.g. q: [B][Hq][D]. Query head h belongs to KV
// head h/G. Arithmetic that produces floats accumulates in float64, so the
// reference is the float64 evaluation against which the tolerances of the float32
// GPU kernels are derived. Integer stages (hash codes, Hamming scores, selected
// sets) are exact and must be reproduced bit for bit by every implementation.
//
// A Method is one way to pick keys and attend. Every method is driven the same
// way: Prefill hands it the cache, Append adds one decoded token, Decode attends
// one query step under a Budget. The vk package implements the same interface on
// the GPU, and the acceptance suite in package reftest holds any implementation
// to this one.
package ref
