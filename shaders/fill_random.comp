#version 450
// fill_random: dst[i] = pseudo-random values uniform in [-scale, scale), a
// counter-based hash of (seed, element index), so a benchmark can fill a
// multi-gigabyte KV cache on the device in milliseconds and the host can
// recompute any element (vk.RandomValue) to check it.
layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) writeonly buffer Dst { uint dst[]; };

layout(push_constant) uniform PushConstants {
    uint n;     // 32-bit words to write in this binding
    uint base;  // element index of word 0 (f16: two elements per word)
    uint seed;
    uint f16;   // 1: each word holds two float16 elements
    float scale;
} pc;

// hash is a 32-bit integer finaliser (lowbias32).
uint hash(uint x) {
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// value returns element i: uniform in [-1, 1) on a grid of 2^-23, exact in float32.
float value(uint i) {
    return float(hash(i ^ hash(pc.seed)) >> 8) * (1.0 / 8388608.0) - 1.0;
}

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint w = gl_GlobalInvocationID.x; w < pc.n; w += stride) {
        if (pc.f16 != 0u) {
            uint e = 2u * (pc.base + w);
            dst[w] = packHalf2x16(vec2(value(e), value(e + 1u)) * pc.scale);
        } else {
            dst[w] = floatBitsToUint(value(pc.base + w) * pc.scale);
        }
    }
}
