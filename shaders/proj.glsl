// proj.glsl: the projection p = x·W behind HATA's hash encoder and Loki's
// rotation, for a batch of vectors x: [D]. Included by
//
//	hata_encode_q.comp, hata_encode_k_f32.comp, hata_encode_k_f16.comp (PROJ_BITS)
//	loki_rotate_q.comp, loki_rotate_k_f32.comp, loki_rotate_k_f16.comp
//
// which define PROJ_Q (x are query heads, float32) or KV_F32 / KV_F16 (x are
// cached keys, read from the K cache), and PROJ_BITS for the sign code:
//
//	p[j] = sum_{i < D} x[i] * W[h][i][j]      float32, i ascending, j < NCOL
//	PROJ_BITS: bit j = p[j] > 0 (strictly: 0 gives bit 0), in word j/32 at bit
//	           j%32; each code is ostride words, those past NCOL/32 zero
//	otherwise: out[j] = p[j] for j < NCOL and 0 for NCOL <= j < ostride
//
// (HATA.md: codes; ref.HashWeights.Encode. Loki: the first c channels of
// x P; ref.Loki.rotate.) With the acceptance suite's dyadic inputs every
// product and partial sum is exact in float32, so the bits equal ref's.
//
// Vectors:
//	PROJ_Q:  v = gl_WorkGroupID.x*VPW + i < t1 (t1 = B*Hq), x = q[v], row r = v/G
//	         (query head b*Hq + h*G + g belongs to cache row b*Hkv + h), W head
//	         r % Hkv, output row v
//	keys:    token t = t0 + gl_WorkGroupID.x*VPW + i < t1 of cache row
//	         r = gl_WorkGroupID.y, x = K[r][t], W head r % Hkv, output row
//	         r*cap + t
//
// A workgroup loads VPW vectors into shared memory and each lane computes the
// columns j = li, li+WG, ... of all VPW vectors, so that every W row is read
// once per VPW vectors, coalesced over j.
//
// Bindings (set 0):
//	0 x    PROJ_Q: q [rows*G][D] float32; keys: K [rows][cap][D] (KV_T vectors)
//	1 W    [Hkv][D][ldw] float32 (W[h][i][j] at (h*D + i)*ldw + j)
//	2 out  PROJ_BITS: uint [vectors][ostride]; otherwise float [vectors][ostride]
// Dispatch: PROJ_Q (ceil(t1/VPW), 1, 1); keys (ceil((t1-t0)/VPW), rows, 1).

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#if !defined(PROJ_Q)
#include "kv.glsl"
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;   // vector length
layout(constant_id = 2) const uint NCOL = 128; // columns computed (rbit, or Loki's c)
layout(constant_id = 3) const uint VPW = 8;    // vectors per workgroup

const uint WG = gl_WorkGroupSize.x;

layout(push_constant) uniform PushConstants {
    uint t0;      // keys: first token; PROJ_Q: 0
    uint t1;      // keys: end token; PROJ_Q: number of query vectors
    uint cap;     // keys: row stride of K and of the output, in tokens
    uint hkv;     // KV heads
    uint group;   // PROJ_Q: G, query heads per KV head
    uint ldw;     // row stride of W, in floats
    uint ostride; // output row stride, in words (bits) or floats
} pc;

#if defined(PROJ_Q)
layout(std430, set = 0, binding = 0) restrict readonly buffer X { float x_[]; };
#else
layout(std430, set = 0, binding = 0) restrict readonly buffer X { KV_T x_[]; };
#endif
layout(std430, set = 0, binding = 1) restrict readonly buffer W { float w[]; };
#if defined(PROJ_BITS)
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { uint out_[]; };
#else
layout(std430, set = 0, binding = 2) restrict writeonly buffer Out { float out_[]; };
#endif

shared float sh_x[VPW * D];
#if defined(PROJ_Q)
shared uint sh_head[VPW];
#endif
#if defined(PROJ_BITS)
shared uint sh_code[VPW * ((NCOL + 31) / 32)];
#endif

void main() {
    const uint li = gl_LocalInvocationIndex;
    const uint v0 = gl_WorkGroupID.x * VPW; // first vector (or token offset) of the workgroup
#if defined(PROJ_Q)
    const uint first = v0;
    const uint nv = min(VPW, pc.t1 - first);
    for (uint e = li; e < VPW * D; e += WG) {
        const uint i = e / D;
        sh_x[e] = i < nv ? x_[(first + i) * D + e % D] : 0.0;
    }
    if (li < VPW) sh_head[li] = ((first + li) / pc.group) % pc.hkv;
#else
    const uint row = gl_WorkGroupID.y;
    const uint first = pc.t0 + v0; // first token
    const uint nv = min(VPW, pc.t1 - first);
    const uint DV = D / KV_VEC;
    for (uint e = li; e < VPW * DV; e += WG) {
        const uint i = e / DV, c = e % DV;
        float f[KV_VEC];
        if (i < nv) {
            KV_LOAD(x_, (row * pc.cap + first + i) * DV + c, f, 0)
        } else {
            [[unroll]] for (uint j = 0; j < KV_VEC; j++) f[j] = 0.0;
        }
        [[unroll]] for (uint j = 0; j < KV_VEC; j++) sh_x[i * D + c * KV_VEC + j] = f[j];
    }
#endif
#if defined(PROJ_BITS)
    const uint WORDS = (NCOL + 31) / 32;
    for (uint e = li; e < VPW * WORDS; e += WG) sh_code[e] = 0;
#endif
    barrier();

    // Every vector of a key workgroup has the head of its row; a query
    // workgroup may straddle heads, so each vector looks its head up.
    for (uint j = li; j < NCOL; j += WG) {
        float acc[VPW];
        [[unroll]] for (uint i = 0; i < VPW; i++) acc[i] = 0.0;
#if defined(PROJ_Q)
        for (uint d = 0; d < D; d++) {
            [[unroll]] for (uint i = 0; i < VPW; i++) {
                acc[i] += sh_x[i * D + d] * w[(sh_head[i] * D + d) * pc.ldw + j];
            }
        }
#else
        const uint wbase = (row % pc.hkv) * D * pc.ldw + j;
        for (uint d = 0; d < D; d++) {
            const float wd = w[wbase + d * pc.ldw];
            [[unroll]] for (uint i = 0; i < VPW; i++) acc[i] += sh_x[i * D + d] * wd;
        }
#endif
#if defined(PROJ_BITS)
        [[unroll]] for (uint i = 0; i < VPW; i++) {
            if (acc[i] > 0.0) atomicOr(sh_code[i * WORDS + j / 32], 1u << (j % 32));
        }
#else
        [[unroll]] for (uint i = 0; i < VPW; i++) {
            if (i < nv) {
#if defined(PROJ_Q)
                out_[(first + i) * pc.ostride + j] = acc[i];
#else
                out_[(row * pc.cap + first + i) * pc.ostride + j] = acc[i];
#endif
            }
        }
#endif
    }
#if defined(PROJ_BITS)
    barrier();
    for (uint e = li; e < VPW * pc.ostride; e += WG) {
        const uint i = e / pc.ostride, wd = e % pc.ostride;
        if (i < nv) {
#if defined(PROJ_Q)
            out_[(first + i) * pc.ostride + wd] = wd < WORDS ? sh_code[i * WORDS + wd] : 0u;
#else
            out_[(row * pc.cap + first + i) * pc.ostride + wd] = wd < WORDS ? sh_code[i * WORDS + wd] : 0u;
#endif
        }
    }
#else
    // Padding columns NCOL <= j < ostride are zero.
    for (uint e = li; e < VPW * (pc.ostride - NCOL); e += WG) {
        const uint i = e / (pc.ostride - NCOL), j = NCOL + e % (pc.ostride - NCOL);
        if (i < nv) {
#if defined(PROJ_Q)
            out_[(first + i) * pc.ostride + j] = 0.0;
#else
            out_[(row * pc.cap + first + i) * pc.ostride + j] = 0.0;
#endif
        }
    }
#endif
}
