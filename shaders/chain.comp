#version 450
// chain: a copy dispatch that waits for the dispatch before it through a
// counter in memory instead of a pipeline barrier (TestSyncScopes' probe of
// what a dependent dispatch costs that way). Dispatch `step` of a chain
// recorded without barriers: unless step is 0, its workgroups wait until
// cnt[step - 1] has counted all of the previous dispatch's workgroups, then
// copy src to dst (16 bytes per invocation per step, grid-stride loop), then
// count themselves in cnt[step]. The buffers are coherent, so what one
// workgroup wrote and counted is what the next dispatch's workgroups read.
layout(local_size_x_id = 0) in;

layout(set = 0, binding = 0) restrict coherent buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) restrict coherent buffer Dst { uvec4 dst[]; };
layout(set = 0, binding = 2) restrict coherent buffer Cnt { uint cnt[]; };

layout(push_constant) uniform PushConstants {
    uint n;      // uvec4 elements to copy
    uint step;   // this dispatch's place in the chain
    uint groups; // workgroups of every dispatch of the chain
} pc;

void main() {
    if (pc.step > 0) {
        if (gl_LocalInvocationIndex == 0) {
            while (atomicOr(cnt[pc.step - 1], 0u) < pc.groups) {
            }
        }
        barrier(); // the whole workgroup waits for lane 0
        memoryBarrierBuffer();
    }
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
        dst[i] = src[i];
    }
    memoryBarrierBuffer(); // this lane's writes complete
    barrier();             // ... and every lane's
    if (gl_LocalInvocationIndex == 0) {
        atomicAdd(cnt[pc.step], 1u);
    }
}
