#version 450
// Dense decode attention, split pass, K/V stored as float16 and read in
// 8-byte vectors (twice the lanes per token of dense_split_f16): see
// dense_split.glsl and kv.glsl.
#define KV_F16H
#include "dense_split.glsl"
