#version 450
// HATA fused select + sparse attention, K/V stored as float16: see select_attend.glsl.
#define KV_F16
#include "select_attend.glsl"
