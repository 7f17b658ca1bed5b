// Package synth generates synthetic decode-attention inputs (queries, keys,
// values) that imitate what is known of the attention of real LLMs, so that the
// accuracy experiments can run without a model. Everything is seeded: the same
// Config and sample seed give bit-identical tensors on every machine.
//
// A Model is one synthetic attention layer: its "weights" are the structure
// shared by every sequence (a low-rank key subspace per KV head, outlier
// channels, a query bias, a recency direction and the per-head scales). A Sample
// is one sequence of N cached tokens under that layer, with the decode query at
// position N; TraceQueries adds a query at every position 0..N-1 of the same
// sequence, the "training trace" that learned hashing is fitted on.
//
// The properties modelled, each with its knob in Config:
//
//   - RoPE: keys and queries are generated before the rotary embedding and
//     rotated with ref.RoPE at their positions (queries of the decode step at
//     position N, key t at position t); Kpre keeps the keys before RoPE.
//   - Low-rank keys: pre-RoPE key content lies in a Rank-dimensional subspace
//     (orthonormal basis U per KV head, component scales RankDecay^j) plus small
//     isotropic Noise, so PCA (Loki) and learned projections have structure to
//     find. Queries draw their content from the same subspace.
//   - Outlier channels: the OutlierPairs lowest-frequency RoPE pairs carry a
//     large fixed key bias (magnitude OutlierScale, about OutlierScale times the
//     largest content component), as in real LLM keys. It shifts every logit by
//     the same amount (softmax ignores it) but dominates untrained projections.
//   - Attention sinks: the first Sinks tokens get an extra key component along
//     the query bias, which lives in those slowly rotating channels, so every
//     query position is drawn to them; for the decode query their logit (group
//     mean) is the ordinary tokens' mean plus SinkBoost.
//   - Needles: Needles keys per (batch, KV head), at NeedlePositions (fractions of
//     N), are built aligned with their group's decode query: their logit
//     (group mean) is the ordinary tokens' mean plus NeedleBoost, so they
//     belong to the oracle top-k.
//   - Recency: queries and keys share a component in the high-frequency RoPE
//     pairs (wavelength at most RecencyWindow tokens); after RoPE its logit
//     contribution is a sum of cosines of the distance m-t, largest (RecencyBoost
//     at distance 1) for the nearest tokens and averaging out further away. This
//     is a bias of relative position, so it holds for trace queries too.
//   - GQA: the content of the G query heads of a group is correlated with
//     coefficient GroupCorr (a shared draw plus a per-head one), and they share
//     the group's bias and recency components.
//   - Scale: each decode query head is scaled so that the standard deviation
//     of its logits q·k/sqrt(D) over the ordinary tokens is LogitStd; trace
//     queries use a per-head scale calibrated once per Model on a calibration
//     sequence, which gives LogitStd in root mean square.
//
// Values are independent N(0, 1).
package synth
