#version 450
// select_write: the ascending list of the taken tokens (select.glsl, step
// 3). See select_write.glsl.
#extension GL_GOOGLE_include_directive : require
#define SELECT_BINS_SPEC // constant 3: bins a lane in the threshold's search
#include "select_write.glsl"
