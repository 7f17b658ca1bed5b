#version 450
// HATA's decode step in one dispatch, K/V stored as float32: see
// hata_step.glsl and kv.glsl.
#define KV_F32
#include "hata_step.glsl"
