// select_write.glsl: the ascending list of the taken tokens (select.glsl, step 3).
// Dispatch: (nchunks, rows, 1).
#include "select.glsl"

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    uint T, rr; // the threshold, and the candidates still to take
    const uint out0 = write_start(row, c, T, rr);

    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
    for (uint tb = c0; tb < c1; tb += WG * PER) {
        const uint t0 = tb + li * PER;
        uint um, em;
        tile_keys(row, t0, c1, T, um, em);
        write_tile(t0, um, em, out0, rr, U, E);
    }
    TRACE_AT(3)
}
