// sparse_split.glsl: sparse decode attention with GQA over a per-row list of
// selected tokens, flash-decoding split pass, with the log-sum-exp merge of
// the splits folded in (FUSED, the fused variant) or left to
// sparse_merge.comp (the naive variant). Included by sparse_split_f32.comp
// and sparse_split_f16.comp (KV_F32 / KV_F16).
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
// in dense_merge.comp's layout: sparse attention over the selection is dense
// attention over a shorter list, and K/V rows are read once for all G heads
// of the group. The S partials of a head merge into
//
//	M = max_s m_s,  L = sum_s l_s exp(m_s - M),  out = sum_s o_s exp(m_s - M) / L
//
// With FUSED, the workgroup that finishes row r's last split (counted in
// cnt[r]) does that merge for the G heads and writes out, then resets cnt[r]
// to 0 (split_fold in split_softmax.glsl); with S == 1 the split writes o / l
// directly. Without FUSED, sparse_merge.comp merges in a dispatch of its own.
//
// The workgroup first copies its split's indices (at most MAXLEN) into shared
// memory (the first rows of sh_o, as uint bits: the slots' merge reuses the
// array), so that no K/V load waits on an index load. Inside the workgroup
// TPT lanes share a token (a slot), lane j holding the 16-byte vectors j,
// j+TPT, ... of the row; the dot product is finished with subgroup shuffles.
// Each slot walks its entries TILE at a time with an online softmax (one
// rescale per tile), the next tile's K and V rows loaded while the current
// one is computed. The slots are merged in shared memory, every head at once
// where the G heads' rows take at most 8 KiB (MERGE_HEADS). From the loaded
// vectors on, the arithmetic is dense_split.glsl's: both use
// split_softmax.glsl.
//
// Bindings (set 0):
//	0 q   [B][Hq][D] float32 (query head b*Hq + h*G + g = r*G + g)
//	1 idx [rows][kstride] uint32 token indices (bound but unread unless INDEXED)
//	2 K   [rows][cap][D] as KV_T vectors
//	3 V   same layout as K
//	4 po  [B*Hq][S][D] float32, unnormalised partial outputs (coherent)
//	5 pml [B*Hq][S] vec2 (m, l) (coherent)
//	6 out [B][Hq][D] float32, the output (written only with FUSED)
//	7 cnt [rows] uint32, finished splits per row (FUSED and S > 1; all 0
//	      before the dispatch, and left 0 after it)
// With TRACE (the *_trace entry points, for benchmarks) lane 0 of every
// workgroup also reads the device clock (clockRealtime2x32EXT, shared by all
// workgroups) at TRACE_POINTS points: its start, after the indices and the
// query are in (the first barrier), after its slot's list, after the slots'
// merge, and at its end (after split_fold), into
//	8 trace [rows][S][TRACE_POINTS] uint, the clock's low word (differences
//	  are taken modulo 2^32; lavapipe's high word was not reliable)
// Dispatch: (S, rows, 1) workgroups.

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_control_flow_attributes : require

#include "kv.glsl"

layout(local_size_x_id = 0) in;                  // WG: a multiple of the largest subgroup size
layout(constant_id = 1) const uint TPT = 8;      // lanes per token: a power of two <= the smallest subgroup size
layout(constant_id = 2) const uint D = 128;      // head dimension, a multiple of TPT*KV_VEC
layout(constant_id = 3) const uint G = 1;        // query heads per KV head
layout(constant_id = 4) const bool INDEXED = true;
layout(constant_id = 5) const uint TILE = 4;     // entries per slot between rescales
layout(constant_id = 6) const bool FUSED = true; // the last workgroup of a row merges
layout(constant_id = 7) const bool KV_PAIRED = false; // a token's K and V side by side in one buffer (split_softmax.glsl's KV_RS)
#define HAS_KV_PAIRED
const bool REDUCE_SCATTER = true;                // split_softmax.glsl: the reduce-scatter (faster here, BENCHMARKS.md)
const bool MERGE_HEADS = true;    // split_softmax.glsl: every head merged at once
const uint MAXLEN = 1024;         // entries per split, at most
const uint IDX_VEC4 = MAXLEN / 4; // split_softmax.glsl: the index list kept in sh_o
#define SH_IDX(e) floatBitsToUint(sh_o[(e) >> 2][(e) & 3])


layout(push_constant) uniform PushConstants {
    uint k;         // entries per row
    uint kstride;   // row stride of idx
    uint cap;       // row stride of K and V, in tokens
    uint split_len; // entries per split
    uint splits;    // S
    float scale;    // 1/sqrt(D)
    uint row0;      // the cache row of the bound K's and V's row 0 (a cache in several buffers)
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer Idx { uint idx[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 3) restrict readonly buffer VB { KV_T vb[]; };
layout(std430, set = 0, binding = 4) restrict coherent buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 5) restrict coherent buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 6) restrict writeonly buffer Out { vec4 out_[]; };
layout(std430, set = 0, binding = 7) restrict coherent buffer Cnt { uint cnt[]; };

#include "split_softmax.glsl"


#define TRACE_BINDING 8
#define TRACE_POINTS 5
#define TRACE_WG ((pc.row0 + gl_WorkGroupID.y) * gl_NumWorkGroups.x + gl_WorkGroupID.x)
#include "trace.glsl"

void main() {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint li = gl_LocalInvocationIndex;
    const uint s = gl_WorkGroupID.x;
    const uint krow = gl_WorkGroupID.y; // row of the bound K and V
    const uint row = pc.row0 + krow;    // cache row
    const uint qrow = row * G; // first query row b*Hq + h*G of the group

    TRACE_AT(0)
    const uint i0 = s * pc.split_len;
    const uint len = min(i0 + pc.split_len, pc.k) - i0; // entries of this split, <= MAXLEN
    for (uint i = li; i < len; i += gl_WorkGroupSize.x) sh_o[i >> 2][i & 3] = uintBitsToFloat(INDEXED ? idx[row * pc.kstride + i0 + i] : i0 + i);

    SPLIT_INIT(qrow, lane)
    barrier();
    TRACE_AT(1)

    const uint rowv = krow * pc.cap * KV_RS + KV_POS(lane); // this lane's first vector of the row
    SPLIT_LIST(len, slot)
    TRACE_AT(2)

    // Merge the NSLOT slots of the workgroup, one query head at a time, then
    // (FUSED) the row's S splits if this is its last.
    SPLIT_MERGE(qrow, s, lane, slot, li)
    TRACE_AT(3)
    split_fold(row, qrow);
    TRACE_AT(4)
}
