#version 450
#extension GL_EXT_control_flow_attributes : require
// dense_merge: the log-sum-exp merge of flash-decoding's S split partials
// (dense_split.glsl) into the attention output, as a dispatch of its own:
// used with DenseOptions.SeparateMerge only; by default dense_split's last
// workgroup of each cache row does this merge (split_fold in
// split_softmax.glsl). One workgroup per query row r = b*Hq + h:
//
//	M   = max_s m_s
//	L   = sum_s l_s * exp(m_s - M)
//	out = sum_s o_s * exp(m_s - M) / L
//
// M and L are reduced over the workgroup; for the sum over s the workgroup is
// cut into WG/(D/4) groups of D/4 lanes, group k taking the splits s = k mod
// groups with one vec4 of o_s per lane, so that each lane has few loads in a
// row and they are independent; the groups are then summed in shared memory.
//
// Bindings (set 0):
//	0 po  [B*Hq][S][D] float32 unnormalised partial outputs (read as vec4)
//	1 pml [B*Hq][S] vec2 (m, l)
//	2 out [B][Hq][D] float32 (written as vec4)
// Dispatch: (Hq, B, 1) workgroups. WG must be a power of two and a multiple
// of D/4; D a multiple of 4.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128; // head dimension

const uint WG = gl_WorkGroupSize.x;
const uint D4 = D / 4;
const uint GROUPS = WG / D4;
const float NEG = -1.0e30;

layout(push_constant) uniform PushConstants {
    uint splits; // S
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer PO { vec4 po[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { vec4 out_[]; };

shared float sh_red[WG];
shared vec4 sh_acc[WG];

// reduce returns the max (op 0) or the sum (op 1) of v over the workgroup.
float reduce(float v, uint op) {
    const uint li = gl_LocalInvocationIndex;
    sh_red[li] = v;
    barrier();
    [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
        if (li < s) sh_red[li] = op == 0 ? max(sh_red[li], sh_red[li + s]) : sh_red[li] + sh_red[li + s];
        barrier();
    }
    const float r = sh_red[0];
    barrier();
    return r;
}

void main() {
    const uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    const uint S = pc.splits;
    const uint li = gl_LocalInvocationIndex;
    float mx = NEG;
    for (uint s = li; s < S; s += WG) mx = max(mx, pml[r * S + s].x);
    mx = reduce(mx, 0);
    float z = 0.0;
    for (uint s = li; s < S; s += WG) {
        const vec2 ml = pml[r * S + s];
        z += ml.y * exp(ml.x - mx);
    }
    z = reduce(z, 1);
    const uint k = li / D4, i4 = li % D4;
    vec4 acc = vec4(0.0);
    if (k < GROUPS) {
        for (uint s = k; s < S; s += GROUPS) acc += po[(r * S + s) * D4 + i4] * exp(pml[r * S + s].x - mx);
    }
    sh_acc[li] = acc;
    barrier();
    if (li < D4) {
        vec4 a = vec4(0.0);
        for (uint g = 0; g < GROUPS; g++) a += sh_acc[g * D4 + li];
        out_[r * D4 + li] = a / z;
    }
}
