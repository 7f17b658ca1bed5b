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
// UNR consecutive tokens per round with all their loads issued before the
// arithmetic, so that a round waits for memory once, not UNR times.
//
// A lane's partial dot products of a round (UNR tokens x G heads) are summed
// over the slot's lanes by a reduce-scatter (reduce_scatter.glsl): after it
// each lane holds RS_RH of the finished logits, the same (head, token of
// the round) every round, and it alone stores them and folds them into its
// running (m, l), one exp per logit. (Summing every logit in every lane,
// the kernel's first form, took log2(TPT) shuffles and an exp per logit in
// each of the TPT lanes: on the H200 it read the keys at 1.7 TB/s.)
//
// Bindings (set 0):
//	0 q   [rows*G][D] float32
//	1 K   [rows][cap][D] as KV_T vectors; with KV_PAIRED (the exact top-k's
//	      and H2O's K in a paired cache, SparseOptions.PairedKV)
//	      [rows][cap][2*D], a token's K and V in 16-byte chunks alternating
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
// Tokens per slot per round, at most 4 (vk's logitsUnroll): 8 was 8-10%
// slower on the H200 with the next round prefetched (run 79); with few lanes
// per token (Loki's 32 channels) fewer are faster (run 111).
layout(constant_id = 5) const uint UNR = 4;
// K in a paired cache: vector c of token t's key at t*KV_RS + KV_KEY_POS(c)
// from the row's token 0 (kv.glsl); Loki's rotated keys are never.
layout(constant_id = 6) const bool KV_PAIRED = false;
const uint KV_RS = KV_TOKEN_RS;

// The round's logits, value v = g*UNR + u (head g, the slot's u-th token of
// the round), padded with zeros to a power of two for the reduce-scatter.
const uint RS_LANES = TPT;
const uint RS_VALUES = UNR * G;
#include "reduce_scatter.glsl"

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

// Every slot's (m, l) of every value of the round, then every (head, slot)'s.
shared vec2 sh_ml[NSLOT * RS_VP];
shared vec2 sh_hs[G * NSLOT];

// fold returns the (m, l) of two partials' union: the larger max, each sum
// rescaled to it.
vec2 fold(vec2 a, vec2 b) {
    const float mx = max(a.x, b.x);
    return vec2(mx, a.y * exp(a.x - mx) + b.y * exp(b.x - mx));
}

// LOAD_ROUND(sb, kv): kv = the keys of the UNR tokens from entry sb on
// (zeros past i1), each token's index first when INDEXED.
#define LOAD_ROUND(sb, kv)                                                     \
    {                                                                          \
        uint t_[UNR];                                                          \
        [[unroll]] for (uint u = 0; u < UNR; u++) {                            \
            const uint i = (sb) + u;                                           \
            t_[u] = i < i1 ? (INDEXED ? idx[row * pc.kstride + i] : i) : 0;    \
        }                                                                      \
        [[unroll]] for (uint u = 0; u < UNR; u++) {                            \
            const bool valid = (sb) + u < i1;                                  \
            [[unroll]] for (uint j = 0; j < VPL; j++) kv[u * VPL + j] = valid ? kb[rowv + t_[u] * KV_RS + KV_KEY_POS(j * TPT + lane)] : KV_ZERO; \
        }                                                                      \
    }

void main() {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint c = gl_WorkGroupID.x;
    const uint krow = gl_WorkGroupID.y; // row of the bound K
    const uint row = pc.row0 + krow;    // cache row
    const uint i0 = c * pc.chunk_len;
    const uint i1 = min(i0 + pc.chunk_len, pc.n);

    float qf[G * EPL]; // pre-scaled
    [[unroll]] for (uint g = 0; g < G; g++) {
        [[unroll]] for (uint j = 0; j < VPL; j++) {
            [[unroll]] for (uint e = 0; e < KV_VEC; e++) {
                qf[g * EPL + j * KV_VEC + e] = q[(row * G + g) * D + (j * TPT + lane) * KV_VEC + e] * pc.scale;
            }
        }
    }
    // This lane's values after the reduce-scatter: v = v0 + r, r < RS_RH;
    // it stores them and keeps their (m, l) if it is the first of the
    // lanes holding them (RS_SH low bits zero).
    const uint v0 = (lane >> RS_SH) * RS_RH;
    const bool owner = (lane & ((1u << RS_SH) - 1)) == 0;
    float m[RS_RH], l[RS_RH];
    [[unroll]] for (uint r = 0; r < RS_RH; r++) {
        m[r] = NEG;
        l[r] = 0.0;
    }
    const uint rowv = krow * pc.cap * KV_RS;
    // Token u of a round at ib is i = ib + slot*UNR + u; the trip count is
    // the same for every slot (the shuffles need uniform control flow). The
    // next round's keys are loaded before this round's arithmetic, so that a
    // slot always has a round of loads in flight.
    KV_T kn[UNR * VPL]; // the next round's keys
    LOAD_ROUND(i0 + slot * UNR, kn);
    for (uint ib = i0; ib < i1; ib += NSLOT * UNR) {
        const uint sb = ib + slot * UNR;
        KV_T kv[UNR * VPL];
        [[unroll]] for (uint e = 0; e < UNR * VPL; e++) kv[e] = kn[e];
        LOAD_ROUND(sb + NSLOT * UNR, kn);
        float x[RS_VP];
        [[unroll]] for (uint v = RS_VALUES; v < RS_VP; v++) x[v] = 0.0;
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            float kf[EPL];
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(kv[u * VPL + j], kf, j * KV_VEC);
            [[unroll]] for (uint g = 0; g < G; g++) {
                float d = 0.0;
                [[unroll]] for (uint e = 0; e < EPL; e++) d += qf[g * EPL + e] * kf[e];
                x[g * UNR + u] = d;
            }
        }
        reduce_scatter(x, lane);
        [[unroll]] for (uint r = 0; r < RS_RH; r++) {
            const uint v = v0 + r;
            const uint i = sb + v % UNR;
            if (owner && v < RS_VALUES && i < i1) {
                const float xs = x[r];
                x_[(row * G + v / UNR) * pc.xstride + i] = xs;
                // (m, l) with xs: one exp (the smaller of the two is scaled).
                const float dm = xs - m[r];
                const float e = exp(-abs(dm));
                l[r] = dm > 0.0 ? l[r] * e + 1.0 : l[r] + e;
                m[r] = max(m[r], xs);
            }
        }
    }
    if (owner) {
        [[unroll]] for (uint r = 0; r < RS_RH; r++) sh_ml[slot * RS_VP + v0 + r] = vec2(m[r], l[r]);
    }
    barrier();
    // Each (head, slot): its UNR values; then each head: its NSLOT slots.
    const uint li = gl_LocalInvocationIndex;
    for (uint hsl = li; hsl < G * NSLOT; hsl += gl_WorkGroupSize.x) {
        const uint g = hsl / NSLOT, sl = hsl % NSLOT;
        vec2 a = vec2(NEG, 0.0);
        for (uint u = 0; u < UNR; u++) a = fold(a, sh_ml[sl * RS_VP + g * UNR + u]);
        sh_hs[hsl] = a;
    }
    barrier();
    for (uint g = li; g < G; g += gl_WorkGroupSize.x) {
        vec2 a = vec2(NEG, 0.0);
        for (uint sl = 0; sl < NSLOT; sl++) a = fold(a, sh_hs[g * NSLOT + sl]);
        pml[(row * G + g) * pc.nchunks + c] = a;
    }
}
