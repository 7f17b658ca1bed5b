#version 450
// Scaled logits and softmax partials, keys stored as float32: see score_logits.glsl.
#define KV_F32
#include "score_logits.glsl"
