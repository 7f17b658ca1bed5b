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
// one is computed. The slots are merged in shared memory. From the loaded
// vectors on, the arithmetic is dense_split.glsl's: both use
// split_softmax.glsl.
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

const uint MAXLEN = 1024; // entries per split, at most

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

#include "split_softmax.glsl"

shared uint sh_idx[MAXLEN];

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

    SPLIT_INIT(qrow, lane)
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
                kn[i * VPL + j] = e_ < len ? kb[rowv + t_ * DV + j * TPT] : KV_ZERO; \
                vn[i * VPL + j] = e_ < len ? vb[rowv + t_ * DV + j * TPT] : KV_ZERO; \
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
        SPLIT_TILE(eb, len, slot)
    }

    // Merge the NSLOT slots of the workgroup, one query head at a time.
    SPLIT_MERGE(qrow, s, lane, slot, li)
}
