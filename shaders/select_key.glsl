// select_key.glsl: desc_key maps a float score, larger better, to a uint32
// key, smaller better, in the same order, for the select kernels
// (select.glsl): the bits of a float ordered as unsigned integers (negative
// floats complemented, positive ones with the sign bit set), complemented.
// -0 is +0 (they tie, as in ref); NaN ranks last (ref.SelectLargest). Also
// the radix digits of such uint32 keys, which select.glsl's passes,
// select_rows and score_softmax's first pass share. Guarded: select.glsl
// includes it, and so may its includers.
#ifndef SELECT_KEY_GLSL
#define SELECT_KEY_GLSL

// The radix digits of a uint32 key, from the top: 11, 11 and 10 bits, one
// histogram pass each, at most KEY32_BINS bins.
const uint KEY32_PASSES = 3;
const uint KEY32_BINS = 2048;
uint key32_width(uint p) { return p < 2 ? 11 : 10; }
uint key32_shift(uint p) { return p == 0 ? 21 : (p == 1 ? 10 : 0); }

uint desc_key(float f) {
    if (isnan(f)) return 0xffffffffu;
    const uint b = f == 0.0 ? 0u : floatBitsToUint(f);
    const uint asc = (b & 0x80000000u) != 0 ? ~b : b | 0x80000000u;
    return ~asc;
}

#endif // SELECT_KEY_GLSL
