#version 450
// select_hist: one histogram pass of the selection (select.glsl, step 1).
// Dispatch: (nchunks, rows, 1).
layout(constant_id = 3) const uint NB = 256; // bins of the shared histogram, >= nbins
// The search (resolve's, for passes after the first) holds the bins NB
// needs a lane, not wg_scan.glsl's 16.
#define BIN_PER ((NB + gl_WorkGroupSize.x - 1) / gl_WorkGroupSize.x)
#include "select.glsl"

shared uint sh_hist[NB];

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c0 = gl_WorkGroupID.x * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    for (uint b = li; b < pc.nbins; b += WG) sh_hist[b] = 0;
    // Every lane's zeros before any lane's adds: resolve's search has
    // barriers, but pass 0 (the first radix digit, and HATA's naive one-pass
    // histogram) runs no search, and without this barrier a lane's adds could
    // be wiped by another lane's zeroing.
    barrier();
    const uvec2 pk = resolve(row, pc.pass, false);
    const uint p = pc.pass, sh = shift(p), w = width(p);
    // The last radix pass with pc.cum also writes the chunk's rc (select.glsl).
    const bool rc = pc.cum != 0 && pc.radix != 0 && p == passes() - 1;
    if (pk.y == 0 && !rc) return; // nothing left to select: uniform
    const bool top = pc.radix == 0 || p == 0;
    uint below = 0; // rc: not-forced tokens whose higher digits are below T's
    for (uint t0 = c0 + li * PER; t0 < c1; t0 += WG * PER) {
        uint k[PER];
        load_keys(row, t0, k);
        [[unroll]] for (uint j = 0; j < PER; j++) {
            const uint t = t0 + j;
            if (t < c1 && !forced(t)) {
                if (top || (k[j] >> (sh + w)) == (pk.x >> (sh + w))) {
                    atomicAdd(sh_hist[pc.radix != 0 ? (k[j] >> sh) & ((1u << w) - 1u) : k[j]], 1);
                } else if ((k[j] >> (sh + w)) < (pk.x >> (sh + w))) {
                    below++;
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
    if (rc) {
        // rc[d] = below + the bins before d, each lane a run of the 2^w bins.
        const uint nb = 1u << w, per = (nb + WG - 1) / WG, b0 = li * per;
        uint s = 0;
        for (uint i = 0; i < per; i++) s += b0 + i < nb ? sh_hist[b0 + i] : 0;
        const uint all_below = wg_sum(below);
        uint total;
        uint run = all_below + wg_scan(s, total);
        const uint at = rc_at(row, gl_WorkGroupID.x);
        for (uint i = 0; i < per && b0 + i < nb; i++) {
            hist[at + b0 + i] = run;
            run += sh_hist[b0 + i];
        }
        if (li == 0) hist[at + nb] = all_below + total;
    }
}
