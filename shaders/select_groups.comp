#version 450
// select_groups: select_write for uint16 keys over longer spans per lane,
// HATA's fused select over long chunks. See select_groups.glsl.
#extension GL_GOOGLE_include_directive : require
#include "select_groups.glsl"
