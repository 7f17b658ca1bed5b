// reduce_scatter.glsl: sums RS_VALUES floats over the RS_LANES lanes of a
// slot (consecutive lanes of one subgroup, RS_LANES a power of two) so that
// each lane ends with a few of the sums, not all of them. Each butterfly
// step sends half of the values a lane still carries to its partner and
// adds the other half; after RS_HALV halving steps lane j holds the sums of
// values (j >> RS_SH)*RS_RH .. +RS_RH, and the remaining RS_SH steps (more
// lanes than values) sum those whole, so 2^RS_SH neighbouring lanes hold
// the same ones. RS_VP - 1 shuffles in all where a butterfly all-reduce
// takes log2(RS_LANES) per value (31 against 128 for 32 values over 16
// lanes).
//
// Declare before including it: const uint RS_LANES, RS_VALUES. It defines
// RS_VP (RS_VALUES rounded up to a power of two: the array length, values
// from RS_VALUES on zero), RS_HALV, RS_RH, RS_SH and reduce_scatter(x, ln),
// ln the lane's index within its slot; every lane of the subgroup must call
// it (uniform control flow). Declare the caller's array as float[RS_VP]
// itself: an array sized by another constant of the same value is another
// SPIR-V type (both sizes are specialization-constant expressions), and
// glslang's copy of one into the other's parameter came out wrong
// (sparse_split's outputs, caught by its tests).

const uint RS_VP = RS_VALUES <= 1 ? 1 : (RS_VALUES <= 2 ? 2 : (RS_VALUES <= 4 ? 4 : (RS_VALUES <= 8 ? 8 :
                   (RS_VALUES <= 16 ? 16 : (RS_VALUES <= 32 ? 32 : (RS_VALUES <= 64 ? 64 : (RS_VALUES <= 128 ? 128 :
                   (RS_VALUES <= 256 ? 256 : (RS_VALUES <= 512 ? 512 : 1024)))))))));
const uint RS_LT = RS_LANES <= 1 ? 0 : (RS_LANES <= 2 ? 1 : (RS_LANES <= 4 ? 2 : (RS_LANES <= 8 ? 3 :
                   (RS_LANES <= 16 ? 4 : (RS_LANES <= 32 ? 5 : 6)))));
const uint RS_LV = RS_VP <= 1 ? 0 : (RS_VP <= 2 ? 1 : (RS_VP <= 4 ? 2 : (RS_VP <= 8 ? 3 : (RS_VP <= 16 ? 4 :
                   (RS_VP <= 32 ? 5 : (RS_VP <= 64 ? 6 : (RS_VP <= 128 ? 7 : (RS_VP <= 256 ? 8 : (RS_VP <= 512 ? 9 : 10)))))))));
const uint RS_HALV = RS_LT < RS_LV ? RS_LT : RS_LV; // butterfly steps that halve the values carried
const uint RS_RH = RS_VP >> RS_HALV;                // values a lane holds after them
const uint RS_SH = RS_LT - RS_HALV;                 // lane bits below the halving ones

void reduce_scatter(inout float x[RS_VP], uint ln) {
    [[unroll]] for (uint st = 0; st < RS_LT; st++) {
        const uint off = RS_LANES >> (st + 1);
        if (st < RS_HALV) {
            const uint hf = RS_VP >> (st + 1);
            const bool hi = (ln & off) != 0;
            [[unroll]] for (uint j = 0; j < hf; j++) {
                const float snd = hi ? x[j] : x[j + hf];
                x[j] = (hi ? x[j + hf] : x[j]) + subgroupShuffleXor(snd, off);
            }
        } else {
            x[0] += subgroupShuffleXor(x[0], off);
        }
    }
}
