// select_tile.glsl: the parts of select.glsl's rule that its kernels and
// hata_step.glsl share: the windows, the chunk counts from the cumulative
// histograms, where a chunk starts writing, and one tile of the ascending
// compaction. Include it after wg_scan.glsl, with pc.sink_end,
// pc.recent_start, pc.kstride, pc.chunk_len, pc.n, PER (tokens per lane per tile) and the uint
// buffers hist and sel declared; the includer defines chunk_counts.

bool forced(uint t) { return t < pc.sink_end || t >= pc.recent_start; }

// chunk_end returns the end of the chunk of tokens that starts at c0:
// pc.chunk_len tokens, the last chunk cut at pc.n.
uint chunk_end(uint c0) { return min(c0 + pc.chunk_len, pc.n); }

// forced_in, cum_counts: select_plan.glsl.
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

// mark sets bit b of um when token t < c1 with key k is surely taken
// (forced, or k < T) and of em when it is a candidate (k == T, not forced).
void mark(uint t, uint c1, uint k, uint T, uint b, inout uint um, inout uint em) {
    if (t < c1) {
        if (forced(t) || k < T) {
            um |= 1u << b;
        } else if (k == T) {
            em |= 1u << b;
        }
    }
}

// tile_masks marks in um and em (bit j) the tokens t0 + j, j < PER, with
// keys k[j].
void tile_masks(uint t0, uint c1, uint k[PER], uint T, out uint um, out uint em) {
    um = 0;
    em = 0;
    [[unroll]] for (uint j = 0; j < PER; j++) mark(t0 + j, c1, k[j], T, j, um, em);
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
