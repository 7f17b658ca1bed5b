#version 450
// score_softmax: the oracle's (and Loki's) token scores from score_logits'
// output: per query head the softmax over all n tokens, summed over the G
// heads of the group (ref.GroupProbabilities; ref.Loki.Decode):
//
//	M_g = max_c m[g][c],  Z_g = sum_c l[g][c] * exp(m[g][c] - M_g)
//	s[r][t] = sum_{g < G} exp(x[r][g][t] - M_g) / Z_g       (g ascending)
//	keys[r][t] = desc_key(s[r][t])                           (select_key.glsl)
//
// Only the keys are written: desc_key is one to one (but for -0, which s
// never is, and NaN), so the scores are read back from them (vk's
// scoreOfKey), and a buffer of s would be 4 bytes a token written every
// step for nothing the step reads.
//
// Every workgroup merges the partials of its row itself (nchunks of them per
// head, one subgroup per head) and scores the tokens of its chunk. With
// HIST it also builds the radix select's first histogram pass (select.glsl:
// the top 11 bits of every key, 2048 bins, in hist[row][0]) over its
// chunk, so that the select starts at its second pass: one dispatch and one
// read of the keys fewer.
//
// Bindings (set 0):
//	0 x    [rows][G][xstride] float32
//	1 pml  [rows][G][nchunks] vec2
//	2 keys [rows][key_stride] uint32
//	3 hist [rows][3][2048] uint (HIST: pass 0 added to, zeroed before)
// Dispatch: (nchunks, rows, 1).

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "select_key.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint G = 1;
layout(constant_id = 2) const bool HIST = false;

const uint WG = gl_WorkGroupSize.x;
const float NEG = -1.0e30;
const uint UNR = 4; // tokens per lane per round

layout(push_constant) uniform PushConstants {
    uint n;          // tokens
    uint xstride;    // row stride of x, per head
    uint chunk_len;  // tokens per workgroup
    uint nchunks;    // ceil(n / chunk_len), the partials per head
    uint key_stride; // row stride of keys
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer X { float x_[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer PML { vec2 pml[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 3) restrict buffer Hist { uint hist[]; };

shared vec2 sh_mz[G];
shared uint sh_hist[HIST ? KEY32_BINS : 1]; // the select's first digit (select_key.glsl)

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    if (HIST) {
        for (uint b = li; b < KEY32_BINS; b += WG) sh_hist[b] = 0;
    }
    // Head g's max and sum over the chunks' partials, by subgroup g.
    for (uint g = gl_SubgroupID; g < G; g += gl_NumSubgroups) {
        const uint base = (row * G + g) * pc.nchunks;
        float mx = NEG;
        for (uint c = gl_SubgroupInvocationID; c < pc.nchunks; c += gl_SubgroupSize) mx = max(mx, pml[base + c].x);
        mx = subgroupMax(mx);
        float z = 0.0;
        for (uint c = gl_SubgroupInvocationID; c < pc.nchunks; c += gl_SubgroupSize) {
            const vec2 ml = pml[base + c];
            z += ml.y * exp(ml.x - mx);
        }
        z = subgroupAdd(z);
        if (subgroupElect()) sh_mz[g] = vec2(mx, z);
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
                const uint key = desc_key(s);
                keys[row * pc.key_stride + t] = key;
                if (HIST) atomicAdd(sh_hist[key >> key32_shift(0)], 1);
            }
        }
    }
    if (HIST) {
        barrier();
        const uint base = row * KEY32_PASSES * KEY32_BINS;
        for (uint b = li; b < KEY32_BINS; b += WG) {
            const uint c = sh_hist[b];
            if (c != 0) atomicAdd(hist[base + b], c);
        }
    }
}
