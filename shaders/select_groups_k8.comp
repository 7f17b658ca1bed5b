#version 450
// select_groups over hata_score's one-byte keys (KEY8): see select_groups.glsl.
#extension GL_GOOGLE_include_directive : require
#define KEY8_KEYS
#include "select_groups.glsl"
