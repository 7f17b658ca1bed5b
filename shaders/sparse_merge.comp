#version 450
// sparse_merge: the log-sum-exp merge of the S split partials of the sparse
// attention (sparse_split.glsl) into the output, as a dispatch of its own
// (SparseOptions.Merge; the naive variant always): one workgroup per query
// row, in one pass over the partials (lse_merge.glsl). The fused variant can
// instead fold this merge into sparse_split's last workgroup of each row
// (split_fold in split_softmax.glsl). The same kernel as dense_merge, kept
// under its own name so that each family's kernels are its own.
//
// Bindings and dispatch: lse_merge.glsl's. WG a multiple of D/4.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128; // head dimension, a multiple of 4

#include "lse_merge.glsl"
