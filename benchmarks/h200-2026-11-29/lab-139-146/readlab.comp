#version 450
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
// Lab variant of read.comp (same bindings, push constants, spec ids): only
// AWG workgroups of ALANES lanes read; PATTERN 1: a contiguous chunk per
// workgroup; 2: two chunks per workgroup, one in each half of the buffer
// (like dense's K and V); 3: a grid-stride loop over the active lanes.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint UNROLL_SPEC = 4;
layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };
layout(push_constant) uniform PushConstants { uint n; } pc;

void main() {
    const uint w = gl_WorkGroupID.x, l = gl_LocalInvocationID.x;
    const uint awg = min(AWG, gl_NumWorkGroups.x), alanes = min(ALANES, gl_WorkGroupSize.x);
    uvec4 acc = uvec4(0);
    if (w < awg && l < alanes) {
#if PATTERN == 3
        const uint stride = awg * alanes;
        uint i = w * alanes + l;
        for (; i + (UNROLL - 1) * stride < pc.n; i += UNROLL * stride) {
            uvec4 v[UNROLL];
            for (uint u = 0; u < UNROLL; u++) v[u] = src[i + u * stride];
            for (uint u = 0; u < UNROLL; u++) acc ^= v[u];
        }
        for (; i < pc.n; i += stride) acc ^= src[i];
#else
#if PATTERN == 1
        const uint NS = 1;
#else
        const uint NS = 2;
#endif
        const uint half_ = pc.n / NS;
        const uint len1 = pc.n - (NS - 1) * half_; // the last stream's length (>= half_)
        const uint chunk = (len1 + awg - 1) / awg;
        const uint c0 = w * chunk;
        const uint c1 = min(c0 + chunk, len1);
        for (uint i = c0 + l; i < c1; i += UNROLL * alanes) {
            uvec4 v[NS * UNROLL];
            for (uint u = 0; u < UNROLL; u++)
                for (uint h = 0; h < NS; h++) {
                    const uint e = i + u * alanes;
                    v[u * NS + h] = e < c1 && (h == NS - 1 || e < half_) ? src[h * half_ + e] : uvec4(0);
                }
            for (uint u = 0; u < NS * UNROLL; u++) acc ^= v[u];
        }
#endif
    }
    if (UNROLL_SPEC == 12345u) acc.x ^= 1u; // keeps spec id 1 declared
    acc = subgroupXor(acc);
    if (subgroupElect()) dst[gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID] = acc;
}
