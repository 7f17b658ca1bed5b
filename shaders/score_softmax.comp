#version 450
// score_softmax: the oracle's (and Loki's) token scores from score_logits'
// output: per query head the softmax over all n tokens, summed over the G
// heads of the group (ref.GroupProbabilities; ref.Loki.Decode):
//
//	M_g = max_c m[g][c],  Z_g = sum_c l[g][c] * exp(m[g][c] - M_g)
//	s[r][t] = sum_{g < G} exp(x[r][g][t] - M_g) / Z_g       (g ascending)
//	keys[r][t] = desc_key(s[r][t])                           (select_key.glsl)
//
// Every workgroup merges the partials of its row itself (nchunks of them per
// head) and scores the tokens of its chunk.
//
// Bindings (set 0):
//	0 x    [rows][G][xstride] float32
//	1 pml  [rows][G][nchunks] vec2
//	2 keys [rows][key_stride] uint32
//	3 s    [rows][key_stride] float32 (for Scores)
// Dispatch: (nchunks, rows, 1).

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "select_key.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint G = 1;

const uint WG = gl_WorkGroupSize.x;
const float NEG = -1.0e30;
const uint UNR = 4; // tokens per lane per round

layout(push_constant) uniform PushConstants {
    uint n;          // tokens
    uint xstride;    // row stride of x, per head
    uint chunk_len;  // tokens per workgroup
    uint nchunks;    // ceil(n / chunk_len), the partials per head
    uint key_stride; // row stride of keys and s
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer X { float x_[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 3) restrict writeonly buffer S { float s_[]; };

shared float sh_red[WG];
shared vec2 sh_mz[G];

// reduce returns the max (op 0) or the sum (op 1) of v over the workgroup
// (WG a power of two).
float reduce(float v, uint op) {
    const uint li = gl_LocalInvocationIndex;
    sh_red[li] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (li < s) sh_red[li] = op == 0 ? max(sh_red[li], sh_red[li + s]) : sh_red[li] + sh_red[li + s];
        barrier();
    }
    const float r = sh_red[0];
    barrier();
    return r;
}

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    for (uint g = 0; g < G; g++) {
        const uint base = (row * G + g) * pc.nchunks;
        float mx = NEG;
        for (uint c = li; c < pc.nchunks; c += WG) mx = max(mx, pml[base + c].x);
        mx = reduce(mx, 0);
        float z = 0.0;
        for (uint c = li; c < pc.nchunks; c += WG) {
            const vec2 ml = pml[base + c];
            z += ml.y * exp(ml.x - mx);
        }
        z = reduce(z, 1);
        if (li == 0) sh_mz[g] = vec2(mx, z);
    }
    barrier();
    const uint t0 = gl_WorkGroupID.x * pc.chunk_len;
    const uint t1 = min(t0 + pc.chunk_len, pc.n);
    // UNR tokens per lane per round, every load of the round issued first.
    for (uint tb = t0 + li; tb < t1; tb += WG * UNR) {
        float xv[UNR * G];
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = tb + u * WG;
            [[unroll]] for (uint g = 0; g < G; g++) xv[u * G + g] = t < t1 ? x_[(row * G + g) * pc.xstride + t] : 0.0;
        }
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = tb + u * WG;
            if (t < t1) {
                float s = 0.0;
                [[unroll]] for (uint g = 0; g < G; g++) {
                    const vec2 mz = sh_mz[g];
                    s += exp(xv[u * G + g] - mz.x) / mz.y;
                }
                keys[row * pc.key_stride + t] = desc_key(s);
                s_[row * pc.key_stride + t] = s;
            }
        }
    }
}
