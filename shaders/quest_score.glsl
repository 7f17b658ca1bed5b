// quest_score.glsl: Quest's page scores (ref.Quest.pageScores, summed over
// the group as in ref.Quest.Decode), as select keys, for page j < pages of
// cache row r:
//
//	S(j) = sum_{g < G} sum_{i < D} max(q_g[i] lo_j[i], q_g[i] hi_j[i])     (float32)
//	keys[r][j] = desc_key(S(j))
//
// Only the keys are written: the scores are read back from them (vk's
// scoreOfKey inverts desc_key), so no buffer of S is written every step.
//
// computed as sum q_g[i] (q_g[i] >= 0 ? hi_j[i] : lo_j[i]): the same terms
// (lo <= hi and rounding is monotone, so the product kept is the larger) in a
// select and a multiply-add each instead of two multiplies, a max and an add
// (the compiler may fuse the multiply-add: one rounding less).
//
// Every token then carries its page's key (the select kernels read keys with
// page = P), so that "pages best first, ties to the smaller page, the last
// page cut to its first tokens" is exactly "the k largest token scores, ties
// to the smaller index" (ref.Quest.Scores says the same). Included by
// quest_score_f32.comp and quest_score_f16.comp: the bounds are stored in the
// cache's type (KV_F32 / KV_F16; the min and max of fp16 keys are fp16
// values, so fp16 bounds are exact).
//
// Summation order: each lane sums the G*EPL terms of its share of the row
// (g outer, its elements inner), then the TPT lanes of a page add their
// partial sums by subgroupShuffleXor (a butterfly). This is not ref's order
// (ref sums U_g over i ascending in float64, then over g), and it depends on
// TPT (the device's subgroup size). It does not matter to the acceptance
// suite (ref/reftest): its inputs are dyadic (multiples of 1/8 in [-2, 2]),
// so every term is a multiple of 1/64 of magnitude at most 4 and every sum of
// up to 2^16 of them is exact in float32 in any order; for other inputs the
// float32 sum differs from ref's float64 one by rounding whatever the order,
// and selections are compared up to near-ties (reftest.CheckNearTies).
//
// Layout of the work: one workgroup takes chunk consecutive pages of one row.
// TPT lanes share a page (a slot, as in sparse_split.glsl), lane l holding the
// 16-byte vectors l, l + TPT, ... of the page's lo and hi rows, so that the
// lanes of a subgroup read consecutive vectors of consecutive pages
// (coalesced). Each slot takes TILE pages per step, pages pb + i*NSLOT + slot,
// i < TILE, and issues all 2*TILE*VPL loads of its next step before the
// arithmetic of the current one (loads in flight). The G query heads of the
// group are computed from one load of the bounds (q lives in registers,
// staged through shared memory once per workgroup).
//
// Bindings (set 0):
//	0 q    [rows*G][D] float32
//	1 lo   [rows][pcap][D] as KV_T vectors
//	2 hi   [rows][pcap][D] as KV_T vectors
//	3 keys [rows][pstride] uint32
// Dispatch: (ceil(pages / chunk), rows, 1).

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#include "kv.glsl"
#include "select_key.glsl"

layout(local_size_x_id = 0) in;              // WG: a multiple of the largest subgroup size
layout(constant_id = 1) const uint TPT = 8;  // lanes per page: a power of two <= the smallest subgroup size
layout(constant_id = 2) const uint D = 128;  // head dimension, a multiple of TPT*KV_VEC
layout(constant_id = 3) const uint G = 1;    // query heads per KV head
layout(constant_id = 4) const uint TILE = 4; // pages per slot per step

const uint DV = D / KV_VEC;  // vectors per page row
const uint VPL = DV / TPT;   // vectors per lane
const uint EPL = VPL * KV_VEC; // elements per lane
const uint WG = gl_WorkGroupSize.x;
const uint NSLOT = WG / TPT;

layout(push_constant) uniform PushConstants {
    uint pages;   // pages of the row: ceil(n / page)
    uint pcap;    // row stride of lo and hi, in pages
    uint pstride; // row stride of keys
    uint chunk;   // pages per workgroup
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { vec4 q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer Lo { KV_T lo[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer Hi { KV_T hi[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer Keys { uint keys[]; };

shared vec4 sh_q[G * D / 4];

void main() {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint p0 = gl_WorkGroupID.x * pc.chunk;
    const uint p1 = min(p0 + pc.chunk, pc.pages);

    for (uint e = li; e < G * D / 4; e += WG) sh_q[e] = q[row * G * D / 4 + e];
    barrier();
    // qf[g*EPL + j*KV_VEC + e] = q_g[(j*TPT + lane)*KV_VEC + e]: this lane's
    // elements of every head of the group.
    float qf[G * EPL];
    [[unroll]] for (uint g = 0; g < G; g++) {
        [[unroll]] for (uint j = 0; j < VPL; j++) {
            [[unroll]] for (uint e = 0; e < KV_VEC / 4; e++) {
                const vec4 v = sh_q[(g * D + (j * TPT + lane) * KV_VEC) / 4 + e];
                [[unroll]] for (uint c = 0; c < 4; c++) qf[g * EPL + j * KV_VEC + e * 4 + c] = v[c];
            }
        }
    }

    const uint rowv = row * pc.pcap * DV + lane; // this lane's first vector of the row
    // Every slot runs the same trip count (the shuffles need uniform control
    // flow); a page past p1 is read as page p1 - 1 (no fault, no extra
    // memory traffic) and not written. The next step's vectors are loaded
    // while the current ones are scored.
    KV_T ln[TILE * VPL], hn[TILE * VPL];
#define LOAD_STEP(pb) {                                                        \
        [[unroll]] for (uint i = 0; i < TILE; i++) {                           \
            const uint p_ = min((pb) + i * NSLOT + slot, p1 - 1);              \
            [[unroll]] for (uint j = 0; j < VPL; j++) {                        \
                ln[i * VPL + j] = lo[rowv + p_ * DV + j * TPT];                \
                hn[i * VPL + j] = hi[rowv + p_ * DV + j * TPT];                \
            }                                                                  \
        }                                                                      \
    }
    if (p0 < p1) LOAD_STEP(p0)
    for (uint pb = p0; pb < p1; pb += NSLOT * TILE) {
        KV_T lv[TILE * VPL], hv[TILE * VPL];
        [[unroll]] for (uint e = 0; e < TILE * VPL; e++) {
            lv[e] = ln[e];
            hv[e] = hn[e];
        }
        if (pb + NSLOT * TILE < p1) LOAD_STEP(pb + NSLOT * TILE)
        [[unroll]] for (uint i = 0; i < TILE; i++) {
            float l[EPL], h[EPL];
            [[unroll]] for (uint j = 0; j < VPL; j++) {
                KV_UNPACK(lv[i * VPL + j], l, j * KV_VEC)
                KV_UNPACK(hv[i * VPL + j], h, j * KV_VEC)
            }
            float s = 0.0;
            [[unroll]] for (uint g = 0; g < G; g++) {
                [[unroll]] for (uint e = 0; e < EPL; e++) {
                    const float x = qf[g * EPL + e];
                    s += x * (x >= 0.0 ? h[e] : l[e]); // = max(x*l[e], x*h[e]): l <= h
                }
            }
            [[unroll]] for (uint off = TPT / 2; off > 0; off >>= 1) s += subgroupShuffleXor(s, off);
            const uint p = pb + i * NSLOT + slot;
            if (lane == 0 && p < p1) {
                keys[row * pc.pstride + p] = desc_key(s);
            }
        }
    }
}
