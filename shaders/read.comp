#version 450
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
// read: the read-only roofline kernel. Every invocation XORs the uvec4
// elements src[i] of a grid-stride loop (16 bytes per load, unroll loads in
// flight per step); each subgroup folds its lanes' XORs and its first lane
// writes the result to dst[subgroup], so the kernel reads all of src and
// writes 16 bytes per subgroup: what a decode kernel that only streams its
// cache (dense attention) can reach, where the copy kernel (copy.comp) also
// writes as much as it reads.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint UNROLL = 4;

layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform PushConstants {
    uint n; // uvec4 elements to read
} pc;

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
    acc = subgroupXor(acc);
    // Lane 0, not subgroupElect(): the same lane in full subgroups, and
    // lavapipe's subgroupElect() loses subgroups of 16 lanes
    // (LP_NATIVE_VECTOR_WIDTH=512; make test's rerun).
    if (gl_SubgroupInvocationID == 0) {
        dst[gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID] = acc;
    }
}
