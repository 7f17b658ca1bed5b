#version 450
// read: the read-only roofline kernel. Every invocation XORs the uvec4
// elements src[i] of a grid-stride loop (16 bytes per load, unroll loads in
// flight per step); each workgroup folds its invocations' XORs in shared
// memory (fold_xor.glsl) and its first invocation writes the result to
// dst[workgroup], so the kernel reads all of src and writes 16 bytes per
// workgroup: what a decode kernel that only streams its cache (dense
// attention) can reach, where the copy kernel (copy.comp) also
// writes as much as it reads.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint UNROLL = 4;

layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform PushConstants {
    uint n; // uvec4 elements to read
} pc;

#include "fold_xor.glsl"

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uvec4 acc = uvec4(0);
    uint i = gl_GlobalInvocationID.x;
    // Whole steps of UNROLL independent loads, then the rest one at a time.
    for (; i + (UNROLL - 1) * stride < pc.n; i += UNROLL * stride) {
        uvec4 v[UNROLL];
        for (uint u = 0; u < UNROLL; u++) {
            v[u] = src[i + u * stride];
        }
        for (uint u = 0; u < UNROLL; u++) {
            acc ^= v[u];
        }
    }
    for (; i < pc.n; i += stride) {
        acc ^= src[i];
    }
    const uvec4 x = fold_xor(acc);
    if (gl_LocalInvocationID.x == 0) {
        dst[gl_WorkGroupID.x] = x;
    }
}
