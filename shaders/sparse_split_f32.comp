#version 450
// Sparse decode attention, split pass, K/V stored as float32: see sparse_split.glsl.
#define KV_F32
#include "sparse_split.glsl"
