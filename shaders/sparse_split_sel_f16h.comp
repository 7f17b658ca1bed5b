#version 450
// sparse_split_f16h with HATA's select inside (SELECT): see sparse_split.glsl.
#extension GL_GOOGLE_include_directive : require
#define KV_F16H
#define SELECT
#include "sparse_split.glsl"
