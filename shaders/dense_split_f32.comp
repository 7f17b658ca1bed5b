#version 450
// Dense decode attention, split pass, K/V stored as float32: see dense_split.glsl.
#define KV_F32
#include "dense_split.glsl"
