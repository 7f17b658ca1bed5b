// select_plan.glsl: HATA's select plan (SparseOptions.SelectPlan), which
// hata_score's last workgroup of each row resolves so that the select reads
// its threshold and its chunk's first output slot instead of searching the
// histogram and summing the chunk counts before it (select.glsl, steps 1-2).
// In the histogram buffer, after the histograms [rows][nbins] and the
// cumulative chunk histograms [rows][nchunks][nbins]:
//
//	ctr  [rows] uint                  score workgroups finished: 0 before and after a
//	                                  step (zeroed where the layout is new, left 0
//	                                  by the last workgroup of the row)
//	thr  [rows] uint                  the threshold T (select.glsl)
//	plan [rows][nchunks] uvec2 as uint (out0, rr): where chunk c's first taken
//	                                  token goes in sel, and the candidates
//	                                  (key == T) still to take when it starts
//
// Also a chunk's end, the windows' count and a chunk's counts at T, which
// hata_score and select_tile.glsl share. Include it after the uint buffer hist.
// Guarded: select_tile.glsl includes it, and so may its includers.
#ifndef SELECT_PLAN_GLSL
#define SELECT_PLAN_GLSL

// plan_base is the word where ctr starts; plan_ctr, plan_thr and
// plan_chunk are the words of row's counter, its threshold, and the first
// of chunk c's (out0, rr), from pb = plan_base(rows, nchunks, nbins).
uint plan_base(uint rows, uint nchunks, uint nbins) { return rows * nbins * (1 + nchunks); }
uint plan_ctr(uint pb, uint row) { return pb + row; }
uint plan_thr(uint pb, uint rows, uint row) { return pb + rows + row; }
uint plan_chunk(uint pb, uint rows, uint nchunks, uint row, uint c) { return pb + 2 * rows + (row * nchunks + c) * 2; }

// chunk_end returns the end of the chunk of tokens that starts at c0:
// pc.chunk_len tokens, the last chunk cut at pc.n.
uint chunk_end(uint c0) { return min(c0 + pc.chunk_len, pc.n); }

// forced_in returns how many tokens of [a, b) a window forces in (sink_end
// <= recent_start).
uint forced_in(uint a, uint b) {
    const uint s = min(b, pc.sink_end) > a ? min(b, pc.sink_end) - a : 0;
    const uint r0 = max(a, pc.recent_start);
    return s + (b > r0 ? b - r0 : 0);
}

// cum_counts returns (u, e) of the chunk of tokens [c0, c1) whose cumulative
// histogram (#not forced with key <= s, for every bin s) starts at
// hist[base]: u the tokens it surely takes (forced, or key < T), e its
// candidates (key == T).
uvec2 cum_counts(uint base, uint c0, uint c1, uint T) {
    const uint below = T > 0 ? hist[base + T - 1] : 0;
    return uvec2(forced_in(c0, c1) + below, hist[base + T] - below);
}

#endif // SELECT_PLAN_GLSL
