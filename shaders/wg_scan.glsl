// wg_scan.glsl: prefix sums over a workgroup, through its subgroups, shared
// by select.glsl and hata_step.glsl. Include it after declaring WG (the
// workgroup size) and enabling GL_KHR_shader_subgroup_basic and
// GL_KHR_shader_subgroup_arithmetic; it declares sh_sg.

shared uint sh_sg[WG]; // per-subgroup partial sums

// wg_scan returns the exclusive prefix sum of v over the workgroup's lanes in
// index order, and the total. Call in uniform control flow.
uint wg_scan(uint v, out uint total) {
    const uint incl = subgroupInclusiveAdd(v);
    if (gl_SubgroupInvocationID == gl_SubgroupSize - 1) sh_sg[gl_SubgroupID] = incl;
    barrier();
    uint before = 0;
    total = 0;
    for (uint s = 0; s < gl_NumSubgroups; s++) {
        const uint x = sh_sg[s];
        if (s < gl_SubgroupID) before += x;
        total += x;
    }
    barrier();
    return before + incl - v;
}

// wg_sum returns the sum of v over the workgroup. Uniform control flow.
uint wg_sum(uint v) {
    uint total;
    wg_scan(v, total);
    return total;
}
