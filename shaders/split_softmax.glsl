// split_softmax.glsl: the arithmetic of the flash-decoding split pass, shared
// by dense_split.glsl (a split of consecutive cached tokens) and
// sparse_split.glsl (a split of a row's list of selected tokens). The two
// differ only in which K/V rows a slot loads; from the loaded vectors on,
// one workgroup computes, for each of the G query heads of its row's group,
//
//	x_t = q_g · K_t * scale                (scale folded into q)
//	m   = max_t x_t,  l = sum_t exp(x_t - m),  o = sum_t exp(x_t - m) V_t
//
// with an online softmax per slot (one rescale of o per tile of TILE tokens)
// and a merge of the NSLOT slots through shared memory, writing (m, l) and o
// in the layout dense_merge.comp and sparse_merge.comp read.
//
// Include it after kv.glsl and after declaring the workgroup size and the
// specialization constants TPT (lanes per token), D and G; the macros also
// read TILE and the kernel's q, po and pml buffers and pc.scale, pc.splits.
// In main():
//
//	SPLIT_INIT(qrow, lane)       declares qf, m, l, o
//	... per tile: load KV_T kc[TILE * VPL], vc[TILE * VPL] (entry i of the
//	    tile, i < TILE, is the slot's entry base + i*NSLOT + slot) ...
//	SPLIT_TILE(base, end, slot)  folds the tile's entries < end into m, l, o
//	SPLIT_MERGE(qrow, s, lane, slot, li)  merges the slots, writes po, pml
//
// Lanes: TPT lanes of one subgroup share a token ("slot"), lane i holding
// the 16-byte vectors i, i+TPT, ... of a row (elements (j*TPT + i)*KV_VEC ..
// +KV_VEC for j < VPL); dot products are finished with a butterfly of
// subgroupShuffleXor, so every slot must run SPLIT_TILE the same number of
// times (uniform control flow; entries past end are masked, p = 0).

const uint EPL = D / TPT;                    // elements per lane
const uint VPL = EPL / KV_VEC;               // 16-byte vectors per lane per row
const uint DV = D / KV_VEC;                  // vectors per row
const uint NSLOT = gl_WorkGroupSize.x / TPT; // tokens in flight per workgroup
const float NEG = -1.0e30;                   // "no token yet": exp(NEG - x) == 0

shared float sh_m[NSLOT * G];
shared float sh_l[NSLOT * G];
shared float sh_o[NSLOT * D];

// SPLIT_INIT(qrow, lane): qf[G*EPL] = this lane's slice of the query heads
// qrow .. qrow+G-1, pre-scaled; m = NEG, l = 0, o = 0 for every head.
#define SPLIT_INIT(qrow, lane)                                                 \
    float qf[G * EPL];                                                         \
    [[unroll]] for (uint g = 0; g < G; g++) {                                  \
        [[unroll]] for (uint j = 0; j < VPL; j++) {                            \
            [[unroll]] for (uint c = 0; c < KV_VEC; c++) {                     \
                qf[g * EPL + j * KV_VEC + c] = q[((qrow) + g) * D + (j * TPT + (lane)) * KV_VEC + c] * pc.scale; \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    float m[G], l[G], o[G * EPL];                                              \
    [[unroll]] for (uint g = 0; g < G; g++) {                                  \
        m[g] = NEG;                                                            \
        l[g] = 0.0;                                                            \
        [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] = 0.0;        \
    }

// SPLIT_TILE(base, end, slot): the tile's logits x (dot products finished
// across the slot's lanes), one rescale of m, l, o per head to the tile's
// max, then p = exp(x - m) added to l and p V to o; entries base + i*NSLOT +
// slot >= end count as p = 0.
#define SPLIT_TILE(base, end, slot)                                            \
    {                                                                          \
        float x[TILE * G];                                                     \
        [[unroll]] for (uint i = 0; i < TILE; i++) {                           \
            float kf[EPL];                                                     \
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(kc[i * VPL + j], kf, j * KV_VEC); \
            [[unroll]] for (uint g = 0; g < G; g++) {                          \
                float d = 0.0;                                                 \
                [[unroll]] for (uint e = 0; e < EPL; e++) d += qf[g * EPL + e] * kf[e]; \
                x[i * G + g] = d;                                              \
            }                                                                  \
        }                                                                      \
        [[unroll]] for (uint off = TPT / 2; off > 0; off >>= 1) {              \
            [[unroll]] for (uint i = 0; i < TILE * G; i++) x[i] += subgroupShuffleXor(x[i], off); \
        }                                                                      \
        [[unroll]] for (uint g = 0; g < G; g++) {                              \
            float mt = m[g];                                                   \
            [[unroll]] for (uint i = 0; i < TILE; i++) {                       \
                if ((base) + i * NSLOT + (slot) < (end)) mt = max(mt, x[i * G + g]); \
            }                                                                  \
            const float alpha = exp(m[g] - mt);                                \
            l[g] *= alpha;                                                     \
            [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] *= alpha; \
            m[g] = mt;                                                         \
            [[unroll]] for (uint i = 0; i < TILE; i++) {                       \
                const float p = (base) + i * NSLOT + (slot) < (end) ? exp(x[i * G + g] - mt) : 0.0; \
                l[g] += p;                                                     \
                x[i * G + g] = p;                                              \
            }                                                                  \
        }                                                                      \
        [[unroll]] for (uint i = 0; i < TILE; i++) {                           \
            float vf[EPL];                                                     \
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(vc[i * VPL + j], vf, j * KV_VEC); \
            [[unroll]] for (uint g = 0; g < G; g++) {                          \
                [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] += x[i * G + g] * vf[e]; \
            }                                                                  \
        }                                                                      \
    }

// SPLIT_MERGE(qrow, s, lane, slot, li): merges the NSLOT slots' (m, l, o) of
// every head qrow+g, one head at a time, rescaling each to the workgroup's
// max mw, and writes partial row pr = (qrow+g)*S + s: pml[pr] = (mw, l) and
// po[pr][D] = o (not normalised). li is gl_LocalInvocationIndex.
#define SPLIT_MERGE(qrow, s, lane, slot, li)                                   \
    if ((lane) == 0) {                                                         \
        [[unroll]] for (uint g = 0; g < G; g++) {                              \
            sh_m[(slot) * G + g] = m[g];                                       \
            sh_l[(slot) * G + g] = l[g];                                       \
        }                                                                      \
    }                                                                          \
    barrier();                                                                 \
    [[unroll]] for (uint g = 0; g < G; g++) {                                  \
        float mw = NEG;                                                        \
        [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) mw = max(mw, sh_m[sl * G + g]); \
        const float w = exp(m[g] - mw);                                        \
        [[unroll]] for (uint j = 0; j < VPL; j++) {                            \
            [[unroll]] for (uint c = 0; c < KV_VEC; c++) {                     \
                sh_o[(slot) * D + (j * TPT + (lane)) * KV_VEC + c] = o[g * EPL + j * KV_VEC + c] * w; \
            }                                                                  \
        }                                                                      \
        barrier();                                                             \
        const uint pr = ((qrow) + g) * pc.splits + (s); /* partial row */     \
        for (uint i = (li); i < D; i += gl_WorkGroupSize.x) {                  \
            float acc = 0.0;                                                   \
            [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) acc += sh_o[sl * D + i]; \
            po[pr * D + i] = acc;                                              \
        }                                                                      \
        if ((li) == 0) {                                                       \
            float lw = 0.0;                                                    \
            [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) lw += sh_l[sl * G + g] * exp(sh_m[sl * G + g] - mw); \
            pml[pr] = vec2(mw, lw);                                            \
        }                                                                      \
        barrier();                                                             \
    }
