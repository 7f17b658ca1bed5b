// lse_merge.glsl: the log-sum-exp merge of one query row's S split partials
// into its output, one workgroup per row, in one pass over the partials:
// dense_merge.comp's and sparse_merge.comp's body. With (m_s, l_s, o_s) the
// partials of row r,
//
//	M   = max_s m_s,  L = sum_s l_s * exp(m_s - M),  out = sum_s o_s * exp(m_s - M) / L
//
// The workgroup is cut into GROUPS = WG/(D/4) groups of D/4 lanes, group k
// taking the splits s = k, k + GROUPS, ..., one vec4 column of o_s per lane.
// Each lane loads U splits' o_s and (m_s, l_s) together and folds them into a
// running (m, l, acc) with the online softmax's rescale, so that no load
// waits for M (an earlier form found M and L in passes of their own: two
// more dependent rounds of loads and two tree reductions). The groups'
// (m_k, l_k, acc_k) are then combined through shared memory with the same
// rule. A group without splits keeps m = NEG, l = 0, acc = 0 and weighs 0.
//
// The includer declares the workgroup size (WG, a multiple of D/4), the
// specialization constant D, and binds
//	0 po  [B*Hq][S][D] float32 (read as vec4)
//	1 pml [B*Hq][S] vec2 (m, l)
//	2 out [B][Hq][D] float32 (written as vec4)
// with push constant pc.splits = S. Dispatch: (Hq, B, 1).

#extension GL_EXT_control_flow_attributes : require

const uint WG = gl_WorkGroupSize.x;
const uint D4 = D / 4;
const uint GROUPS = WG / D4;
const uint U = 8; // splits in flight per lane
const float NEG = -1.0e30;

layout(push_constant) uniform PushConstants {
    uint splits; // S
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { vec4 out_[]; };

shared vec2 sh_ml[GROUPS]; // (m_k, l_k) of group k
shared vec4 sh_acc[WG];

void main() {
    const uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    const uint S = pc.splits;
    const uint li = gl_LocalInvocationIndex;
    const uint k = li / D4, i4 = li % D4;
    float m = NEG, l = 0.0;
    vec4 acc = vec4(0.0);
    if (k < GROUPS) {
        for (uint s0 = k; s0 < S; s0 += GROUPS * U) {
            vec4 v[U];
            vec2 ml[U];
            [[unroll]] for (uint u = 0; u < U; u++) {
                const uint s = s0 + u * GROUPS;
                v[u] = s < S ? po[(r * S + s) * D4 + i4] : vec4(0.0);
                ml[u] = s < S ? pml[r * S + s] : vec2(NEG, 0.0);
            }
            float mn = m;
            [[unroll]] for (uint u = 0; u < U; u++) mn = max(mn, ml[u].x);
            const float a = exp(m - mn);
            acc *= a;
            l *= a;
            [[unroll]] for (uint u = 0; u < U; u++) {
                const float w = exp(ml[u].x - mn);
                acc += v[u] * w;
                l += ml[u].y * w;
            }
            m = mn;
        }
        if (i4 == 0) sh_ml[k] = vec2(m, l);
    }
    sh_acc[li] = acc;
    barrier();
    if (li < D4) {
        float mx = NEG;
        [[unroll]] for (uint g = 0; g < GROUPS; g++) mx = max(mx, sh_ml[g].x);
        float z = 0.0;
        vec4 a = vec4(0.0);
        [[unroll]] for (uint g = 0; g < GROUPS; g++) {
            const float w = exp(sh_ml[g].x - mx);
            z += sh_ml[g].y * w;
            a += sh_acc[g * D4 + li] * w;
        }
        out_[r * D4 + li] = a / z;
    }
}
