#version 450
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// lane_order: a probe of the two things the kernels assume of subgroups
// (vk/doc.go, Context.CheckSubgroups). Every invocation writes, at its
// place in the grid, where its subgroup numbers it,
// gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID (the host wants
// gl_LocalInvocationIndex: lane i of subgroup s is invocation
// s*gl_SubgroupSize + i), and the lanes of its subgroup that ran,
// subgroupAdd(1), with gl_SubgroupSize (the host wants them equal: full
// subgroups).
layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) writeonly buffer Out { uvec4 out_[]; }; // [groups*WG] (place, lanes, size, 0)

void main() {
    const uint i = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationIndex;
    out_[i] = uvec4(gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID, subgroupAdd(1u), gl_SubgroupSize, 0u);
}
