#version 450
// select_rows: a row's whole selection by one workgroup. See select_rows.glsl.
#extension GL_GOOGLE_include_directive : require
#include "select_rows.glsl"
