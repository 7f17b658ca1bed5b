#version 450
// Loki's rotation: see proj.glsl.
#define PROJ_Q
#include "proj.glsl"
