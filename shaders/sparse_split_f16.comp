#version 450
// Sparse decode attention, split pass, K/V stored as float16: see sparse_split.glsl.
#define KV_F16
#include "sparse_split.glsl"
