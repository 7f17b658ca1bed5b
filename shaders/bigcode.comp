#version 450
#extension GL_EXT_control_flow_attributes : require
// bigcode: copy.comp's copy (dst = src, 16 bytes per invocation per step,
// grid-stride), each element first passed through 128 unrolled rounds of a
// multiply and an xorshift whose constants the specialization constant salt
// changes. A kernel of kilobytes of straight-line code, distinct for every
// salt, that still copies: ColdDispatchFloor's ChainLarge, what fetching a
// cold kernel's code costs a dispatch (a step's kernels are kilobytes,
// copy.comp a few instructions).
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint salt = 0u;

layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform PushConstants {
    uint n; // uvec4 elements to copy, below 2^31
} pc;

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
        uvec4 v = src[i];
        uvec4 h = v;
        [[unroll]] for (uint r = 0u; r < 128u; r++) {
            h = h * (2654435761u + 2u * (r + 131u * salt)) + uvec4(r ^ salt);
            h ^= h >> 15;
        }
        // pc.n < 2^31, so the mask is 0 and dst[i] = src[i]; the compiler
        // cannot know it and keeps the rounds.
        dst[i] = v | (h & uvec4(pc.n >> 31));
    }
}
