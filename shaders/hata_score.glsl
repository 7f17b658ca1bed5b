// hata_score.glsl: HATA's GQA-summed Hamming scores (HATA.md, decode step 2;
// ref.HammingScores), optionally with the per-row histogram of the scores
// that the selection needs (the "fused" variant):
//
//	S[r][t] = sum_{g < G} sum_w popcount(qcode[r*G + g][w] XOR kcode[r][t][w])
//	hist[r][s] += 1 for every token t < N with S[r][t] = s that no window forces in
//	              (sink_end <= t < recent_start)
//
// Codes are read as uvec4: a code is WV uvec4 (rbit/32 words padded with
// zeros to a multiple of 4, and zero XOR zero adds nothing), or for rbit 32
// and 64 a key code is one or two words, CPV of them a uvec4 (the query
// codes stay padded). popcount is
// 32-bit bitCount (spirv-val rejects 64-bit). The G bit counts per word are
// counted on bit planes of the query group instead (ham_planes.glsl: at G
// = 4 two per word, not four). A lane scores two consecutive
// tokens per step (32 contiguous bytes of codes for rbit=128), UNR steps per
// round with every load of the round issued before the arithmetic, and the
// next round's loads issued before this round's arithmetic (the first
// round's before the query codes), so that two rounds are in flight a lane;
// it stores both scores in one uint when KEY16 (S <= G*rbit <= 65535: low
// half the even token), so the select kernels read N*2 bytes per row;
// otherwise one uint per token (the "naive" variant). With HIST the workgroup counts its tokens
// in a shared histogram of NB bins (NB > G*rbit) and adds the non-zero bins
// to the global one with atomicAdd, so that no extra pass over the scores
// is needed to find the selection threshold. With CUM (and HIST) it also
// writes its chunk's cumulative histogram,
//
//	cum[row][c][s] = #{t in chunk c, not forced: S[r][t] <= s}     s < NB
//
// so that select_write, once it knows the threshold T, finds how many
// tokens every earlier chunk takes from two entries per chunk, instead of a
// select_count pass over the scores (select.glsl, step 2 with pc.cum).
//
// With PLAN (and CUM) the workgroups count themselves done and the last of
// each row resolves the select's threshold and every chunk's first output
// slot into the histogram buffer (write_plan, select_plan.glsl), so that
// the select reads them instead of searching (SparseOptions.SelectPlan).
//
// The bit planes are ham_planes.glsl's. With them and UNR = 2 (32 registers
// instead of 61) the score stage took 1.8-10 us less on the H200
// (BENCHMARKS.md, runs 93-95). With the next round in flight (AHEAD, for
// codes of at most 128 bits; 63 registers, still four workgroups of 256
// lanes a compute unit) HATA's steps took 0.2-2.4 us less at B1/128K,
// B1/256K, B8/32K, B8/128K and B8/256K, from cold caches, and the same at
// B1/32K; UNR = 4 instead (58 registers, the same bytes in flight) took
// 2.5-12 us more, and the first round's loads alone before the query codes
// nothing (BENCHMARKS.md session 28, runs 315, 316 and 320).
//
// With ENCODE (the fused variant) there is no hata_encode_q dispatch before
// it: every workgroup first computes the query codes of its row's G heads
// itself (HATA.md's encode, proj.glsl's formula: bit j = q·W[h][:, j] > 0,
// float32, W head row % hkv), at the cost of reading W (D*rbit floats) from
// L2 once per workgroup instead of a dispatch and a barrier; the chunk-0
// workgroup of each row also stores them in qcode for Codes().
//
// Bindings (set 0):
//	0 qcode [rows*G][WV] uvec4 (query head b*Hq + h*G + g = row*G + g); read,
//	        or written by the chunk-0 workgroups with ENCODE
//	4 q     [rows*G][D] float32 query heads (read with ENCODE only)
//	5 W     [Hkv][D][ldw] float32 hash weights (read with ENCODE only)
//	1 kcode [rows][cap][WV] uvec4; CPV > 1: [rows][cap/CPV] uvec4
//	2 keys  KEY16: [rows][key_stride/2] uint (two uint16 each); else [rows][key_stride] uint
//	3 hist  [rows][NB] uint, zeroed before the dispatch (HIST); with CUM
//	        followed by cum [rows][nchunks][NB] uint (written whole), and
//	        with PLAN by select_plan.glsl's ctr, thr and plan
// With TRACE (hata_score_trace.comp, for benchmarks) lane 0 of every
// workgroup also reads the device clock (clockRealtime2x32EXT) at
// TRACE_POINTS points: its start, once its query codes are in and its
// histogram cleared, after its chunk's scores, and at its end (after the
// histogram and the cumulative counts), into
//	6 trace [rows][nchunks][TRACE_POINTS] uint, the clock's low word
// (sparse_split.glsl's convention).
// With KEY8 (KEY8_KEYS defined: hata_score_k8.comp, hata_score_k8_trace.comp;
// and KEY16) the keys are one byte a token instead, min(S, 255),
// four to a word (the first token in the low byte; 255 past the chunk): a
// lane scores four consecutive tokens a round and writes their word, and
// the select compares bytes (select_groups' KEY8). Exact where the select's
// threshold is below 255; the host runs the step again with two-byte keys
// where it is not (SparseOptions.KeyBytes). The histograms count S itself.
// Dispatch: (nchunks = ceil(N / chunk_len), rows, 1); chunk_len and
// key_stride even (KEY8: multiples of 4). Included by hata_score.comp and
// hata_score_trace.comp.

#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WV = 1;       // uvec4 per code
layout(constant_id = 2) const uint G = 1;        // query heads per KV head
layout(constant_id = 3) const bool KEY16 = true; // scores as packed uint16
layout(constant_id = 4) const uint NB = 1;       // histogram bins; 1: no histogram
layout(constant_id = 5) const bool CUM = false;  // also the chunk's cumulative histogram
layout(constant_id = 6) const bool ENCODE = false; // encode the query codes here
layout(constant_id = 7) const uint D = 128;        // head dimension (ENCODE)
layout(constant_id = 8) const bool PLAN = false;   // CUM: the last workgroup of a row writes the select's plan
layout(constant_id = 9) const uint CPV = 1;        // key codes per uvec4 of kc (ham_planes.glsl): 1, 2 (rbit 64) or 4 (rbit 32)
#ifdef KEY8_KEYS
const bool KEY8 = true; // KEY16's rows as one-byte keys min(S, 255), four a word (hata_score_k8*.comp)
#else
const bool KEY8 = false;
#endif

const uint WG = gl_WorkGroupSize.x;
const bool HIST = NB > 1;
const uint UNR = 2; // token pairs per lane per round (4: 61 registers, slower on the H200; KEY8 packs 2)
const bool AHEAD = WV == 1; // the next round's codes in flight (rbit <= 128: wider codes would double registers already many)

#include "ham_planes.glsl"

layout(push_constant) uniform PushConstants {
    uint n;            // tokens N
    uint cap;          // row stride of kcode, in tokens
    uint chunk_len;    // tokens per workgroup, even
    uint sink_end;     // tokens t < sink_end are forced in (not counted)
    uint recent_start; // tokens t >= recent_start are forced in (not counted)
    uint key_stride;   // row stride of the scores, in tokens, even
    uint hkv;          // ENCODE: KV heads (W head = row % hkv)
    uint ldw;          // ENCODE: row stride of W, in floats
    uint rbit;         // ENCODE: code bits (columns of W used)
    uint kk;           // PLAN: tokens to take besides the forced ones
    uint kstride;      // PLAN: row stride of the selection, in tokens
} pc;

layout(std430, set = 0, binding = 0) restrict buffer QC { uvec4 qc[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer KC { uvec4 kc[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 3) restrict coherent buffer Hist { uint hist[]; }; // coherent: PLAN reads the other workgroups' counts
layout(std430, set = 0, binding = 4) restrict readonly buffer QF { float qf[]; };
layout(std430, set = 0, binding = 5) restrict readonly buffer W { float w[]; };

#define TRACE_BINDING 6
#define TRACE_POINTS 4
#define TRACE_WG (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
#include "trace.glsl"

shared uint sh_hist[NB];
shared bool sh_last; // PLAN: this workgroup finished its row last
#include "wg_scan.glsl"    // sh_sg (CUM's scan), find_bin_at (PLAN)
#include "select_plan.glsl"
#include "last_workgroup.glsl" // LAST_OF (PLAN)

// ENCODE: the column space is the padded code, NCOLP = 128*WV columns (bits
// past rbit stay 0); the WG lanes split it into SL slices of D so that every
// lane has at most NCOLP/WG... one column and D/SL terms in flight.
const uint NCOLP = 128 * WV;
const uint SL = WG >= NCOLP ? WG / NCOLP : 1; // slices of D
const uint DPS = (D + SL - 1) / SL;           // d's per slice
shared float sh_q[ENCODE ? G * D : 1];
shared float sh_red[ENCODE ? SL * G * NCOLP : 1];
shared uint sh_code[ENCODE ? G * WV * 4 : 1];

// encode_query returns nothing; it leaves the G codes of row in sh_code
// (word e of head g at g*WV*4 + e). Uniform control flow.
void encode_query(uint row, uint li) {
    for (uint e = li; e < G * D; e += WG) sh_q[e] = qf[row * G * D + e];
    for (uint e = li; e < G * WV * 4; e += WG) sh_code[e] = 0;
    barrier();
    const uint wbase = (row % pc.hkv) * D * pc.ldw;
    for (uint j0 = 0; j0 < NCOLP; j0 += WG / SL) {
        const uint j = j0 + li % (WG / SL), slice = li / (WG / SL);
        float acc[G];
        [[unroll]] for (uint g = 0; g < G; g++) acc[g] = 0.0;
        if (j < pc.rbit && slice < SL) {
            float wv[DPS];
            [[unroll]] for (uint i = 0; i < DPS; i++) {
                const uint d = slice * DPS + i;
                wv[i] = d < D ? w[wbase + d * pc.ldw + j] : 0.0;
            }
            [[unroll]] for (uint i = 0; i < DPS; i++) {
                const uint d = slice * DPS + i;
                if (d < D) {
                    [[unroll]] for (uint g = 0; g < G; g++) acc[g] += sh_q[g * D + d] * wv[i];
                }
            }
        }
        if (j < NCOLP && slice < SL) {
            [[unroll]] for (uint g = 0; g < G; g++) sh_red[(slice * G + g) * NCOLP + j] = acc[g];
        }
    }
    barrier();
    for (uint e = li; e < G * NCOLP; e += WG) {
        const uint g = e / NCOLP, j = e % NCOLP;
        float p = 0.0;
        for (uint sl = 0; sl < SL; sl++) p += sh_red[(sl * G + g) * NCOLP + j];
        if (j < pc.rbit && p > 0.0) atomicOr(sh_code[g * WV * 4 + j / 32], 1u << (j % 32));
    }
    barrier();
}

// write_plan is PLAN's tail (select_plan.glsl): every workgroup, its
// histogram counts and cumulative chunk histogram written, counts itself
// done in ctr[row] (the threadfence reduction of split_fold); the last of
// the row resolves the threshold T and r = kk - #(key < T) from the row's
// histogram (find_bin_at; T = 0, r = 0 when kk = 0), every chunk's (u, e)
// from the cumulative histograms (select.glsl, step 2), and their exclusive
// sums over the chunks into each chunk's (out0, rr), select.glsl's
// chunk_start; it leaves ctr[row] 0 for the next step. Uniform control flow.
void write_plan(uint row, uint li) {
    const uint rows = gl_NumWorkGroups.y, nch = gl_NumWorkGroups.x;
    const uint pb = plan_base(rows, nch, NB);
    LAST_OF(hist[plan_ctr(pb, row)], nch) // the hist and cum writes released
    if (!sh_last) return;                   // uniform over the workgroup
    uvec2 f = uvec2(0, pc.kk);
    if (pc.kk > 0) f = find_bin_at(row * NB, NB, pc.kk);
    const uint T = f.x, r = pc.kk - f.y;
    uint su = 0, se = 0; // the taken and the candidates of the chunks before this pass
    for (uint c0 = 0; c0 < nch; c0 += WG) {
        const uint c = c0 + li;
        uvec2 ue = uvec2(0);
        if (c < nch) {
            const uint a = c * pc.chunk_len;
            ue = cum_counts(rows * NB + (row * nch + c) * NB, a, chunk_end(a), T);
        }
        uint tu, te;
        const uint pu = su + wg_scan(ue.x, tu), pe = se + wg_scan(ue.y, te);
        if (c < nch) {
            const uint o = plan_chunk(pb, rows, nch, row, c);
            hist[o] = row * pc.kstride + pu + min(r, pe);
            hist[o + 1] = r > pe ? r - pe : 0;
        }
        su += tu;
        se += te;
    }
    if (li == 0) {
        hist[plan_thr(pb, rows, row)] = T;
        hist[plan_ctr(pb, row)] = 0; // for the next step
    }
}

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c0 = gl_WorkGroupID.x * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    TRACE_AT(0)

    // UNR token pairs per lane per round: pairs 2*WG tokens apart, or (KEY8)
    // consecutive, four tokens a lane.
#ifdef KEY8_KEYS
    const uint lstep = 2, lane0 = 4 * li;      // from a lane's pair to its next; its first token
#else
    const uint lstep = 2 * WG, lane0 = 2 * li;
#endif
    const uint rstep = 2 * WG * UNR; // tokens a round
    uvec4 na[UNR * WV], nb[UNR * WV]; // AHEAD: the next round's codes, requested ahead
    if (AHEAD) {
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = c0 + lane0 + lstep * u;
            HAM_LOAD2(kc, row * pc.cap + t, t, c1, na, nb, u)
        }
    }

    uvec4 q[G * WV];
    if (ENCODE) {
        encode_query(row, li);
        [[unroll]] for (uint e = 0; e < G * WV; e++) {
            q[e] = uvec4(sh_code[4 * e], sh_code[4 * e + 1], sh_code[4 * e + 2], sh_code[4 * e + 3]);
        }
        if (gl_WorkGroupID.x == 0 && li < G * WV) qc[row * G * WV + li] = q[li];
    } else {
        [[unroll]] for (uint e = 0; e < G * WV; e++) q[e] = qc[row * G * WV + e];
    }
    if (HIST) {
        for (uint b = li; b < NB; b += WG) sh_hist[b] = 0;
        barrier();
    }

    HAM_PLANES(q, pa, px, base)
    TRACE_AT(1)

    // AHEAD: a round's codes were requested a round ahead; request the next
    // round's (zeros past the chunk) before this round's arithmetic.
    for (uint tb = c0 + lane0; tb < c1; tb += rstep) {
        uvec4 ka[UNR * WV], kb[UNR * WV];
        if (AHEAD) {
            [[unroll]] for (uint u = 0; u < UNR * WV; u++) {
                ka[u] = na[u];
                kb[u] = nb[u];
            }
        }
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = tb + (AHEAD ? rstep : 0) + lstep * u;
            if (AHEAD) {
                HAM_LOAD2(kc, row * pc.cap + t, t, c1, na, nb, u)
            } else {
                HAM_LOAD2(kc, row * pc.cap + t, t, c1, ka, kb, u)
            }
        }
        uint k8 = 0; // KEY8: the lane's four keys
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = tb + lstep * u;
            if (t < c1) {
                const bool two = t + 1 < c1;
                uint s0, s1;
                HAM_SCORE2(s0, s1, pa, px, base, ka, kb, u)
                const uint o = row * pc.key_stride + t;
                if (KEY8) {
                    k8 |= (min(s0, 255u) | (two ? min(s1, 255u) : 255u) << 8) << (16 * u);
                } else if (KEY16) {
                    keys[o / 2] = s0 | (two ? s1 << 16 : 0xffff0000u);
                } else {
                    keys[o] = s0;
                    if (two) keys[o + 1] = s1;
                }
                if (HIST) {
                    if (t >= pc.sink_end && t < pc.recent_start) atomicAdd(sh_hist[s0], 1);
                    if (two && t + 1 >= pc.sink_end && t + 1 < pc.recent_start) atomicAdd(sh_hist[s1], 1);
                }
            }
#ifdef KEY8_KEYS
            else {
                k8 |= 0xffffu << (16 * u);
            }
#endif
        }
#ifdef KEY8_KEYS
        if (KEY16) keys[(row * pc.key_stride + tb) / 4] = k8; // (KEY8 runs with KEY16)
#endif
    }

    TRACE_AT(2)

    if (HIST) {
        barrier();
        for (uint b = li; b < NB; b += WG) {
            const uint c = sh_hist[b];
            if (c != 0) atomicAdd(hist[row * NB + b], c);
        }
    }
    if (CUM) {
        // Lane li owns the PER_LANE bins from li*PER_LANE on: its run's sum,
        // an exclusive scan of the sums over the workgroup, then the running
        // count of every owned bin.
        const uint PER_LANE = (NB + WG - 1) / WG;
        const uint b0 = li * PER_LANE;
        uint run = 0;
        for (uint i = 0; i < PER_LANE && b0 + i < NB; i++) run += sh_hist[b0 + i];
        const uint incl = subgroupInclusiveAdd(run);
        if (gl_SubgroupInvocationID == gl_SubgroupSize - 1) sh_sg[gl_SubgroupID] = incl;
        barrier();
        uint acc = incl - run;
        for (uint sg = 0; sg < gl_SubgroupID; sg++) acc += sh_sg[sg];
        const uint base = gl_NumWorkGroups.y * NB + (row * gl_NumWorkGroups.x + gl_WorkGroupID.x) * NB;
        for (uint i = 0; i < PER_LANE && b0 + i < NB; i++) {
            acc += sh_hist[b0 + i];
            hist[base + b0 + i] = acc;
        }
    }
    if (PLAN) write_plan(row, li);
    TRACE_AT(3)
}
