// select_tile.glsl: the parts of select.glsl's rule that its kernels and
// hata_step.glsl share: the windows, the chunk counts from the cumulative
// histograms, where a chunk starts writing, and one tile of the ascending
// compaction. Include it after wg_scan.glsl, with pc.sink_end,
// pc.recent_start, pc.kstride, pc.chunk_len, pc.n, PER (tokens per lane per tile) and the uint
// buffers hist and sel declared; the includer defines chunk_counts.

// forced says whether a window forces token t in (select_hist's and
// select_count's test).
bool forced(uint t) { return t < pc.sink_end || t >= pc.recent_start; }

// chunk_end, forced_in, cum_counts: select_plan.glsl.
#include "select_plan.glsl"

// chunk_counts returns (u, e) of chunk c of row (the includer's).
uvec2 chunk_counts(uint row, uint c, uint T);

// chunk_start returns the index in sel where chunk c of row writes its first
// taken token (every u of the chunks before it, and the first r candidates
// among theirs), and in rr the candidates still to take. Uniform control
// flow.
uint chunk_start(uint row, uint c, uint T, uint r, out uint rr) {
    uint su = 0, se = 0;
    for (uint i = gl_LocalInvocationIndex; i < c; i += WG) {
        const uvec2 x = chunk_counts(row, i, T);
        su += x.x;
        se += x.y;
    }
    su = wg_sum(su);
    se = wg_sum(se);
    rr = r > se ? r - se : 0;
    return row * pc.kstride + su + min(r, se);
}

// low_bits returns the n lowest bits set, n <= 32.
uint low_bits(uint n) { return n >= 32 ? ~0u : (1u << n) - 1u; }

// span_marks returns the marks (u, e) of the len <= 32 tokens from t0 (bit
// j: token t0 + j) from ue, their marks by key alone (bit j of ue.x: key <
// T; of ue.y: key == T): u the tokens surely taken (forced, or key < T), e
// the candidates (key == T, not forced), none at or past c1. The callers
// compare the keys without a branch; the windows' and the chunk end's masks
// apply only where they reach the span. With a branch per token (and in
// select_groups per group of 8, skipping those without a key <= T) the
// select stage took up to 3.1 us longer on the H200, select_groups with 8
// groups a lane held 63 registers instead of 48 (runs 225-226,
// BENCHMARKS.md session 19).
uvec2 span_marks(uint t0, uint len, uint c1, uvec2 ue) {
    if (t0 < pc.sink_end || t0 + len > pc.recent_start) { // forced in, whatever the key
        const uint ns = pc.sink_end > t0 ? min(pc.sink_end - t0, len) : 0u;
        const uint nr = pc.recent_start > t0 ? min(pc.recent_start - t0, len) : 0u;
        const uint f = low_bits(ns) | (low_bits(len) & ~low_bits(nr));
        ue = uvec2(ue.x | f, ue.y & ~f);
    }
    const uint keep = t0 + len <= c1 ? low_bits(len) : t0 < c1 ? low_bits(c1 - t0) : 0u;
    return ue & keep;
}

// tile_masks marks in um and em (bit j) the tokens t0 + j, j < PER, with
// keys k[j] (span_marks).
void tile_masks(uint t0, uint c1, uint k[PER], uint T, out uint um, out uint em) {
    uvec2 ue = uvec2(0);
    [[unroll]] for (uint j = 0; j < PER; j++) {
        ue.x |= (k[j] < T ? 1u : 0u) << j;
        ue.y |= (k[j] == T ? 1u : 0u) << j;
    }
    ue = span_marks(t0, PER, c1, ue);
    um = ue.x;
    em = ue.y;
}

// tile_start numbers a tile with a workgroup scan of the lanes' counts nu
// (surely taken) and ne (candidates), at most 65535 of each per tile, and
// returns this lane's (u, e): the chunk's taken and candidates before its
// first token (U, E before the tile plus the lanes before it); U and E
// advance by the tile's. Uniform control flow.
uvec2 tile_start(uint nu, uint ne, inout uint U, inout uint E) {
    uint total;
    const uint ex = wg_scan(nu << 16 | ne, total);
    const uvec2 ue = uvec2(U + (ex >> 16), E + (ex & 0xffffu));
    U += total >> 16;
    E += total & 0xffffu;
    return ue;
}

// put writes token t to sel from out0, the next after u surely taken and e
// candidates: if surely taken at u + min(rr, e), else, while fewer than rr
// candidates precede it, at u + e; it advances u or e.
void put(uint t, bool sure, uint out0, uint rr, inout uint u, inout uint e) {
    if (sure) {
        sel[out0 + u + min(rr, e)] = t;
        u++;
    } else {
        if (e < rr) sel[out0 + u + e] = t;
        e++;
    }
}

// write_bits writes the taken tokens of lane li's tile (bit j of um.x, then
// of um.y, token t0 + j, resp. t0 + 32 + j, surely taken; of em a
// candidate) in index order (tile_start, put), visiting the set bits only.
// Uniform control flow.
void write_bits(uint t0, uvec2 um, uvec2 em, uint out0, uint rr, inout uint U, inout uint E) {
    uvec2 ue = tile_start(uint(bitCount(um.x) + bitCount(um.y)), uint(bitCount(em.x) + bitCount(em.y)), U, E);
    [[unroll]] for (uint w = 0; w < 2; w++) {
        uint bits = um[w] | em[w];
        while (bits != 0) {
            const uint j = uint(findLSB(bits));
            bits &= bits - 1;
            put(t0 + 32 * w + j, (um[w] >> j & 1u) != 0, out0, rr, ue.x, ue.y);
        }
    }
}

// write_tile is write_bits for select_write's tiles of PER tokens per lane
// (marked in um and em), its write loop unrolled over the PER bits (the
// form measured on the H200). Uniform control flow.
void write_tile(uint t0, uint um, uint em, uint out0, uint rr, inout uint U, inout uint E) {
    uvec2 ue = tile_start(uint(bitCount(um)), uint(bitCount(em)), U, E);
    [[unroll]] for (uint j = 0; j < PER; j++) {
        if (((um | em) >> j & 1u) != 0) put(t0 + j, (um >> j & 1u) != 0, out0, rr, ue.x, ue.y);
    }
}
