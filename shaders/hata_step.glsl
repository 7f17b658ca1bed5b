// hata_step.glsl: HATA's whole decode step in ONE dispatch (the "onekernel"
// variant): the four stages of the fused chain (hata_encode_q, hata_score
// with its histograms, select_write, sparse_split with the merge folded in)
// become work items of one kernel, taken from a queue, each waiting only for
// the items of its own row that it reads. Included by hata_step_f32.comp,
// hata_step_f16.comp and hata_step_f16h.comp (kv.glsl's KV_F32, KV_F16,
// KV_F16H).
//
// Why: on the H200 every dependent dispatch costs about 2.3 us even when it
// moves nothing, and a stage's dispatch cannot start before the slowest
// workgroup of the one before it ends (BENCHMARKS.md). Here nothing waits for
// the whole grid: row r's select starts as soon as row r's scores are
// complete, while other rows still score. Measured on the H200 it is slower
// than the four dispatches at every shape (BENCHMARKS.md, session 4): the
// per-row chain of dependent loads stays, and one kernel carries the
// registers of its largest phase.
//
// The items, in this order: every E, then every S, every W and every A, each
// kind in row order (so that a kind is taken only once the one before is
// nearly done, and few workgroups wait):
//
//	E(r, p)  p < EP = ceil(rbit/32): word p of the G query codes of row r
//	         (hata_encode_q's arithmetic: bit j = q·W[:, j] > 0, float32)
//	S(r, c)  c < NC: hata_score over tokens [c*chunk_len, ...): uint16 scores,
//	         the row's histogram (atomics) and the chunk's cumulative
//	         histogram (cum), as hata_score.comp with KEY16, HIST and CUM
//	W(r, c)  c < NC: select_write over the same chunk (select.glsl with one
//	         pass and pc.cum): the chunk's taken tokens, ascending, into sel
//	A(r, s)  s < S: sparse_split over entries [s*split_len, ...) of the
//	         row's selection, the last of the row merging (split_fold)
//
// A workgroup takes item i = atomicAdd(ctr[0], 1) and runs it to the end,
// then the next it took, until i is past the last item. S(r, *) wait until
// all EP items of E(r, *) are done (done[0][r] == EP), W(r, *) until all of
// S(r, *) are (done[1][r] == NC), A(r, *) until all of W(r, *) are
// (done[2][r] == NC); an item signals its row's counter once its results
// are written and fenced. Every item waits only for items with smaller indices, which were
// taken before it by workgroups that are running (a workgroup only takes an
// item while it runs, and runs it to the end), so the smallest unfinished
// item never waits: the queue cannot deadlock however many workgroups are
// resident, on any device whose resident workgroups all make progress
// (NVIDIA, AMD, Intel). S items load their first codes before they wait, so
// the encode's latency is hidden behind those loads.
//
// lavapipe (llvmpipe) ends every loop of an invocation once all its loops
// together have iterated 65535 times (gallivm's LP_MAX_TGSI_LOOP_ITERATIONS,
// a guard against hung shaders), silently: a workgroup that runs many items,
// or polls long while its producer's thread is descheduled, leaves its item
// loop or its poll early (measured: one workgroup stopped after 844 of 1148
// items; sixteen returned unwritten selections in about one run in ten under
// load). There the host runs the step as four dispatches of this kernel, one
// per kind of item (ctr[0] set to the kind's first item, pc.item_end to the
// next kind's), so that every wait is already met when it starts; on GPUs it
// is one dispatch (item_end 0).
//
// The buffers one item writes and another reads (qc, keys, hist, sel) are
// coherent (no stale L1 lines) and volatile (no load of them cached in a
// register or moved above the wait).
//
// Counters ctr (uint, zeroed before the dispatch): ctr[0] the queue head,
// ctr[1 + k*rows + r] done[k][r] for k = 0 (encode), 1 (score), 2 (select).
// The histograms must be zeroed before the dispatch too (the split counters
// cnt are left zero by split_fold, as in sparse_split).
//
// Bindings (set 0):
//	0 q     [rows*G][D] float32 query heads (b*Hq + h*G + g = r*G + g)
//	1 W     [Hkv][D][ldw] float32 hash weights (W head = r % hkv)
//	2 qc    [rows*G][WV*4] uint query codes (written here; read back by Codes)
//	3 kc    [rows][cap][WV] uvec4 key codes; CPV > 1: [rows][cap/CPV] uvec4
//	4 keys  [rows][key_stride/2] uint: the scores as packed uint16 (low half
//	        the even token)
//	5 hist  [rows][NB] uint, then cum [rows][NC][NB] uint
//	6 sel   [rows][kstride] uint: the ascending selection
//	7 K, 8 V [rows][cap][D] as KV_T vectors
//	9 po, 10 pml, 11 out, 12 cnt: sparse_split.glsl's partials, output and
//	        split counters
//	13 ctr  the queue and done counters above
// Dispatch: (any number of workgroups, 1, 1).

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require

#include "kv.glsl"

layout(local_size_x_id = 0) in;                 // WG: a multiple of 32 and of the largest subgroup size
layout(constant_id = 1) const uint TPT = 8;     // lanes per K/V row (sparse_split's)
layout(constant_id = 2) const uint D = 128;     // head dimension
layout(constant_id = 3) const uint G = 1;       // query heads per KV head
layout(constant_id = 4) const uint TILE = 4;    // sparse_split's entries per slot between rescales
layout(constant_id = 5) const uint WV = 1;      // uvec4 per code
layout(constant_id = 6) const uint NB = 2;      // histogram bins, > G*rbit, <= 16*WG
layout(constant_id = 7) const bool POLL_ALL = false; // every lane polls in wait_done (CPU devices)
layout(constant_id = 8) const uint CPV = 1;     // key codes per uvec4 of kc (ham_planes.glsl): 1, 2 (rbit 64) or 4 (rbit 32)
const bool FUSED = true;                        // split_softmax.glsl: the last split merges
const bool REDUCE_SCATTER = true;               // split_softmax.glsl: sparse_split.glsl's reduction
const bool MERGE_HEADS = true;    // split_softmax.glsl: sparse_split's merge (a cache in several buffers attends with it, bit for bit)
const uint MAXLEN = 1024;         // attention: entries per split, at most
const uint IDX_VEC4 = MAXLEN / 4; // split_softmax.glsl: the index list kept in sh_o, as in sparse_split
#define SH_IDX(e) floatBitsToUint(sh_o[(e) >> 2][(e) & 3])

const uint WG = gl_WorkGroupSize.x;
const uint UNR = 4;       // score: token pairs per lane per round
const uint PER = 8;       // select: tokens per lane per tile
const uint PRE = 4;       // select: tiles whose keys are loaded before the threshold

layout(push_constant) uniform PushConstants {
    uint n;            // tokens N
    uint cap;          // row stride of kc, K and V, in tokens
    uint chunk_len;    // tokens per S and W item, a multiple of 8
    uint nchunks;      // NC = ceil(N / chunk_len)
    uint sink_end;     // tokens t < sink_end are forced in
    uint recent_start; // tokens t >= recent_start are forced in
    uint key_stride;   // row stride of keys, in tokens, a multiple of 8
    uint kk;           // tokens to take besides the forced ones
    uint k;            // entries per row of the selection
    uint kstride;      // row stride of sel
    uint split_len;    // entries per attention split, <= MAXLEN
    uint splits;       // S
    float scale;       // 1/sqrt(D)
    uint rows;         // B*Hkv
    uint hkv;          // KV heads (W head = row % hkv)
    uint ldw;          // row stride of W, in floats
    uint rbit;         // code bits
    uint item_end;     // items >= item_end are left to a later dispatch; 0: none
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) restrict coherent volatile buffer QC { uint qc[]; };
layout(std430, set = 0, binding = 3) restrict readonly buffer KC { uvec4 kc[]; };
layout(std430, set = 0, binding = 4) coherent volatile buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 4) coherent volatile buffer Keys4 { uvec4 keys4[]; }; // the same scores, 16 bytes at a time
layout(std430, set = 0, binding = 5) restrict coherent volatile buffer Hist { uint hist[]; };
layout(std430, set = 0, binding = 6) restrict coherent volatile buffer Sel { uint sel[]; };
layout(std430, set = 0, binding = 7) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 8) restrict readonly buffer VB { KV_T vb[]; };
layout(std430, set = 0, binding = 9) restrict coherent buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 10) restrict coherent buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 11) restrict writeonly buffer Out { vec4 out_[]; };
layout(std430, set = 0, binding = 12) restrict coherent buffer Cnt { uint cnt[]; };
layout(std430, set = 0, binding = 13) restrict coherent volatile buffer Ctr { uint ctr[]; };

#include "split_softmax.glsl"
#include "wg_scan.glsl"
#include "select_tile.glsl"

shared uint sh_next; // the next item this workgroup runs
shared uint sh_spin; // written by wait_done's polls (a side effect, so the loop stays)
shared uint sh_hist[NB];    // S: the chunk's histogram

// ---- the queue --------------------------------------------------------------

// wait_done waits until done[kind][row] >= want; then the writes of the items
// that counted are visible to every lane. Uniform control flow.
void wait_done(uint kind, uint row, uint want) {
    // Subgroup 0 polls (one load per poll on a GPU), or with POLL_ALL every
    // lane (CPU devices), with an acquire load and a store in the loop's
    // body (a loop of plain loads with an empty body may be deleted as side-
    // effect free). On lavapipe no poll ever waits: there the step runs one
    // kind of item per dispatch (pc.item_end; the queue comment above).
    if (POLL_ALL || gl_SubgroupID == 0) {
        while (atomicLoad(ctr[1 + kind * pc.rows + row], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquire) < want) {
            sh_spin = 1;
        }
        memoryBarrierBuffer();
    }
    // Every lane's later loads see what the polled items released: a
    // workgroup barrier with device-scope buffer semantics (the memory
    // model's form of the fence-and-barrier).
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared, gl_SemanticsAcquireRelease);
    memoryBarrierBuffer();
}

// signal_done counts this item in done[kind][row] once every lane's writes
// are fenced. Uniform control flow.
void signal_done(uint kind, uint row) {
    memoryBarrierBuffer();
    // Every lane's writes happen before lane 0's release (a plain barrier()
    // orders shared memory only).
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared, gl_SemanticsAcquireRelease);
    if (gl_LocalInvocationIndex == 0) atomicAdd(ctr[1 + kind * pc.rows + row], 1u, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelease);
}


// ---- E: the query codes -------------------------------------------------------

// An E item computes word p of the G query codes of its row: lane li < G*32
// takes head g = li / 32 and column j = p*32 + li % 32 and sums q_g[d] W[d][j]
// over d in float32 (hata_encode_q's formula: bit j = the sum > 0), the W
// loads of a block of EB d's issued before their arithmetic.
const uint EB = 32;
shared float sh_q[G * D];
shared uint sh_code[G];

void encode_word(uint row, uint p) {
    const uint li = gl_LocalInvocationIndex;
    for (uint e = li; e < G * D; e += WG) sh_q[e] = q[row * G * D + e];
    if (li < G) sh_code[li] = 0;
    barrier();
    const uint wbase = (row % pc.hkv) * D * pc.ldw;
    for (uint e = li; e < G * 32; e += WG) {
        const uint g = e / 32, j = p * 32 + e % 32;
        float acc = 0.0;
        if (j < pc.rbit) {
            for (uint d0 = 0; d0 < D; d0 += EB) {
                float wv[EB];
                [[unroll]] for (uint i = 0; i < EB; i++) wv[i] = d0 + i < D ? w[wbase + (d0 + i) * pc.ldw + j] : 0.0;
                [[unroll]] for (uint i = 0; i < EB; i++) acc += d0 + i < D ? sh_q[g * D + d0 + i] * wv[i] : 0.0;
            }
        }
        if (acc > 0.0) atomicOr(sh_code[g], 1u << (e % 32));
    }
    barrier();
    if (li < G) qc[(row * G + li) * WV * 4 + p] = sh_code[li];
    // The code's padding words (WV*4 > EP) are zero: word 0's item writes them.
    if (p == 0) {
        const uint ep = (pc.rbit + 31) / 32;
        for (uint e = li; e < G * (WV * 4 - ep); e += WG) {
            qc[(row * G + e / (WV * 4 - ep)) * WV * 4 + ep + e % (WV * 4 - ep)] = 0;
        }
    }
    signal_done(0, row);
}

// ---- S: scores and histograms -----------------------------------------------

#include "ham_planes.glsl"

// SCORE_LOAD(rb, a, b): the codes of the lane's UNR token pairs of the round
// at rb into a (even tokens) and b (odd); tokens past c1 read as zero.
#define SCORE_LOAD(rb, a, b)                                                   \
    [[unroll]] for (uint u = 0; u < UNR; u++) {                                \
        const uint t = (rb) + 2 * li + 2 * WG * u;                             \
        HAM_LOAD2(kc, row * pc.cap + t, t, c1, a, b, u)                        \
    }

void score_chunk(uint row, uint c) {
    const uint li = gl_LocalInvocationIndex;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    for (uint b = li; b < NB; b += WG) sh_hist[b] = 0;
    // The zeros are ordered before the adds below by wait_done's workgroup
    // controlBarrier, which every path runs; a wait made conditional would
    // need a barrier() here (select_hist.comp lacked one, 26ac155).
    // Rounds of UNR token pairs per lane, the loads of the next round issued
    // before the arithmetic of this one; the first round's loads are issued
    // before the wait for the query codes. Uniform trip count.
    const uint STEP = 2 * WG * UNR;
    uvec4 ka[UNR * WV], kb2[UNR * WV];
    SCORE_LOAD(c0, ka, kb2)
    wait_done(0, row, (pc.rbit + 31) / 32);
    uvec4 qv[G * WV];
    [[unroll]] for (uint e = 0; e < G * WV; e++) {
        const uint o = (row * G * WV + e) * 4;
        qv[e] = uvec4(qc[o], qc[o + 1], qc[o + 2], qc[o + 3]);
    }
    HAM_PLANES(qv, pa, px, hbase)
    for (uint rb = c0; rb < c1; rb += STEP) {
        uvec4 na[UNR * WV], nb[UNR * WV];
        if (rb + STEP < c1) SCORE_LOAD(rb + STEP, na, nb)
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = rb + 2 * li + 2 * WG * u;
            if (t < c1) {
                const bool two = t + 1 < c1;
                uint s0, s1;
                HAM_SCORE2(s0, s1, pa, px, hbase, ka, kb2, u)
                keys[(row * pc.key_stride + t) / 2] = s0 | (two ? s1 << 16 : 0xffff0000u);
                if (t >= pc.sink_end && t < pc.recent_start) atomicAdd(sh_hist[s0], 1);
                if (two && t + 1 >= pc.sink_end && t + 1 < pc.recent_start) atomicAdd(sh_hist[s1], 1);
            }
        }
        [[unroll]] for (uint x = 0; x < UNR * WV; x++) {
            ka[x] = na[x];
            kb2[x] = nb[x];
        }
    }
    barrier();
    for (uint b = li; b < NB; b += WG) {
        const uint x = sh_hist[b];
        if (x != 0) atomicAdd(hist[row * NB + b], x);
    }
    // The chunk's cumulative histogram: lane li owns PER_LANE bins.
    const uint PER_LANE = (NB + WG - 1) / WG;
    const uint b0 = li * PER_LANE;
    uint run = 0;
    for (uint i = 0; i < PER_LANE && b0 + i < NB; i++) run += sh_hist[b0 + i];
    uint total;
    uint acc = wg_scan(run, total);
    const uint base = (pc.rows + row * pc.nchunks + c) * NB;
    for (uint i = 0; i < PER_LANE && b0 + i < NB; i++) {
        acc += sh_hist[b0 + i];
        hist[base + b0 + i] = acc;
    }
    signal_done(1, row);
}

// ---- W: the selection ------------------------------------------------------

// chunk_counts returns (u, e) of chunk c of row from the chunks' cumulative
// histograms (select_tile.glsl).
uvec2 chunk_counts(uint row, uint c, uint T) {
    const uint c0 = c * pc.chunk_len;
    return cum_counts((pc.rows + row * pc.nchunks + c) * NB, c0, chunk_end(c0), T);
}

// find_threshold returns (T, r): T the smallest bin of row's histogram with
// sum_{b <= T} hist[b] >= kk, r = kk - sum_{b < T} hist[b] (wg_scan.glsl's
// find_bin_at, select.glsl's resolve with one pass); (0, 0) when kk = 0.
uvec2 find_threshold(uint row) {
    if (pc.kk == 0) return uvec2(0);
    const uvec2 f = find_bin_at(row * NB, NB, pc.kk);
    return uvec2(f.x, pc.kk - f.y);
}

void select_chunk(uint row, uint c) {
    const uint li = gl_LocalInvocationIndex;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    wait_done(1, row, pc.nchunks);
    // The first PRE tiles' keys, loaded before the threshold is resolved.
    uvec4 pre[PRE];
    [[unroll]] for (uint x = 0; x < PRE; x++) {
        const uint t0 = c0 + x * WG * PER + li * PER;
        pre[x] = t0 < c1 ? keys4[(row * pc.key_stride + t0) / 8] : uvec4(0);
    }
    const uvec2 tr = find_threshold(row);
    const uint T = tr.x, r = tr.y;

    uint rr; // candidates still to take
    const uint out0 = chunk_start(row, c, T, r, rr);

    uint U = 0, E = 0; // taken and candidates in this chunk before the tile
    for (uint tb = c0, x = 0; tb < c1; tb += WG * PER, x++) {
        const uint t0 = tb + li * PER;
        uint k[PER];
        if (t0 < c1) {
            uvec4 v = uvec4(0);
            [[unroll]] for (uint y = 0; y < PRE; y++) {
                if (y == x) v = pre[y];
            }
            if (x >= PRE) v = keys4[(row * pc.key_stride + t0) / 8];
            [[unroll]] for (uint j = 0; j < PER; j++) k[j] = (v[j / 2] >> (16 * (j & 1))) & 0xffffu;
        }
        uint um, em;
        tile_masks(t0, c1, k, T, um, em);
        write_tile(t0, um, em, out0, rr, U, E);
    }
    signal_done(2, row);
}

// ---- A: the sparse attention -------------------------------------------------

void attend_split(uint row, uint s) {
    const uint li = gl_LocalInvocationIndex;
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint qrow = row * G;
    SPLIT_INIT(qrow, lane)
    wait_done(2, row, pc.nchunks);
    const uint i0 = s * pc.split_len;
    const uint len = min(i0 + pc.split_len, pc.k) - i0;
    for (uint i = li; i < len; i += WG) sh_o[i >> 2][i & 3] = uintBitsToFloat(sel[row * pc.kstride + i0 + i]); // the split's token indices
    barrier();
    const uint rowv = row * pc.cap * KV_RS + KV_POS(lane); // KV_RS = DV, KV_POS(c) = c here
    SPLIT_LIST(len, slot)
    SPLIT_MERGE(qrow, s, lane, slot, li)
    split_fold(row, qrow);
}

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint ep = (pc.rbit + 31) / 32;
    const uint ne = pc.rows * ep, ns = pc.rows * pc.nchunks, na = pc.rows * pc.splits;
    const uint total = pc.item_end != 0 ? min(pc.item_end, ne + 2 * ns + na) : ne + 2 * ns + na;
    // The claim of the next item is issued while this one runs (sh_next), so
    // its round trip is hidden; a claimed item is run by the workgroup that
    // claimed it, after its current one, which keeps the queue's argument.
    if (li == 0) sh_next = atomicAdd(ctr[0], 1u);
    for (;;) {
        barrier();
        const uint it = sh_next;
        barrier();
        if (it >= total) break;
        if (li == 0) sh_next = atomicAdd(ctr[0], 1u);
        if (it < ne) {
            encode_word(it / ep, it % ep);
        } else if (it < ne + ns) {
            score_chunk((it - ne) / pc.nchunks, (it - ne) % pc.nchunks);
        } else if (it < ne + 2 * ns) {
            select_chunk((it - ne - ns) / pc.nchunks, (it - ne - ns) % pc.nchunks);
        } else {
            attend_split((it - ne - 2 * ns) / pc.splits, (it - ne - 2 * ns) % pc.splits);
        }
    }
}
