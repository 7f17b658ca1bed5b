#version 450
// quest_score: Quest's page scores (ref.Quest.pageScores, summed over the
// group as in ref.Quest.Decode), as select keys:
//
//	U_g(j) = sum_{i < D} max(q_g[i] lo_j[i], q_g[i] hi_j[i])     (float32, i ascending)
//	S(j)   = sum_{g < G} U_g(j)                                  (g ascending)
//	keys[r][j] = desc_key(S(j)),  s[r][j] = S(j)
//
// Every token then carries its page's key (the select kernels read keys with
// page = P), so that "pages best first, ties to the smaller page, the last
// page cut to its first tokens" is exactly "the k largest token scores, ties
// to the smaller index" (ref.Quest.Scores says the same).
//
// Bindings (set 0):
//	0 q    [rows*G][D] float32
//	1 lo   [rows][pcap][D] float32
//	2 hi   [rows][pcap][D] float32
//	3 keys [rows][pstride] uint32
//	4 s    [rows][pstride] float32
// Dispatch: (ceil(pages / WG), rows, 1): one lane per page.

#extension GL_GOOGLE_include_directive : require
#include "select_key.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;
layout(constant_id = 2) const uint G = 1;

const uint WG = gl_WorkGroupSize.x;

layout(push_constant) uniform PushConstants {
    uint pages;   // pages of the row: ceil(n / page)
    uint pcap;    // row stride of lo and hi, in pages
    uint pstride; // row stride of keys and s
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer Lo { vec4 lo[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer Hi { vec4 hi[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 4) restrict writeonly buffer S { float s_[]; };

shared vec4 sh_q[G * D / 4];

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    for (uint e = li; e < G * D / 4; e += WG) {
        const uint o = row * G * D + e * 4;
        sh_q[e] = vec4(q[o], q[o + 1], q[o + 2], q[o + 3]);
    }
    barrier();
    const uint j = gl_WorkGroupID.x * WG + li;
    if (j >= pc.pages) return;
    const uint b = (row * pc.pcap + j) * (D / 4);
    float s = 0.0;
    for (uint g = 0; g < G; g++) {
        float u = 0.0;
        for (uint i = 0; i < D / 4; i++) {
            const vec4 qv = sh_q[g * D / 4 + i];
            const vec4 m = max(qv * lo[b + i], qv * hi[b + i]);
            u += m.x;
            u += m.y;
            u += m.z;
            u += m.w;
        }
        s += u;
    }
    keys[row * pc.pstride + j] = desc_key(s);
    s_[row * pc.pstride + j] = s;
}
