#version 450
// Quest page bounds, keys stored as float16: see quest_bounds.glsl.
#define KV_F16
#include "quest_bounds.glsl"
