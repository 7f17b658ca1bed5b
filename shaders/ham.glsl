// ham.glsl: HATA's GQA-summed Hamming score of a key code against the G
// query codes of its group, with fewer bit counts than one per head,
//
//	S(k) = sum_{g < G} popcount(q_g XOR k)
//
// At one bit position let c = #{g : q_g has the bit set}; the position adds
// c to S when the key's bit is 0 and G - c when it is 1. Write both in binary
// over NP bits (G < 2^NP), as bit planes across the 32 positions of a word:
// A_j = bit j of c, B_j = bit j of G - c. Where the key's bit is 0 the
// position's count has bit j equal to A_j, where it is 1 to B_j, so with
// X_j = A_j XOR B_j
//
//	S(k) = sum_{j < NP} 2^j popcount(A_j XOR (k AND X_j))
//
// summed over the code's words. For even G, c and G - c have the same parity:
// X_0 = 0 and plane 0 adds popcount(A_0), the same for every key (HAM_BASE).
// So a key costs NP - J0 bit counts per word instead of G: at G = 4 (Llama-3.1)
// two instead of four, at G = 8 three instead of eight, at G = 1 one as before
// (A_0 = q, X_0 = all ones: q XOR k). The planes are computed once per
// workgroup (ham_planes); padding bits past rbit are 0 in every code, so c = 0
// and the key's 0 there select A = 0: they add nothing.
//
// Include it after declaring the specialization constants G and WV (uvec4
// per code); the includer defines ham_qword. Integer arithmetic: the scores
// are exactly ref.HammingScores'.

const uint NP = G < 2 ? 1 : (G < 4 ? 2 : (G < 8 ? 3 : (G < 16 ? 4 : (G < 32 ? 5 : (G < 64 ? 6 : 7)))));
const uint J0 = G % 2 == 0 ? 1 : 0; // the first plane that depends on the key
const uint NPK = NP - J0;           // planes counted per key
const uint NW = WV * 4;             // 32-bit words per code

// The planes of the workgroup's query group, word w of plane j at j*NW + w:
// sh_ham_a holds A_j, sh_ham_x X_j.
shared uint sh_ham_a[NP * NW];
shared uint sh_ham_x[NP * NW];

// ham_qword returns word w (< NW) of the code of query head g (< G) of the
// workgroup's group (the includer's).
uint ham_qword(uint g, uint w);

// ham_planes writes to sh_ham_a and sh_ham_x the planes of word w (< NW) of
// the G query codes: c counted in NP bit planes (a ripple adder per code),
// G - c as ~c + G + 1 modulo 2^NP, also bit-sliced.
void ham_planes(uint w) {
    uint c[NP];
    [[unroll]] for (uint j = 0; j < NP; j++) c[j] = 0;
    [[unroll]] for (uint g = 0; g < G; g++) {
        uint carry = ham_qword(g, w);
        [[unroll]] for (uint j = 0; j < NP; j++) {
            const uint t = c[j] & carry;
            c[j] ^= carry;
            carry = t;
        }
    }
    uint carry = 0;
    [[unroll]] for (uint j = 0; j < NP; j++) {
        const uint nc = ~c[j];
        const uint kb = (((G + 1) >> j) & 1) != 0 ? ~0u : 0u;
        const uint b = nc ^ kb ^ carry; // bit j of G - c
        carry = (nc & kb) | (nc & carry) | (kb & carry);
        sh_ham_a[j * NW + w] = c[j];
        sh_ham_x[j * NW + w] = c[j] ^ b;
    }
}

// HAM_LOAD declares the key-independent part of the score, uint ham_base,
// and the planes the keys are counted against, uvec4 ham_a[NPK * WV] and
// ham_x[NPK * WV], from the shared planes (after a barrier that follows
// ham_planes).
#define HAM_LOAD                                                               \
    uint ham_base = 0;                                                         \
    if (J0 == 1) {                                                             \
        [[unroll]] for (uint w_ = 0; w_ < NW; w_++) ham_base += uint(bitCount(sh_ham_a[w_])); \
    }                                                                          \
    uvec4 ham_a[NPK * WV], ham_x[NPK * WV];                                    \
    [[unroll]] for (uint j_ = 0; j_ < NPK; j_++) {                             \
        [[unroll]] for (uint v_ = 0; v_ < WV; v_++) {                          \
            const uint o_ = (j_ + J0) * NW + 4 * v_;                           \
            ham_a[j_ * WV + v_] = uvec4(sh_ham_a[o_], sh_ham_a[o_ + 1], sh_ham_a[o_ + 2], sh_ham_a[o_ + 3]); \
            ham_x[j_ * WV + v_] = uvec4(sh_ham_x[o_], sh_ham_x[o_ + 1], sh_ham_x[o_ + 2], sh_ham_x[o_ + 3]); \
        }                                                                      \
    }

// HAM_SCORE(s, code, u): s = S of the key code code[u*WV .. u*WV + WV)
// (uvec4).
#define HAM_SCORE(s, code, u) {                                                  \
        s = ham_base;                                                          \
        [[unroll]] for (uint j_ = 0; j_ < NPK; j_++) {                         \
            uint n_ = 0;                                                       \
            [[unroll]] for (uint v_ = 0; v_ < WV; v_++) {                      \
                const ivec4 b_ = bitCount(ham_a[j_ * WV + v_] ^ ((code)[(u) * WV + v_] & ham_x[j_ * WV + v_])); \
                n_ += uint(b_.x + b_.y + b_.z + b_.w);                         \
            }                                                                  \
            s += n_ << (j_ + J0);                                              \
        }                                                                      \
    }
