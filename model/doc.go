// Package model runs a small Llama-style decoder in pure Go, with the attention
// of every decode step delegated to a ref.Method, so that HATA and its baselines
// can be measured inside a real trained model: needle-in-a-haystack retrieval,
// perplexity and greedy agreement with dense attention.
//
// The model is the one train/train.py trains (weights/ holds the checkpoint):
// a byte-level tokenizer, RMSNorm, RoPE in the non-interleaved (Hugging Face)
// layout, grouped-query attention with head dimension 128, a SwiGLU MLP, a
// final norm and an output head, tied or not. The forward pass is written in
// the manner of llama2.c's run.c: one function per step of the computation,
// plain loops, a shape comment on every buffer, and a comment naming the line
// of the PyTorch model it mirrors.
//
// A sequence runs in two phases, as in the paper:
//
//	prefill  dense causal attention over the prompt (Model.Prefill); the
//	         post-RoPE keys and values of every layer form the cache
//	decode   one token at a time (Session.Step): every layer computes q, k, v
//	         of the new token, appends k, v to its Method, then attends with
//	         Method.Decode(q, budget), so the token sees itself
//
// The first layers stay dense (DecodeConfig.DenseLayers; 2 in the paper, as in
// Quest). The Method of each other layer comes from a Factory, which may build
// ref's CPU reference (RefFactory) or any other implementation of ref.Method.
package model
