#version 450
// Quest page scores, bounds stored as float16: see quest_score.glsl.
#define KV_F16
#include "quest_score.glsl"
