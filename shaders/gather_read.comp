#version 450
// gather_read: the random-gather roofline kernel. It reads rows of VECS
// uvec4 (16 * VECS bytes) at pseudo-random positions of up to eight source
// buffers (a cache past maxStorageBufferRange is kept in several), as the
// top-k methods' attention reads the K and V rows of its selected tokens,
// and XORs what it read; each workgroup folds its invocations' XORs in
// shared memory (fold_xor.glsl) and its first invocation writes the result
// to dst[workgroup], so the kernel moves the gathered rows and 16 bytes per
// workgroup.
//
// The VECS lanes of a row slot read one row together (lane l its uvec4 l);
// workgroup w reads buffer w % nbuf (uniform in the workgroup), and row slot
// s of it (s = (w / nbuf) * slots + local slot) reads, at step it, row
// gather_row(s * iters + it) % rows: UNROLL rows in flight per lane.
// vk's TestGatherBandwidth repeats the hash to check every read.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint UNROLL = 4;
layout(constant_id = 2) const uint VECS = 16; // uvec4 per row: a power of two, at most the workgroup

layout(set = 0, binding = 0) readonly buffer Src0 { uvec4 s0[]; };
layout(set = 0, binding = 1) readonly buffer Src1 { uvec4 s1[]; };
layout(set = 0, binding = 2) readonly buffer Src2 { uvec4 s2[]; };
layout(set = 0, binding = 3) readonly buffer Src3 { uvec4 s3[]; };
layout(set = 0, binding = 4) readonly buffer Src4 { uvec4 s4[]; };
layout(set = 0, binding = 5) readonly buffer Src5 { uvec4 s5[]; };
layout(set = 0, binding = 6) readonly buffer Src6 { uvec4 s6[]; };
layout(set = 0, binding = 7) readonly buffer Src7 { uvec4 s7[]; };
layout(set = 0, binding = 8) writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform PushConstants {
    uint rows;  // rows of each source buffer
    uint nbuf;  // source buffers in use, 1 to 8 (the others are bound to one of them)
    uint iters; // rows each row slot reads, a multiple of UNROLL
    uint seed;
} pc;

// gather_row: a 32-bit integer hash (lowbias32), uniform enough that the
// rows read are spread over the whole buffer.
uint gather_row(uint x) {
    x ^= pc.seed;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

uvec4 load(uint b, uint i) {
    if (b == 0) {
        return s0[i];
    } else if (b == 1) {
        return s1[i];
    } else if (b == 2) {
        return s2[i];
    } else if (b == 3) {
        return s3[i];
    } else if (b == 4) {
        return s4[i];
    } else if (b == 5) {
        return s5[i];
    } else if (b == 6) {
        return s6[i];
    }
    return s7[i];
}

#include "fold_xor.glsl"

void main() {
    const uint slots = gl_WorkGroupSize.x / VECS;
    uint b = gl_WorkGroupID.x % pc.nbuf;
    uint lane = gl_LocalInvocationID.x % VECS;
    uint slot = (gl_WorkGroupID.x / pc.nbuf) * slots + gl_LocalInvocationID.x / VECS;
    uvec4 acc = uvec4(0);
    for (uint it = 0; it < pc.iters; it += UNROLL) {
        uvec4 v[UNROLL];
        for (uint u = 0; u < UNROLL; u++) {
            uint row = gather_row(slot * pc.iters + it + u) % pc.rows;
            v[u] = load(b, row * VECS + lane);
        }
        for (uint u = 0; u < UNROLL; u++) {
            acc ^= v[u];
        }
    }
    const uvec4 x = fold_xor(acc);
    if (gl_LocalInvocationID.x == 0) {
        dst[gl_WorkGroupID.x] = x;
    }
}
