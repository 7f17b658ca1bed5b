// sparse_split.glsl: sparse decode attention with GQA over a per-row list of
// selected tokens, flash-decoding split pass. Included by
// sparse_split_f32.comp and sparse_split_f16.comp (KV_F32 / KV_F16).
//
// Row r = b*Hkv + h attends over the k tokens t_i, i < k, of its list
// (INDEXED: t_i = idx[r*kstride + i], HATA's selection; otherwise t_i = i,
// a cache already gathered to [rows][k][D], the naive variant). The list is
// cut into S splits of split_len entries; one workgroup takes one (split s,
// row r) and computes, for each of the G query heads of the row's group, the
// softmax partials of its entries i in [s*split_len, min((s+1)*split_len, k)):
//
//	x_i = q_g · K[r][t_i] * scale          (scale = 1/sqrt(D), folded into q)
//	m   = max_i x_i,  l = sum_i exp(x_i - m),  o = sum_i exp(x_i - m) V[r][t_i]
//
// written in dense_merge.comp's layout, which sparse_merge.comp merges: sparse
// attention over the selection is dense attention over a shorter list, and
// K/V rows are read once for all G heads of the group.
//
// The workgroup first copies its split's indices (at most MAXLEN) into shared
// memory, so that no K/V load waits on an index load. Inside the workgroup
// TPT lanes share a token (a slot), lane j holding the 16-byte vectors j,
// j+TPT, ... of the row; the dot product is finished with subgroupShuffleXor.
// Each slot walks its entries TILE at a time with an online softmax (one
// rescale per tile), the next tile's K and V rows loaded while the current
// one is computed. The slots are merged in shared memory.
//
// Bindings (set 0):
//	0 q   [B][Hq][D] float32 (query head b*Hq + h*G + g = r*G + g)
//	1 idx [rows][kstride] uint32 token indices (bound but unread unless INDEXED)
//	2 K   [rows][cap][D] as KV_T vectors
//	3 V   same layout as K
//	4 po  [B*Hq][S][D] float32, unnormalised partial outputs
//	5 pml [B*Hq][S] vec2 (m, l)
// Dispatch: (S, rows, 1) workgroups.

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#include "kv.glsl"

layout(local_size_x_id = 0) in;                  // WG: a multiple of the largest subgroup size
layout(constant_id = 1) const uint TPT = 8;      // lanes per token: a power of two <= the smallest subgroup size
layout(constant_id = 2) const uint D = 128;      // head dimension, a multiple of TPT*KV_VEC
layout(constant_id = 3) const uint G = 1;        // query heads per KV head
layout(constant_id = 4) const bool INDEXED = true;
layout(constant_id = 5) const uint TILE = 4;     // entries per slot between rescales

const uint EPL = D / TPT;                    // elements per lane
const uint VPL = EPL / KV_VEC;               // 16-byte vectors per lane per row
const uint DV = D / KV_VEC;                  // vectors per row
const uint NSLOT = gl_WorkGroupSize.x / TPT; // tokens in flight per workgroup
const float NEG = -1.0e30;                   // "no token yet": exp(NEG - x) == 0
const uint MAXLEN = 1024;                    // entries per split, at most

layout(push_constant) uniform PushConstants {
    uint k;         // entries per row
    uint kstride;   // row stride of idx
    uint cap;       // row stride of K and V, in tokens
    uint split_len; // entries per split
    uint splits;    // S
    float scale;    // 1/sqrt(D)
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer Idx { uint idx[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 3) restrict readonly buffer VB { KV_T vb[]; };
layout(std430, set = 0, binding = 4) restrict writeonly buffer PO { float po[]; };
layout(std430, set = 0, binding = 5) restrict writeonly buffer PML { vec2 pml[]; };

shared float sh_m[NSLOT * G];
shared float sh_l[NSLOT * G];
shared float sh_o[NSLOT * D];
shared uint sh_idx[MAXLEN];

// SP_UNPACK(u, dst, at): dst[at .. at+KV_VEC) = the elements of the raw vector u.
#if defined(KV_F16)
#define SP_UNPACK(u, dst, at) {                                             \
        vec2 a_ = unpackHalf2x16((u).x), b_ = unpackHalf2x16((u).y);        \
        vec2 c_ = unpackHalf2x16((u).z), d_ = unpackHalf2x16((u).w);        \
        dst[(at) + 0] = a_.x; dst[(at) + 1] = a_.y;                         \
        dst[(at) + 2] = b_.x; dst[(at) + 3] = b_.y;                         \
        dst[(at) + 4] = c_.x; dst[(at) + 5] = c_.y;                         \
        dst[(at) + 6] = d_.x; dst[(at) + 7] = d_.y;                         \
    }
#define SP_ZERO uvec4(0)
#else
#define SP_UNPACK(u, dst, at) {                                             \
        dst[(at) + 0] = (u).x; dst[(at) + 1] = (u).y;                       \
        dst[(at) + 2] = (u).z; dst[(at) + 3] = (u).w;                       \
    }
#define SP_ZERO vec4(0.0)
#endif

void main() {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint li = gl_LocalInvocationIndex;
    const uint s = gl_WorkGroupID.x;
    const uint row = gl_WorkGroupID.y;
    const uint qrow = row * G; // first query row b*Hq + h*G of the group

    const uint i0 = s * pc.split_len;
    const uint len = min(i0 + pc.split_len, pc.k) - i0; // entries of this split, <= MAXLEN
    for (uint i = li; i < len; i += gl_WorkGroupSize.x) sh_idx[i] = INDEXED ? idx[row * pc.kstride + i0 + i] : i0 + i;

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
    barrier();

    const uint rowv = row * pc.cap * DV + lane; // this lane's first vector of the row
    // Every slot runs the same trip count (the shuffles need uniform control
    // flow); entries past len are masked. Entry e of a tile at eb is
    // eb + i*NSLOT + slot, i < TILE; the next tile's K and V vectors are
    // loaded while the current one is computed.
    KV_T kn[TILE * VPL], vn[TILE * VPL];
#define LOAD_TILE(eb) {                                                        \
        [[unroll]] for (uint i = 0; i < TILE; i++) {                           \
            const uint e_ = (eb) + i * NSLOT + slot;                           \
            const uint t_ = e_ < len ? sh_idx[e_] : 0;                         \
            [[unroll]] for (uint j = 0; j < VPL; j++) {                        \
                kn[i * VPL + j] = e_ < len ? kb[rowv + t_ * DV + j * TPT] : SP_ZERO; \
                vn[i * VPL + j] = e_ < len ? vb[rowv + t_ * DV + j * TPT] : SP_ZERO; \
            }                                                                  \
        }                                                                      \
    }
    LOAD_TILE(0)
    for (uint eb = 0; eb < len; eb += NSLOT * TILE) {
        KV_T kc[TILE * VPL], vc[TILE * VPL];
        [[unroll]] for (uint e = 0; e < TILE * VPL; e++) {
            kc[e] = kn[e];
            vc[e] = vn[e];
        }
        if (eb + NSLOT * TILE < len) LOAD_TILE(eb + NSLOT * TILE)
        float x[TILE * G];
        [[unroll]] for (uint i = 0; i < TILE; i++) {
            float kf[EPL];
            [[unroll]] for (uint j = 0; j < VPL; j++) SP_UNPACK(kc[i * VPL + j], kf, j * KV_VEC);
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
                if (eb + i * NSLOT + slot < len) mt = max(mt, x[i * G + g]);
            }
            const float alpha = exp(m[g] - mt);
            l[g] *= alpha;
            [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] *= alpha;
            m[g] = mt;
            [[unroll]] for (uint i = 0; i < TILE; i++) {
                const float p = eb + i * NSLOT + slot < len ? exp(x[i * G + g] - mt) : 0.0;
                l[g] += p;
                x[i * G + g] = p;
            }
        }
        [[unroll]] for (uint i = 0; i < TILE; i++) {
            float vf[EPL];
            [[unroll]] for (uint j = 0; j < VPL; j++) SP_UNPACK(vc[i * VPL + j], vf, j * KV_VEC);
            [[unroll]] for (uint g = 0; g < G; g++) {
                [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] += x[i * G + g] * vf[e];
            }
        }
    }

    // Merge the NSLOT slots of the workgroup, one query head at a time.
    if (lane == 0) {
        [[unroll]] for (uint g = 0; g < G; g++) {
            sh_m[slot * G + g] = m[g];
            sh_l[slot * G + g] = l[g];
        }
    }
    barrier();
    [[unroll]] for (uint g = 0; g < G; g++) {
        float mw = NEG;
        for (uint sl = 0; sl < NSLOT; sl++) mw = max(mw, sh_m[sl * G + g]);
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
            for (uint sl = 0; sl < NSLOT; sl++) acc += sh_o[sl * D + i];
            po[pr * D + i] = acc;
        }
        if (li == 0) {
            float lw = 0.0;
            for (uint sl = 0; sl < NSLOT; sl++) lw += sh_l[sl * G + g] * exp(sh_m[sl * G + g] - mw);
            pml[pr] = vec2(mw, lw);
        }
        barrier();
    }
}
