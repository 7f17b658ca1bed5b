// dense_split.glsl: dense decode attention with GQA, flash-decoding split pass.
// Included by dense_split_f32.comp and dense_split_f16.comp (KV_F32 / KV_F16).
//
// The N cached tokens of every cache row r = b*Hkv + h are cut into S splits of
// split_len tokens. One workgroup takes one (split s, row r) and computes, for
// each of the G query heads of the row's group, the softmax partials of its
// tokens t in [s*split_len, min((s+1)*split_len, N)):
//
//	x_t = q_g · K_t * scale                (scale = 1/sqrt(D), folded into q)
//	m   = max_t x_t
//	l   = sum_t exp(x_t - m)
//	o   = sum_t exp(x_t - m) * V_t         ([D], not normalised)
//
// and writes (m, l) and o; dense_merge.comp combines the S splits. K and V are
// read once for the whole group, which is what makes GQA cheap.
//
// Inside the workgroup, TPT lanes of one subgroup share a token ("slot"): lane
// i holds elements (j*TPT + i)*KV_VEC .. +KV_VEC of the row for j < VPL, so the
// TPT lanes of a slot read TPT consecutive 16-byte vectors. The dot product is
// finished with a butterfly of subgroupShuffleXor. The workgroup's NSLOT slots
// take consecutive tokens (so a subgroup reads consecutive rows); each slot
// walks its tokens TILE at a time with an online softmax (one rescale of o per
// tile), and at the end the slots are merged through shared memory.
//
// Speed (the target is HBM bandwidth): K and V are read exactly once per
// group; every load is 16 bytes; the next tile's loads are issued before the
// current tile's arithmetic; fp16 is unpacked in registers.
//
// Bindings (set 0):
//	0 q   [B][Hq][D] float32
//	1 K   rows row_base.. of [B*Hkv][cap][D], KV_T vectors
//	2 V   same layout as K
//	3 po  [B*Hq][S][D] float32, unnormalised partial outputs
//	4 pml [B*Hq][S] vec2 (m, l)
// Dispatch: (S, rows of this chunk, 1) workgroups.

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#include "kv.glsl"

layout(local_size_x_id = 0) in;              // WG: a multiple of the largest subgroup size
layout(constant_id = 1) const uint TPT = 8;  // lanes per token: a power of two <= the smallest subgroup size
layout(constant_id = 2) const uint D = 128;  // head dimension, a multiple of TPT*KV_VEC
layout(constant_id = 3) const uint G = 1;    // query heads per KV head
layout(constant_id = 4) const uint TILE = 4; // tokens per slot between rescales

const uint EPL = D / TPT;                    // elements per lane
const uint VPL = EPL / KV_VEC;               // 16-byte vectors per lane per row
const uint DV = D / KV_VEC;                  // vectors per row
const uint NSLOT = gl_WorkGroupSize.x / TPT; // tokens in flight per workgroup
const float NEG = -1.0e30;                   // "no token yet": exp(NEG - x) == 0

layout(push_constant) uniform PushConstants {
    uint n;         // cached tokens N
    uint cap;       // row stride of K and V, in tokens
    uint hkv;       // KV heads
    uint row_base;  // cache row at offset 0 of the K/V bindings
    uint split_len; // tokens per split
    uint splits;    // S
    float scale;    // 1/sqrt(D)
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer KB { KV_T k[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer VB { KV_T v[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer PO { float po[]; };
layout(std430, set = 0, binding = 4) restrict writeonly buffer PML { vec2 pml[]; };

shared float sh_m[NSLOT * G];
shared float sh_l[NSLOT * G];
shared float sh_o[NSLOT * D];

void main() {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint s = gl_WorkGroupID.x;
    const uint rl = gl_WorkGroupID.y;    // row within the bound chunk
    const uint row = pc.row_base + rl;   // b*Hkv + h
    const uint b = row / pc.hkv;
    const uint h = row % pc.hkv;
    const uint qrow = (b * pc.hkv + h) * G; // first query row (b*Hq + h*G) of the group

    // This lane's slice of the G query heads, pre-scaled.
    float qf[G * EPL];
    [[unroll]] for (uint g = 0; g < G; g++) {
        [[unroll]] for (uint j = 0; j < VPL; j++) {
            [[unroll]] for (uint c = 0; c < KV_VEC; c++) {
                qf[g * EPL + j * KV_VEC + c] = q[(qrow + g) * D + (j * TPT + lane) * KV_VEC + c] * pc.scale;
            }
        }
    }

    float m[G], l[G], o[G * EPL];
    [[unroll]] for (uint g = 0; g < G; g++) {
        m[g] = NEG;
        l[g] = 0.0;
        [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] = 0.0;
    }

    const uint t0 = s * pc.split_len;
    const uint t1 = min(t0 + pc.split_len, pc.n);
    const uint rowv = rl * pc.cap * DV + lane; // this lane's first vector of the row
    // Every slot runs the same trip count, so the shuffles below are in
    // uniform control flow; tokens past t1 are masked (zero vectors, p = 0).
    // The raw 16-byte vectors of the next tile's K and V rows are loaded
    // while the current tile is computed (software pipelining in registers),
    // so each lane keeps 2*TILE*VPL loads in flight behind its arithmetic.
    KV_T kn[TILE * VPL], vn[TILE * VPL]; // the next tile, in flight
#define LOAD_TILE(tb)                                                          \
    [[unroll]] for (uint i = 0; i < TILE; i++) {                               \
        const uint tt = (tb) + i * NSLOT + slot;                               \
        [[unroll]] for (uint j = 0; j < VPL; j++) {                            \
            kn[i * VPL + j] = KV_ZERO;                                         \
            vn[i * VPL + j] = KV_ZERO;                                         \
            if (tt < t1) { /* never read past the row: no robustness */       \
                kn[i * VPL + j] = k[rowv + tt * DV + j * TPT];                 \
                vn[i * VPL + j] = v[rowv + tt * DV + j * TPT];                 \
            }                                                                  \
        }                                                                      \
    }
    LOAD_TILE(t0)
    for (uint t = t0; t < t1; t += NSLOT * TILE) {
        KV_T kc[TILE * VPL], vc[TILE * VPL]; // this tile
        [[unroll]] for (uint e = 0; e < TILE * VPL; e++) {
            kc[e] = kn[e];
            vc[e] = vn[e];
        }
        if (t + NSLOT * TILE < t1) {
            LOAD_TILE(t + NSLOT * TILE)
        }
        float x[TILE * G];
        [[unroll]] for (uint i = 0; i < TILE; i++) {
            float kf[EPL];
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(kc[i * VPL + j], kf, j * KV_VEC);
            [[unroll]] for (uint g = 0; g < G; g++) {
                float d = 0.0;
                [[unroll]] for (uint e = 0; e < EPL; e++) d += qf[g * EPL + e] * kf[e];
                x[i * G + g] = d;
            }
        }
        [[unroll]] for (uint off = TPT / 2; off > 0; off >>= 1) {
            [[unroll]] for (uint i = 0; i < TILE * G; i++) x[i] += subgroupShuffleXor(x[i], off);
        }
        [[unroll]] for (uint g = 0; g < G; g++) {
            float mt = m[g];
            [[unroll]] for (uint i = 0; i < TILE; i++) {
                if (t + i * NSLOT + slot < t1) mt = max(mt, x[i * G + g]);
            }
            const float alpha = exp(m[g] - mt);
            l[g] *= alpha;
            [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] *= alpha;
            m[g] = mt;
            [[unroll]] for (uint i = 0; i < TILE; i++) {
                const float p = t + i * NSLOT + slot < t1 ? exp(x[i * G + g] - mt) : 0.0;
                l[g] += p;
                x[i * G + g] = p;
            }
        }
        [[unroll]] for (uint i = 0; i < TILE; i++) {
            float vf[EPL];
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(vc[i * VPL + j], vf, j * KV_VEC);
            [[unroll]] for (uint g = 0; g < G; g++) {
                [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] += x[i * G + g] * vf[e];
            }
        }
    }

    // Merge the NSLOT slots of the workgroup, one query head at a time.
    const uint li = gl_LocalInvocationIndex;
    if (lane == 0) {
        [[unroll]] for (uint g = 0; g < G; g++) {
            sh_m[slot * G + g] = m[g];
            sh_l[slot * G + g] = l[g];
        }
    }
    barrier();
    [[unroll]] for (uint g = 0; g < G; g++) {
        float mw = NEG;
        [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) mw = max(mw, sh_m[sl * G + g]);
        const float w = exp(m[g] - mw);
        [[unroll]] for (uint j = 0; j < VPL; j++) {
            [[unroll]] for (uint c = 0; c < KV_VEC; c++) {
                sh_o[slot * D + (j * TPT + lane) * KV_VEC + c] = o[g * EPL + j * KV_VEC + c] * w;
            }
        }
        barrier();
        const uint pr = (qrow + g) * pc.splits + s; // partial row
        for (uint i = li; i < D; i += gl_WorkGroupSize.x) {
            float acc = 0.0;
            [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) acc += sh_o[sl * D + i];
            po[pr * D + i] = acc;
        }
        if (li == 0) {
            float lw = 0.0;
            [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) lw += sh_l[sl * G + g] * exp(sh_m[sl * G + g] - mw);
            pml[pr] = vec2(mw, lw);
        }
        barrier();
    }
}
