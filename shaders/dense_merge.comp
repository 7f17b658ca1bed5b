#version 450
// dense_merge: the log-sum-exp merge of flash-decoding's S split partials
// (dense_split.glsl) into the attention output, as a dispatch of its own
// (DenseOptions.Merge): one workgroup per query row, in one pass over the
// partials (lse_merge.glsl). Otherwise dense_split's last workgroup of each
// cache row does this merge (split_fold in split_softmax.glsl).
//
// Bindings and dispatch: lse_merge.glsl's. WG a multiple of D/4.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128; // head dimension, a multiple of 4

#include "lse_merge.glsl"
