// select_split.glsl: HATA's select and sparse attention in one dispatch,
// split by entries as sparse_split.glsl is (SparseOptions.SelectSplit).
// Included by select_split_f32.comp, select_split_f16.comp and
// select_split_f16h.comp (KV_F32 / KV_F16 / KV_F16H).
//
// The fused chain's select (select_groups_k8) writes a row's k selected
// tokens to sel, and after a barrier sparse_split reads them back, split_len
// entries a workgroup. Here the workgroup of split s of row r finds its
// entries [s*split_len, min((s+1)*split_len, k)) of the row's selection
// itself: hata_score's plan (select_plan.glsl) gives the threshold T and
// where every chunk's first taken token goes in sel (out0, ascending over the
// chunks), so the chunk holding entry s*split_len is the last one whose out0
// is at most it; the workgroup marks that chunk's tokens as select_groups
// does (one-byte keys, KEY8), numbers them with a workgroup scan, and keeps
// those whose place falls in its range, in shared memory (and in sel, so
// that the selection can be read back), going on to the next chunk while its
// range goes on. Then it attends over them as sparse_split does
// (split_softmax.glsl's SPLIT_LIST, SPLIT_MERGE, split_fold). So a step has
// one dispatch boundary and one round of loads (sel's) fewer, for every
// workgroup scanning a whole chunk of keys, which the chunk's other splits
// scan too.
//
// Bindings (set 0): 0-3 as select.glsl (KEY8 keys, hist with the plan, ccnt
// unused, sel), and 4-10 as select_attend.glsl (q, K, V, po, pml, out, cnt;
// the cache bound whole).
// Dispatch: (S, rows, 1), pc.cum = pc.plan = 1, pc.splits = S; KEY8 keys.

#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_memory_scope_semantics : require

#define KEY8_KEYS
#define SELECT_GROUPS_LIB
#include "select_groups.glsl" // select.glsl, and the KEY8 marks group_marks8
#include "kv.glsl"

layout(constant_id = 3) const uint TPT = 8;      // lanes per token (sparse_split.glsl)
layout(constant_id = 4) const uint D = 128;      // head dimension
layout(constant_id = 5) const uint G = 1;        // query heads per KV head
layout(constant_id = 6) const uint TILE = 4;     // entries per slot between rescales
layout(constant_id = 7) const bool FUSED = true; // the last workgroup of a row merges
const bool REDUCE_SCATTER = true;                // split_softmax.glsl: sparse_split.glsl's choices
const bool MERGE_HEADS = true;
const uint MAXLEN = 1024;         // entries per split, at most (sparse_split.glsl's)
const uint IDX_VEC4 = MAXLEN / 4; // split_softmax.glsl: the index list kept in sh_o
#define SH_IDX(e) floatBitsToUint(sh_o[(e) >> 2][(e) & 3])

layout(std430, set = 0, binding = 4) restrict readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 5) restrict readonly buffer KB { KV_T kb[]; };
layout(std430, set = 0, binding = 6) restrict readonly buffer VB { KV_T vb[]; };
layout(std430, set = 0, binding = 7) restrict coherent buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 8) restrict coherent buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 9) restrict writeonly buffer Out { vec4 out_[]; };
layout(std430, set = 0, binding = 10) restrict coherent buffer Cnt { uint cnt[]; };

#include "split_softmax.glsl"

// keep places token t, taken at place p of the row's selection, if p falls
// in [e0, e1): in the split's list (entry p - e0) and in sel.
void keep(uint t, uint p, uint e0, uint e1) {
    if (p >= e0 && p < e1) {
        sh_o[(p - e0) >> 2][(p - e0) & 3] = uintBitsToFloat(t);
        sel[p] = t;
    }
}

void main() {
    if (!KEY16) return; // one-byte keys come with KEY16 set (the host's key16): never taken
    const uint li = gl_LocalInvocationIndex;
    const uint s = gl_WorkGroupID.x;
    const uint row = gl_WorkGroupID.y;
    const uint lane = gl_SubgroupInvocationID % TPT;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / TPT) + gl_SubgroupInvocationID / TPT;
    const uint qrow = row * G; // first query row b*Hq + h*G of the group
    const uint rows = gl_NumWorkGroups.y;
    const uint pb = plan_base(rows, pc.nchunks, pc.nbins);

    // The split's places in sel: [e0, e1), e1 - e0 = len entries.
    const uint i0 = s * pc.split_len;
    const uint len = min(i0 + pc.split_len, pc.kstride) - i0; // <= MAXLEN
    const uint e0 = row * pc.kstride + i0, e1 = e0 + len;

    SPLIT_INIT(qrow, lane) // the query's loads, in flight while the chunk is found
    const uint T = hist[plan_thr(pb, rows, row)];
    // The chunk of entry e0: the last whose out0 <= e0 (out0 ascends over the
    // chunks, chunk 0's is the row's first place).
    uint below = 0;
    for (uint c = li; c < pc.nchunks; c += WG) {
        below += hist[plan_chunk(pb, rows, pc.nchunks, row, c)] <= e0 ? 1u : 0u;
    }
    uint c = wg_sum(below) - 1;

    for (; c < pc.nchunks; c++) { // uniform: every lane reads the same plan
        const uint o = plan_chunk(pb, rows, pc.nchunks, row, c);
        const uint out0 = hist[o];
        const uint rr = hist[o + 1];
        if (out0 >= e1) break;
        const uint c0 = c * pc.chunk_len;
        const uint c1 = chunk_end(c0);
        uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
        for (uint tb = c0; tb < c1 && out0 + U + min(rr, E) < e1; tb += WG * TPL) {
            const uint t0 = tb + li * TPL;
            uvec2 kv[GPL]; // a group's eight one-byte keys
            [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
                const uint gs = t0 + 8 * gi;
                kv[gi] = gs < c1 ? KEYS8((row * pc.key_stride + gs) / 8) : uvec2(0xffffffffu);
            }
            uvec2 um = uvec2(0), em = uvec2(0); // token j of group gi: bit 8*gi + j of the lane's 64
            [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
                const uvec2 m = group_marks8(t0 + 8 * gi, c1, kv[gi], T);
                if (gi < 4) {
                    um.x |= m.x << (8 * gi);
                    em.x |= m.y << (8 * gi);
                } else {
                    um.y |= m.x << (8 * (gi - 4));
                    em.y |= m.y << (8 * (gi - 4));
                }
            }
            // write_bits' places (select_tile.glsl's put), kept where in range.
            uvec2 ue = tile_start(uint(bitCount(um.x) + bitCount(um.y)), uint(bitCount(em.x) + bitCount(em.y)), U, E);
            [[unroll]] for (uint w = 0; w < 2; w++) {
                uint bits = um[w] | em[w];
                while (bits != 0) {
                    const uint j = uint(findLSB(bits));
                    bits &= bits - 1;
                    const uint t = t0 + 32 * w + j;
                    if ((um[w] >> j & 1u) != 0) {
                        keep(t, out0 + ue.x + min(rr, ue.y), e0, e1);
                        ue.x++;
                    } else {
                        if (ue.y < rr) keep(t, out0 + ue.x + ue.y, e0, e1);
                        ue.y++;
                    }
                }
            }
        }
    }
    barrier(); // the list in sh_o

    const uint rowv = row * pc.cap * DV + lane; // this lane's first vector of the row
    SPLIT_LIST(len, slot)
    SPLIT_MERGE(qrow, s, lane, slot, li)
    split_fold(row, qrow);
}
