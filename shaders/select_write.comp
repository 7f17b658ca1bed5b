#version 450
// select_write: the ascending list of the taken tokens (select.glsl, step 3).
// Dispatch: (nchunks, rows, 1).
#include "select.glsl"

layout(constant_id = 3) const uint PF = 4; // tiles whose keys are loaded together

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

    // The keys of PF tiles are loaded together, before any of them is
    // numbered and written: one round trip to memory per PF tiles instead of
    // one per tile (a chunk of 16384 tokens is 8 tiles of WG*PER = 2048).
    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
    for (uint tb = c0; tb < c1; tb += PF * WG * PER) {
        uint kr[PF * RAW];
        [[unroll]] for (uint p = 0; p < PF; p++) {
            const uint t0 = tb + p * WG * PER + li * PER;
            if (t0 < c1) LOAD_RAW(row, t0, kr, p * RAW)
        }
        [[unroll]] for (uint p = 0; p < PF; p++) {
            if (tb + p * WG * PER < c1) { // uniform
                const uint t0 = tb + p * WG * PER + li * PER;
                uint k[PER];
                UNPACK_RAW(kr, p * RAW, k)
                uint um, em;
                tile_masks(t0, c1, k, T, um, em);
                write_tile(t0, um, em, out0, rr, U, E);
            }
        }
    }
}
