// select_key.glsl: desc_key maps a float score, larger better, to a uint32
// key, smaller better, in the same order, for the select kernels
// (select.glsl): the bits of a float ordered as unsigned integers (negative
// floats complemented, positive ones with the sign bit set), complemented.
// -0 is +0 (they tie, as in ref); NaN ranks last (ref.SelectLargest).
uint desc_key(float f) {
    if (isnan(f)) return 0xffffffffu;
    const uint b = f == 0.0 ? 0u : floatBitsToUint(f);
    const uint asc = (b & 0x80000000u) != 0 ? ~b : b | 0x80000000u;
    return ~asc;
}
