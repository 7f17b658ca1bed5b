#version 450
// chase: the latency of one dependent load (vk.Context.LoadLatency,
// LoadedLatency). With init, next[i] = (i + stride) mod n for every i < n
// (stride < n; grid-stride loop). Otherwise invocation 0 of workgroup 0
// follows the chain i = next[i] from i = 0 for hops loads, each waiting for
// the one before it, stores where it ended in next[n] (so the loads are live)
// and raises the flag next[n+1]. With busy > 0 the other workgroups keep
// memory busy meanwhile: each copies slices of 16*WG*BUSY_U bytes of src to
// dst, its slices strided over the busy elements, checking the flag after
// every slice and stopping when it is raised or after busy_max slices (so a
// device that runs workgroup 0 last still ends). next is coherent and
// volatile: every hop is a load from the last-level cache or memory, not
// from a compute unit's L1, and not folded away.
//
// Bindings: 0 next [n+2] uint; 1 src, 2 dst [busy] uvec4 (read only with busy > 0).
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) coherent volatile buffer Next { uint next[]; };
layout(set = 0, binding = 1) restrict readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 2) restrict writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform PushConstants {
    uint n;        // links in the chain; next has n+2 words
    uint hops;     // dependent loads to make
    uint stride;   // words between consecutive links
    uint init;     // 1: write the chain; 0: follow it
    uint busy;     // uvec4 elements the other workgroups copy over and over; 0: none
    uint busy_max; // slices each busy workgroup copies at most
} pc;

const uint WG = gl_WorkGroupSize.x;
const uint BUSY_U = 4; // uvec4 per lane per slice, loads issued together

shared bool sh_stop;

void main() {
    const uint li = gl_LocalInvocationIndex;
    if (pc.init != 0) {
        const uint step = gl_NumWorkGroups.x * WG;
        for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += step) {
            const uint j = i + pc.stride; // stride < n <= 2^30: no overflow
            next[i] = j >= pc.n ? j - pc.n : j;
        }
        if (gl_GlobalInvocationID.x == 0) next[pc.n + 1] = 0;
        return;
    }
    if (gl_WorkGroupID.x == 0) {
        if (li != 0) return;
        uint i = 0;
        for (uint h = 0; h < pc.hops; h++) i = next[i];
        next[pc.n] = i;
        atomicStore(next[pc.n + 1], 1u, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelease);
        return;
    }
    if (pc.busy == 0) return;
    const uint busyWG = gl_NumWorkGroups.x - 1, w = gl_WorkGroupID.x - 1;
    const uint slice = WG * BUSY_U;
    const uint slices = max(pc.busy / slice, 1);
    for (uint p = 0; p < pc.busy_max; p++) {
        const uint base = ((p * busyWG + w) % slices) * slice;
        uvec4 v[BUSY_U];
        [[unroll]] for (uint u = 0; u < BUSY_U; u++) {
            const uint e = base + u * WG + li;
            v[u] = e < pc.busy ? src[e] : uvec4(0);
        }
        [[unroll]] for (uint u = 0; u < BUSY_U; u++) {
            const uint e = base + u * WG + li;
            if (e < pc.busy) dst[e] = v[u];
        }
        if (li == 0) sh_stop = atomicLoad(next[pc.n + 1], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquire) != 0;
        barrier();
        if (sh_stop) break;
        barrier();
    }
}
