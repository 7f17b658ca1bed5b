#version 450
// select_groups: select_write (select.glsl, step 3) over HATA's uint16 scores
// when hata_score also wrote the smallest score of every group of 8 tokens
// (its MINS): a lane takes 64 consecutive tokens of its chunk, 8 groups, and
// loads the scores of only the groups whose minimum is <= T or that a window
// reaches; no other token of the group can be taken. At a budget of 1.56%
// about 12% of the groups are loaded, and a chunk of 16384 tokens is one
// tile of the workgroup (256 lanes x 64) instead of eight of select_write's
// (BENCHMARKS.md). The result is select_write's, bit for bit.
//
// Bindings: select.glsl's 0-3 (keys as uint16 pairs, hist with the
// cumulative chunk histograms, the unused ccnt, sel), and
//	4 mins [rows][ceil(key_stride/64)*4] uint: the group minima as
//	       hata_score.comp writes them
// Dispatch: (nchunks, rows, 1), pc.cum = 1; KEY16; chunk_len a multiple of
// 64 and key_stride of 8.
#include "select.glsl"

layout(std430, set = 0, binding = 4) restrict readonly buffer Mins { uvec4 mins4[]; };

const uint GPL = 8;       // groups of 8 tokens per lane
const uint TPL = 8 * GPL; // tokens per lane per tile

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = min(c0 + pc.chunk_len, pc.n);
    const uvec2 tr = resolve(row, passes());
    const uint T = tr.x, r = tr.y;

    uint rr; // candidates still to take
    const uint out0 = chunk_start(row, c, T, r, rr);

    const uint ms = (pc.key_stride + 63) / 64 * 4; // words of mins per row
    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
    for (uint tb = c0; tb < c1; tb += WG * TPL) {
        const uint t0 = tb + li * TPL;
        uvec2 um = uvec2(0), em = uvec2(0);
        if (t0 < c1) {
            const uvec4 mw = mins4[(row * ms + t0 / 16) / 4];
            bool need[GPL];
            uvec4 kv[GPL];
            [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
                const uint gs = t0 + 8 * gi;
                const uint gmin = (mw[gi / 2] >> (16 * (gi & 1))) & 0xffffu;
                need[gi] = gs < c1 && (gmin <= T || gs < pc.sink_end || gs + 8 > pc.recent_start);
                kv[gi] = need[gi] ? keys4[(row * pc.key_stride + gs) / 8] : uvec4(0);
            }
            // Token j of group gi is bit 8*gi + j of the lane's 64 (um.x, um.y).
            [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
                if (need[gi]) {
                    uint gu = 0, ge = 0;
                    [[unroll]] for (uint j = 0; j < 8; j++) {
                        mark(t0 + 8 * gi + j, c1, (kv[gi][j / 2] >> (16 * (j & 1))) & 0xffffu, T, j, gu, ge);
                    }
                    if (gi < 4) {
                        um.x |= gu << (8 * gi);
                        em.x |= ge << (8 * gi);
                    } else {
                        um.y |= gu << (8 * (gi - 4));
                        em.y |= ge << (8 * (gi - 4));
                    }
                }
            }
        }
        write_bits(t0, um, em, out0, rr, U, E);
    }
}
