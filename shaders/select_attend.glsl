// select_attend.glsl: HATA's fused select and sparse attention in one
// dispatch, for the fused variant. Included by select_attend_f16.comp and
// select_attend_f32.comp (KV_F16 / KV_F32).
//
// The selection is select_write's (select.glsl, step 3, with pc.cum: the
// score kernel left the one-pass histogram and every chunk's cumulative
// histogram): the workgroup of chunk c of row r resolves the threshold T and
// the ties to take r, finds how many tokens the earlier chunks take, and
// numbers its own taken tokens in index order, writing them to sel as
// select_write does. It then attends over them at once instead of leaving
// them to a sparse_split dispatch behind a barrier: tile by tile (WG*PER
// tokens), the tile's taken tokens go to shared memory and the workgroup's
// slots fold them into the online softmax of the row's G query heads
// (split_softmax.glsl, the arithmetic of sparse_split.glsl). The chunk is the
// flash-decoding split (S = nchunks): its partial (m, l, o) is merged with
// the row's other chunks by the last workgroup to finish (split_fold; with
// one chunk the output is written directly). A chunk that takes no token
// leaves the partial (NEG, 0, 0), which the merge weighs by exp(NEG - M) = 0.
//
// So a decode step of the fused variant is two dispatches: hata_score
// (encode, scores, histograms) and select_attend.
//
// Bindings (set 0): 0-3 as select.glsl (keys, hist, ccnt unused, sel), and
//	4 q    [B][Hq][D] float32 (query head b*Hq + h*G + g = r*G + g)
//	5 K    [rows][cap][D] as KV_T vectors
//	6 V    same layout as K
//	7 po   [B*Hq][S][D/4] vec4, 8 pml [B*Hq][S] vec2: the chunks' partials
//	9 out  [B*Hq][D/4] vec4, the attention output
//	10 cnt [rows] uint, finished chunks per row (zero between dispatches)
// Dispatch: (nchunks, rows, 1).

#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_memory_scope_semantics : require

#define SELECT_CUM // runs with pc.cum = 1 only
#include "select.glsl"
#include "kv.glsl"

layout(constant_id = 3) const uint TPT = 8;      // lanes per token (sparse_split.glsl)
layout(constant_id = 4) const uint D = 128;      // head dimension
layout(constant_id = 5) const uint G = 1;        // query heads per KV head
layout(constant_id = 6) const uint TILE = 4;     // entries per slot between rescales
layout(constant_id = 7) const bool FUSED = true; // split_fold merges (always, here)
const bool REDUCE_SCATTER = true;              // split_softmax.glsl: sparse_split.glsl's reduction
const bool MERGE_HEADS = false;   // split_softmax.glsl: one head at a time
const uint IDX_VEC4 = 0;          // split_softmax.glsl: no index list in sh_o

layout(std430, set = 0, binding = 4) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 5) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 6) restrict readonly buffer VB { KV_T vb[]; };
layout(std430, set = 0, binding = 7) restrict coherent buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 8) restrict coherent buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 9) restrict writeonly buffer Out { vec4 out_[]; };
layout(std430, set = 0, binding = 10) restrict coherent buffer Cnt { uint cnt[]; };

#include "split_softmax.glsl"

shared uint sh_idx[WG * PER]; // the current tile's taken tokens, ascending

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint qrow = row * G; // first query row b*Hq + h*G of the group

    uint T, rr; // the threshold, and the candidates still to take
    const uint out0 = write_start(row, c, T, rr);

    SPLIT_INIT(qrow, lane)
    const uint rowv = row * pc.cap * KV_RS + KV_POS(lane); // this lane's first vector of the row (KV_RS = DV, KV_POS(c) = c here)

    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
    for (uint tb = c0; tb < c1; tb += WG * PER) {
        const uint t0 = tb + li * PER;
        uint um, em;
        tile_keys(row, t0, c1, T, um, em);
        uint total;
        const uint ex = wg_scan(uint(bitCount(um)) << 16 | uint(bitCount(em)), total);
        const uint tile0 = U + min(rr, E); // taken in this chunk before the tile
        uint u = U + (ex >> 16), e = E + (ex & 0xffffu);
        [[unroll]] for (uint j = 0; j < PER; j++) {
            if ((um >> j & 1u) != 0) {
                const uint p = u + min(rr, e);
                sel[out0 + p] = t0 + j;
                sh_idx[p - tile0] = t0 + j;
                u++;
            } else if ((em >> j & 1u) != 0) {
                if (e < rr) {
                    sel[out0 + u + e] = t0 + j;
                    sh_idx[u + e - tile0] = t0 + j;
                }
                e++;
            }
        }
        U += total >> 16;
        E += total & 0xffffu;
        const uint len = U + min(rr, E) - tile0; // taken in this tile: uniform
        barrier();
        if (len > 0) SPLIT_LIST(len, slot) // sparse_split.glsl's loop over the tile's entries
        barrier(); // before the next tile overwrites sh_idx
    }

    SPLIT_MERGE(qrow, c, lane, slot, li)
    split_fold(row, qrow);
}
