#version 450
// Dense decode attention, split pass, K/V stored as float16: see dense_split.glsl.
#define KV_F16
#include "dense_split.glsl"
