#version 450
// Quest page bounds, keys stored as float32: see quest_bounds.glsl.
#define KV_F32
#include "quest_bounds.glsl"
