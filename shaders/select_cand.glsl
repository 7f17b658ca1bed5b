// select_cand.glsl: the radix select of uint32 keys (the float scores of the
// exact top-k, Loki and Quest) in two dispatches after its first histogram
// pass instead of three: the last digit's pass over every key is left out.
// After the first pass (score_softmax's, or select_hist's) T's top digit is
// known, and the tokens whose top digit is T's, the candidates, are few: on
// the bench's softmax scores a few tenths of a percent of a row.
//
//  1. select_cand (select_hist.glsl with CAND_LIST, pass 1): select_hist's
//     pass 1, the middle digit's histogram of the candidates, and besides
//     every chunk's not-forced tokens whose top digit is below T's,
//     ccnt[row][c].x, and the candidates themselves, (token, key), added to
//     the row's list (select.glsl's cand_at) with one reservation a chunk.
//  2. select_write_cand (CAND_WRITE): every workgroup resolves T's top two
//     digits from the histograms (select.glsl's resolve), then the last one
//     from the row's candidates whose top two digits are T's, in a shared
//     histogram; its first output slot is the chunks' counts before it plus
//     the candidates before it below T and the first r equal to it; then
//     select_write's tiles.
//
// A row with more candidates than its list holds (pc.cand), or a chunk with
// more than CAND_SH, sets CAND_OVER in the row's counter, and the write then
// takes the candidates from all of the row's keys instead: n keys read by
// every workgroup, exact but slow (a row of equal scores, say).

// CAND_OVER in a row's counter (cand_ctr): its list is incomplete. The rest
// of the counter is its candidates, listed or not (at most pc.n < 2^31).
const uint CAND_OVER = 0x80000000u;

#ifdef CAND_LIST
// CAND_SH bounds the candidates a chunk gathers in shared memory before it
// adds them to the row's list; the host allows for their 4 KiB.
const uint CAND_SH = 512;
shared uint sh_nc; // the chunk's candidates (zeroed by select_hist.glsl)
shared uvec2 sh_cand[CAND_SH];
shared uint sh_at;

// add_candidate notes token t, with key, as a candidate of the chunk.
void add_candidate(uint t, uint key) {
    const uint i = atomicAdd(sh_nc, 1);
    if (i < CAND_SH) sh_cand[i] = uvec2(t, key);
}

// put_candidates writes the chunk's count below T's top digit (below, the
// workgroup's total) and adds its candidates to row's list, after a
// barrier that follows every add_candidate. Uniform control flow.
void put_candidates(uint row, uint below) {
    const uint li = gl_LocalInvocationIndex;
    const uint nc = sh_nc;
    if (li == 0) {
        ccnt[row * pc.nchunks + gl_WorkGroupID.x] = uvec2(below, 0);
        sh_at = nc > 0 ? atomicAdd(hist[cand_ctr(row)], nc) & ~CAND_OVER : 0;
        if (nc > CAND_SH) atomicOr(hist[cand_ctr(row)], CAND_OVER);
    }
    barrier();
    const uint at = sh_at;
    if (nc <= CAND_SH && at + nc <= pc.cand) {
        for (uint i = li; i < nc; i += WG) {
            const uint o = cand_at(row) + 2 * (at + i);
            hist[o] = sh_cand[i].x;
            hist[o + 1] = sh_cand[i].y;
        }
    }
}
#endif // CAND_LIST

#ifdef CAND_WRITE
// candidate returns in t and k candidate i of row, whose digits so far are
// prefix's, and whether it is one: entry i of the row's list, or with over
// token i if its top digit is T's and no window forces it in.
bool candidate(uint row, uint i, bool over, uint prefix, out uint t, out uint k) {
    if (over) {
        t = i;
        k = key(row, t);
        return !forced(t) && (k >> shift(0)) == (prefix >> shift(0));
    }
    const uint o = cand_at(row) + 2 * i;
    t = hist[o];
    k = hist[o + 1];
    return true;
}

// cand_start is write_start's prologue with candidates: it resolves the
// threshold T of row and returns where chunk c starts writing, with rr the
// tokens equal to T still to take; traced reading 1. Uniform control flow.
uint cand_start(uint row, uint c, out uint T, out uint rr) {
    const uint li = gl_LocalInvocationIndex;
    const uint last = passes() - 1;
    // T's digits above the last, and the tokens still to take among those
    // whose digits above the last are T's.
    const uvec2 pk = resolve(row, last, false);
    const uint c0 = c * pc.chunk_len;
    uint su = 0; // tokens surely taken before chunk c
    for (uint i = li; i < c; i += WG) {
        su += forced_in(i * pc.chunk_len, chunk_end(i * pc.chunk_len));
        if (pk.y > 0) su += ccnt[row * pc.nchunks + i].x;
    }
    if (pk.y == 0) { // pc.kk = 0: only the forced tokens (select_cand ran no further)
        T = 0;
        rr = 0;
        TRACE_AT(1)
        return row * pc.kstride + wg_sum(su);
    }
    const uint hi = shift(last) + width(last), nlast = 1u << width(last);
    const uint ctr = hist[cand_ctr(row)], cnt = ctr & ~CAND_OVER;
    const bool over = ctr != cnt || cnt > pc.cand;
    const uint m = over ? pc.n : cnt;
    for (uint b = li; b < nlast; b += WG) sh_last[b] = 0;
    barrier();
    for (uint i = li; i < m; i += WG) {
        uint t, k;
        if (candidate(row, i, over, pk.x, t, k) && (k >> hi) == (pk.x >> hi)) atomicAdd(sh_last[k & (nlast - 1u)], 1);
    }
    barrier();
    const uvec2 f = find_bin_at(CAND_SHARED, nlast, pk.y);
    T = pk.x | f.x << shift(last);
    const uint r = pk.y - f.y; // tokens equal to T to take, >= 1
    TRACE_AT(1)
    uint se = 0; // candidates equal to T before chunk c
    for (uint i = li; i < m; i += WG) {
        uint t, k;
        if (candidate(row, i, over, pk.x, t, k) && t < c0) {
            su += k < T ? 1 : 0;
            se += k == T ? 1 : 0;
        }
    }
    su = wg_sum(su);
    se = wg_sum(se);
    rr = r - min(r, se);
    return row * pc.kstride + su + min(r, se);
}
#endif // CAND_WRITE
