// quest_bounds.glsl: Quest's page bounds (ref.Quest.widen): for page j of
// cache row r, tokens [j*page, min((j+1)*page, n)),
//
//	lo[r][j][i] = min_t K[r][t][i],   hi[r][j][i] = max_t K[r][t][i]
//
// recomputed from the cache for pages p0 .. p0 + gridX - 1 (all pages at
// prefill, the last page at append). Included by quest_bounds_f32.comp and
// quest_bounds_f16.comp.
//
// Bindings (set 0):
//	0 K  [rows][cap][D] as KV_T vectors
//	1 lo [rows][pcap][D] float32
//	2 hi [rows][pcap][D] float32
// Dispatch: (pages, rows, 1).

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kv.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;

const uint DV = D / KV_VEC;

layout(push_constant) uniform PushConstants {
    uint n;    // tokens
    uint cap;  // row stride of K, in tokens
    uint page; // tokens per page
    uint p0;   // first page of the dispatch
    uint pcap; // row stride of lo and hi, in pages
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 1) restrict writeonly buffer Lo { float lo[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Hi { float hi[]; };

void main() {
    const uint row = gl_WorkGroupID.y;
    const uint j = pc.p0 + gl_WorkGroupID.x;
    const uint t0 = j * pc.page;
    const uint t1 = min(t0 + pc.page, pc.n);
    if (t0 >= t1) return;
    for (uint v = gl_LocalInvocationIndex; v < DV; v += gl_WorkGroupSize.x) {
        float a[KV_VEC], mn[KV_VEC], mx[KV_VEC];
        KV_LOAD(kb, (row * pc.cap + t0) * DV + v, mn, 0)
        [[unroll]] for (uint e = 0; e < KV_VEC; e++) mx[e] = mn[e];
        for (uint t = t0 + 1; t < t1; t++) {
            KV_LOAD(kb, (row * pc.cap + t) * DV + v, a, 0)
            [[unroll]] for (uint e = 0; e < KV_VEC; e++) {
                mn[e] = min(mn[e], a[e]);
                mx[e] = max(mx[e], a[e]);
            }
        }
        const uint o = (row * pc.pcap + j) * D + v * KV_VEC;
        [[unroll]] for (uint e = 0; e < KV_VEC; e++) {
            lo[o + e] = mn[e];
            hi[o + e] = mx[e];
        }
    }
}
