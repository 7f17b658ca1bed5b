#version 450
// hata_score with one-byte keys (KEY8) and a clock read at each phase of
// every workgroup (TRACE): see hata_score.glsl. Needs VK_KHR_shader_clock's
// device clock.
#extension GL_EXT_shader_realtime_clock : require
#extension GL_GOOGLE_include_directive : require
#define TRACE
#define KEY8_KEYS
#include "hata_score.glsl"
