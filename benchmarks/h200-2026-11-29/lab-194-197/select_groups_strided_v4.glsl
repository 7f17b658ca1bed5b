// select_groups.glsl: select_write (select.glsl, step 3) for uint16 keys over
// longer chunks, HATA's fused select over chunks longer than one of
// select_write's tiles (WG*8 tokens): a workgroup takes its chunk as GPL
// such tiles at once (PER = 8*GPL tokens per lane), lane li holding group
// li of every tile (8 consecutive tokens, one 16-byte load: the loads of a
// subgroup are contiguous, all GPL issued together), numbers the taken
// tokens of all GPL tiles with one workgroup scan (the tiles' lane counts
// scanned side by side) instead of one per tile, and marks the tokens of
// only the groups that hold a key <= T or that a window reaches; at a
// budget of 1.56% about 12% of the groups hold one. The result is
// select_write's, bit for bit. vk's selectGroups picks GPL from the chunk
// (BENCHMARKS.md has what the H200 measured: until session 16 a lane took
// GPL consecutive groups, so that a subgroup's loads touched up to 32 cache
// lines each, and the write took twice as long).
//
// Bindings: select.glsl's 0-3 (keys as uint16 pairs, hist with the
// cumulative chunk histograms, the unused ccnt, sel).
// Dispatch: (nchunks, rows, 1), pc.cum = 1; KEY16; chunk_len and key_stride
// multiples of 8.
#define SELECT_CUM // runs with pc.cum = 1 only
#include "select.glsl"

const uint TPL = PER;     // tokens per lane per tile (select.glsl's PER): 8 to 64, a multiple of 8
const uint GPL = TPL / 8; // groups of 8 tokens per lane

// sh_tiles[s*GPL + gi]: subgroup s's total of tile gi's packed counts
// (surely taken << 16 | candidates, at most 65535 of each per chunk).
shared uint sh_tiles[WG * GPL];

// group_bits returns the 8 marks of group gi from the lane's 64 (m.x: groups
// 0-3, m.y: 4-7, 8 bits each).
uint group_bits(uvec2 m, uint gi) { return (m[gi / 4] >> (8 * (gi % 4))) & 0xffu; }

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    uint T, rr; // the threshold, and the candidates still to take
    const uint out0 = write_start(row, c, T, rr);

    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tiles
    for (uint tb = c0; tb < c1; tb += WG * TPL) {
        // Group gi of the lane: tokens tb + 8*(gi*WG + li) .. +7.
        uvec4 kv[GPL];
        [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
            const uint gs = tb + 8 * (gi * WG + li);
            kv[gi] = gs < c1 ? keys4[(row * pc.key_stride + gs) / 8] : uvec4(0xffffffffu);
        }
        // Token j of group gi is bit j of group_bits(um, gi) (and em).
        uvec2 um = uvec2(0), em = uvec2(0);
        [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
            const uint gs = tb + 8 * (gi * WG + li);
            bool need = gs < pc.sink_end || gs + 8 > pc.recent_start;
            [[unroll]] for (uint w = 0; w < 4; w++) need = need || (kv[gi][w] & 0xffffu) <= T || (kv[gi][w] >> 16) <= T;
            if (gs < c1 && need) {
                uint gu = 0, ge = 0;
                [[unroll]] for (uint j = 0; j < 8; j++) {
                    mark(gs + j, c1, (kv[gi][j / 2] >> (16 * (j & 1))) & 0xffffu, T, j, gu, ge);
                }
                um[gi / 4] |= gu << (8 * (gi % 4));
                em[gi / 4] |= ge << (8 * (gi % 4));
            }
        }
        // One workgroup scan for the GPL tiles: each tile's packed counts
        // scanned in the subgroups side by side, the subgroups' totals
        // through sh_tiles; tile gi starts after the tiles before it.
        uint ex[GPL]; // the lane's exclusive prefix in its subgroup, per tile
        [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
            const uint v = uint(bitCount(group_bits(um, gi))) << 16 | uint(bitCount(group_bits(em, gi)));
            const uint incl = subgroupInclusiveAdd(v);
            ex[gi] = incl - v;
            if (gl_SubgroupInvocationID == gl_SubgroupSize - 1) sh_tiles[gl_SubgroupID * GPL + gi] = incl;
        }
        barrier();
        uint done = 0; // packed: the tiles before gi
        [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
            uint before = 0, total = 0;
            for (uint sg = 0; sg < gl_NumSubgroups; sg++) {
                const uint x = sh_tiles[sg * GPL + gi];
                if (sg < gl_SubgroupID) before += x;
                total += x;
            }
            const uint at = done + before + ex[gi];
            uint u = U + (at >> 16), e = E + (at & 0xffffu);
            done += total;
            const uint gs = tb + 8 * (gi * WG + li);
            const uint gu = group_bits(um, gi);
            uint bits = gu | group_bits(em, gi);
            while (bits != 0) {
                const uint j = uint(findLSB(bits));
                bits &= bits - 1;
                put(gs + j, (gu >> j & 1u) != 0, out0, rr, u, e);
            }
        }
        barrier(); // sh_tiles is read before the next tiles write it
        U += done >> 16;
        E += done & 0xffffu;
    }
    TRACE_AT(3)
}
