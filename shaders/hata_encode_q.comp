#version 450
// HATA's hash encoder: see proj.glsl.
#define PROJ_BITS
#define PROJ_Q
#include "proj.glsl"
