#version 450
// Loki's rotation: see proj.glsl.
#define KV_F32
#include "proj.glsl"
