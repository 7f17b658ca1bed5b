#version 450
// select_hist: one histogram pass of the selection (select.glsl, step 1).
// Dispatch: (nchunks, rows, 1).
#include "select.glsl"

layout(constant_id = 3) const uint NB = 256; // bins of the shared histogram, >= nbins

shared uint sh_hist[NB];

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c0 = gl_WorkGroupID.x * pc.chunk_len;
    const uint c1 = min(c0 + pc.chunk_len, pc.n);
    for (uint b = li; b < pc.nbins; b += WG) sh_hist[b] = 0;
    const uvec2 pk = resolve(row, pc.pass, false); // barriers inside
    if (pk.y == 0) return;                  // nothing left to select: uniform
    const uint p = pc.pass, sh = shift(p), w = width(p);
    const bool top = pc.radix == 0 || p == 0;
    for (uint t0 = c0 + li * PER; t0 < c1; t0 += WG * PER) {
        uint k[PER];
        load_keys(row, t0, k);
        [[unroll]] for (uint j = 0; j < PER; j++) {
            const uint t = t0 + j;
            if (t < c1 && !forced(t)) {
                if (top || (k[j] >> (sh + w)) == (pk.x >> (sh + w))) {
                    atomicAdd(sh_hist[pc.radix != 0 ? (k[j] >> sh) & ((1u << w) - 1u) : k[j]], 1);
                }
            }
        }
    }
    barrier();
    const uint base = (row * passes() + p) * pc.nbins;
    for (uint b = li; b < pc.nbins; b += WG) {
        const uint c = sh_hist[b];
        if (c != 0) atomicAdd(hist[base + b], c);
    }
}
