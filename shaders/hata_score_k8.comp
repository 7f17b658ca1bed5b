#version 450
// hata_score with one-byte keys (KEY8): see hata_score.glsl.
#extension GL_GOOGLE_include_directive : require
#define KEY8_KEYS
#include "hata_score.glsl"
