#version 450
// Quest page scores, bounds stored as float32: see quest_score.glsl.
#define KV_F32
#include "quest_score.glsl"
