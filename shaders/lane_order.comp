#version 450
#extension GL_KHR_shader_subgroup_basic : require
// lane_order: a probe of the two things the kernels assume of subgroups
// (vk/doc.go, Context.CheckSubgroups). Every invocation writes, at its
// place in the grid, where its subgroup numbers it,
// gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID, for the host to
// compare with gl_LocalInvocationIndex (lane i of subgroup s is invocation
// s*gl_SubgroupSize + i), and gl_NumSubgroups and gl_SubgroupSize, whose
// product the host compares with the workgroup size: where every invocation
// is in place and the two are equal, every subgroup is full. Basic subgroup
// operations only, which every device the kernels run on has.
layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) writeonly buffer Out { uvec4 out_[]; }; // [groups*WG] (place, subgroups, size, 0)

void main() {
    const uint i = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationIndex;
    out_[i] = uvec4(gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID, gl_NumSubgroups, gl_SubgroupSize, 0u);
}
