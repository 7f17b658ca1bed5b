// select_list.glsl: select_write (select.glsl, step 3) from hata_score's
// bucket lists (hata_score.glsl, LIST): HATA's fused select without reading
// the scores. The entries of chunk c's list with S < T are its first u =
// cum[c][T-1], those with S == T the next e = cum[c][T] - u (select.glsl's
// chunk counts without the forced tokens), so the workgroup reads u + e
// entries (about budget * chunk_len, where select_groups reads the chunk's
// chunk_len scores), marks them in two shared bitmaps of the chunk (surely
// taken, candidates), adds the windows' tokens, and writes the chunk in one
// tile of TPL tokens per lane (write_bits): the same output as select_write
// and select_groups, bit for bit.
//
// Bindings: select.glsl's 0-3 (binding 0 the bucket lists, uint16 pairs at
// key_stride per row, hist with the cumulative chunk histograms, the unused
// ccnt, sel).
// Dispatch: (nchunks, rows, 1), pc.cum = 1; KEY16; chunk_len <= WG*TPL,
// chunk_len and key_stride even.
#define SELECT_CUM // runs with pc.cum = 1 only
#include "select.glsl"

const uint TPL = PER;         // tokens per lane (select.glsl's PER): 32 or 64
const uint MW = WG * TPL / 32; // words of each bitmap

shared uint sh_um[MW]; // bit t - c0: token t surely taken (S < T)
shared uint sh_em[MW]; // bit t - c0: token t a candidate (S == T)

// span returns the bits j < 64 (x: j < 32) of the tokens t0 + j in [a, b).
uvec2 span(uint t0, uint a, uint b) {
    uvec2 m = uvec2(0);
    [[unroll]] for (uint w = 0; w < 2; w++) {
        const uint lo = t0 + 32 * w;
        const uint s = clamp(a, lo, lo + 32) - lo, e = clamp(b, lo, lo + 32) - lo;
        if (e > s) m[w] = (e - s == 32 ? 0xffffffffu : (1u << (e - s)) - 1u) << s;
    }
    return m;
}

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    for (uint i = li; i < MW; i += WG) {
        sh_um[i] = 0;
        sh_em[i] = 0;
    }
    uint T, rr; // the threshold, and the candidates still to take
    const uint out0 = write_start(row, c, T, rr);
    barrier(); // the bitmaps cleared

    // This chunk's entries with S < T, then those with S == T.
    const uint base = (gl_NumWorkGroups.y + row * pc.nchunks + c) * pc.nbins;
    const uint below = T > 0 ? hist[base + T - 1] : 0;
    const uint upto = hist[base + T];
    const uint o = (row * pc.key_stride + c0) / 2;
    for (uint p = 2 * li; p < upto; p += 2 * WG) {
        const uint v = keys[o + p / 2];
        [[unroll]] for (uint h = 0; h < 2; h++) {
            if (p + h < upto) {
                const uint i = (v >> (16 * h)) & 0xffffu;
                if (p + h < below) {
                    atomicOr(sh_um[i / 32], 1u << (i % 32));
                } else {
                    atomicOr(sh_em[i / 32], 1u << (i % 32));
                }
            }
        }
    }
    barrier();

    const uint t0 = c0 + li * TPL;
    uvec2 um = uvec2(sh_um[li * TPL / 32], TPL == 64 ? sh_um[2 * li + 1] : 0);
    const uvec2 em = uvec2(sh_em[li * TPL / 32], TPL == 64 ? sh_em[2 * li + 1] : 0);
    const uint t1 = min(c1, t0 + TPL); // the lane's tokens end
    um |= span(t0, t0, min(t1, pc.sink_end)) | span(t0, max(t0, pc.recent_start), t1);
    uint U = 0, E = 0;
    write_bits(t0, um, em, out0, rr, U, E);
    TRACE_AT(3)
}
