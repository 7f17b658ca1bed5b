#version 450
// sparse_split_f32 with HATA's select inside (SELECT): see sparse_split.glsl.
#extension GL_GOOGLE_include_directive : require
#define KV_F32
#define SELECT
#include "sparse_split.glsl"
