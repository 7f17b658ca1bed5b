#version 450
// select_write: the ascending list of the taken tokens (select.glsl, step 3).
// Dispatch: (nchunks, rows, 1).
#include "select.glsl"

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = min(c0 + pc.chunk_len, pc.n);
    const uvec2 tr = resolve(row, passes());
    const uint T = tr.x, r = tr.y;

    // Taken before this chunk: every u, and the first r candidates.
    uint su = 0, se = 0;
    for (uint i = li; i < c; i += WG) {
        const uvec2 x = chunk_counts(row, i, T);
        su += x.x;
        se += x.y;
    }
    su = wg_sum(su);
    se = wg_sum(se);
    const uint pos0 = su + min(r, se);
    const uint rr = r > se ? r - se : 0; // candidates still to take
    const uint out0 = row * pc.kstride + pos0;

    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
    for (uint tb = c0; tb < c1; tb += WG * PER) {
        const uint t0 = tb + li * PER;
        uint um = 0, em = 0;
        if (t0 < c1) {
            uint k[PER];
            load_keys(row, t0, k);
            [[unroll]] for (uint j = 0; j < PER; j++) {
                const uint t = t0 + j;
                if (t < c1) {
                    if (forced(t)) {
                        um |= 1u << j;
                    } else if (k[j] < T) {
                        um |= 1u << j;
                    } else if (k[j] == T) {
                        em |= 1u << j;
                    }
                }
            }
        }
        uint total;
        const uint ex = wg_scan(uint(bitCount(um)) << 16 | uint(bitCount(em)), total);
        uint u = U + (ex >> 16), e = E + (ex & 0xffffu);
        [[unroll]] for (uint j = 0; j < PER; j++) {
            if ((um >> j & 1u) != 0) {
                sel[out0 + u + min(rr, e)] = t0 + j;
                u++;
            } else if ((em >> j & 1u) != 0) {
                if (e < rr) sel[out0 + u + e] = t0 + j;
                e++;
            }
        }
        U += total >> 16;
        E += total & 0xffffu;
    }
}
