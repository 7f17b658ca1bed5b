// quest_bounds.glsl: Quest's page bounds (ref.Quest.widen): for page j of
// cache row r, tokens [j*page, min((j+1)*page, n)),
//
//	lo[r][j][i] = min_t K[r][t][i],   hi[r][j][i] = max_t K[r][t][i]
//
// recomputed from the cache for pages p0 .. p0 + gridX*PPW - 1 (all pages at
// prefill, the last page at append; pages past n are skipped). The bounds
// are stored in the cache's type (KV_T vectors): the min and max of fp16
// values are fp16 values, so fp16 bounds are exact (packHalf2x16 of a value
// that is a half is that half) and quest_score reads half the bytes.
// Included by quest_bounds_f32.comp and quest_bounds_f16.comp.
//
// Work: PPW pages per workgroup, one lane per (page, 16-byte vector): the
// lanes of a page read a token's row contiguously; each lane walks its
// page's tokens four at a time, the four loads issued together (a token past
// the page is read as its last token: min and max are idempotent).
//
// Bindings (set 0):
//	0 K  [rows][cap][D] as KV_T vectors; with KV_PAIRED (SparseOptions.PairedKV)
//	     [rows][cap][2*D], a token's K and V in 16-byte chunks alternating
//	1 lo [rows][pcap][D] as KV_T vectors
//	2 hi [rows][pcap][D] as KV_T vectors
// Dispatch: (ceil(pages / PPW), rows, 1).

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kv.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;
layout(constant_id = 2) const uint PPW = 1; // pages per workgroup
layout(constant_id = 3) const bool KV_PAIRED = false; // K in a paired cache

const uint DV = D / KV_VEC;
const uint KV_RS = KV_TOKEN_RS; // a token's stride in a row of K (kv.glsl)
const uint WG = gl_WorkGroupSize.x;

#if defined(KV_F16)
// KV_PACK(src): the 8 floats src[0 .. 8), each a half, as one vector.
#define KV_PACK(src) uvec4(packHalf2x16(vec2(src[0], src[1])), packHalf2x16(vec2(src[2], src[3])), \
                           packHalf2x16(vec2(src[4], src[5])), packHalf2x16(vec2(src[6], src[7])))
#else
#define KV_PACK(src) vec4(src[0], src[1], src[2], src[3])
#endif

layout(push_constant) uniform PushConstants {
    uint n;    // tokens
    uint cap;  // row stride of K, in tokens
    uint page; // tokens per page
    uint p0;   // first page of the dispatch
    uint pcap; // row stride of lo and hi, in pages
    uint row0; // the cache row of the bound K's row 0 (a cache in several buffers)
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 1) restrict writeonly buffer Lo { KV_T lo[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Hi { KV_T hi[]; };

void main() {
    const uint krow = gl_WorkGroupID.y; // row of the bound K
    const uint row = pc.row0 + krow;    // cache row
    for (uint it = gl_LocalInvocationIndex; it < PPW * DV; it += WG) {
        const uint j = pc.p0 + gl_WorkGroupID.x * PPW + it / DV;
        const uint v = it % DV;
        const uint t0 = j * pc.page;
        const uint t1 = min(t0 + pc.page, pc.n);
        if (t0 >= t1) continue;
        // Vector v of token t's key at t*KV_RS past base.
        const uint base = krow * pc.cap * KV_RS + KV_KEY_POS(v);
        float mn[KV_VEC], mx[KV_VEC], a[KV_VEC];
        KV_LOAD(kb, base + t0 * KV_RS, mn, 0)
        [[unroll]] for (uint e = 0; e < KV_VEC; e++) mx[e] = mn[e];
        for (uint t = t0 + 1; t < t1; t += 4) {
            KV_T u[4];
            [[unroll]] for (uint i = 0; i < 4; i++) u[i] = kb[base + min(t + i, t1 - 1) * KV_RS];
            [[unroll]] for (uint i = 0; i < 4; i++) {
                KV_UNPACK(u[i], a, 0)
                [[unroll]] for (uint e = 0; e < KV_VEC; e++) {
                    mn[e] = min(mn[e], a[e]);
                    mx[e] = max(mx[e], a[e]);
                }
            }
        }
        const uint o = (row * pc.pcap + j) * DV + v;
        lo[o] = KV_PACK(mn);
        hi[o] = KV_PACK(mx);
    }
}
