#version 450
// Scaled logits and softmax partials, keys stored as float16: see score_logits.glsl.
#define KV_F16
#include "score_logits.glsl"
