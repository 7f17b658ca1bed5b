#version 450
// HATA's hash encoder: see proj.glsl.
#define PROJ_BITS
#define KV_F32
#include "proj.glsl"
