#version 450
// Loki's rotation: see proj.glsl.
#define KV_F16
#include "proj.glsl"
