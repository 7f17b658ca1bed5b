#version 450
// Sparse decode attention, split pass, K/V stored as float16 and read in
// 8-byte vectors (twice the lanes per token of sparse_split_f16): see
// sparse_split.glsl and kv.glsl.
#define KV_F16H
#include "sparse_split.glsl"
