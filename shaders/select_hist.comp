#version 450
// select_hist: one histogram pass of the selection (select.glsl, step 1).
// See select_hist.glsl.
#extension GL_GOOGLE_include_directive : require
#include "select_hist.glsl"
