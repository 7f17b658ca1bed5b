#version 450
// sparse_gather: copies the K and V rows of every selected token into compact
// buffers, Kc[r][i] = K[r][idx[r][i]] and Vc[r][i] = V[r][idx[r][i]] for
// i < k, as raw 16-byte vectors (any storage type): the naive variant's
// gather before a dense attention over the k rows (sparse_split with
// INDEXED = false). The fused variant reads K/V through the index list and
// skips this copy.
//
// Bindings (set 0):
//	0 idx [rows][kstride] uint32
//	1 K   [rows][cap][dv] uvec4
//	2 V   same layout as K
//	3 Kc  [rows][k][dv] uvec4
//	4 Vc  same layout as Kc
// Dispatch: (x, rows, 1) workgroups, any x: a grid-stride loop covers k*dv.

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PushConstants {
    uint k;       // entries per row
    uint kstride; // row stride of idx
    uint cap;     // row stride of K and V, in tokens
    uint dv;      // 16-byte vectors per token
    uint row0;    // the cache row of the bound K's and V's row 0 (a cache in several buffers)
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer Idx { uint idx[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer KB { uvec4 kb[]; };
layout(std430, set = 0, binding = 2) restrict readonly buffer VB { uvec4 vb[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer KC { uvec4 kc[]; };
layout(std430, set = 0, binding = 4) restrict writeonly buffer VC { uvec4 vc[]; };

void main() {
    const uint krow = gl_WorkGroupID.y; // row of the bound K and V
    const uint row = pc.row0 + krow;    // cache row
    const uint total = pc.k * pc.dv;
    const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint e = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationIndex; e < total; e += stride) {
        const uint i = e / pc.dv, c = e % pc.dv;
        const uint src = (krow * pc.cap + idx[row * pc.kstride + i]) * pc.dv + c;
        const uint dst = (row * pc.k + i) * pc.dv + c;
        kc[dst] = kb[src];
        vc[dst] = vb[src];
    }
}
