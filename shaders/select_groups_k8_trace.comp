#version 450
// select_groups over one-byte keys (KEY8) with a clock read at each phase of
// every workgroup (TRACE): see select.glsl. Needs VK_KHR_shader_clock's device
// clock.
#extension GL_EXT_shader_realtime_clock : require
#extension GL_GOOGLE_include_directive : require
#define TRACE
#define KEY8_KEYS
#include "select_groups.glsl"
