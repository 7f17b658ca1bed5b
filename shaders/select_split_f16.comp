#version 450
// HATA's select + sparse attention split by entries, K/V as float16 in 16-byte vectors: see select_split.glsl.
#define KV_F16
#include "select_split.glsl"
