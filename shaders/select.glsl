// select.glsl: exact top-k selection by histogram, with ref's rule
// (ref.SelectSmallest): the kk smallest keys among the tokens no window
// forces in, ties broken by the SMALLER token index, plus the forced tokens
// (t < sink_end or t >= recent_start), written ascending. Keys are uint32 or
// uint16 "smaller is better" (float scores are mapped to such keys by
// select_key.glsl); a key may cover `page` consecutive tokens (Quest's page
// scores; 1 otherwise). Included by select_hist.comp, select_count.comp and
// select_write.comp (and select_groups, select_attend, select_rows), which
// run in this order over the same chunks of chunk_len tokens per workgroup:
//
//  1. Histograms: T, the kk-th smallest key, is found digit by digit. With
//     radix = 0 there is one pass whose bins are the keys themselves (keys <
//     nbins: HATA's scores, whose histogram hata_score.comp builds on the
//     fly, or select_hist builds in a separate pass); with radix = 1 there is
//     one pass per digit from the top (uint16 keys: two 8-bit digits, 256
//     bins; uint32 keys: 11, 11 and 10 bits, 2048 bins; see width), pass p
//     counting the tokens whose higher digits equal T's (found from passes
//     < p). hist: [rows][passes][nbins], zeroed before pass 0.
//  2. select_count (one pass, pc.cum = 0: HATA's naive variant): every
//     workgroup resolves T and r (the number of tokens with key == T still
//     to take: kk - #(key < T)) from the histograms, and counts in its chunk
//     u = #(forced or key < T) and e = #(not forced, key == T):
//     ccnt[row][chunk] = (u, e).
//     With pc.cum = 1 there is no select_count. In HATA's fused variant (one
//     pass) the score kernel wrote every chunk's cumulative histogram
//     cum[row][c][s] = #(not forced, key <= s) after the one-pass histogram
//     (hist, then cum [rows][nchunks][nbins]), so u_c = forced_c +
//     cum[c][T-1] and e_c = cum[c][T] - cum[c][T-1], forced_c counted from
//     the window bounds; with radix passes the last select_hist writes the
//     like of it for the last digit (rc, below).
//  3. select_write: token t is taken if it is forced or key < T, or if key ==
//     T and fewer than r tokens with key == T precede it. The workgroup
//     starts at pos0 = sum_{c' < c} u_c' + min(r, sum_{c' < c} e_c') and
//     numbers its taken tokens in index order with a workgroup prefix sum,
//     so the output is ascending without a sort.
//
// Every workgroup resolves T itself from the histograms (a few hundred to a
// few thousand bins), which costs less than a dispatch of its own (HATA's
// fused select with pc.plan reads T and its chunk's start instead, which
// hata_score's last workgroup of the row resolved: select_plan.glsl); with
// several passes each kernel searches only its last pass's histogram,
// starting from the state the kernel before it stored (state_at).

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;                // WG: a multiple of the largest subgroup size
layout(constant_id = 1) const bool KEY16 = false; // keys are packed uint16
layout(constant_id = 2) const uint PER = 8;       // tokens per lane per tile, <= 32 (select_groups: a multiple of 8, <= 64)

const uint WG = gl_WorkGroupSize.x;
const uint KEYBITS = KEY16 ? 16 : 32;

layout(push_constant) uniform PushConstants {
    uint n;            // tokens N
    uint kk;           // tokens to take besides the forced ones
    uint sink_end;     // tokens t < sink_end are forced in
    uint recent_start; // tokens t >= recent_start are forced in
    uint chunk_len;    // tokens per workgroup
    uint nchunks;      // ceil(N / chunk_len)
    uint key_stride;   // row stride of keys, in keys (even when KEY16)
    uint page;         // tokens per key
    uint kstride;      // row stride of sel, in tokens
    uint pass;         // select_hist: the pass this dispatch builds
    uint radix;        // 0: one pass, bins = keys; 1: radix digits from the top (width)
    uint nbins;        // bins per pass
    uint cum;          // select_write: 1 = chunk counts from the cumulative histograms, 0 = from ccnt
    uint cap;          // select_attend: row stride of K and V, in tokens
    float scale;       // select_attend: 1/sqrt(D)
    uint splits;       // select_attend: S = nchunks (split_softmax.glsl's name)
    uint plan;         // SELECT_CUM kernels: 1 = T and the chunk's start from hata_score's plan (select_plan.glsl)
} pc;

layout(std430, set = 0, binding = 0) readonly buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 0) readonly buffer Keys4 { uvec4 keys4[]; }; // the same keys, 16 bytes at a time
layout(std430, set = 0, binding = 1) restrict buffer Hist { uint hist[]; };
layout(std430, set = 0, binding = 2) restrict buffer CCnt { uvec2 ccnt[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer Sel { uint sel[]; };

// With TRACE (select_write_trace.comp, select_groups_trace.comp, for
// benchmarks) lane 0 of every workgroup of the write reads the device clock
// (clockRealtime2x32EXT) at TRACE_POINTS points: its start, once the
// threshold is resolved from the histograms, once its chunk's first output
// slot is known (the chunk counts of the chunks before it), and at its end
// (its keys read, marked and written), into
//	4 trace [rows][nchunks][TRACE_POINTS] uint, the clock's low word
// (sparse_split.glsl's convention).
#define TRACE_BINDING 4
#define TRACE_POINTS 4
#define TRACE_WG (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
#include "trace.glsl"

// With SELECT_BINS_SPEC (the kernels that search: select_write_cum,
// select_groups, select_count, select_write) specialization constant 3 is
// the bins a lane holds in the histogram search, ceil(nbins / WG)
// (wg_scan.glsl's MAXPER; 16 otherwise). select_hist, whose constant 3 is
// its shared histogram's bins, derives BIN_PER from that.
#ifdef SELECT_BINS_SPEC
layout(constant_id = 3) const uint BINS_PER = 16;
#define BIN_PER BINS_PER
#endif
#include "wg_scan.glsl"
#include "select_tile.glsl"
#include "select_key.glsl"

// The radix digits, from the top: uint16 keys in two 8-bit digits (bits
// 15-8, 7-0), uint32 keys in three of 11, 11 and 10 bits (31-21, 20-10,
// 9-0), one pass each; bins 2^width.
uint passes() { return pc.radix != 0 ? (KEY16 ? 2 : KEY32_PASSES) : 1; }
uint width(uint p) { return KEY16 ? 8 : key32_width(p); }
uint shift(uint p) { return pc.radix != 0 ? (KEY16 ? 8 - 8 * p : key32_shift(p)) : 0; }

// key returns the key of token t of row.
uint key(uint row, uint t) {
    const uint i = row * pc.key_stride + t / pc.page;
    if (KEY16) return (keys[i / 2] >> ((i & 1) * 16)) & 0xffffu;
    return keys[i];
}

// With radix passes and pc.cum (the exact top-k's and Loki's select, which
// runs no select_count), the last pass's select_hist writes, for every chunk
// and every last digit d that T may have, the chunk's not-forced tokens
// below it: rc[d] = #(higher digits < T's) + #(higher digits == T's, last
// digit < d), 0 <= d <= 2^width, after the resolved states (state_at):
//	hist[rc_at(row, c) + d], rc_at = rows*(passes*nbins + 8) + (row*nchunks + c)*(nbins + 1)
uint rc_at(uint row, uint c) { return gl_NumWorkGroups.y * (passes() * pc.nbins + 8) + (row * pc.nchunks + c) * (pc.nbins + 1); }

// chunk_counts returns (u, e) of chunk c of row: the tokens it surely takes
// (forced, or key < T) and its candidates (key == T), from ccnt (select_count)
// or, with pc.cum, from the cumulative histograms after the one-pass hist,
// or with radix passes from the last pass's rc.
uvec2 chunk_counts(uint row, uint c, uint T) {
    if (pc.cum == 0) return ccnt[row * pc.nchunks + c];
    const uint c0 = c * pc.chunk_len;
#ifndef SELECT_CUM
    if (pc.radix != 0) {
        const uint last = passes() - 1;
        const uint base = rc_at(row, c) + ((T >> shift(last)) & ((1u << width(last)) - 1u));
        const uint below = hist[base];
        return uvec2(forced_in(c0, chunk_end(c0)) + below, hist[base + 1] - below);
    }
#endif
    return cum_counts((gl_NumWorkGroups.y + row * pc.nchunks + c) * pc.nbins, c0, chunk_end(c0), T);
}


// find_bin returns (d, less) for pass p of row: d the smallest bin with
// sum_{b <= d} hist[b] >= kk, less = sum_{b < d} hist[b]. kk >= 1.
uvec2 find_bin(uint row, uint p, uint kk) {
    return find_bin_at((row * passes() + p) * pc.nbins, pc.nbins, kk);
}

// load_keys sets k[j] to the key of token t0 + j, j < PER (tokens past the
// row's end get arbitrary keys: the callers mask them). With one key per
// token and 8-aligned rows and chunks, PER = 8 keys come in one 16-byte load
// (two for uint32 keys).
void load_keys(uint row, uint t0, out uint k[PER]) {
    const uint i = row * pc.key_stride + t0;
    if (PER == 8 && pc.page == 1 && (pc.key_stride & 7) == 0 && (pc.chunk_len & 7) == 0) {
        if (KEY16) {
            const uvec4 v = keys4[i / 8];
            [[unroll]] for (uint j = 0; j < 4; j++) {
                k[2 * j] = v[j] & 0xffffu;
                k[2 * j + 1] = v[j] >> 16;
            }
        } else {
            const uvec4 a = keys4[i / 4], b = keys4[i / 4 + 1];
            [[unroll]] for (uint j = 0; j < 4; j++) {
                k[j] = a[j];
                k[4 + j] = b[j];
            }
        }
    } else {
        [[unroll]] for (uint j = 0; j < PER; j++) k[j] = key(row, t0 + j);
    }
}

// tile_keys sets um and em to tile_masks' marks of the PER tokens from t0
// of row (select_write's and select_attend's tile): their keys loaded where
// t0 < c1.
void tile_keys(uint row, uint t0, uint c1, uint T, out uint um, out uint em) {
    uint k[PER];
    if (t0 < c1) load_keys(row, t0, k);
    tile_masks(t0, c1, k, T, um, em);
}

// With radix passes or select_count (pc.radix or pc.cum == 0) the hist
// buffer holds, after the histograms, every row's resolved state after j
// passes, slot j (1 <= j <= passes, 2 words: prefix, kk'):
//	hist[state_at(row, j)], state_at = (rows*passes*nbins) + (row*4 + j)*2
// The kernel that resolves pass j-1 (select_hist of pass j, select_count for
// the last) searches that pass's histogram only, from slot j-1 (left by the
// kernel before it), and its workgroup of chunk 0 stores slot j; after
// select_count select_write loads slot passes. Each kernel then waits for
// one histogram search, not one per pass before it (HATA's fused chain has
// one pass, and the kernels that run only in it, select_write_cum,
// select_groups and select_attend, define SELECT_CUM so that none of this
// is compiled in).
uint state_at(uint row, uint j) { return gl_NumWorkGroups.y * passes() * pc.nbins + (row * 4 + j) * 2; }

// resolve returns (prefix, kk') after the passes < upto: the digits of T
// found so far and how many tokens are still to take among those whose
// higher digits match. After every pass, (T, r). stored: an earlier kernel
// stored slot upto (select_write after select_count). Uniform control flow.
uvec2 resolve(uint row, uint upto, bool stored) {
    uint kk = pc.kk, prefix = 0, p = 0;
#ifndef SELECT_CUM
    const bool slots = (pc.cum == 0 || pc.radix != 0) && upto > 0;
    if (slots && stored) return uvec2(hist[state_at(row, upto)], hist[state_at(row, upto) + 1]);
    if (slots && upto >= 2) {
        prefix = hist[state_at(row, upto - 1)];
        kk = hist[state_at(row, upto - 1) + 1];
        p = upto - 1;
    }
#endif
    for (; p < upto && kk > 0; p++) {
        const uvec2 f = find_bin(row, p, kk);
        kk -= f.y;
        prefix |= f.x << shift(p);
    }
#ifndef SELECT_CUM
    if (slots && gl_WorkGroupID.x == 0 && gl_LocalInvocationIndex == 0) {
        hist[state_at(row, upto)] = prefix;
        hist[state_at(row, upto) + 1] = kk;
    }
#endif
    return uvec2(prefix, kk);
}

// write_start is the write's prologue (select_write, select_groups): it
// resolves the threshold T of row and returns where chunk c starts writing
// (chunk_start), with rr the candidates still to take; traced readings 0-2.
// Uniform control flow.
uint write_start(uint row, uint c, out uint T, out uint rr) {
    TRACE_AT(0)
#ifdef SELECT_CUM
    if (pc.plan != 0) { // resolved by hata_score: one round of loads, no search
        const uint rows = gl_NumWorkGroups.y;
        const uint pb = plan_base(rows, pc.nchunks, pc.nbins);
        const uint o = plan_chunk(pb, rows, pc.nchunks, row, c);
        T = hist[plan_thr(pb, rows, row)];
        rr = hist[o + 1];
        const uint out0 = hist[o];
        TRACE_AT(1)
        TRACE_AT(2)
        return out0;
    }
#endif
    const uvec2 tr = resolve(row, passes(), pc.cum == 0); // after select_count: stored
    T = tr.x;
    TRACE_AT(1)
    const uint out0 = chunk_start(row, c, T, tr.y, rr);
    TRACE_AT(2)
    return out0;
}
