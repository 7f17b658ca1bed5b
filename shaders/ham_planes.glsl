// ham_planes.glsl: HATA's GQA-summed Hamming score of a key code against the
// G query codes of its group (ref.HammingScores),
//
//	S(k) = sum_{g < G} popcount(q_g XOR k)
//
// counted on bit planes of the group instead of once per head. At one bit
// position let c = #{g : q_g has the bit set}; the position adds c to S when
// the key's bit is 0 and G - c when it is 1. Write both in binary over NP
// bits (G < 2^NP), as bit planes across the 32 positions of a word: A_j =
// bit j of c, B_j = bit j of G - c. Where the key's bit is 0 the position's
// count has bit j equal to A_j, where it is 1 to B_j, so with X_j = A_j XOR
// B_j
//
//	S(k) = sum_words sum_{j < NP} 2^j popcount(A_j XOR (k AND X_j))
//
// For even G, c and G - c have the same parity: X_0 = 0 and plane 0 adds
// popcount(A_0), the same for every key (base). So a key costs NP - J0 bit
// counts and as many three-input logic operations per word instead of G bit
// counts and G XORs: at G = 4 (Llama-3.1) two instead of four, at G = 8
// three instead of eight, at G = 1 one as before (A_0 = q, X_0 = all ones).
// Padding bits past rbit are 0 in every code: c = 0 and the key's 0 there
// select A = 0, adding nothing. Integer arithmetic: the scores are exactly
// ref's. On the H200 hata_score's stage took 2-9 us less with it (BENCHMARKS.md,
// session 9, runs 93-95).
//
// Key codes of 32 and 64 bits are not padded (CPV > 1): a uvec4 of the key
// codes holds four or two of them, so the score reads rbit/8 bytes a token;
// the query codes stay one uvec4 (WV = 1) with zero words past the code,
// and the planes' words there are zero, which the compiler folds away.
//
// Include after the specialization constants G (query heads per KV head),
// WV (uvec4 per code) and CPV (key codes per uvec4: 1, or with WV = 1 2 for
// rbit 64 and 4 for rbit 32). The planes are macros, not functions, so that their
// arrays keep the includer's types (an array parameter sized by another
// specialization-constant expression is another SPIR-V type: see
// reduce_scatter.glsl):
//
//	HAM_PLANES(q, pa, px, base)   declares uvec4 pa[NPK*WV], px[NPK*WV] and
//	                              uint base from the query codes q: uvec4
//	                              [G*WV] (head g's uvec4 v at g*WV + v)
//	HAM_SCORE2(s0, s1, pa, px, base, ka, kb, i)  sets uint s0 and s1 to S
//	                              of the key codes ka[i*WV .. i*WV + WV) and
//	                              kb[...] (uvec4; a lane's pair of tokens)
//	HAM_LOAD2(kc, rt, t, c1, ka, kb, i)  loads those codes: of tokens t and
//	                              t + 1 (t even) at position rt = row*cap + t
//	                              of the key codes kc [rows][cap] (cap a
//	                              multiple of 4), zero from c1 on

const uint NP = G < 2 ? 1 : (G < 4 ? 2 : (G < 8 ? 3 : (G < 16 ? 4 : (G < 32 ? 5 : (G < 64 ? 6 : 7)))));
const uint J0 = G % 2 == 0 ? 1 : 0; // the first plane that depends on the key
const uint NPK = NP - J0;           // planes counted per key

// ham_count returns popcount(a XOR (k AND x)) summed over the 4 words.
uint ham_count(uvec4 a, uvec4 x, uvec4 k) {
    const ivec4 c = bitCount(a ^ (k & x));
    return uint(c.x + c.y + c.z + c.w);
}

// Word by word: c counted by a ripple adder over the heads, G - c as ~c + G
// + 1 modulo 2^NP, bit-sliced. Plane j >= J0 of word e of uvec4 v is
// pa[(j - J0)*WV + v][e] (A_j) and px[...][e] (X_j); the planes below J0 add
// base.
#define HAM_PLANES(q, pa, px, base)                                            \
    uvec4 pa[NPK * WV], px[NPK * WV];                                          \
    uint base = 0;                                                             \
    [[unroll]] for (uint v_ = 0; v_ < WV; v_++) {                              \
        [[unroll]] for (uint e_ = 0; e_ < 4; e_++) {                           \
            uint c_[NP];                                                       \
            [[unroll]] for (uint j_ = 0; j_ < NP; j_++) c_[j_] = 0;            \
            [[unroll]] for (uint g_ = 0; g_ < G; g_++) {                       \
                uint carry_ = (q)[g_ * WV + v_][e_];                           \
                [[unroll]] for (uint j_ = 0; j_ < NP; j_++) {                  \
                    const uint t_ = c_[j_] & carry_;                           \
                    c_[j_] ^= carry_;                                          \
                    carry_ = t_;                                               \
                }                                                              \
            }                                                                  \
            uint carry_ = 0;                                                   \
            [[unroll]] for (uint j_ = 0; j_ < NP; j_++) {                      \
                const uint nc_ = ~c_[j_];                                      \
                const uint kb_ = (((G + 1) >> j_) & 1) != 0 ? ~0u : 0u;        \
                const uint b_ = nc_ ^ kb_ ^ carry_; /* bit j of G - c */       \
                carry_ = (nc_ & kb_) | (nc_ & carry_) | (kb_ & carry_);        \
                if (j_ < J0) {                                                 \
                    base += uint(bitCount(c_[j_]));                            \
                } else {                                                       \
                    const bool in_ = CPV == 1 || e_ < 4 / CPV; /* a word of the code */ \
                    pa[(j_ - J0) * WV + v_][e_] = in_ ? c_[j_] : 0u;           \
                    px[(j_ - J0) * WV + v_][e_] = in_ ? c_[j_] ^ b_ : 0u;      \
                }                                                              \
            }                                                                  \
        }                                                                      \
    }

#define HAM_SCORE2(s0, s1, pa, px, base, ka, kb, i)                          \
    {                                                                          \
        s0 = base;                                                             \
        s1 = base;                                                             \
        [[unroll]] for (uint j_ = 0; j_ < NPK; j_++) {                         \
            uint n0_ = 0, n1_ = 0;                                             \
            [[unroll]] for (uint w_ = 0; w_ < WV; w_++) {                      \
                n0_ += ham_count(pa[j_ * WV + w_], px[j_ * WV + w_], (ka)[(i) * WV + w_]); \
                n1_ += ham_count(pa[j_ * WV + w_], px[j_ * WV + w_], (kb)[(i) * WV + w_]); \
            }                                                                  \
            s0 += n0_ << (j_ + J0);                                            \
            s1 += n1_ << (j_ + J0);                                            \
        }                                                                      \
    }

#define HAM_LOAD2(kc, rt, t, c1, ka, kb, i)                                    \
    if (CPV == 1) {                                                            \
        [[unroll]] for (uint w_ = 0; w_ < WV; w_++) {                          \
            (ka)[(i) * WV + w_] = (t) < (c1) ? (kc)[(rt) * WV + w_] : uvec4(0); \
            (kb)[(i) * WV + w_] = (t) + 1 < (c1) ? (kc)[((rt) + 1) * WV + w_] : uvec4(0); \
        }                                                                      \
    } else {                                                                   \
        uvec4 x_ = (t) < (c1) ? (kc)[(rt) / CPV] : uvec4(0);                   \
        if (CPV == 4 && ((rt) & 2u) != 0) x_ = x_.zwxy; /* the pair's half */  \
        (ka)[(i) * WV] = CPV == 2 ? uvec4(x_.xy, 0, 0) : uvec4(x_.x, 0, 0, 0); \
        (kb)[(i) * WV] = (t) + 1 >= (c1) ? uvec4(0) : (CPV == 2 ? uvec4(x_.zw, 0, 0) : uvec4(x_.y, 0, 0, 0)); \
    }
