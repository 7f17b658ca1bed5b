// select_rows.glsl: select.glsl's whole selection (histogram passes, threshold,
// ascending write) by ONE workgroup per row, in one dispatch, for uint32
// keys with no window (every token ranked): the float scores of the exact
// top-k oracle, Loki and Quest (a key per page of pc.page tokens, weighted
// by the tokens it covers, so that the rule is still ref's over tokens:
// pages best first, ties to the smaller page, the last one cut to its first
// tokens).
//
// The multi-workgroup select (select_hist x2 or x3, select_write) needs
// three or four dependent dispatches because its workgroups cannot wait for
// each other; a row's keys (Quest's 1K-8K page keys, or up to WG*KPT token
// keys) fit in the registers of one workgroup, which loads them once and
// runs every pass on them with its histogram in shared memory:
//
//	for each digit (11, 11, 10 bits from the top): the weighted histogram
//	    of the keys whose higher digits equal T's, then T's digit and the
//	    tokens still to take (find_bin_at, on the shared histogram)
//	write: lane i holds keys [i*KPT, (i+1)*KPT); two workgroup prefix sums
//	    give the candidates (key == T) before each lane and then each
//	    lane's first output slot; key < T takes all its tokens, key == T
//	    the first of the r still to take, in token order.
//
// Bindings as select.glsl's (hist and ccnt unused). Dispatch: (1, rows, 1).
// Included by select_rows.comp and select_rows_trace.comp (TRACE: lane 0
// reads the clock at the start, once the threshold is found, once the
// lane's output slots are known, and at the end: select.glsl's four
// readings, read back as SelectTrace's "threshold", "offset" and "write").

#extension GL_GOOGLE_include_directive : require

#include "select_key.glsl"
shared uint sh_hist[KEY32_BINS];
#define HIST_AT(i) sh_hist[i]
#define BIN_PER ((KEY32_BINS + WG - 1) / WG) // find_bin_at's bins a lane (wg_scan.glsl): 2 at 1024 lanes
#define WG_SCAN_BY_SUBGROUP // wg_scan.glsl: 32 subgroups of 32 lanes on the H200
#include "select.glsl"

// Keys per lane, select.glsl's PER: a row has at most WG*KPT keys (KPT a
// multiple of 4). A lane's passes and write run through its keys one by
// one, so the kernel's time grows with KPT, not with the row's keys: on the
// H200, Quest's select took 43-55 us with 32 keys per lane and 19-26 with 8
// at every shape from B1/32K to B8/256K (run 83, BENCHMARKS.md); the host
// takes the fewest that hold the row (rowsKeysPerLane).
const uint KPT = PER;

const uint NONE = 0xffffffffu;

// weight returns the tokens key j of the row covers (a page's, the last cut
// to the row), 0 past the row's nk keys.
uint weight(uint j, uint nk) { return j < nk ? min(pc.page, pc.n - j * pc.page) : 0; }

// taken returns how many tokens of key j (key, of the row's nk) the write
// takes: all when key < T, when key == T the first of the r still to take
// after the tb candidate tokens before it (tb then counts key j's); none
// otherwise.
uint taken(uint key, uint j, uint nk, uint T, uint r, inout uint tb) {
    const uint wt = weight(j, nk);
    if (wt == 0 || key > T) return 0;
    if (key < T) return wt;
    const uint take = r > tb ? min(r - tb, wt) : 0;
    tb += wt;
    return take;
}

void main() {
    if (KEY16) return; // uint32 keys only (the host never asks for uint16)
    const uint li = gl_LocalInvocationIndex;
    const uint row = gl_WorkGroupID.y;
    const uint nk = (pc.n + pc.page - 1) / pc.page; // keys of the row
    TRACE_AT(0)
    const uint j0 = li * KPT;                       // this lane's first key
    // The lane's keys and the tokens each covers (0 past the row).
    uint k[KPT];
    const uint base = row * pc.key_stride + j0;
    if ((pc.key_stride & 3) == 0 && j0 + KPT <= nk) {
        [[unroll]] for (uint i = 0; i < KPT / 4; i++) {
            const uvec4 v = keys4[base / 4 + i];
            [[unroll]] for (uint c = 0; c < 4; c++) k[4 * i + c] = v[c];
        }
    } else {
        [[unroll]] for (uint i = 0; i < KPT; i++) k[i] = j0 + i < nk ? keys[base + i] : NONE;
    }
    uint kk = pc.kk, prefix = 0;
    for (uint p = 0; p < KEY32_PASSES && kk > 0; p++) { // uniform: kk is the workgroup's
        const uint w = key32_width(p), sh = key32_shift(p);
        for (uint b = li; b < KEY32_BINS; b += WG) sh_hist[b] = 0;
        barrier();
        // Runs of keys in one bin are added at once (a lane's keys are
        // neighbours, often in the same bin of the top digit).
        uint run = NONE, rw = 0;
        [[unroll]] for (uint i = 0; i < KPT; i++) {
            const uint j = j0 + i;
            const bool match = j < nk && (p == 0 || (k[i] >> (sh + w)) == (prefix >> (sh + w)));
            const uint b = match ? (k[i] >> sh) & ((1u << w) - 1u) : NONE;
            if (b != run) {
                if (run != NONE) atomicAdd(sh_hist[run], rw);
                run = b;
                rw = 0;
            }
            rw += match ? weight(j, nk) : 0;
        }
        if (run != NONE) atomicAdd(sh_hist[run], rw);
        barrier();
        const uvec2 f = find_bin_at(0, 1u << w, kk); // barriers inside
        kk -= f.y;
        prefix |= f.x << sh;
    }
    TRACE_AT(1)
    // T = prefix; kk = r, the tokens with key == T still to take (pc.kk = 0:
    // nothing, T = 0 takes no key).
    const uint T = pc.kk > 0 ? prefix : 0;
    uint e = 0; // this lane's candidates' tokens
    [[unroll]] for (uint i = 0; i < KPT; i++) e += k[i] == T ? weight(j0 + i, nk) : 0;
    uint total;
    const uint tb0 = wg_scan(e, total); // candidate tokens before this lane
    uint tb = tb0;
    uint c = 0;                  // this lane's taken tokens
    [[unroll]] for (uint i = 0; i < KPT; i++) c += taken(k[i], j0 + i, nk, T, kk, tb);
    uint at = row * pc.kstride + wg_scan(c, total);
    TRACE_AT(2)
    tb = tb0;
    [[unroll]] for (uint i = 0; i < KPT; i++) {
        const uint j = j0 + i;
        const uint take = taken(k[i], j, nk, T, kk, tb);
        for (uint x = 0; x < take; x++) sel[at + x] = j * pc.page + x;
        at += take;
    }
    TRACE_AT(3)
}
