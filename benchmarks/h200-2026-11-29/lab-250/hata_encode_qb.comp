#version 450
// LAB: hata_encode_q with one workgroup per (code word, KV head) over all NB
// batch rows, so that W's slice is read once per head instead of once per row.
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;
layout(constant_id = 2) const uint NCOL = 128;
layout(constant_id = 3) const uint G = 4;
layout(constant_id = 4) const uint NB = 8;
const uint WG = gl_WorkGroupSize.x;

layout(push_constant) uniform PushConstants {
    uint t0, t1, cap, hkv, group, ldw, ostride, row0;
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer X { float x_[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { uint out_[]; };

const uint CB = 32;
const uint DS = WG / CB;
const uint DPS = (D + DS - 1) / DS;

shared float sh_q[NB * G * D];
shared float sh_red[DS * NB * G * CB];
shared uint sh_code[NB * G];

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint lane = li % CB, slice = li / CB;
    const uint j = gl_WorkGroupID.x * CB + lane;
    const uint head = gl_WorkGroupID.y;
    float wv[DPS];
    [[unroll]] for (uint i = 0; i < DPS; i++) {
        const uint d = slice * DPS + i;
        wv[i] = j < NCOL && d < D ? w[(head * D + d) * pc.ldw + j] : 0.0;
    }
    for (uint e = li; e < NB * G * D; e += WG) {
        const uint b = e / (G * D), rest = e % (G * D);
        sh_q[e] = x_[(b * pc.hkv + head) * G * D + rest];
    }
    if (li < NB * G) sh_code[li] = 0;
    barrier();
    for (uint bg = 0; bg < NB * G; bg++) {
        float acc = 0.0;
        [[unroll]] for (uint i = 0; i < DPS; i++) {
            const uint d = slice * DPS + i;
            if (d < D) acc += sh_q[bg * D + d] * wv[i];
        }
        sh_red[(slice * NB * G + bg) * CB + lane] = acc;
    }
    barrier();
    for (uint e = li; e < NB * G * CB; e += WG) {
        const uint bg = e / CB, l = e % CB;
        float p = 0.0;
        for (uint sl = 0; sl < DS; sl++) p += sh_red[(sl * NB * G + bg) * CB + l];
        if (gl_WorkGroupID.x * CB + l < NCOL && p > 0.0) atomicOr(sh_code[bg], 1u << l);
    }
    barrier();
    if (li < NB * G && gl_WorkGroupID.x < pc.ostride) {
        const uint b = li / G, g = li % G;
        out_[((b * pc.hkv + head) * G + g) * pc.ostride + gl_WorkGroupID.x] = sh_code[li];
    }
}
