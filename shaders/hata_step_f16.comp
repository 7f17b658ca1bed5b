#version 450
// HATA's decode step in one dispatch, K/V stored as float16: see
// hata_step.glsl and kv.glsl.
#define KV_F16
#include "hata_step.glsl"
