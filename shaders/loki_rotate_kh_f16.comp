#version 450
// Loki's rotation into float16 rotated keys: see proj.glsl.
#define KV_F16
#define PROJ_OUT_F16
#include "proj.glsl"
