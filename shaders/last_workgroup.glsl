// last_workgroup.glsl: the threadfence reduction's handshake, shared by
// hata_score.glsl's write_plan and split_softmax.glsl's split_fold: every
// workgroup of a row counts itself done, and the one that counts last goes
// on to read what the others wrote.
//
// LAST_OF(CTR, N) sets sh_last (a shared bool the includer declares) in
// every lane to whether this workgroup was the N-th to count itself on the
// uint CTR (a buffer word). The workgroup's earlier buffer writes happen
// before lane 0's release on CTR, and the last workgroup's lanes read the
// others' after its acquire: one device-scope fence for the workgroup
// instead of one per lane (memoryBarrierBuffer), 0.4-1.0 us less where the
// plan runs on the H200 (run 233, BENCHMARKS.md session 19; even in
// split_fold, run 235, session 20). Uniform control flow; needs
// GL_KHR_memory_scope_semantics.
#define LAST_OF(CTR, N) \
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeWorkgroup, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared, gl_SemanticsAcquireRelease); \
    if (gl_LocalInvocationIndex == 0) sh_last = atomicAdd(CTR, 1u, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquireRelease) == (N) - 1; \
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeWorkgroup, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared, gl_SemanticsAcquireRelease);
