// dense_split.glsl: dense decode attention with GQA, flash-decoding split pass,
// with the log-sum-exp merge of the splits folded in (FUSED, the default) or
// left to dense_merge.comp. Included by dense_split_f32.comp and
// dense_split_f16.comp (KV_F32 / KV_F16).
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
// and writes (m, l) and o. K and V are read once for the whole group, which is
// what makes GQA cheap. The S partials of a head merge into
//
//	M = max_s m_s,  L = sum_s l_s exp(m_s - M),  out = sum_s o_s exp(m_s - M) / L
//
// With FUSED, the workgroup that finishes row r's last split (counted in
// cnt[r]) does that merge for the G heads and writes out, then resets cnt[r]
// to 0 (split_fold in split_softmax.glsl); with S == 1 the split writes o / l
// directly. Without FUSED, dense_merge.comp merges in a dispatch of its own.
//
// With PIECES the dispatch is (P, 1, 1) instead: the rows' tokens taken one
// row after another, rows*N of them, are cut into P pieces of split_len
// tokens, one a workgroup, so that every slot of the GPU gets as many
// tokens where S splits a row would leave some empty (the H200's 132 compute
// units hold 3 workgroups each, 396, and 64 rows of 6 splits fill 384:
// BENCHMARKS.md, session 30). A piece that crosses the end of a row does the
// part in each row in turn; a row's partials are those of the pieces that
// hold its tokens, 1 to pc.splits of them (the stride of po and pml), and
// its last piece to finish merges them (FUSED; PIECES is only built so).
//
// Inside the workgroup, TPT lanes of one subgroup share a token ("slot"): lane
// i holds elements (j*TPT + i)*KV_VEC .. +KV_VEC of the row for j < VPL, so the
// TPT lanes of a slot read TPT consecutive 16-byte vectors. The dot product is
// finished with a butterfly of subgroupShuffleXor (split_softmax.glsl without
// REDUCE_SCATTER, which measured about 1% slower here). The workgroup's NSLOT
// slots take consecutive tokens (so a subgroup reads consecutive rows); each
// slot walks its tokens TILE at a time with an online softmax (one rescale of
// o per tile), and at the end the slots are merged through shared memory. The
// arithmetic (q slice, online softmax, merges) is split_softmax.glsl, shared
// with sparse_split.glsl.
//
// Speed (the target is HBM bandwidth): K and V are read exactly once per
// group; every load is 16 bytes; the next tile's loads are issued before the
// current tile's arithmetic; fp16 is unpacked in registers; the folded merge
// saves the merge dispatch and the pipeline barrier before it.
//
// Bindings (set 0):
//	0 q   [B][Hq][D] float32
//	1 K   rows row_base.. of [B*Hkv][cap][D], KV_T vectors
//	2 V   same layout as K
//	3 po  [B*Hq][S][D] float32, unnormalised partial outputs (coherent)
//	4 pml [B*Hq][S] vec2 (m, l) (coherent)
//	5 out [B][Hq][D] float32, the output (written only with FUSED)
//	6 cnt [B*Hkv] uint32, finished splits per cache row (FUSED and S > 1;
//	      all 0 before the dispatch, and left 0 after it)
// Dispatch: (S, rows of this chunk, 1) workgroups; with PIECES (P, 1, 1),
// P = ceil(rows * N / split_len) for the rows of this chunk.

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_control_flow_attributes : require

#include "kv.glsl"

layout(local_size_x_id = 0) in;              // WG: a multiple of the largest subgroup size
layout(constant_id = 1) const uint TPT = 8;  // lanes per token: a power of two <= the smallest subgroup size
layout(constant_id = 2) const uint D = 128;  // head dimension, a multiple of TPT*KV_VEC
layout(constant_id = 3) const uint G = 1;    // query heads per KV head
layout(constant_id = 4) const uint TILE = 4; // tokens per slot between rescales
layout(constant_id = 5) const bool FUSED = true; // the last workgroup of a row merges
layout(constant_id = 6) const bool PIECES = false; // pieces of rows*N tokens, not S splits a row
layout(constant_id = 7) const bool KV_PAIRED = false; // a token's K and V side by side in one buffer (split_softmax.glsl's KV_RS)
#define HAS_KV_PAIRED
const bool REDUCE_SCATTER = false;           // split_softmax.glsl: the butterfly (faster here, BENCHMARKS.md)
const bool MERGE_HEADS = false;   // split_softmax.glsl: one head at a time (faster here, BENCHMARKS.md)
const uint IDX_VEC4 = 0;          // split_softmax.glsl: no index list in sh_o

layout(push_constant) uniform PushConstants {
    uint n;         // cached tokens N
    uint cap;       // row stride of K and V, in tokens
    uint hkv;       // KV heads
    uint row_base;  // cache row at offset 0 of the K/V bindings
    uint split_len; // tokens per split (PIECES: per piece)
    uint splits;    // S (PIECES: the most pieces a row's tokens are in, po's stride)
    float scale;    // 1/sqrt(D)
    uint rows;      // cache rows of this chunk (PIECES)
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer KB { KV_T k[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer VB { KV_T v[]; };
layout(std430, set = 0, binding = 3) restrict coherent buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 4) restrict coherent buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 5) restrict writeonly buffer Out { vec4 out_[]; };
layout(std430, set = 0, binding = 6) restrict coherent buffer Cnt { uint cnt[]; };

#define SPLIT_COUNT nsplits // split()'s: the partials of the row at hand
#include "split_softmax.glsl"

#define TRACE_BINDING 7
#define TRACE_POINTS 5
#define TRACE_WG ((pc.row_base + gl_WorkGroupID.y) * gl_NumWorkGroups.x + gl_WorkGroupID.x)
#include "trace.glsl"

// split(rl, s, nsplits, t0, t1): partial s of the nsplits of cache row rl of
// this chunk, over its tokens [t0, t1): the partials (m, l, o) of the row's G
// query heads, written to po and pml (or, FUSED with one partial, to out_),
// and with FUSED the merge of the row's partials by whichever of them ends
// last.
void split(const uint rl, const uint s, const uint nsplits, const uint t0, const uint t1) {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint row = pc.row_base + rl;   // b*Hkv + h
    const uint b = row / pc.hkv;
    const uint h = row % pc.hkv;
    const uint qrow = (b * pc.hkv + h) * G; // first query row (b*Hq + h*G) of the group

    TRACE_AT(0)
    SPLIT_INIT(qrow, lane) // this lane's slice of the G query heads, pre-scaled; m, l, o

    const uint rowv = rl * pc.cap * KV_RS + KV_POS(lane); // this lane's first vector of the row
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
                kn[i * VPL + j] = k[rowv + tt * KV_RS + KV_POS(j * TPT)];      \
                vn[i * VPL + j] = v[rowv + KV_VOFF + tt * KV_RS + KV_POS(j * TPT)]; \
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
        SPLIT_TILE(t, t1, slot)
        // Every 4 rounds the workgroup's subgroups wait for one another, so
        // they read neighbouring tokens: on the H200 0.4-1.5% faster at B1/32K
        // and B8/32K, 0-2.7% at B8/128K, even at B1/128K (runs 124, 125 and
        // 129; BENCHMARKS.md).
        if (((t - t0) / (NSLOT * TILE)) % 4 == 3) barrier();
#ifdef TRACE
        if (t == t0) { TRACE_AT(1) } // every split has a token: the loop runs
#endif
    }
    TRACE_AT(2)

    // Merge the NSLOT slots of the workgroup, one query head at a time, then
    // (FUSED) the row's S splits if this is its last.
    const uint li = gl_LocalInvocationIndex;
    SPLIT_MERGE(qrow, s, lane, slot, li)
    TRACE_AT(3)
    split_fold(row, qrow, nsplits);
    TRACE_AT(4)
}

void main() {
    if (!PIECES) {
        const uint s = gl_WorkGroupID.x;
        const uint t0 = s * pc.split_len;
        split(gl_WorkGroupID.y, s, pc.splits, t0, min(t0 + pc.split_len, pc.n));
        return;
    }
    // Tokens f of the chunk's rows one after another: row f / N, token f % N
    // (rows * N < 2^32: a chunk's K fits one binding).
    const uint f1 = min((gl_WorkGroupID.x + 1) * pc.split_len, pc.rows * pc.n);
    for (uint f = gl_WorkGroupID.x * pc.split_len; f < f1;) { // uniform: the same bounds in every lane
        const uint rl = f / pc.n;
        const uint t0 = f - rl * pc.n;
        const uint t1 = min(pc.n, t0 + (f1 - f));
        const uint first = rl * pc.n / pc.split_len;            // the row's first piece
        const uint last = (rl * pc.n + pc.n - 1) / pc.split_len; // and its last
        split(rl, gl_WorkGroupID.x - first, last - first + 1, t0, t1);
        f += t1 - t0;
    }
}
