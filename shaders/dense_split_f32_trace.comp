#version 450
// dense_split_f32 with a clock read at each phase of every workgroup
// (TRACE): see dense_split.glsl. Needs VK_KHR_shader_clock's device clock.
#extension GL_EXT_shader_realtime_clock : require
#define KV_F32
#define TRACE
#include "dense_split.glsl"
