#version 450
// HATA's decode step in one dispatch, K/V stored as float16 read in 8-byte vectors: see
// hata_step.glsl and kv.glsl.
#define KV_F16H
#include "hata_step.glsl"
