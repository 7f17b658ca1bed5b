#version 450
// chase: the latency of one dependent load (vk.Context.LoadLatency). With
// init, next[i] = (i + stride) mod n for every i < n (stride < n; grid-stride
// loop);
// otherwise invocation 0 follows the chain i = next[i] from i = 0 for hops
// loads, each waiting for the one before it, and stores where it ended in
// next[n] (so the loads are live). The buffer is coherent and volatile: every
// hop is a load from the device's last-level cache or memory, not from a
// compute unit's L1 and not folded away.
layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) coherent volatile buffer Next { uint next[]; };

layout(push_constant) uniform PushConstants {
    uint n;      // links in the chain; next has n+1 words
    uint hops;   // dependent loads to make
    uint stride; // words between consecutive links
    uint init;   // 1: write the chain; 0: follow it
} pc;

void main() {
    if (pc.init != 0) {
        const uint step = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
        for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += step) {
            const uint j = i + pc.stride; // stride < n <= 2^30: no overflow
            next[i] = j >= pc.n ? j - pc.n : j;
        }
        return;
    }
    if (gl_GlobalInvocationID.x != 0) return;
    uint i = 0;
    for (uint h = 0; h < pc.hops; h++) i = next[i];
    next[pc.n] = i;
}
