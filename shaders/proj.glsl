// proj.glsl: the projection p = x·W behind HATA's hash encoder and Loki's
// rotation, for a batch of vectors x: [D]. Included by
//
//	hata_encode_q.comp, hata_encode_k_f32.comp, hata_encode_k_f16.comp (PROJ_BITS)
//	loki_rotate_q.comp, loki_rotate_k_f32.comp, loki_rotate_k_f16.comp
//	loki_rotate_kh_f32.comp, loki_rotate_kh_f16.comp (PROJ_OUT_F16)
//
// which define PROJ_Q (x are query heads, float32) or KV_F32 / KV_F16 (x are
// cached keys, read from the K cache), PROJ_BITS for the sign code and
// PROJ_OUT_F16 (keys only) for float16 outputs:
//
//	p[j] = sum_{i < D} x[i] * W[h][i][j]      float32, i ascending, j < NCOL
//	PROJ_BITS: bit j = p[j] > 0 (strictly: 0 gives bit 0), in word j/32 at bit
//	           j%32; each code is ostride words, those past NCOL/32 zero
//	otherwise: out[j] = p[j] for j < NCOL and 0 for NCOL <= j < ostride,
//	           PROJ_OUT_F16: rounded to float16 (packHalf2x16), two to a
//	           uint, ostride even (in halves), clamped to float16's finite
//	           range ±65504 first (a rotated key past it saturates instead
//	           of becoming Inf; vk.Loki stores float32 keys where a
//	           prefilled key could reach it)
//
// (HATA.md: codes; ref.HashWeights.Encode. Loki: the first c channels of
// x P; ref.Loki.rotate.) With the acceptance suite's dyadic inputs every
// product and partial sum is exact in float32, so the bits equal ref's.
//
// Vectors:
//	PROJ_Q:  the G query heads of cache row r = gl_WorkGroupID.y (query head
//	         b*Hq + h*G + g is vector r*G + g of q), W head r % Hkv, output
//	         rows r*G + g; the workgroup computes the 32 columns
//	         j = 32*gl_WorkGroupID.x + lane, its WG/32 slices of lanes each
//	         summing D/(WG/32) of the d's with all their W loads in flight,
//	         then the slices are added in shared memory: the decode step's
//	         encode is a few memory latencies long, not D of them.
//	keys:    token t = t0 + gl_WorkGroupID.x*VPW + i < t1 of bound row
//	         k = gl_WorkGroupID.y (cache row r = row0 + k), x = K[k][t], W head
//	         r % Hkv, output row k*cap + t of the bound output (which, like
//	         K, starts at cache row row0); a workgroup loads VPW keys into
//	         shared memory and each lane computes the columns j = li, li+WG,
//	         ... of all VPW keys, so that every W row is read once per VPW
//	         keys, coalesced over j.
//
// Bindings (set 0):
//	0 x    PROJ_Q: q [rows*G][D] float32; keys: K [rows][cap][D] (KV_T vectors)
//	1 W    [Hkv][D][ldw] float32 (W[h][i][j] at (h*D + i)*ldw + j)
//	2 out  PROJ_BITS: uint [vectors][ostride]; PROJ_OUT_F16: uint [vectors][ostride/2]
//	       (halves 2w, 2w+1 in word w, the first in the low bits); otherwise
//	       float [vectors][ostride]
// Dispatch: PROJ_Q (blocks, rows, 1) with blocks = ostride for bits (a block
// is one word) and ceil(ostride/32) for floats; keys (ceil((t1-t0)/VPW),
// rows, 1).

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#if !defined(PROJ_Q)
#include "kv.glsl"
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;   // vector length
layout(constant_id = 2) const uint NCOL = 128; // columns computed (rbit, or Loki's c)
#if defined(PROJ_Q)
layout(constant_id = 3) const uint G = 1;      // query heads per KV head
#else
layout(constant_id = 3) const uint VPW = 8;    // vectors per workgroup
layout(constant_id = 4) const bool KV_PAIRED = false; // keys: a token's K and V side by side (SparseOptions.PairedKV)
#endif

const uint WG = gl_WorkGroupSize.x;

layout(push_constant) uniform PushConstants {
    uint t0;      // keys: first token
    uint t1;      // keys: end token
    uint cap;     // keys: row stride of K and of the output, in tokens
    uint hkv;     // KV heads
    uint group;   // unused (G is a specialization constant of PROJ_Q)
    uint ldw;     // row stride of W, in floats
    uint ostride; // output row stride, in words (bits) or floats
    uint row0;    // keys: the cache row of the bound K's row 0 (a cache in several buffers)
} pc;

#if defined(PROJ_Q)
layout(std430, set = 0, binding = 0) restrict readonly buffer X { float x_[]; };
#else
layout(std430, set = 0, binding = 0) restrict readonly buffer X { KV_T x_[]; };
#endif
layout(std430, set = 0, binding = 1) restrict readonly buffer W { float w[]; };
#if defined(PROJ_BITS) || defined(PROJ_OUT_F16)
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { uint out_[]; };
#else
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { float out_[]; };
#endif

#if defined(PROJ_Q)
const uint CB = 32;          // columns per workgroup (one code word)
const uint DS = WG / CB;     // slices of D
const uint DPS = (D + DS - 1) / DS;

shared float sh_q[G * D];
shared float sh_red[DS * G * CB];
#if defined(PROJ_BITS)
shared uint sh_code[G];
#endif

// With TRACE (hata_encode_q_trace.comp) lane 0 of every workgroup reads the
// device clock at its start, once q is in shared memory, once the slices'
// sums are, and at its end (vk's EncodeTracePhases), into
//	3 trace [vectors/G][blocks][TRACE_POINTS] uint (trace.glsl)
#define TRACE_BINDING 3
#define TRACE_POINTS 4
#define TRACE_WG (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
#include "trace.glsl"

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint lane = li % CB, slice = li / CB;
    const uint j = gl_WorkGroupID.x * CB + lane;
    const uint head = row % pc.hkv;
    TRACE_AT(0)
    for (uint e = li; e < G * D; e += WG) sh_q[e] = x_[row * G * D + e];
#if defined(PROJ_BITS)
    if (li < G) sh_code[li] = 0;
#endif
    barrier();
    TRACE_AT(1)
    float acc[G];
    [[unroll]] for (uint g = 0; g < G; g++) acc[g] = 0.0;
    if (j < NCOL) {
        float wv[DPS];
        [[unroll]] for (uint i = 0; i < DPS; i++) {
            const uint d = slice * DPS + i;
            wv[i] = d < D ? w[(head * D + d) * pc.ldw + j] : 0.0;
        }
        [[unroll]] for (uint i = 0; i < DPS; i++) {
            const uint d = slice * DPS + i;
            if (d < D) {
                [[unroll]] for (uint g = 0; g < G; g++) acc[g] += sh_q[g * D + d] * wv[i];
            }
        }
    }
    [[unroll]] for (uint g = 0; g < G; g++) sh_red[(slice * G + g) * CB + lane] = acc[g];
    barrier();
    TRACE_AT(2)
    // The slices' partial sums added pairwise, every lane taking part: the
    // round with n slices left adds slice s + n/2 into slice s (s < n/2),
    // down to two, whose sum is the last step's. (Adding the DS slices one
    // after another in one lane was a chain of DS*G dependent shared loads:
    // 64 at 512 lanes, about 1 us.)
    const uint O = G * CB; // outputs of the workgroup, [G][CB]
    for (uint n = DS; n > 2; n /= 2) {
        for (uint e = li; e < (n / 2) * O; e += WG) sh_red[e] += sh_red[e + (n / 2) * O];
        barrier();
    }
    for (uint e = li; e < O; e += WG) {
        const uint g = e / CB, jo = gl_WorkGroupID.x * CB + e % CB;
        const float p = DS > 1 ? sh_red[e] + sh_red[e + O] : sh_red[e];
#if defined(PROJ_BITS)
        if (jo < NCOL && p > 0.0) atomicOr(sh_code[g], 1u << (e % CB));
#else
        if (jo < pc.ostride) out_[(row * G + g) * pc.ostride + jo] = jo < NCOL ? p : 0.0;
#endif
    }
#if defined(PROJ_BITS)
    barrier();
    if (li < G && gl_WorkGroupID.x < pc.ostride) out_[(row * G + li) * pc.ostride + gl_WorkGroupID.x] = sh_code[li];
#endif
    TRACE_AT(3)
}
#else
shared float sh_x[VPW * D];
#if defined(PROJ_BITS)
const uint WORDS = (NCOL + 31) / 32;
shared uint sh_code[VPW * WORDS];
#endif
#if defined(PROJ_OUT_F16)
shared float sh_out[VPW * NCOL]; // the workgroup's p, packed two to a word at the end
const float HALF_MAX = 65504.0;  // float16's largest finite value
#endif

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint krow = gl_WorkGroupID.y; // row of the bound K
    const uint row = pc.row0 + krow;    // cache row
    const uint first = pc.t0 + gl_WorkGroupID.x * VPW; // first token of the workgroup
    const uint nv = min(VPW, pc.t1 - first);
    const uint DV = D / KV_VEC;
    for (uint e = li; e < VPW * DV; e += WG) {
        const uint i = e / DV, c = e % DV;
        float f[KV_VEC];
        if (i < nv) {
            // paired: 16-byte chunks of K and V alternate (kv.glsl's KV_TOKEN_RS, KV_KEY_POS)
            KV_LOAD(x_, (krow * pc.cap + first + i) * KV_TOKEN_RS + KV_KEY_POS(c), f, 0)
        } else {
            [[unroll]] for (uint j = 0; j < KV_VEC; j++) f[j] = 0.0;
        }
        [[unroll]] for (uint j = 0; j < KV_VEC; j++) sh_x[i * D + c * KV_VEC + j] = f[j];
    }
#if defined(PROJ_BITS)
    for (uint e = li; e < VPW * WORDS; e += WG) sh_code[e] = 0;
#endif
    barrier();

    const uint wbase = (row % pc.hkv) * D * pc.ldw;
    for (uint j = li; j < NCOL; j += WG) {
        float acc[VPW];
        [[unroll]] for (uint i = 0; i < VPW; i++) acc[i] = 0.0;
        for (uint d = 0; d < D; d++) {
            const float wd = w[wbase + d * pc.ldw + j];
            [[unroll]] for (uint i = 0; i < VPW; i++) acc[i] += sh_x[i * D + d] * wd;
        }
        [[unroll]] for (uint i = 0; i < VPW; i++) {
#if defined(PROJ_BITS)
            if (acc[i] > 0.0) atomicOr(sh_code[i * WORDS + j / 32], 1u << (j % 32));
#elif defined(PROJ_OUT_F16)
            sh_out[i * NCOL + j] = acc[i];
#else
            if (i < nv) out_[(krow * pc.cap + first + i) * pc.ostride + j] = acc[i];
#endif
        }
    }
#if defined(PROJ_BITS)
    barrier();
    for (uint e = li; e < VPW * pc.ostride; e += WG) {
        const uint i = e / pc.ostride, wd = e % pc.ostride;
        if (i < nv) out_[(krow * pc.cap + first + i) * pc.ostride + wd] = wd < WORDS ? sh_code[i * WORDS + wd] : 0u;
    }
#elif defined(PROJ_OUT_F16)
    barrier();
    const uint ow = pc.ostride / 2; // words per output vector
    for (uint e = li; e < VPW * ow; e += WG) {
        const uint i = e / ow, j = 2 * (e % ow);
        const float a = j < NCOL ? sh_out[i * NCOL + j] : 0.0;
        const float b = j + 1 < NCOL ? sh_out[i * NCOL + j + 1] : 0.0;
        if (i < nv) out_[(krow * pc.cap + first + i) * ow + e % ow] = packHalf2x16(clamp(vec2(a, b), -HALF_MAX, HALF_MAX));
    }
#else
    // Padding columns NCOL <= j < ostride are zero.
    for (uint e = li; e < VPW * (pc.ostride - NCOL); e += WG) {
        const uint i = e / (pc.ostride - NCOL), j = NCOL + e % (pc.ostride - NCOL);
        if (i < nv) out_[(krow * pc.cap + first + i) * pc.ostride + j] = 0.0;
    }
#endif
}
#endif
