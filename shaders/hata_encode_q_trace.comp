#version 450
// hata_encode_q with a clock read at each phase of every workgroup (TRACE):
// see proj.glsl. Needs VK_KHR_shader_clock's device clock.
#extension GL_EXT_shader_realtime_clock : require
#define PROJ_BITS
#define PROJ_Q
#define TRACE
#include "proj.glsl"
