// select.glsl: exact top-k selection by histogram, with ref's rule
// (ref.SelectSmallest): the kk smallest keys among the tokens no window
// forces in, ties broken by the SMALLER token index, plus the forced tokens
// (t < sink_end or t >= recent_start), written ascending. Keys are uint32 or
// uint16 "smaller is better" (float scores are mapped to such keys by
// select_key.glsl); a key may cover `page` consecutive tokens (Quest's page
// scores; 1 otherwise). Included by select_hist.comp, select_count.comp and
// select_write.comp, which run in this order over the same chunks of
// chunk_len tokens per workgroup:
//
//  1. Histograms: T, the kk-th smallest key, is found digit by digit. With
//     radix = 0 there is one pass whose bins are the keys themselves (keys <
//     nbins: HATA's scores, whose histogram hata_score.comp builds on the
//     fly, or select_hist builds in a separate pass); with radix = 1 there are
//     KEYBITS/8 passes of 256 bins over 8-bit digits from the top, pass p
//     counting the tokens whose higher digits equal T's (found from passes
//     < p). hist: [rows][passes][nbins], zeroed before pass 0.
//  2. select_count: every workgroup resolves T and r (the number of tokens
//     with key == T still to take: kk - #(key < T)) from the histograms, and
//     counts in its chunk u = #(forced or key < T) and e = #(not forced, key
//     == T): cnt[row][chunk] = (u, e).
//  3. select_write: token t is taken if it is forced or key < T, or if key ==
//     T and fewer than r tokens with key == T precede it. The workgroup
//     starts at pos0 = sum_{c' < c} u_c' + min(r, sum_{c' < c} e_c') and
//     numbers its taken tokens in index order with a workgroup prefix sum,
//     so the output is ascending without a sort.
//
// Every workgroup resolves T itself from the histograms (a few hundred to a
// few thousand bins), which costs less than a dispatch of its own.

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;                // WG: a multiple of the largest subgroup size
layout(constant_id = 1) const bool KEY16 = false; // keys are packed uint16
layout(constant_id = 2) const uint PER = 8;       // tokens per lane per tile, <= 32

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
    uint radix;        // 0: one pass, bins = keys; 1: 8-bit digits from the top
    uint nbins;        // bins per pass
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 1) restrict buffer Hist { uint hist[]; };
layout(std430, set = 0, binding = 2) restrict buffer Cnt { uvec2 cnt[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer Sel { uint sel[]; };

shared uint sh_sg[WG]; // per-subgroup partial sums
shared uvec2 sh_res;

uint passes() { return pc.radix != 0 ? KEYBITS / 8 : 1; }
uint shift(uint p) { return pc.radix != 0 ? KEYBITS - 8 * (p + 1) : 0; }

// key returns the key of token t of row.
uint key(uint row, uint t) {
    const uint i = row * pc.key_stride + t / pc.page;
    if (KEY16) return (keys[i / 2] >> ((i & 1) * 16)) & 0xffffu;
    return keys[i];
}

bool forced(uint t) { return t < pc.sink_end || t >= pc.recent_start; }

// wg_scan returns the exclusive prefix sum of v over the workgroup's lanes in
// index order, and the total. Call in uniform control flow.
uint wg_scan(uint v, out uint total) {
    const uint incl = subgroupInclusiveAdd(v);
    if (gl_SubgroupInvocationID == gl_SubgroupSize - 1) sh_sg[gl_SubgroupID] = incl;
    barrier();
    uint before = 0;
    total = 0;
    for (uint s = 0; s < gl_NumSubgroups; s++) {
        const uint x = sh_sg[s];
        if (s < gl_SubgroupID) before += x;
        total += x;
    }
    barrier();
    return before + incl - v;
}

uint wg_sum(uint v) {
    uint total;
    wg_scan(v, total);
    return total;
}

// find_bin returns (d, less) for pass p of row: d the smallest bin with
// sum_{b <= d} hist[b] >= kk, less = sum_{b < d} hist[b]. kk >= 1.
uvec2 find_bin(uint row, uint p, uint kk) {
    const uint li = gl_LocalInvocationIndex;
    const uint base = (row * passes() + p) * pc.nbins;
    const uint per = (pc.nbins + WG - 1) / WG;
    const uint b0 = min(li * per, pc.nbins), b1 = min(b0 + per, pc.nbins);
    uint s = 0;
    for (uint b = b0; b < b1; b++) s += hist[base + b];
    if (li == 0) sh_res = uvec2(pc.nbins - 1, 0); // not reached when kk <= the total
    uint total;
    uint cum = wg_scan(s, total);
    if (cum < kk && kk <= cum + s) {
        for (uint b = b0; b < b1; b++) {
            const uint h = hist[base + b];
            if (cum + h >= kk) {
                sh_res = uvec2(b, cum);
                break;
            }
            cum += h;
        }
    }
    barrier();
    const uvec2 r = sh_res;
    barrier();
    return r;
}

// resolve returns (prefix, kk') after the passes < upto: the digits of T
// found so far and how many tokens are still to take among those whose
// higher digits match. After every pass, (T, r).
uvec2 resolve(uint row, uint upto) {
    uint kk = pc.kk, prefix = 0;
    for (uint p = 0; p < upto && kk > 0; p++) {
        const uvec2 f = find_bin(row, p, kk);
        kk -= f.y;
        prefix |= f.x << shift(p);
    }
    return uvec2(prefix, kk);
}
