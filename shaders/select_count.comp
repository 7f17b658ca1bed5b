#version 450
// select_count: per chunk, the tokens surely taken (forced, or key < T) and
// the candidates (key == T): select.glsl, step 2. Dispatch: (nchunks, rows, 1).
#define SELECT_BINS_SPEC // constant 3: bins a lane in the threshold's search
#include "select.glsl"

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c0 = gl_WorkGroupID.x * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    const uvec2 tr = resolve(row, passes(), false);
    uint u = 0, e = 0;
    for (uint t = c0 + li * PER; t < c1; t += WG * PER) {
        uint k[PER];
        load_keys(row, t, k);
        [[unroll]] for (uint j = 0; j < PER; j++) {
            if (t + j < c1) {
                if (forced(t + j)) {
                    u++;
                } else {
                    u += k[j] < tr.x ? 1 : 0;
                    e += k[j] == tr.x ? 1 : 0;
                }
            }
        }
    }
    u = wg_sum(u);
    e = wg_sum(e);
    if (li == 0) ccnt[row * pc.nchunks + gl_WorkGroupID.x] = uvec2(u, e);
}
