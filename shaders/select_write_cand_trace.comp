#version 450
// select_write_cand with a clock read at each phase of every workgroup
// (TRACE): see select.glsl. Needs VK_KHR_shader_clock's device clock.
#extension GL_EXT_shader_realtime_clock : require
#extension GL_GOOGLE_include_directive : require
#define TRACE
#define CAND_WRITE
#define SELECT_BINS_SPEC // constant 3: bins a lane in the threshold's search
#include "select_write.glsl"
