#version 450
// dense_merge: the log-sum-exp merge of flash-decoding's S split partials
// (dense_split.glsl) into the attention output. One workgroup per query row
// r = b*Hq + h:
//
//	M   = max_s m_s
//	L   = sum_s l_s * exp(m_s - M)
//	out = sum_s o_s * exp(m_s - M) / L
//
// Bindings (set 0):
//	0 po  [B*Hq][S][D] float32 unnormalised partial outputs
//	1 pml [B*Hq][S] vec2 (m, l)
//	2 out [B][Hq][D] float32
// Dispatch: (Hq, B, 1) workgroups.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128; // head dimension

layout(push_constant) uniform PushConstants {
    uint splits; // S
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer PO { float po[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { float out_[]; };

void main() {
    const uint r = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    const uint S = pc.splits;
    float mx = pml[r * S].x;
    for (uint s = 1; s < S; s++) mx = max(mx, pml[r * S + s].x);
    float z = 0.0;
    for (uint s = 0; s < S; s++) {
        const vec2 ml = pml[r * S + s];
        z += ml.y * exp(ml.x - mx);
    }
    for (uint i = gl_LocalInvocationIndex; i < D; i += gl_WorkGroupSize.x) {
        float acc = 0.0;
        for (uint s = 0; s < S; s++) acc += po[(r * S + s) * D + i] * exp(pml[r * S + s].x - mx);
        out_[r * D + i] = acc / z;
    }
}
