#version 450
// select_list: HATA's fused select from hata_score's bucket lists. See
// select_list.glsl.
#extension GL_GOOGLE_include_directive : require
#include "select_list.glsl"
