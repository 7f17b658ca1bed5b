#version 450
// select_write_cum: select_write for HATA's fused select, whose chunk counts
// come from the score kernel's cumulative histograms (pc.cum = 1), without
// select_count's resolved states (select.glsl). See select_write.glsl.
#extension GL_GOOGLE_include_directive : require
#define SELECT_CUM
#define SELECT_BINS_SPEC // constant 3: bins a lane in the threshold's search
#include "select_write.glsl"
