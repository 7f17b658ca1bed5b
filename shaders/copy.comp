#version 450
// copy: dst = src, 16 bytes per invocation per step (uvec4), grid-stride loop.
// The roofline kernel of the benchmarks: its bytes read + written per second
// is the copy bandwidth every timed row is held against.
layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform PushConstants {
    uint n; // uvec4 elements to copy
} pc;

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
        dst[i] = src[i];
    }
}
