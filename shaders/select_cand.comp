#version 450
// select_cand: select_hist's pass before the last digit of uint32 keys,
// which also lists the candidates (select_cand.glsl). See select_hist.glsl.
#extension GL_GOOGLE_include_directive : require
#define CAND_LIST
#include "select_hist.glsl"
