#version 450
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
// touch: one 16-byte load every step uvec4 elements of src (n loads in all,
// grid-stride), so that a buffer's every page is touched while almost none
// of its bytes move: L2Flush's evicting of the address translations that a
// decode step's buffers left in the GPU's TLBs. Each subgroup folds its
// lanes' XORs and its first lane writes them to dst[subgroup], as read.comp
// does, so that no load is dead.
layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform PushConstants {
    uint n;    // loads
    uint step; // uvec4 elements between two loads
} pc;

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uvec4 acc = uvec4(0);
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
        acc ^= src[i * pc.step];
    }
    acc = subgroupXor(acc);
    // Lane 0, not subgroupElect(): the same lane in full subgroups, and
    // lavapipe's subgroupElect() loses subgroups of 16 lanes
    // (LP_NATIVE_VECTOR_WIDTH=512; make test's rerun).
    if (gl_SubgroupInvocationID == 0) {
        dst[gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID] = acc;
    }
}
