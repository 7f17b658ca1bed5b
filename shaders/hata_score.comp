#version 450
// hata_score: HATA's GQA-summed Hamming scores (HATA.md, decode step 2;
// ref.HammingScores), optionally with the per-row histogram of the scores
// that the selection needs (the "fused" variant):
//
//	S[r][t] = sum_{g < G} sum_w popcount(qcode[r*G + g][w] XOR kcode[r][t][w])
//	hist[r][s] += 1 for every token t < N with S[r][t] = s that no window forces in
//	              (sink_end <= t < recent_start)
//
// Codes are read as uvec4: a code is WV uvec4 (rbit/32 words padded with
// zeros to a multiple of 4, and zero XOR zero adds nothing). popcount is
// 32-bit bitCount (spirv-val rejects 64-bit). A lane scores two consecutive
// tokens per step (32 contiguous bytes of codes for rbit=128), UNR steps per
// round with every load of the round issued before the arithmetic, and stores
// both scores in one uint when KEY16 (S <= G*rbit <= 65535: low half the even
// token), so the select kernels read N*2 bytes per row; otherwise one uint
// per token (the "naive" variant). With HIST the workgroup counts its tokens
// in a shared histogram of NB bins (NB > G*rbit) and adds the non-zero bins
// to the global one with atomicAdd, so that no extra pass over the scores
// is needed to find the selection threshold. With CUM (and HIST) it also
// writes its chunk's cumulative histogram,
//
//	cum[row][c][s] = #{t in chunk c, not forced: S[r][t] <= s}     s < NB
//
// so that select_write, once it knows the threshold T, finds how many
// tokens every earlier chunk takes from two entries per chunk, instead of a
// select_count pass over the scores (select.glsl, step 2 with pc.cum).
//
// Bindings (set 0):
//	0 qcode [rows*G][WV] uvec4 (query head b*Hq + h*G + g = row*G + g)
//	1 kcode [rows][cap][WV] uvec4
//	2 keys  KEY16: [rows][key_stride/2] uint (two uint16 each); else [rows][key_stride] uint
//	3 hist  [rows][NB] uint, zeroed before the dispatch (HIST); with CUM
//	        followed by cum [rows][nchunks][NB] uint (written whole)
// Dispatch: (nchunks = ceil(N / chunk_len), rows, 1); chunk_len and
// key_stride even.

#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WV = 1;       // uvec4 per code
layout(constant_id = 2) const uint G = 1;        // query heads per KV head
layout(constant_id = 3) const bool KEY16 = true; // scores as packed uint16
layout(constant_id = 4) const uint NB = 1;       // histogram bins; 1: no histogram
layout(constant_id = 5) const bool CUM = false;  // also the chunk's cumulative histogram

const uint WG = gl_WorkGroupSize.x;
const bool HIST = NB > 1;
const uint UNR = 4; // token pairs per lane per round

layout(push_constant) uniform PushConstants {
    uint n;            // tokens N
    uint cap;          // row stride of kcode, in tokens
    uint chunk_len;    // tokens per workgroup, even
    uint sink_end;     // tokens t < sink_end are forced in (not counted)
    uint recent_start; // tokens t >= recent_start are forced in (not counted)
    uint key_stride;   // row stride of the scores, in tokens, even
} pc;

layout(std430, set = 0, binding = 0) restrict readonly buffer QC { uvec4 qc[]; };
layout(std430, set = 0, binding = 1) restrict readonly buffer KC { uvec4 kc[]; };
layout(std430, set = 0, binding = 2) restrict writeonly buffer Keys { uint keys[]; };
layout(std430, set = 0, binding = 3) restrict buffer Hist { uint hist[]; };

shared uint sh_hist[NB];
shared uint sh_sg[WG]; // CUM: per-subgroup sums of the scan

uint ham(uvec4 a, uvec4 b) {
    const ivec4 c = bitCount(a ^ b);
    return uint(c.x + c.y + c.z + c.w);
}

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint c0 = gl_WorkGroupID.x * pc.chunk_len;
    const uint c1 = min(c0 + pc.chunk_len, pc.n);

    uvec4 q[G * WV];
    [[unroll]] for (uint e = 0; e < G * WV; e++) q[e] = qc[row * G * WV + e];
    if (HIST) {
        for (uint b = li; b < NB; b += WG) sh_hist[b] = 0;
        barrier();
    }

    // UNR token pairs per lane per round, all their loads issued first.
    for (uint tb = c0 + 2 * li; tb < c1; tb += 2 * WG * UNR) {
        uvec4 ka[UNR * WV], kb[UNR * WV];
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = tb + 2 * WG * u;
            const uint base = (row * pc.cap + t) * WV;
            [[unroll]] for (uint w = 0; w < WV; w++) {
                ka[u * WV + w] = t < c1 ? kc[base + w] : uvec4(0);
                kb[u * WV + w] = t + 1 < c1 ? kc[base + WV + w] : uvec4(0);
            }
        }
        [[unroll]] for (uint u = 0; u < UNR; u++) {
            const uint t = tb + 2 * WG * u;
            if (t < c1) {
                const bool two = t + 1 < c1;
                uint s0 = 0, s1 = 0;
                [[unroll]] for (uint w = 0; w < WV; w++) {
                    [[unroll]] for (uint g = 0; g < G; g++) {
                        s0 += ham(q[g * WV + w], ka[u * WV + w]);
                        s1 += ham(q[g * WV + w], kb[u * WV + w]);
                    }
                }
                const uint o = row * pc.key_stride + t;
                if (KEY16) {
                    keys[o / 2] = s0 | (two ? s1 << 16 : 0xffff0000u);
                } else {
                    keys[o] = s0;
                    if (two) keys[o + 1] = s1;
                }
                if (HIST) {
                    if (t >= pc.sink_end && t < pc.recent_start) atomicAdd(sh_hist[s0], 1);
                    if (two && t + 1 >= pc.sink_end && t + 1 < pc.recent_start) atomicAdd(sh_hist[s1], 1);
                }
            }
        }
    }

    if (HIST) {
        barrier();
        for (uint b = li; b < NB; b += WG) {
            const uint c = sh_hist[b];
            if (c != 0) atomicAdd(hist[row * NB + b], c);
        }
    }
    if (CUM) {
        // Lane li owns the PER_LANE bins from li*PER_LANE on: its run's sum,
        // an exclusive scan of the sums over the workgroup, then the running
        // count of every owned bin.
        const uint PER_LANE = (NB + WG - 1) / WG;
        const uint b0 = li * PER_LANE;
        uint run = 0;
        for (uint i = 0; i < PER_LANE && b0 + i < NB; i++) run += sh_hist[b0 + i];
        const uint incl = subgroupInclusiveAdd(run);
        if (gl_SubgroupInvocationID == gl_SubgroupSize - 1) sh_sg[gl_SubgroupID] = incl;
        barrier();
        uint acc = incl - run;
        for (uint sg = 0; sg < gl_SubgroupID; sg++) acc += sh_sg[sg];
        const uint base = gl_NumWorkGroups.y * NB + (row * gl_NumWorkGroups.x + gl_WorkGroupID.x) * NB;
        for (uint i = 0; i < PER_LANE && b0 + i < NB; i++) {
            acc += sh_hist[b0 + i];
            hist[base + b0 + i] = acc;
        }
    }
}
