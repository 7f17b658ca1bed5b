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
// in the layout dense_merge.comp and sparse_merge.comp read. With FUSED, the
// log-sum-exp merge of the S splits is folded into the same dispatch ("last
// workgroup merges", split_fold below): the workgroup that finishes a row's
// last split merges the row's S partials into the output, so no separate
// merge dispatch (and no pipeline barrier before it) is needed; with S == 1
// the single split writes the normalised output directly.
//
// Include it after kv.glsl and after declaring the workgroup size and the
// specialization constants TPT (lanes per token), D, G and FUSED (bool), and
// the constants REDUCE_SCATTER (bool, SPLIT_TILE's reduction), MERGE_HEADS
// (bool, SPLIT_MERGE's: every head at once where it fits) and IDX_VEC4 (uint:
// the rows of sh_o that hold the index list, with SH_IDX(e) defined to read
// entry e there; 0, and a uint array sh_idx, otherwise); the macros and
// split_fold also read TILE, the kernel's buffers
//
//	q    [B*Hq][D] float
//	po   [B*Hq][S][D/4] vec4, coherent    unnormalised partial outputs
//	pml  [B*Hq][S] vec2 (m, l), coherent
//	out_ [B*Hq][D/4] vec4                 the output (written when FUSED)
//	cnt  [rows] uint, coherent            finished splits per row (FUSED)
//
// and pc.scale, pc.splits (S: the partials of a head in po and pml, and
// with FUSED how many of them split_fold merges). An includer that defines
// SPLIT_COUNT first (dense_split.glsl's PIECES) gives each row a count of
// its own: SPLIT_COUNT, an expression evaluated where SPLIT_MERGE runs, is
// the row's partials there, split_fold takes it as a third argument, and
// pc.splits is only the stride. In main():
//
//	SPLIT_INIT(qrow, lane)       declares qf, m, l, o
//	... per tile: load KV_T kc[TILE * VPL], vc[TILE * VPL] (entry i of the
//	    tile, i < TILE, is the slot's entry base + i*NSLOT + slot) ...
//	SPLIT_TILE(base, end, slot)  folds the tile's entries < end into m, l, o
//	SPLIT_LIST(len, slot)        or, for a list of len token indices in
//	                             sh_idx: every tile of it, loaded and folded
//	SPLIT_MERGE(qrow, s, lane, slot, li)  merges the slots, writes po, pml
//	                                      (FUSED and S == 1: out_)
//	split_fold(row, qrow)        FUSED and S > 1: the last split of the row
//	                             merges the S partials into out_ (with
//	                             SPLIT_COUNT: split_fold(row, qrow, count))
//
// Lanes: TPT lanes of one subgroup share a token ("slot"), lane i holding
// the 16-byte vectors i, i+TPT, ... of a row (elements (j*TPT + i)*KV_VEC ..
// +KV_VEC for j < VPL); dot products are finished with subgroup shuffles (a
// reduce-scatter, SPLIT_TILE), so every slot must run SPLIT_TILE the same
// number of times (uniform control flow; entries past end are masked, p = 0).

#ifdef SPLIT_COUNT
#define SPLIT_OWN_COUNT // split_fold(row, qrow, count): the includer's counts
#else
#define SPLIT_COUNT pc.splits
#endif

const uint EPL = D / TPT;                    // elements per lane
const uint VPL = EPL / KV_VEC;               // 16-byte vectors per lane per row
const uint DV = D / KV_VEC;                  // vectors per row
// Where the cache's vectors lie: vector c of token t's K row at
// t * KV_RS + KV_POS(c) from the row's token 0 in the K binding, its V at
// KV_VOFF past that in the V binding. A cache of separate K and V buffers:
// KV_RS = DV, KV_POS(c) = c, KV_VOFF = 0. A paired one
// (SparseOptions.PairedKV: both bindings the same buffer, a token's K and V
// in 16-byte chunks alternating, kv.glsl's KV_CH vectors each): KV_RS =
// 2*DV, KV_POS(c) = kv.glsl's KV_PAIR_POS(c), KV_VOFF = KV_CH. An
// includer that reads a paired cache declares the specialization constant
// KV_PAIRED and defines HAS_KV_PAIRED. KV_POS(a + b) = KV_POS(a) + KV_POS(b)
// where b is a multiple of KV_CH (TPT is, wherever KV_CH is 2: f16h's lanes
// per token exceed the row's 16-byte vectors).
#ifdef HAS_KV_PAIRED
const uint KV_RS = KV_TOKEN_RS; // kv.glsl's
const uint KV_VOFF = KV_PAIRED ? KV_CH : 0;
#define KV_POS(c) KV_KEY_POS(c)
#else
const uint KV_RS = DV;
const uint KV_VOFF = 0;
#define KV_POS(c) (c)
#endif
const uint D4 = D / 4;                       // vec4 of a row of po and out_
const uint NSLOT = gl_WorkGroupSize.x / TPT; // tokens in flight per workgroup
const float NEG = -1.0e30;                   // "no token yet": exp(NEG - x) == 0

// sh_o holds NSLOT rows of D floats as vec4 (KV_VEC is 4 or 8, so the 4
// elements of a vec4 belong to one lane), G*NSLOT rows when OHEADS = G (the
// includer's MERGE_HEADS: SPLIT_MERGE merges every head at once); split_fold reuses
// it, and sh_m, sh_l, once the slots are merged. (Merging the heads at once
// measured slower for dense on the H200, 22-35% at every shape, the larger
// shared memory letting fewer workgroups run at once; BENCHMARKS.md.)
shared float sh_m[NSLOT * G];
shared float sh_l[NSLOT * G];
// OHEADS: G with MERGE_HEADS where G*NSLOT rows take at most 8 KiB (the default
// sparse shape, G 4, 4 slots, D 128); larger groups merge one head at a time.
const uint OHEADS = MERGE_HEADS ? (NSLOT * G * D4 * 16 <= 8192 ? G : 1) : 1; // heads sh_o holds
// With IDX_VEC4 > 0 (the includer's) sh_o also holds the split's index list
// while the slots attend, as uint bits in its first IDX_VEC4 rows (SH_IDX),
// so that the list and the merge share one array: on the H200 the list's
// 4 KiB more per workgroup let only three sparse_split workgroups share a
// compute unit once sh_o held every head (BENCHMARKS.md).
const uint SH_O_ROWS = NSLOT * D4 * OHEADS > IDX_VEC4 ? NSLOT * D4 * OHEADS : IDX_VEC4;
shared vec4 sh_o[SH_O_ROWS];
#ifndef SH_IDX
#define SH_IDX(e) sh_idx[e]
#endif
shared bool sh_last; // split_fold: this workgroup finished its row's last split

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

// The tile's TV = TILE*G logits (entry i, head g at i*G + g) are summed over
// the slot's TPT lanes, with REDUCE_SCATTER (the includer's bool) by a
// reduce-scatter (reduce_scatter.glsl): lane j of the slot ends with the
// full logits of RH values, (j >> SH)*RH .. +RH (TV - 1 shuffles in all for
// TV = TPT, where a butterfly all-reduce takes log2(TPT) per value: 15
// against 64 at TV = TPT = 16). Every lane then gathers the TV logits (for the heads' maxima),
// the lanes holding a value compute its exp, and the weights are gathered
// back: one exp per lane per tile instead of TV. Values past TV (RS_VP, a
// power of two) are zero padding. Without REDUCE_SCATTER every value is
// summed by a butterfly all-reduce (log2(TPT) shuffles each) and every lane
// computes every exp. On the H200 the reduce-scatter made the sparse
// attention (TPT 32, TV 16) 1.0-3.1 us faster and dense (TPT 16) about 1%
// slower (run 36, BENCHMARKS.md): sparse_split, select_attend and hata_step
// use it, dense_split does not.
const uint TV = TILE * G;
const uint RS_LANES = TPT;
const uint RS_VALUES = TV;
#include "reduce_scatter.glsl"
#include "last_workgroup.glsl" // LAST_OF (split_fold)
const uint RH = RS_RH;  // values a lane holds after the reduce-scatter
const uint SH = RS_SH;  // slot-lane bits below the halving ones
// RS_ONE: after the reduce-scatter every lane holds exactly one of the TV
// logits (RH = 1, no padding) and G is a power of two, so SPLIT_TILE finds
// each head's max with log2(TILE) xor shuffles and G shuffles instead of
// gathering all TV logits into every lane (TV shuffles and TV maxima).
// (Lab-345, session 31: the attention's arithmetic is 1.3-4.8 us of its
// stage at the target shapes, 8-9 at B8/256K; this took 3.0-4.3 us off
// B8/256K and cost HATA's B8/128K 0.5, BENCHMARKS.md.)
const bool RS_ONE = RH == 1 && TV == RS_VP && (G & (G - 1)) == 0;

// SPLIT_TILE(base, end, slot): the tile's logits (dot products finished
// across the slot's lanes), one rescale of m, l, o per head to the tile's
// max, then p = exp(x - m) added to l and p V to o; entries base + i*NSLOT +
// slot >= end count as p = 0.
#define SPLIT_TILE(base, end, slot)                                            \
    {                                                                          \
        float x[RS_VP]; /* reduce_scatter's own array type */                \
        [[unroll]] for (uint i = 0; i < TILE; i++) {                           \
            float kf[EPL];                                                     \
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(kc[i * VPL + j], kf, j * KV_VEC); \
            [[unroll]] for (uint g = 0; g < G; g++) {                          \
                float d = 0.0;                                                 \
                [[unroll]] for (uint e = 0; e < EPL; e++) d += qf[g * EPL + e] * kf[e]; \
                x[i * G + g] = d;                                              \
            }                                                                  \
        }                                                                      \
        float xa[TV]; /* the weights p, in every lane of the slot */          \
        if (REDUCE_SCATTER) {                                                  \
            [[unroll]] for (uint v = TV; v < RS_VP; v++) x[v] = 0.0;             \
            const uint ln_ = gl_SubgroupInvocationID % TPT;                    \
            const uint s0_ = gl_SubgroupInvocationID - ln_; /* the slot's lane 0 */ \
            reduce_scatter(x, ln_);                                            \
            float mt[G]; /* each head's max over m and the tile's logits */    \
            if (RS_ONE) {                                                      \
                /* lane ln_ holds value ln_ >> SH alone: the lanes of a head */ \
                /* differ in the bits from G << SH up, so two xor rounds (at */ \
                /* TILE 4) give each its head's max, and one shuffle a head  */ \
                /* brings it to every lane (max is exact in any order)       */ \
                float tm_ = (base) + ((ln_ >> SH) / G) * NSLOT + (slot) < (end) ? x[0] : NEG; \
                [[unroll]] for (uint off_ = G << SH; off_ < TPT; off_ <<= 1) tm_ = max(tm_, subgroupShuffleXor(tm_, off_)); \
                [[unroll]] for (uint g = 0; g < G; g++) mt[g] = max(m[g], subgroupShuffle(tm_, s0_ + (g << SH))); \
            } else {                                                           \
                /* every logit, from the lane holding it */                    \
                [[unroll]] for (uint v = 0; v < TV; v++) xa[v] = subgroupShuffle(x[v % RH], s0_ + ((v / RH) << SH)); \
                [[unroll]] for (uint g = 0; g < G; g++) {                      \
                    mt[g] = m[g];                                              \
                    [[unroll]] for (uint i = 0; i < TILE; i++) {               \
                        if ((base) + i * NSLOT + (slot) < (end)) mt[g] = max(mt[g], xa[i * G + g]); \
                    }                                                          \
                }                                                              \
            }                                                                  \
            [[unroll]] for (uint g = 0; g < G; g++) {                          \
                const float alpha = exp(m[g] - mt[g]);                         \
                l[g] *= alpha;                                                 \
                [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] *= alpha; \
                m[g] = mt[g];                                                  \
            }                                                                  \
            float pr[RH]; /* the weights of the values this lane holds */      \
            [[unroll]] for (uint r = 0; r < RH; r++) {                         \
                const uint v = (ln_ >> SH) * RH + r;                           \
                float mg = 0.0;                                                \
                [[unroll]] for (uint g = 0; g < G; g++) {                      \
                    if (v % G == g) mg = mt[g];                                \
                }                                                              \
                pr[r] = v < TV && (base) + (v / G) * NSLOT + (slot) < (end) ? exp(x[r] - mg) : 0.0; \
            }                                                                  \
            [[unroll]] for (uint v = 0; v < TV; v++) xa[v] = subgroupShuffle(pr[v % RH], s0_ + ((v / RH) << SH)); \
            [[unroll]] for (uint g = 0; g < G; g++) {                          \
                [[unroll]] for (uint i = 0; i < TILE; i++) l[g] += xa[i * G + g]; \
            }                                                                  \
        } else {                                                               \
            [[unroll]] for (uint off = TPT / 2; off > 0; off >>= 1) {          \
                [[unroll]] for (uint v = 0; v < TV; v++) x[v] += subgroupShuffleXor(x[v], off); \
            }                                                                  \
            [[unroll]] for (uint g = 0; g < G; g++) {                          \
                float mt = m[g];                                               \
                [[unroll]] for (uint i = 0; i < TILE; i++) {                   \
                    if ((base) + i * NSLOT + (slot) < (end)) mt = max(mt, x[i * G + g]); \
                }                                                              \
                const float alpha = exp(m[g] - mt);                            \
                l[g] *= alpha;                                                 \
                [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] *= alpha; \
                m[g] = mt;                                                     \
                [[unroll]] for (uint i = 0; i < TILE; i++) {                   \
                    const float p = (base) + i * NSLOT + (slot) < (end) ? exp(x[i * G + g] - mt) : 0.0; \
                    l[g] += p;                                                 \
                    xa[i * G + g] = p;                                         \
                }                                                              \
            }                                                                  \
        }                                                                      \
        [[unroll]] for (uint i = 0; i < TILE; i++) {                           \
            float vf[EPL];                                                     \
            [[unroll]] for (uint j = 0; j < VPL; j++) KV_UNPACK(vc[i * VPL + j], vf, j * KV_VEC); \
            [[unroll]] for (uint g = 0; g < G; g++) {                          \
                [[unroll]] for (uint e = 0; e < EPL; e++) o[g * EPL + e] += xa[i * G + g] * vf[e]; \
            }                                                                  \
        }                                                                      \
    }

// SPLIT_LIST(len, slot): the attention of the slot over its entries of the
// list sh_idx[0 .. len) of token indices (sparse_split.glsl, select_attend):
// tile by tile (entry i of the tile at eb is eb + i*NSLOT + slot, i < TILE),
// the next tile's K and V vectors loaded while the current one is computed.
// Every slot runs the same trip count (the shuffles need uniform control
// flow: len uniform over the workgroup); entries past len are masked. Reads
// the kernel's kb and vb (KV_T vectors of the cache) and rowv, the index of
// the lane's first vector of the row's token 0 in kb (row * cap * KV_RS +
// KV_POS(lane)).
#define SPLIT_LOAD_LIST(eb, len, slot) {                                       \
        [[unroll]] for (uint i = 0; i < TILE; i++) {                           \
            const uint e_ = (eb) + i * NSLOT + (slot);                         \
            const uint t_ = e_ < (len) ? SH_IDX(e_) : 0;                       \
            [[unroll]] for (uint j = 0; j < VPL; j++) {                        \
                kn[i * VPL + j] = e_ < (len) ? kb[rowv + t_ * KV_RS + KV_POS(j * TPT)] : KV_ZERO; \
                vn[i * VPL + j] = e_ < (len) ? vb[rowv + KV_VOFF + t_ * KV_RS + KV_POS(j * TPT)] : KV_ZERO; \
            }                                                                  \
        }                                                                      \
    }
#define SPLIT_LIST(len, slot) {                                                \
        KV_T kn[TILE * VPL], vn[TILE * VPL];                                   \
        SPLIT_LOAD_LIST(0, len, slot)                                          \
        for (uint eb = 0; eb < (len); eb += NSLOT * TILE) {                    \
            KV_T kc[TILE * VPL], vc[TILE * VPL];                               \
            [[unroll]] for (uint x_ = 0; x_ < TILE * VPL; x_++) {              \
                kc[x_] = kn[x_];                                               \
                vc[x_] = vn[x_];                                               \
            }                                                                  \
            if (eb + NSLOT * TILE < (len)) SPLIT_LOAD_LIST(eb + NSLOT * TILE, len, slot) \
            SPLIT_TILE(eb, len, slot)                                          \
        }                                                                      \
    }

// SPLIT_MERGE(qrow, s, lane, slot, li): merges the NSLOT slots' (m, l, o) of
// every head qrow+g, all heads at once (OHEADS = G, SPLIT_MERGE_HEADS) or one
// at a time (SPLIT_MERGE_EACH), rescaling each to the workgroup's max mw, and
// writes partial row pr = (qrow+g)*S + s: pml[pr] = (mw, lw) and po[pr][D/4]
// = o (not normalised); with FUSED and S == 1 it writes the output instead,
// out_[qrow+g] = o / lw. li is gl_LocalInvocationIndex.
#define SPLIT_MERGE(qrow, s, lane, slot, li)                                   \
    if ((lane) == 0) {                                                         \
        [[unroll]] for (uint g = 0; g < G; g++) {                              \
            sh_m[(slot) * G + g] = m[g];                                       \
            sh_l[(slot) * G + g] = l[g];                                       \
        }                                                                      \
    }                                                                          \
    if (OHEADS > 1) {                                                          \
        SPLIT_MERGE_HEADS(qrow, s, lane, slot, li)                             \
    } else {                                                                   \
        barrier();                                                             \
        SPLIT_MERGE_EACH(qrow, s, lane, slot, li)                              \
    }

// SPLIT_MERGE_HEADS: SPLIT_MERGE's merge of every head at once (OHEADS = G):
// every slot writes its o of all G heads as they are (row slot*G + g of
// sh_o) beside its (m, l), and after one barrier (one more before, when sh_o
// held the index list) each lane merges the slots of (head, column) pairs,
// G*D/4 in all, rescaling each slot's o to the heads' max there: two or
// three barriers where one head at a time takes 2G+1. On the H200 the
// sparse attention's slot merge went from 3.0 to 0.5 us at B8/32K (traced,
// BENCHMARKS.md), once the index list shared sh_o (12420 bytes of shared
// memory per workgroup had let three share a compute unit, not four).
#define SPLIT_MERGE_HEADS(qrow, s, lane, slot, li)                             \
    if (IDX_VEC4 > 0) barrier(); /* every slot done with the list in sh_o */   \
    [[unroll]] for (uint g = 0; g < G; g++) {                                  \
        [[unroll]] for (uint j = 0; j < VPL; j++) {                            \
            [[unroll]] for (uint c = 0; c < KV_VEC; c += 4) {                  \
                const uint e_ = g * EPL + j * KV_VEC + c;                      \
                sh_o[(((slot) * G + g) * D + (j * TPT + (lane)) * KV_VEC + c) / 4] = \
                    vec4(o[e_], o[e_ + 1], o[e_ + 2], o[e_ + 3]);              \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    barrier();                                                                 \
    {                                                                          \
        const bool direct = FUSED && (SPLIT_COUNT) == 1;                       \
        for (uint i = (li); i < G * D4; i += gl_WorkGroupSize.x) {             \
            const uint g = i / D4, c = i % D4;                                 \
            float mw = NEG;                                                    \
            [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) mw = max(mw, sh_m[sl * G + g]); \
            float lw = 0.0;                                                    \
            vec4 acc = vec4(0.0);                                              \
            [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) {                   \
                const float w = exp(sh_m[sl * G + g] - mw);                    \
                lw += sh_l[sl * G + g] * w;                                    \
                acc += sh_o[(sl * G + g) * D4 + c] * w;                        \
            }                                                                  \
            const uint pr = ((qrow) + g) * pc.splits + (s); /* partial row */ \
            if (direct) {                                                      \
                out_[((qrow) + g) * D4 + c] = acc / lw;                        \
            } else {                                                           \
                po[pr * D4 + c] = acc;                                         \
                if (c == 0) pml[pr] = vec2(mw, lw);                            \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    barrier();

// SPLIT_MERGE_EACH: SPLIT_MERGE's merge one head at a time (sh_o holds one
// head's NSLOT rows).
#define SPLIT_MERGE_EACH(qrow, s, lane, slot, li)                              \
    [[unroll]] for (uint g = 0; g < G; g++) {                                  \
        float mw = NEG;                                                        \
        [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) mw = max(mw, sh_m[sl * G + g]); \
        const float w = exp(m[g] - mw);                                        \
        [[unroll]] for (uint j = 0; j < VPL; j++) {                            \
            [[unroll]] for (uint c = 0; c < KV_VEC; c += 4) {                  \
                const uint e_ = g * EPL + j * KV_VEC + c;                      \
                sh_o[((slot) * D + (j * TPT + (lane)) * KV_VEC + c) / 4] =     \
                    vec4(o[e_], o[e_ + 1], o[e_ + 2], o[e_ + 3]) * w;          \
            }                                                                  \
        }                                                                      \
        barrier();                                                             \
        const uint pr = ((qrow) + g) * pc.splits + (s); /* partial row */     \
        float lw = 0.0;                                                        \
        [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) lw += sh_l[sl * G + g] * exp(sh_m[sl * G + g] - mw); \
        const bool direct = FUSED && (SPLIT_COUNT) == 1;                       \
        for (uint i = (li); i < D4; i += gl_WorkGroupSize.x) {                 \
            vec4 acc = vec4(0.0);                                              \
            [[unroll]] for (uint sl = 0; sl < NSLOT; sl++) acc += sh_o[sl * D4 + i]; \
            if (direct) {                                                      \
                out_[((qrow) + g) * D4 + i] = acc / lw;                        \
            } else {                                                           \
                po[pr * D4 + i] = acc;                                         \
            }                                                                  \
        }                                                                      \
        if ((li) == 0 && !direct) pml[pr] = vec2(mw, lw);                      \
        barrier();                                                             \
    }

// MERGE_U: splits whose partials each lane of split_fold loads before adding
// them, per head: G*MERGE_U of o's vec4 and (m, l) in flight, about 16, or
// about 12 when every head is merged at once (sparse_split: 118 registers
// against 128 with 16 on the H200, where 128 is the most that lets four
// workgroups of 128 share a compute unit).
const uint MERGE_U = OHEADS > 1 ? (12 + G - 1) / G : (16 + G - 1) / G;

// split_fold(row, qrow): with FUSED and S > 1, the log-sum-exp merge of the
// S partials of the G query heads qrow .. qrow+G-1 of cache row row, done by
// the workgroup that finishes the row's last split (the threadfence
// reduction): every workgroup, once its partials are written, meets at a
// barrier and one lane counts the split done, atomicAdd(cnt[row], 1) with
// device-scope release and acquire; the workgroup that reads S-1 back is the
// last, and after a second barrier it computes, per head g with partials
// (m_s, l_s, o_s),
//
//	M   = max_s m_s
//	L   = sum_s l_s * exp(m_s - M)
//	out = sum_s o_s * exp(m_s - M) / L
//
// and resets cnt[row] to 0 for the next dispatch (so the counters are zeroed
// once, when allocated). In one pass over the partials, as lse_merge.glsl:
// the workgroup is cut into groups of cw = min(D/4, WG) lanes, one vec4
// column each, group k taking the splits s = k mod groups; each lane loads
// MERGE_U splits' o_s and (m_s, l_s) of every head together and folds them
// into a running (m, l, acc) per head with the online rescale, so no load
// waits for M (an earlier form found M and L in a pass of its own, a
// dependent round of loads more); the groups are then combined through
// sh_m, sh_l and sh_o with the same rule.
#ifdef SPLIT_OWN_COUNT
void split_fold(const uint row, const uint qrow, const uint S) { // S of the row's, pc.splits the stride
    if (!FUSED || S == 1) return;
    const uint li = gl_LocalInvocationIndex;
    const uint WG = gl_WorkGroupSize.x;
#define SPLIT_STRIDE pc.splits
#else
void split_fold(const uint row, const uint qrow) {
    if (!FUSED || pc.splits == 1) return;
    const uint li = gl_LocalInvocationIndex;
    const uint WG = gl_WorkGroupSize.x;
    const uint S = pc.splits;
#define SPLIT_STRIDE S
#endif
    LAST_OF(cnt[row], S) // the po, pml writes released
    if (!sh_last) return; // uniform over the workgroup
    if (li == 0) cnt[row] = 0;

    const uint cw = min(D4, WG); // columns per pass (one pass unless D/4 > WG)
    const uint groups = WG / cw; // <= NSLOT (TPT <= D/4): sh_m, sh_l hold groups*G
    const uint k = li / cw;
    for (uint c0 = 0; c0 < D4; c0 += cw) {
        const uint i4 = c0 + li % cw;
        float mk[G], lk[G];
        vec4 acc[G];
        [[unroll]] for (uint g = 0; g < G; g++) {
            mk[g] = NEG;
            lk[g] = 0.0;
            acc[g] = vec4(0.0);
        }
        if (k < groups && i4 < D4) {
            for (uint s0 = k; s0 < S; s0 += groups * MERGE_U) {
                vec4 v[G * MERGE_U];
                vec2 ml[G * MERGE_U];
                [[unroll]] for (uint g = 0; g < G; g++) {
                    [[unroll]] for (uint u = 0; u < MERGE_U; u++) {
                        const uint s = s0 + u * groups;
                        const uint pr = (qrow + g) * SPLIT_STRIDE + s;
                        v[g * MERGE_U + u] = s < S ? po[pr * D4 + i4] : vec4(0.0);
                        ml[g * MERGE_U + u] = s < S ? pml[pr] : vec2(NEG, 0.0);
                    }
                }
                [[unroll]] for (uint g = 0; g < G; g++) {
                    float mn = mk[g];
                    [[unroll]] for (uint u = 0; u < MERGE_U; u++) mn = max(mn, ml[g * MERGE_U + u].x);
                    const float a = exp(mk[g] - mn);
                    acc[g] *= a;
                    lk[g] *= a;
                    [[unroll]] for (uint u = 0; u < MERGE_U; u++) {
                        const float w = exp(ml[g * MERGE_U + u].x - mn);
                        acc[g] += v[g * MERGE_U + u] * w;
                        lk[g] += ml[g * MERGE_U + u].y * w;
                    }
                    mk[g] = mn;
                }
            }
            if (li % cw == 0) {
                [[unroll]] for (uint g = 0; g < G; g++) {
                    sh_m[k * G + g] = mk[g];
                    sh_l[k * G + g] = lk[g];
                }
            }
        }
        // WG <= NSLOT * D4 (D is a multiple of 4*TPT), so sh_o holds a vec4 per lane.
        [[unroll]] for (uint g = 0; g < G; g++) {
            sh_o[li] = acc[g];
            barrier();
            if (li < cw && c0 + li < D4) {
                float mx = NEG;
                for (uint kk = 0; kk < groups; kk++) mx = max(mx, sh_m[kk * G + g]);
                float z = 0.0;
                vec4 a = vec4(0.0);
                for (uint kk = 0; kk < groups; kk++) {
                    const float w = exp(sh_m[kk * G + g] - mx);
                    z += sh_l[kk * G + g] * w;
                    a += sh_o[kk * cw + li] * w;
                }
                out_[(qrow + g) * D4 + c0 + li] = a / z;
            }
            barrier();
        }
    }
}
