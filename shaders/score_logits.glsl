// score_logits.glsl: the scaled logits of every query head of a group against
// a list of cached keys, and their per-chunk softmax partials: the first pass
// of the exact top-k oracle's scores (ref.TopK: softmax over all N per query
// head), of Loki's approximate scores (keys = the rotated keys' first c
// channels, q = the rotated query), and H2O's logits over its kept tokens.
// Included by score_logits_f32.comp and score_logits_f16.comp.
//
//	x[r][g][i] = scale * q[r*G + g] · K[r][t_i]     i < n, t_i = INDEXED ? idx[r][i] : i
//	pml[r][g][c] = (m, l): m = max_{i in chunk c} x, l = sum_{i in chunk c} exp(x - m)
//
// score_softmax.comp merges the partials into each head's max and sum over
// all n and turns x into probabilities. One workgroup per (chunk, row); TPT
// lanes share a token (a slot) as in sparse_split.glsl, and each slot takes
// UNR tokens per round with all their loads issued before the arithmetic, so
// that a round waits for memory once, not UNR times.
//
// Bindings (set 0):
//	0 q   [rows*G][D] float32
//	1 K   [rows][cap][D] as KV_T vectors
//	2 idx [rows][kstride] uint32 (read only when INDEXED)
//	3 x   [rows][G][xstride] float32
//	4 pml [rows][G][nchunks] vec2
// Dispatch: (nchunks, rows, 1).

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#include "kv.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TPT = 8; // lanes per token
layout(constant_id = 2) const uint D = 128; // key length, a multiple of TPT*KV_VEC
layout(constant_id = 3) const uint G = 1;   // query heads per KV head
layout(constant_id = 4) const bool INDEXED = false;

const uint EPL = D / TPT;
const uint VPL = EPL / KV_VEC;
const uint DV = D / KV_VEC;
const uint NSLOT = gl_WorkGroupSize.x / TPT;
const float NEG = -1.0e30;
const uint UNR = 8; // tokens per slot per round

layout(push_constant) uniform PushConstants {
    uint n;         // entries per row
    uint cap;       // row stride of K, in tokens
    uint kstride;   // row stride of idx
    uint chunk_len; // entries per workgroup
    uint nchunks;   // ceil(n / chunk_len)
    uint xstride;   // row stride of x, per head
    float scale;    // 1/sqrt(D of the full head)
    uint row0;      // the cache row of the bound K's row 0 (a cache in several buffers)
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer Idx { uint idx[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer X { float x_[]; };
layout(std430, set = 0, binding = 4) restrict writeonly buffer PML { vec2 pml[]; };

shared vec2 sh_ml[NSLOT * G];

void main() {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint c = gl_WorkGroupID.x;
    const uint krow = gl_WorkGroupID.y; // row of the bound K
    const uint row = pc.row0 + krow;    // cache row
    const uint i0 = c * pc.chunk_len;
    const uint i1 = min(i0 + pc.chunk_len, pc.n);

    float qf[G * EPL];
    [[unroll]] for (uint g = 0; g < G; g++) {
        [[unroll]] for (uint j = 0; j < VPL; j++) {
            [[unroll]] for (uint e = 0; e < KV_VEC; e++) {
                qf[g * EPL + j * KV_VEC + e] = q[(row * G + g) * D + (j * TPT + lane) * KV_VEC + e];
            }
        }
    }
    float m[G], l[G];
    [[unroll]] for (uint g = 0; g < G; g++) {
        m[g] = NEG;
        l[g] = 0.0;
    }
    const uint rowv = krow * pc.cap * DV + lane;
    // Token u of a round at ib is i = ib + u*NSLOT + slot; the trip count is
    // the same for every slot (the shuffles need uniform control flow).
    for (uint ib = i0; ib < i1; ib += NSLOT * UNR) {
        uint t[UNR];
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint i = ib + u * NSLOT + slot;
            t[u] = i < i1 ? (INDEXED ? idx[row * pc.kstride + i] : i) : 0;
        }
        KV_T kv[UNR * VPL];
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const bool valid = ib + u * NSLOT + slot < i1;
            [[unroll]] for (uint j = 0; j < VPL; j++) kv[u * VPL + j] = valid ? kb[rowv + t[u] * DV + j * TPT] : KV_ZERO;
        }
        float x[UNR * G];
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            float kf[EPL];
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(kv[u * VPL + j], kf, j * KV_VEC);
            [[unroll]] for (uint g = 0; g < G; g++) {
                float d = 0.0;
                [[unroll]] for (uint e = 0; e < EPL; e++) d += qf[g * EPL + e] * kf[e];
                x[u * G + g] = d;
            }
        }
        [[unroll]] for (uint off = TPT / 2; off > 0; off >>= 1) {
            [[unroll]] for (uint e = 0; e < UNR * G; e++) x[e] += subgroupShuffleXor(x[e], off);
        }
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint i = ib + u * NSLOT + slot;
            if (i < i1) {
                [[unroll]] for (uint g = 0; g < G; g++) {
                    const float xs = x[u * G + g] * pc.scale;
                    if (lane == 0) x_[(row * G + g) * pc.xstride + i] = xs;
                    const float mn = max(m[g], xs);
                    l[g] = l[g] * exp(m[g] - mn) + exp(xs - mn);
                    m[g] = mn;
                }
            }
        }
    }
    if (lane == 0) {
        [[unroll]] for (uint g = 0; g < G; g++) sh_ml[slot * G + g] = vec2(m[g], l[g]);
    }
    barrier();
    const uint li = gl_LocalInvocationIndex;
    for (uint g = li; g < G; g += gl_WorkGroupSize.x) {
        float mw = NEG;
        for (uint sl = 0; sl < NSLOT; sl++) mw = max(mw, sh_ml[sl * G + g].x);
        float lw = 0.0;
        for (uint sl = 0; sl < NSLOT; sl++) lw += sh_ml[sl * G + g].y * exp(sh_ml[sl * G + g].x - mw);
        pml[(row * G + g) * pc.nchunks + c] = vec2(mw, lw);
    }
}
