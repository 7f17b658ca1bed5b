// select_write.glsl: the ascending list of the taken tokens (select.glsl, step 3).
// Dispatch: (nchunks, rows, 1).
#include "select.glsl"

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    // The first tile's keys are loaded before write_start, which they do not
    // depend on, so that their latency and the threshold's overlap.
    uint k[PER];
    if (c0 + li * PER < c1) load_keys(row, c0 + li * PER, k);
    uint T, rr; // the threshold, and the candidates still to take
    const uint out0 = write_start(row, c, T, rr);

    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
    for (uint tb = c0; tb < c1; tb += WG * PER) {
        const uint t0 = tb + li * PER;
        if (tb != c0 && t0 < c1) load_keys(row, t0, k);
        uint um, em;
        tile_masks(t0, c1, k, T, um, em);
        write_tile(t0, um, em, out0, rr, U, E);
    }
    TRACE_AT(3)
}
