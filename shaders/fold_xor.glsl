// fold_xor.glsl: the XOR of one uvec4 from every invocation of a
// workgroup, folded in shared memory without subgroup operations, shared by
// the bandwidth probes (read.comp, gather_read.comp), whose results the
// host checks word by word. Their subgroup folds went wrong on lavapipe at
// 16 lanes: subgroupElect() lost subgroups (session 37), and the lane-0
// form that replaced it gave wrong XORs on one CI machine's CPU though not
// on ours (session 44). A workgroup fold has no lane width to go wrong, and
// costs a probe eight barriers after it has read its share.
// Include it in a shader whose workgroup size is a power of two.

shared uvec4 sh_fold[gl_WorkGroupSize.x];

// fold_xor returns, in invocation 0, the XOR of v over the workgroup (other
// invocations get a partial XOR). Call in uniform control flow.
uvec4 fold_xor(uvec4 v) {
    const uint id = gl_LocalInvocationID.x;
    sh_fold[id] = v;
    barrier();
    for (uint half_ = gl_WorkGroupSize.x / 2; half_ > 0; half_ /= 2) {
        if (id < half_) {
            sh_fold[id] ^= sh_fold[id + half_];
        }
        barrier();
    }
    return sh_fold[0];
}
