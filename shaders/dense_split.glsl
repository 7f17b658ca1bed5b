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
// Balance (CHUNKED): on the H200 the workgroups that share a compute unit
// do not progress alike (the third of three took 10-25% longer than the
// first at B8/32K, run 120), so splits of equal length end unevenly and the
// step waits for the slowest. With CHUNKED a workgroup reads chunk s of its
// row first and then takes the row's next free chunk from grab[row] until
// none is left: the S workgroups of a row share its tokens by their speed,
// and a split's partials cover whichever chunks it took (the softmax
// partials do not depend on which tokens a split holds). The S workgroups
// of a row are numbered apart (main), so each row has fast and slow ones.
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
layout(constant_id = 5) const bool FUSED = true; // the last workgroup of a row merges
layout(constant_id = 6) const bool CHUNKED = false; // splits take chunks of split_len tokens from their row's counter
const bool REDUCE_SCATTER = false;           // split_softmax.glsl: the butterfly (faster here, BENCHMARKS.md)
const bool MERGE_HEADS = false;   // split_softmax.glsl: one head at a time (faster here, BENCHMARKS.md)
const uint IDX_VEC4 = 0;          // split_softmax.glsl: no index list in sh_o

layout(push_constant) uniform PushConstants {
    uint n;         // cached tokens N
    uint cap;       // row stride of K and V, in tokens
    uint hkv;       // KV heads
    uint row_base;  // cache row at offset 0 of the K/V bindings
    uint split_len; // tokens per split; CHUNKED: per chunk (a multiple of NSLOT*TILE)
    uint splits;    // S
    float scale;    // 1/sqrt(D)
    uint grab_base; // CHUNKED: grab[] of every row before this dispatch
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer KB { KV_T k[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer VB { KV_T v[]; };
layout(std430, set = 0, binding = 3) restrict coherent buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 4) restrict coherent buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 5) restrict writeonly buffer Out { vec4 out_[]; };
layout(std430, set = 0, binding = 6) restrict coherent buffer Cnt { uint cnt[]; };
layout(std430, set = 0, binding = 7) restrict buffer Grab { uint grab[]; };

#include "split_softmax.glsl"

shared uint sh_next[2]; // CHUNKED: the next chunk, for every lane (two: see main)

#define TRACE_BINDING 8
#define TRACE_POINTS 5
#define TRACE_WG (row * pc.splits + s)
#include "trace.glsl"

void main() {
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint li = gl_LocalInvocationIndex;
    // CHUNKED numbers the workgroups row fastest (workgroup x + S*y of the
    // grid takes split (x + S*y) / rows of row (x + S*y) % rows), so the S
    // workgroups of a row are launched apart, in different waves.
    const uint wid = gl_WorkGroupID.x + gl_NumWorkGroups.x * gl_WorkGroupID.y;
    const uint s = CHUNKED ? wid / gl_NumWorkGroups.y : gl_WorkGroupID.x;
    const uint rl = CHUNKED ? wid % gl_NumWorkGroups.y : gl_WorkGroupID.y; // row within the bound chunk
    const uint row = pc.row_base + rl;   // b*Hkv + h
    const uint b = row / pc.hkv;
    const uint h = row % pc.hkv;
    const uint qrow = (b * pc.hkv + h) * G; // first query row (b*Hq + h*G) of the group

    TRACE_AT(0)
    SPLIT_INIT(qrow, lane) // this lane's slice of the G query heads, pre-scaled; m, l, o

    // The workgroup's tokens: its split [t0, t1) (chunk s of split_len
    // tokens), then (CHUNKED) the chunks it takes from the row's counter,
    // S + grab[row] - grab_base, while below the row's ceil(N / split_len).
    const uint t0 = s * pc.split_len;
    const uint t1 = min(t0 + pc.split_len, pc.n);
    const uint rowv = rl * pc.cap * DV + lane; // this lane's first vector of the row
    // Every slot runs the same trip count, so the shuffles below are in
    // uniform control flow; tokens past the end are masked (zero vectors,
    // p = 0). The raw 16-byte vectors of the next tile's K and V rows are
    // loaded while the current tile is computed (software pipelining in
    // registers), so each lane keeps 2*TILE*VPL loads in flight behind its
    // arithmetic.
    KV_T kn[TILE * VPL], vn[TILE * VPL]; // the next tile, in flight
#define LOAD_TILE(tb, te)                                                      \
    [[unroll]] for (uint i = 0; i < TILE; i++) {                               \
        const uint tt = (tb) + i * NSLOT + slot;                               \
        [[unroll]] for (uint j = 0; j < VPL; j++) {                            \
            kn[i * VPL + j] = KV_ZERO;                                         \
            vn[i * VPL + j] = KV_ZERO;                                         \
            if (tt < (te)) { /* never read past the row: no robustness */     \
                kn[i * VPL + j] = k[rowv + tt * DV + j * TPT];                 \
                vn[i * VPL + j] = v[rowv + tt * DV + j * TPT];                 \
            }                                                                  \
        }                                                                      \
    }
#define NEXT_TILE                                                              \
    KV_T kc[TILE * VPL], vc[TILE * VPL]; /* this tile */                      \
    [[unroll]] for (uint e = 0; e < TILE * VPL; e++) {                         \
        kc[e] = kn[e];                                                         \
        vc[e] = vn[e];                                                         \
    }
    LOAD_TILE(t0, t1)
    if (!CHUNKED) {
        for (uint t = t0; t < t1; t += NSLOT * TILE) {
            NEXT_TILE
            if (t + NSLOT * TILE < t1) {
                LOAD_TILE(t + NSLOT * TILE, t1)
            }
            SPLIT_TILE(t, t1, slot)
#ifdef TRACE
            if (t == t0) { TRACE_AT(1) } // every split has a token: the loop runs
#endif
        }
    } else {
        // Chunks are whole rounds of NSLOT*TILE tokens but the row's last,
        // so a tile never straddles two and only the row's end masks.
        // Invocation 0 takes the next chunk when the workgroup starts the
        // current one and shares it through sh_next at the next tile, so the
        // atomic's latency hides behind a tile; the switch to it is the
        // loop's only barrier (sh_next alternates, so a write never meets a
        // read of the switch before).
        uint taken = ~0u; // invocation 0: the counter's value it took, until shared
        if (li == 0) taken = atomicAdd(grab[row], 1u);
        uint sw = 0; // chunks switched to: sh_next's parity
        for (uint t = t0; ; ) {
            NEXT_TILE
            if (taken != ~0u) {
                sh_next[sw & 1] = pc.splits + (taken - pc.grab_base);
                taken = ~0u;
            }
            uint tn = t + NSLOT * TILE; // past the row's end: this is its last tile
            if (tn < pc.n && tn % pc.split_len == 0) { // uniform: the chunk is done
                barrier(); // sh_next[sw & 1] written
                const uint c = sh_next[sw & 1];
                sw++;
                tn = c < (pc.n + pc.split_len - 1) / pc.split_len ? c * pc.split_len : pc.n;
                if (tn < pc.n && li == 0) taken = atomicAdd(grab[row], 1u);
            }
            if (tn < pc.n) {
                LOAD_TILE(tn, pc.n)
            }
            SPLIT_TILE(t, pc.n, slot)
#ifdef TRACE
            if (t == t0) { TRACE_AT(1) }
#endif
            if (tn >= pc.n) break;
            t = tn;
        }
    }
    TRACE_AT(2)

    // Merge the NSLOT slots of the workgroup, one query head at a time, then
    // (FUSED) the row's S splits if this is its last.
    SPLIT_MERGE(qrow, s, lane, slot, li)
    TRACE_AT(3)
    split_fold(row, qrow);
    TRACE_AT(4)
}
