#version 450
// select_write_cand: select_write after select_cand, for the uint32 radix
// select (select_cand.glsl). See select_write.glsl.
#extension GL_GOOGLE_include_directive : require
#define CAND_WRITE
#define SELECT_BINS_SPEC // constant 3: bins a lane in the threshold's search
#include "select_write.glsl"
