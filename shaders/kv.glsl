// kv.glsl: how the key/value cache is stored and read, shared by the attention
// kernels. Define KV_F16, KV_F16H or KV_F32 before including it.
//
// Every row of the cache is read in 16-byte vectors: KV_T is one vector,
// KV_VEC the elements it holds, KV_ZERO a vector of zeros; KV_LOAD loads and
// converts, KV_UNPACK converts a vector already loaded (kernels that keep
// loads in flight hold the raw vectors, half the registers for fp16). fp16 rows are read as uvec4 and unpacked with
// unpackHalf2x16 (GLSL.std.450 UnpackHalf2x16, exact for every half including
// subnormals), so the fp16 path needs no 16-bit storage feature and its loads
// stay 16 bytes wide; arithmetic is fp32 either way.

// KV_CH is the KV_T vectors in 16 bytes: a paired cache (SparseOptions.PairedKV)
// alternates 16-byte chunks of a token's K and V, so that the lanes that
// read a token's K in one load touch all of its 2*D elements, and the
// bus fetches them as one run. KV_PAIR_POS(c) is where vector c of a
// token's K lies among the token's 2*DV vectors there (its V KV_CH past;
// KV_KEY_POS).
#define KV_PAIR_POS(c) (((c) / KV_CH) * (2 * KV_CH) + (c) % KV_CH)
// KV_TOKEN_RS and KV_KEY_POS(c): a token's stride in a row of the cache, in
// KV_T vectors, and where vector c of its key lies from the token's start:
// DV and c in a cache of K alone, 2*DV and KV_PAIR_POS(c) in a paired one
// (where the includer's specialization constant KV_PAIRED is true). Macros,
// so that they expand after the includer declares DV and KV_PAIRED; the
// kernels that read K from a cache that may be paired use them
// (split_softmax.glsl's KV_RS and KV_POS, proj.glsl, quest_bounds.glsl,
// score_logits.glsl).
#define KV_TOKEN_RS (KV_PAIRED ? 2 * DV : DV)
#define KV_KEY_POS(c) (KV_PAIRED ? KV_PAIR_POS(c) : (c))
#if defined(KV_F16)
#define KV_T uvec4
#define KV_VEC 8
#define KV_CH 1
#define KV_ZERO uvec4(0)
// KV_UNPACK(u, dst, at): dst[at .. at+8) = the 8 halves of the vector u.
#define KV_UNPACK(u, dst, at) {                                             \
        vec2 a_ = unpackHalf2x16((u).x), b_ = unpackHalf2x16((u).y);        \
        vec2 c_ = unpackHalf2x16((u).z), d_ = unpackHalf2x16((u).w);        \
        dst[(at) + 0] = a_.x; dst[(at) + 1] = a_.y;                         \
        dst[(at) + 2] = b_.x; dst[(at) + 3] = b_.y;                         \
        dst[(at) + 4] = c_.x; dst[(at) + 5] = c_.y;                         \
        dst[(at) + 6] = d_.x; dst[(at) + 7] = d_.y;                         \
    }
// KV_LOAD(buf, idx, dst, at): dst[at .. at+8) = the 8 halves of buf[idx].
#define KV_LOAD(buf, idx, dst, at) {                                        \
        uvec4 u_ = buf[idx];                                                \
        vec2 a_ = unpackHalf2x16(u_.x), b_ = unpackHalf2x16(u_.y);          \
        vec2 c_ = unpackHalf2x16(u_.z), d_ = unpackHalf2x16(u_.w);          \
        dst[(at) + 0] = a_.x; dst[(at) + 1] = a_.y;                         \
        dst[(at) + 2] = b_.x; dst[(at) + 3] = b_.y;                         \
        dst[(at) + 4] = c_.x; dst[(at) + 5] = c_.y;                         \
        dst[(at) + 6] = d_.x; dst[(at) + 7] = d_.y;                         \
    }
#elif defined(KV_F16H)
// fp16 rows read in 8-byte vectors (uvec2, 4 halves): twice the lanes per
// row of KV_F16 for the same row, so each lane holds half the elements (and
// half the registers) of a token; the split kernels' "f16h" entry points.
#define KV_T uvec2
#define KV_VEC 4
#define KV_CH 2
#define KV_ZERO uvec2(0)
// KV_UNPACK(u, dst, at): dst[at .. at+4) = the 4 halves of the vector u.
#define KV_UNPACK(u, dst, at) {                                             \
        vec2 a_ = unpackHalf2x16((u).x), b_ = unpackHalf2x16((u).y);        \
        dst[(at) + 0] = a_.x; dst[(at) + 1] = a_.y;                         \
        dst[(at) + 2] = b_.x; dst[(at) + 3] = b_.y;                         \
    }
// KV_LOAD(buf, idx, dst, at): dst[at .. at+4) = the 4 halves of buf[idx].
#define KV_LOAD(buf, idx, dst, at) {                                        \
        uvec2 u_ = buf[idx];                                                \
        vec2 a_ = unpackHalf2x16(u_.x), b_ = unpackHalf2x16(u_.y);          \
        dst[(at) + 0] = a_.x; dst[(at) + 1] = a_.y;                         \
        dst[(at) + 2] = b_.x; dst[(at) + 3] = b_.y;                         \
    }
#elif defined(KV_F32)
#define KV_T vec4
#define KV_VEC 4
#define KV_CH 1
#define KV_ZERO vec4(0.0)
// KV_UNPACK(u, dst, at): dst[at .. at+4) = the vector u.
#define KV_UNPACK(u, dst, at) {                                             \
        dst[(at) + 0] = (u).x; dst[(at) + 1] = (u).y;                       \
        dst[(at) + 2] = (u).z; dst[(at) + 3] = (u).w;                       \
    }
// KV_LOAD(buf, idx, dst, at): dst[at .. at+4) = buf[idx].
#define KV_LOAD(buf, idx, dst, at) {                                        \
        vec4 u_ = buf[idx];                                                 \
        dst[(at) + 0] = u_.x; dst[(at) + 1] = u_.y;                         \
        dst[(at) + 2] = u_.z; dst[(at) + 3] = u_.w;                         \
    }
#else
#error "define KV_F16, KV_F16H or KV_F32 before including kv.glsl"
#endif
