#version 450
// HATA's select + sparse attention split by entries, K/V as float32: see select_split.glsl.
#define KV_F32
#include "select_split.glsl"
