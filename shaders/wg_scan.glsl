// wg_scan.glsl: prefix sums over a workgroup, through its subgroups, and the
// histogram search built on them, shared by select.glsl and hata_step.glsl.
// Include it after declaring WG (the workgroup size) and the buffer hist
// (uint), with GL_KHR_shader_subgroup_basic and
// GL_KHR_shader_subgroup_arithmetic enabled; it declares sh_sg and sh_res
// (with WG_SCAN_BY_SUBGROUP also sh_ex and sh_tot).

shared uint sh_sg[WG]; // per-subgroup partial sums
#ifdef WG_SCAN_BY_SUBGROUP
shared uint sh_ex[WG]; // and their exclusive prefix sums
shared uint sh_tot;
#endif

// wg_scan returns the exclusive prefix sum of v over the workgroup's lanes in
// index order, and the total. Call in uniform control flow.
//
// Every lane adds the subgroups' partials before its own, one after another,
// unless the includer defines WG_SCAN_BY_SUBGROUP: then subgroup 0 scans
// them, a subgroup's worth at a time, and a barrier more hands them out.
// select_rows does, whose 1024 lanes are 32 subgroups on the H200: its
// select stage took 2.5-3.2 us less so (BENCHMARKS.md, session 48, run
// 452). The other kernels' 8-16 subgroups do not repay the barrier: with
// it the radix select took 1.3-2.0 us longer (run 453).
uint wg_scan(uint v, out uint total) {
    const uint incl = subgroupInclusiveAdd(v);
    if (gl_SubgroupInvocationID == gl_SubgroupSize - 1) sh_sg[gl_SubgroupID] = incl;
    barrier();
#ifdef WG_SCAN_BY_SUBGROUP
    if (gl_SubgroupID == 0) {
        uint carry = 0;
        for (uint b = 0; b < gl_NumSubgroups; b += gl_SubgroupSize) {
            const uint i = b + gl_SubgroupInvocationID;
            const uint x = i < gl_NumSubgroups ? sh_sg[i] : 0;
            const uint ex = subgroupExclusiveAdd(x);
            if (i < gl_NumSubgroups) sh_ex[i] = carry + ex;
            carry += subgroupAdd(x);
        }
        if (gl_SubgroupInvocationID == 0) sh_tot = carry;
    }
    barrier();
    total = sh_tot;
    const uint before = sh_ex[gl_SubgroupID];
#else
    uint before = 0;
    total = 0;
    for (uint s = 0; s < gl_NumSubgroups; s++) {
        const uint x = sh_sg[s];
        if (s < gl_SubgroupID) before += x;
        total += x;
    }
#endif
    barrier();
    return before + incl - v;
}

// wg_sum returns the sum of v over the workgroup. Uniform control flow.
uint wg_sum(uint v) {
    uint total;
    wg_scan(v, total);
    return total;
}

// MAXPER bounds the bins each lane holds in find_bin_at: nbins <= MAXPER*WG.
// An includer that knows its bins defines BIN_PER (a constant expression),
// so that the search's unrolled loads and compares are no more than its
// bins need: HATA's select with 16 bins a lane where its 513 need 3 took 3.6
// us instead of 1.9 to resolve its threshold from cold code on the H200
// (BENCHMARKS.md, session 35, run 375).
#ifdef BIN_PER
const uint MAXPER = BIN_PER;
#else
const uint MAXPER = 16;
#endif
shared uvec2 sh_res;

// HIST_AT(i) is bin i of the histograms find_bin_at searches: the buffer
// hist, unless the includer defines it (select_rows: its shared histogram).
#ifndef HIST_AT
#define HIST_AT(i) hist[i]
#endif

// find_bin_at returns (d, less) for the histogram hist[base .. base+nbins):
// d the smallest bin with sum_{b <= d} hist[b] >= kk, less = sum_{b < d}
// hist[b]. kk >= 1. Each lane loads its run of bins once, into registers.
// Uniform control flow.
uvec2 find_bin_at(uint base, uint nbins, uint kk) {
    const uint li = gl_LocalInvocationIndex;
    const uint per = (nbins + WG - 1) / WG;
    const uint b0 = li * per;
    uint hv[MAXPER];
    uint s = 0;
    [[unroll]] for (uint i = 0; i < MAXPER; i++) {
        hv[i] = i < per && b0 + i < nbins ? HIST_AT(base + b0 + i) : 0;
        s += hv[i];
    }
    if (li == 0) sh_res = uvec2(nbins - 1, 0); // not reached when kk <= the total
    uint total;
    uint cum = wg_scan(s, total);
    if (cum < kk && kk <= cum + s) {
        bool found = false;
        [[unroll]] for (uint i = 0; i < MAXPER; i++) {
            if (!found && cum + hv[i] >= kk) {
                sh_res = uvec2(b0 + i, cum);
                found = true;
            }
            cum += found ? 0 : hv[i];
        }
    }
    barrier();
    const uvec2 r = sh_res;
    barrier();
    return r;
}
