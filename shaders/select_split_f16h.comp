#version 450
// HATA's select + sparse attention split by entries, K/V as float16 in 8-byte vectors: see select_split.glsl.
#define KV_F16H
#include "select_split.glsl"
