// select_groups.glsl: select_write (select.glsl, step 3) for uint16 keys over
// longer spans per lane, HATA's fused select over chunks longer than one of
// select_write's tiles (WG*8 tokens): a lane takes GPL groups of 8
// consecutive tokens (one 16-byte load each, all issued together; PER =
// 8*GPL tokens per lane), so that a chunk of up to WG*PER tokens is one tile
// (one workgroup scan; select_write needs one per WG*8 tokens); it marks
// every group's tokens without a branch (span_marks). The result
// is select_write's, bit for bit. vk's selectGroups picks GPL from the chunk
// (BENCHMARKS.md has what the H200 measured).
//
// With KEY8 (KEY8_KEYS defined: select_groups_k8.comp, select_groups_k8_trace.comp)
// the keys are hata_score's one-byte keys (its KEY8: min(S, 255),
// four a word), a group's eight in one 8-byte load; the marks are exact
// where T < 255 (the host runs the step again with uint16 keys where a row's
// T is not).
//
// Bindings: select.glsl's 0-3 (keys as uint16 pairs or, KEY8, bytes; hist
// with the cumulative chunk histograms, the unused ccnt, sel).
// Dispatch: (nchunks, rows, 1), pc.cum = 1; KEY16; chunk_len and key_stride
// multiples of 8.
#define SELECT_CUM // runs with pc.cum = 1 only
#define SELECT_BINS_SPEC // constant 3: bins a lane in the threshold's search (select.glsl)
#include "select.glsl"

#ifdef KEY8_KEYS
const bool KEY8 = true; // one-byte keys (hata_score's KEY8): select_groups_k8*.comp
layout(std430, set = 0, binding = 0) readonly buffer Keys2 { uvec2 keys2[]; }; // a group's eight keys
#define KEYS8(i) keys2[i]
#else
const bool KEY8 = false;
#define KEYS8(i) uvec2(0u)
#endif

const uint TPL = PER;     // tokens per lane per tile (select.glsl's PER): 8 to 64, a multiple of 8
const uint GPL = TPL / 8; // groups of 8 tokens per lane

// halves_lt and halves_ne compare the two 16-bit halves of x, each below
// 2^15 (or the padding 0xffff), with T (<= 0x7fff) in both halves of T2 at
// once, and return their flags at bits 15 and 31: where a half < T, and
// where it != T. With bit 15 of each half set, (x | H) - T2 leaves bit 15 of
// a half clear exactly where its key < T (no borrow crosses the halves, as
// T <= 0x7fff), and with e = x ^ T2, ((e & ~H) + ~H) | e sets bit 15 of
// every half whose key != T. (Against two compares a key, the select stage
// took 0.4 us less on the H200 at B8/128K and B8/256K and the same
// elsewhere: run 261, BENCHMARKS.md session 22.)
const uint HALVES_H = 0x80008000u;
uint halves_lt(uint x, uint T2) { return ~((x | HALVES_H) - T2) & HALVES_H; }
uint halves_ne(uint x, uint T2) {
    const uint e = x ^ T2;
    return (((e & ~HALVES_H) + ~HALVES_H) | e) & HALVES_H;
}

// group_marks returns span_marks' (u, e) of the 8 tokens from gs, their keys
// packed in v, as bits 0-7. Keys and T are below 2^15 (HATA's scores: at most
// G*rbit < maxDirectBins; padding keys 0xffff), so a word's two keys are
// compared at once (halves_lt, halves_ne). Word w's two flags, at bits 15 and 31,
// are shifted to bits 2w and 16 + 2w, and the last step moves the second
// key's to 2w + 1.
uvec2 group_marks(uint gs, uint c1, uvec4 v, uint T) {
    const uint T2 = T | T << 16;
    uint lt = 0, ne = 0;
    [[unroll]] for (uint w = 0; w < 4; w++) {
        lt |= halves_lt(v[w], T2) >> (15 - 2 * w);
        ne |= halves_ne(v[w], T2) >> (15 - 2 * w);
    }
    const uint eq = ~ne & 0x00550055u;
    const uvec2 ue = uvec2((lt & 0x55u) | ((lt >> 15) & 0xaau), (eq & 0x55u) | ((eq >> 15) & 0xaau));
    return span_marks(gs, 8, c1, ue);
}

// group_marks8 is group_marks for eight one-byte keys (v): bytes 0 and 2,
// then 1 and 3, of a word taken as two 16-bit halves and compared as
// group_marks compares them (keys <= 255, T <= 0x7fff), their flags
// gathered into token order.
uvec2 group_marks8(uint gs, uint c1, uvec2 v, uint T) {
    const uint T2 = T | T << 16;
    uint lt = 0, ne = 0;
    [[unroll]] for (uint w = 0; w < 2; w++) {
        [[unroll]] for (uint b = 0; b < 2; b++) {
            const uint x = (v[w] >> (8 * b)) & 0x00ff00ffu; // tokens 4w+b, 4w+b+2
            const uint sh = 15 - (4 * w + b);               // their flags to bits 4w+b, 16+4w+b
            lt |= halves_lt(x, T2) >> sh;
            ne |= halves_ne(x, T2) >> sh;
        }
    }
    lt &= 0x00330033u;
    const uint eq = ~ne & 0x00330033u;
    return span_marks(gs, 8, c1, uvec2((lt & 0x33u) | ((lt >> 14) & 0xccu), (eq & 0x33u) | ((eq >> 14) & 0xccu)));
}

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c = gl_WorkGroupID.x;
    const uint c0 = c * pc.chunk_len;
    const uint c1 = chunk_end(c0);
    uint T, rr; // the threshold, and the candidates still to take
    const uint out0 = write_start(row, c, T, rr);

    uint U = 0, E = 0; // surely taken and candidates in this chunk before the tile
    for (uint tb = c0; tb < c1; tb += WG * TPL) {
        const uint t0 = tb + li * TPL;
        uvec4 kv[GPL]; // KEY8: the group's keys in .xy
        [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
            const uint gs = t0 + 8 * gi;
            if (KEY8) {
                kv[gi] = uvec4(gs < c1 ? KEYS8((row * pc.key_stride + gs) / 8) : uvec2(0xffffffffu), 0u, 0u);
            } else {
                kv[gi] = gs < c1 ? keys4[(row * pc.key_stride + gs) / 8] : uvec4(0xffffffffu);
            }
        }
        // Token j of group gi is bit 8*gi + j of the lane's 64 (um.x, um.y).
        uvec2 um = uvec2(0), em = uvec2(0);
        [[unroll]] for (uint gi = 0; gi < GPL; gi++) {
            const uvec2 m = KEY8 ? group_marks8(t0 + 8 * gi, c1, kv[gi].xy, T) : group_marks(t0 + 8 * gi, c1, kv[gi], T);
            if (gi < 4) {
                um.x |= m.x << (8 * gi);
                em.x |= m.y << (8 * gi);
            } else {
                um.y |= m.x << (8 * (gi - 4));
                em.y |= m.y << (8 * (gi - 4));
            }
        }
        write_bits(t0, um, em, out0, rr, U, E);
    }
    TRACE_AT(3)
}
