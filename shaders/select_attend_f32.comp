#version 450
// HATA fused select + sparse attention, K/V stored as float32: see select_attend.glsl.
#define KV_F32
#include "select_attend.glsl"
