package vk

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/hata-go/hata/ref"
)

// The top-k methods on the GPU (every method of ref.MethodNames but dense and
// magicpig, which stays on the CPU).
//
// Each method keeps the K/V cache [B*Hkv][Cap][D] (F32 or F16) and its side
// state (HATA's key codes, Loki's rotated keys, Quest's page bounds) on the
// device, and records a decode step into one command buffer: the upload of q,
// its selection stages, the sparse attention over the selected tokens and
// (Decode only) the readback of the output and the selection. Stages carry
// the names the benchmarks map to columns: "encode", "score", "select",
// ["gather",] "attend" (the flash-decoding merge folded in, or not),
// ["merge"] (the separate merge: HATA's naive variant, and SparseOptions.Merge's
// choice), "select+attend" (HATA's twokernel variant), "step" (HATA's
// onekernel variant: the whole step) (plus "upload", "poison", "readback").
//
// Selection is exact with ref's rule (k best, ties to the smaller index,
// windows forced in and counted in k) by histogram, never by sort:
// select.glsl finds the threshold key T and how many tokens r equal to T to
// take from per-row histograms (one pass over HATA's small integer scores,
// built inside the score kernel by the fused variant; radix passes of 11, 11
// and 10 bits over float scores mapped to ordered integer keys for topk, loki
// and quest), then each chunk's counts of tokens below T and equal to it
// (from the score kernel's or the last radix pass's cumulative counts, or
// select_count in HATA's naive variant) place it, and select_write writes every
// token with key < T plus the first r with key == T, ascending, through a
// workgroup prefix sum. Streaming and H2O select on the host (positions; the
// H2O history) and attend on the GPU; HATA's norm-weighted variant scores on
// the GPU and ranks on the host.
//
// For benchmarks every method has PrefillRandom(b, hkv, n, d, seed) (the
// cache filled on the device by FillRandom, side state built there),
// Timings() (the stages of the last Decode or Step) and Step(q, budget) (a
// decode step without any readback); BenchMethod builds them with fp16
// storage and BenchmarkSparseDecode times them at the paper's shapes.

// SparseOptions configure the GPU top-k methods (every method but dense). The
// zero value is the default of every field.
type SparseOptions struct {
	// Storage is the element type of the K/V cache on the device.
	Storage Storage
	// Variant selects the kernel chain of hata and lsh (Fig. 9's breakdown):
	//
	//	"fused" (default): encode | score + histograms (uint16 scores, each
	//	                   chunk's cumulative histogram, and the select's
	//	                   plan: SelectPlan) | select (write) |
	//	                   attention through the index list (sparse_split, the
	//	                   merge folded in): four dispatches
	//	"twokernel":       encode + score + histograms | select + attention
	//	                   (select_attend, the chunks as splits, merged by the
	//	                   last workgroup of a row): two dispatches, but slower
	//	                   than fused on an H200 (BENCHMARKS.md)
	//	"threekernel":     encode + score + histograms | select (write) |
	//	                   attention (sparse_split, the merge folded in): three
	//	                   dispatches, the query encoded by every score
	//	                   workgroup (each reads the hash matrix from L2, so
	//	                   larger score chunks, ScoreChunk, suit it)
	//	"onekernel":       the four stages of fused as work items of ONE
	//	                   dispatch (hata_step.glsl): a workgroup takes items
	//	                   from a queue, each waiting only for the items of its
	//	                   own row it reads, so no stage waits for the whole
	//	                   grid and no dispatch boundary is paid; score and
	//	                   select items of ScoreChunk tokens (default 8192);
	//	                   runs fused where its limits (one cache buffer,
	//	                   G*rbit+1 <= 16*Workgroup bins, shared memory, 14
	//	                   storage buffers) fail; slower than fused on an
	//	                   H200 (BENCHMARKS.md)
	//	"naive":           encode | score (uint32 scores) | select (a separate
	//	                   histogram pass, count, write) | gather the selected K/V
	//	                   rows into compact buffers | attention over them | merge
	//	                   (sparse_merge)
	//
	// All select exactly ref's tokens; the other methods ignore it. Where a
	// fused kernel's shared memory does not fit (wide codes, large G), the
	// twokernel variant falls back to the separate kernels.
	Variant string
	// Split chooses the splits of the sparse attention over the k selected
	// tokens (flash-decoding; the twokernel variant splits by select chunk).
	// MinTokens defaults to 128 here (32 for dense), FillTokens to
	// sparseFillTokens (64 for the onekernel variant).
	Split SplitPolicy
	// Reserve is the token capacity allocated beyond the prefill's N, so that
	// Append does not reallocate; default 256. Capacity doubles when full.
	Reserve int
	// HostCache keeps the K/V cache in host memory (a Host buffer), which
	// the kernels read over the bus where it lies: the paper's HATA-off,
	// one layer's step with its cache offloaded. Everything else the step
	// reads (hata's codes, Quest's page bounds, Loki's rotated keys, the
	// scores) stays in device memory. On a device whose memory is the
	// host's (a CPU device, an integrated GPU) it changes nothing but the
	// memory type.
	HostCache bool
	// PairedKV keeps a token's K and V side by side in one buffer, 2*D
	// elements a token with 16-byte chunks of its K and its V alternating,
	// so that the attention reads a selected token's K and V from one run
	// (512 bytes at D=128 in fp16) instead of two runs of D from two
	// buffers. Meant for a cache in host memory (HostCache): the bus reads
	// rows of 256 bytes at random at about half the rate of rows of 512
	// and more (on the H200, HATA-off at B8/128K 1478 us paired against
	// 1729 apart, both read in windows: AttendRows; BENCHMARKS.md,
	// sessions 44-45). Every top-k method's fused chain reads it (the
	// kernels that read the cache: hata's and lsh's hata_encode_k, Loki's
	// loki_rotate_k and loki_rotate_kh, Quest's quest_bounds, the exact top-k's and H2O's
	// score_logits, and sparse_split); the other variants of hata and lsh
	// refuse it, and dense has DenseOptions.PairedKV. Offloaded, it
	// made Loki 10-13% faster at batch 8, Quest no faster (its pages are
	// runs already) and the exact top-k twice as slow: its score reads all
	// of K, which paired brings V over the bus with it (run 443). The
	// benchmarks pair a cache in host memory where it does not do that
	// (BenchMethod, Tuning.ForMethod).
	PairedKV bool
	// AttendRows is the most cache rows (batch row and KV head) each of
	// the attention's dispatches reads, one after another with a barrier
	// between, so that the rows its gathers are spread over at any time
	// hold less of the cache. 0 (the default): with HostCache, for the
	// methods that select single tokens (all but quest and streaming, whose
	// runs of tokens read at the bus's streaming rate from anywhere), as
	// many rows as hold 512 MiB of K and V filled (hostWindow), split
	// evenly, and past 1 GiB all of them at once in splits short enough
	// that the workgroups resident at any time read about 256 MiB of rows
	// (hostOverlapSplits: on the H200 HATA-off at B8/128K 1382 us against
	// 1476 in windows, K and V paired, run 446); otherwise all of them at
	// once. On the H200, host gathers of 512-byte
	// rows read 54 GB/s over 1 GiB of host memory and 22 over 4 GiB,
	// however the memory is allocated; HATA-off at B8/128K took 1675 us 8
	// rows (512 MiB) at a time against 2340 at once, Quest-off 1440 against
	// 1375; in device memory HATA 8 rows at a time took 210 us against 90
	// (BENCHMARKS.md, session 45). Every method but the twokernel and
	// onekernel variants of hata and lsh, whose attention runs inside the
	// select's or the step's one dispatch.
	AttendRows int
	// ScoreChunk is the tokens each workgroup of the score kernels covers;
	// 0 chooses it so that the grid fills the device (see scoreChunk, and
	// hataScoreChunk for hata and lsh).
	ScoreChunk int
	// SelectChunk is the tokens each workgroup of the select kernels covers;
	// 0: 4096 (two tiles of 256 lanes x 8 tokens), and for the radix select
	// over float scores (topk, loki, quest) the power of two from 4096 up
	// that keeps its grid within 4 workgroups per compute unit
	// (radixSelectChunk); set, it also keeps topk, loki and quest on the
	// radix select under RowSelectAuto. The fused hata/lsh variant selects
	// over the score kernel's chunks (ScoreChunk) instead.
	SelectChunk int
	// Workgroup is sparse_split's workgroup size; 0: 128. It must be a
	// multiple of the device's largest subgroup size; it is halved while the
	// kernel's shared memory would not fit.
	Workgroup int
	// Tile is the entries each slot of sparse_split loads ahead (its TILE);
	// 0: on GPUs 2 where a slot walks at most 16 entries of a split, else 4
	// (sparseTile), 1 on CPU devices (LLVM compiles unrolled tiles slowly).
	Tile int
	// LanesPerToken is sparse_split's TPT, the lanes that share one K/V row
	// (a power of two, at most the smallest subgroup size, dividing the
	// row's 16-byte vectors, or for fp16 its 8-byte ones); 0: for fp16,
	// twice the row's 16-byte vectors when that many lanes fit in the
	// smallest subgroup and 32 (32 at D=128 on 32-wide subgroups), else
	// the largest count up to 32 dividing the 16-byte vectors. Few lanes a
	// token at a large D put the whole row and G heads' sums in every lane:
	// on the H200 NVIDIA's driver took over two minutes to compile one lane
	// a token at D=64, G=7 (BENCHMARKS.md, session 42).
	LanesPerToken int
	// ScoreWorkgroup is the score kernel's workgroup size: hata_score's
	// (hata, lsh; 0: 256) and quest_score's (quest; 0: 128). A multiple of
	// the largest subgroup size.
	ScoreWorkgroup int
	// SelectWorkgroup is the workgroup size of the select's histogram,
	// count and write kernels (select_hist, select_count, select_write,
	// select_write_cum, select_groups), every top-k method's exact select
	// but select_rows and select_attend; 0: 256 (select_groups over chunks
	// of 8193-16384 tokens 512: groupsWorkgroup). A multiple of the largest
	// subgroup size, and at least a sixteenth of the select's histogram
	// bins (its search holds 16 bins a lane: 128 for the radix select's
	// 2048). Which kernel runs and the plan's rule keep the default's tile
	// of 2048 tokens; select_groups takes as many 8-token groups a lane as
	// its chunk needs at this size, at most 8.
	SelectWorkgroup int
	// Prefetch is the translation prefetch (prefetch.go): loads a
	// PrefetchStride apart over the whole K/V cache, beside the score
	// kernel of hata, lsh, quest, topk and loki (not the onekernel variant
	// of hata and lsh, which has none), which walk the page tables the
	// attention's gathers would otherwise wait for where the TLBs are cold.
	// PrefetchAuto (the default) prefetches over a cache held in plain
	// allocations only, not in dedicated ones, whose walks cost less than
	// the prefetch (Options.NoDedicated), nor in host memory (HostCache),
	// where each of its loads crosses the bus.
	Prefetch PrefetchMode
	// PrefetchStride is the bytes between two of the prefetch's loads, a
	// power of two from 64 to 1 GiB; 0: 1 MiB (prefetchStride).
	PrefetchStride uint64
	// ProjWorkgroup is the query projection's workgroup size (proj.glsl's
	// 32 columns by WG/32 slices of D): hata_encode_q's for hata and lsh,
	// loki_rotate_q's for loki; 0: 512 (projQWorkgroupDefault), halved on
	// a GPU while the grid exceeds one wave (projQWave). A power of two
	// from 32 to 1024, halved where the device's limits need it.
	ProjWorkgroup int
	// KeyBytes is the bytes of the scores HATA's (and lsh's) fused select
	// reads where the select's plan and select_groups run (chunks over 2048
	// tokens; elsewhere uint16): one byte a token, min(S, 255), or uint16.
	// One-byte keys are exact where a row's threshold is below 255; a step
	// where one is not is run again with uint16 keys (HATA.KeyFallbacks
	// counts them). 0, the default: one byte, and after a step run again
	// uint16 for every later step of the cache, until the next prefill;
	// 1: one byte on every step (each one short run again); 2: uint16. One
	// byte took 3.5-4.4 us off B8/128K and B8/256K on the H200, 0.5-1.2 off
	// B8/32K and B1/256K, and nothing elsewhere (BENCHMARKS.md, run 265).
	KeyBytes int
	// Merge chooses how the attention's S split partials are merged: in
	// sparse_split's last workgroup of each row (MergeFold) or by
	// sparse_merge in a dispatch of its own (MergeSeparate); the default,
	// MergeAuto, picks by the rule measured on the H200 (mergeSeparately).
	// The variants whose own kernel attends (twokernel, onekernel) and the
	// naive one (always separate) ignore it.
	Merge MergeMode
	// Warm chooses whether HATA's (and lsh's) step runs, beside its score
	// kernel, one workgroup of the select's write, of the attention's split
	// and, where the merge runs apart, of the merge, on buffers of their
	// own, so that their machine code is fetched while the score runs; or
	// the split's and the merge's beside the select's write (WarmMode):
	// WarmAuto by warmRule's rule, WarmOn beside the score and WarmLate
	// beside the select wherever the step has such kernels, WarmOff never.
	// The fused and threekernel variants, traced or not (traced, the warm
	// select and split are traced too: HATA.WarmTraces).
	Warm WarmMode
	// Trace, for benchmarks, builds sparse_split, the select's write kernel
	// (select_write, select_groups or select_rows) and HATA's hata_encode_q
	// and hata_score with a read of the device clock at each phase of every
	// workgroup (the *_trace entry points), so that AttentionTrace,
	// SelectTrace, HATA.EncodeTrace, HATA.ScoreTrace and Traces can say where
	// those kernels' time goes, and HATA.WarmTraces where the warm
	// workgroups' does (Warm). It needs
	// DeviceInfo.ShaderClock; the variants whose own kernel attends
	// (twokernel, onekernel) are not traced.
	Trace bool
	// SelectPlan chooses whether HATA's (and lsh's) score kernel resolves
	// the select's threshold and every chunk's first output slot in its
	// last workgroup of each row (select_plan.glsl), so that the select
	// loads them with its keys instead of searching the histogram and
	// summing the chunk counts before its chunk: PlanAuto by planSelect's
	// rule, PlanOn wherever the separate select reads the score kernel's
	// chunk counts, PlanOff never; either only where hata_score's workgroup
	// (ScoreWorkgroup) holds the histogram at 16 bins a lane. The fused and
	// threekernel variants.
	SelectPlan PlanMode
	// RowSelect chooses how topk, loki and quest select from their float
	// scores: RowSelectAuto by rowSelect's rule (select_rows up to 8192 keys
	// a row, Quest's pages wherever a row's fit one workgroup, unless
	// SelectChunk is set), RowSelectOn by one workgroup per row (select_rows,
	// one dispatch; a decode whose rows do not fit one is an error),
	// RowSelectOff by the radix select over chunks (three histogram passes,
	// counts and the write: five dispatches).
	RowSelect RowSelectMode
	// QueueGroups is the workgroups per compute unit of the onekernel
	// variant's one dispatch (hata, lsh); 0: 8. More than fit at once is
	// harmless (a workgroup that starts late finds the queue empty and
	// ends); fewer leave compute units idle.
	QueueGroups int
	// LokiF32Keys stores Loki's rotated keys in float32. The default is
	// float16, as the Loki paper keeps them: half the bytes of Loki's score
	// stage, and 3-18% faster decode steps on the H200 (BENCHMARKS.md,
	// run 90). The scores of float16 keys differ from ref.Loki's by their
	// rounding, beyond the acceptance suite's near-tie tolerance, so they
	// are held to ref's arithmetic over the device's own rotated keys
	// (TestLokiHalfKeys), and the suites that hold Loki to ref.Loki
	// directly set this.
	LokiF32Keys bool
	// Prologue, for benchmarks: bytes of a scratch buffer each step fills
	// (vkCmdFillBuffer, in the "upload" stage) before its kernels, so that
	// the timed stages start on a busy GPU with a cold L2; 0 (default): none.
	Prologue uint64
}

// RowSelectMode is SparseOptions.RowSelect.
type RowSelectMode int

// The modes of RowSelectMode.
const (
	RowSelectAuto RowSelectMode = iota // rowSelect's rule
	RowSelectOn                        // select_rows wherever a row's keys fit a workgroup
	RowSelectOff                       // the radix select over chunks
)

// valid reports whether m is one of the modes.
func (m RowSelectMode) valid() bool { return m >= RowSelectAuto && m <= RowSelectOff }

// PlanMode is SparseOptions.SelectPlan: where the score kernel resolves the
// select's threshold and chunk starts.
type PlanMode int

// The modes of PlanMode.
const (
	PlanAuto PlanMode = iota // planSelect's rule
	PlanOn                   // wherever the separate select reads the score kernel's chunk counts
	PlanOff                  // never: every select workgroup searches the histogram itself
)

// valid reports whether m is one of the modes.
func (m PlanMode) valid() bool { return m >= PlanAuto && m <= PlanOff }

// PrefetchMode is SparseOptions.Prefetch: whether the translation prefetch
// runs beside the score kernel.
type PrefetchMode int

// The modes of PrefetchMode.
const (
	PrefetchAuto PrefetchMode = iota // where the cache is not in dedicated allocations
	PrefetchOn                       // always
	PrefetchOff                      // never
)

// valid reports whether m is one of the modes.
func (m PrefetchMode) valid() bool { return m >= PrefetchAuto && m <= PrefetchOff }

// sparseFillTokens is the top-k methods' SplitPolicy.FillTokens. 16 since
// session 24: with every step after an L2 flush (run 284, two alternations)
// HATA's step took 2.1-2.8 us less than with 64 at B1/32K, B1/64K, B2/16K,
// B2/32K and B4/16K (B1/32K 33.6-33.7 us against 36.0-36.3: 32 splits a row
// instead of 8, the merge then a dispatch of its own), 0.4-0.9 less at
// B1/16K, B1/128K and B4/32K, and was even at B1/8K, B1/256K, B8/8K and
// B8/32K; Quest's and the exact top-k's 2.8 us less at B1/32K and 0.3-0.7
// at B1/128K. With 64 (session 7's rule) a B1/32K row of 511 entries had 8
// splits, 64 workgroups in all, each slot walking four tiles of gathers,
// which the L2 had hidden before the flush.
const sparseFillTokens = 16

// planSelect is PlanAuto's rule: plan where the fused select runs
// select_groups (chunks longer than one of select_write's tiles). The
// plan moves the select's two dependent rounds (the histogram search, the
// chunk counts) into the score kernel's tail, which cost the score stage
// 2.4-3.6 us on the H200 (4.6-5.0 at B8/256K); select_groups got 3.5-4.1
// us faster with it (7.3 us against 11.1-11.4 where chunks hold 3976-4096
// tokens, 28 against 35 at B8/256K) and select_write_cum 2.1-2.5 (runs
// 210 and 212): steps 0.8-2.3 us shorter at B1/256K, B2/128K, B4/64K,
// B4/128K, B8/32K to B8/256K, and 0-1.4 us longer at B1/64K, B1/128K,
// B2/32K, B2/64K, B4/32K, B8/8K and B8/16K (BENCHMARKS.md, session 18).
func planSelect(chunk int) bool { return selectGroups(chunk) > 0 }

// MergeMode is SparseOptions.Merge and DenseOptions.Merge: how the
// attention's split partials are merged.
type MergeMode int

// The modes of MergeMode.
const (
	// MergeAuto merges separately where the kernel family's rule says so
	// (mergeSeparately, denseMergeSeparately), else folds.
	MergeAuto MergeMode = iota
	// MergeFold: the last workgroup of each row merges (a fence, a counter
	// and its reads of the other splits' partials, on the kernel's path).
	MergeFold
	// MergeSeparate: sparse_merge (dense_merge), one workgroup per query
	// head, in a dispatch of its own behind a barrier.
	MergeSeparate
)

// valid reports whether m is one of the modes (NewDense and the top-k
// methods refuse any other).
func (m MergeMode) valid() bool { return m >= MergeAuto && m <= MergeSeparate }

// separate reports whether m merges in a dispatch of its own, given what
// MergeAuto's rule says for the attention at hand.
func (m MergeMode) separate(auto bool) bool {
	return m == MergeSeparate || m == MergeAuto && auto
}

// MergeAuto's bounds on the splits it merges in a dispatch of their own:
// separateMergeMaxLen entries a split at most, and where a row has at most
// foldMaxSplits splits, separateMergeShortLen.
const (
	separateMergeMaxLen   = 128
	separateMergeShortLen = 64
	foldMaxSplits         = 16
)

// mergeSeparately is MergeAuto's rule: merge in a dispatch of its own when
// the attention has at least two splits a row, more split workgroups
// (rows*splits) than compute units, and splits of at most
// separateMergeMaxLen entries, or of at most separateMergeShortLen where a
// row has foldMaxSplits splits or fewer; fold otherwise, and always on CPU
// devices. On the H200 (runs 57-58, BENCHMARKS.md) the separate merge was
// 1.0-2.8 us faster at the shapes of batch 1-8 and 16K-256K tokens with
// splits of at most 128 entries and 0.7-3.5 us slower at the others: a
// folded merge costs its row's last workgroup a fence, an atomic and two
// dependent reads on a busy GPU (4-10 us in the ablations of run 56), which
// short splits cannot hide and a dispatch (2.3-2.9 us) undercuts when there
// are many of them; with fewer workgroups or longer splits the fold is
// cheaper than the extra dispatch. Since session 24's plans give 8-16
// splits a row at batch 4 and 8, the fold wins there from 65 entries a
// split (session 38, runs 406-407: B8/48K 1.1 us and B8/64K 2.0 faster
// folded, B4/128K 1.0, Quest's B8/64K 0.8, B4/80K-96K and B8/40K even to
// 0.3), while batch 2's 33 splits of 109-124 entries (B2/224K-256K) still
// merge 0.6-1.9 us faster apart, as do 8-16 splits of 64 entries (B8/32K,
// B4/64K: even to 0.4).
func mergeSeparately(info DeviceInfo, rows, splits, length int) bool {
	maxLen := separateMergeMaxLen
	if splits <= foldMaxSplits {
		maxLen = separateMergeShortLen
	}
	return info.Type != DeviceCPU && splits >= 2 && length <= maxLen && rows*splits > info.ComputeUnits
}

// The variants of SparseOptions.Variant.
const (
	VariantFused     = "fused"
	VariantTwoKernel = "twokernel"
	// VariantThreeKernel is fused's chain with the query encode moved into
	// the score kernel: one dependent dispatch fewer.
	VariantThreeKernel = "threekernel"
	// VariantOneKernel runs fused's four stages as work items of one
	// dispatch (hata_step.glsl), each waiting only for its own row's items.
	VariantOneKernel = "onekernel"
	VariantNaive     = "naive"
)

// sparseVariants are the kernel chains SparseOptions.Variant names.
var sparseVariants = []string{VariantFused, VariantTwoKernel, VariantThreeKernel, VariantOneKernel, VariantNaive}

// Workgroup sizes of the top-k kernels: multiples of every subgroup size the
// devices here have (8 on lavapipe, 32 on NVIDIA).
const (
	scoreWorkgroup  = 256 // hata_score, score_softmax
	selectWorkgroup = 256 // select_*
	selectPer       = 8   // tokens per lane per tile of the select kernels
	// select_rows: a workgroup per row, each lane holding at most rowsKPT keys.
	rowsWorkgroup   = 1024
	rowsKPT         = 32
	projWorkgroup   = 64  // hata_encode_k_*, loki_rotate_k_*
	projVectors     = 8   // vectors per workgroup of the projection
	sparseWorkgroup = 128 // sparse_split, score_logits
	gatherWorkgroup = 256
	questWorkgroup  = 64

	sparseMergeWorkgroup = 256  // sparse_merge: a power of two >= D/4
	maxSplitLen          = 1024 // entries per split of sparse_split (MAXLEN)
)

// projQWorkgroupDefault is the query projection's workgroup size (proj.glsl's
// PROJ_Q: 32 columns, WG/32 slices of D), HATA's encode's and Loki's
// rotation's: 512 lanes (16 slices, 8 of W's rows a lane). On the H200 it
// made HATA's B1/256K step 0.6-1.3 us shorter than 256 lanes and left the
// other target shapes within 0.3 us, where 128, 64 and 1024 lanes were slower
// (runs 251-252, session 21); with the slices added pairwise (session 22, run
// 255) Loki's rotation at 512 lanes took 0.7-0.9 us less than at 256 and its
// steps 0.6-1.4 us less at B1/256K and B8/32K (BENCHMARKS.md).
const projQWorkgroupDefault = 512

// projQLanesPerCU is the lanes a compute unit runs at once (the H200's 64
// warps of 32), and projQMinLanes the fewest lanes projQWave gives the
// query projection.
const (
	projQLanesPerCU = 2048
	projQMinLanes   = 128
)

// projQWave is the default lanes of the query projection (proj.glsl's
// PROJ_Q) over a grid of workgroups: projQWorkgroupDefault, halved while the
// grid's lanes exceed what the device's compute units run at once
// (projQLanesPerCU each), down to projQMinLanes. On the H200 Llama-2-7B's
// shapes at batch 8 (32 KV heads: 1024 workgroups of HATA's encode) took
// 1.1-1.8 us less with 256 or 128 lanes than with 512 (the encode's stage
// 6.8-7.0 us against 8.4), batch 4's 512 workgroups were as fast with 512
// lanes, and Llama-3.1-8B's batch 8 (256 workgroups) was 0.6-1.6 us slower
// with fewer (run 415, BENCHMARKS.md session 39). A CPU device keeps the
// default, which its tests then cover.
func projQWave(info DeviceInfo, workgroups int) int {
	wg := projQWorkgroupDefault
	if info.Type == DeviceCPU || info.ComputeUnits <= 0 {
		return wg
	}
	for wg > projQMinLanes && workgroups*wg > projQLanesPerCU*info.ComputeUnits {
		wg /= 2
	}
	return wg
}

// projQKernel returns the query projection (hata_encode_q, its _trace entry
// point with a fourth binding, or loki_rotate_q) for group size g and ncol
// columns over a grid of workgroups, with SparseOptions.ProjWorkgroup lanes
// (by default projQWave's), or fewer where the device needs
// (projQWorkgroup).
func (c *sparseCore) projQKernel(shader string, bindings, g, ncol, workgroups int) (*Kernel, error) {
	want := c.opt.ProjWorkgroup
	if want == 0 {
		want = projQWave(c.ctx.Info, workgroups)
	}
	wg, err := projQWorkgroup(c.ctx.Info.Limits, want, g, c.d)
	if err != nil {
		return nil, c.errorf("%s: %v", shader, err)
	}
	return c.kernel(shader, bindings, projPush{}, uint32(wg), uint32(c.d), uint32(ncol), uint32(g))
}

// projQWorkgroup returns the lanes of the query projection: want, halved
// while it exceeds the device's workgroup size or invocations or its shared
// memory (G*D floats of q, WG*G partial sums) does not fit, down to 32 (one
// slice); an error if even that does not fit.
func projQWorkgroup(lim Limits, want, g, d int) (int, error) {
	shared := func(wg int) int { return 4 * (g*d + wg*g) }
	wg := want
	for wg > 32 && (shared(wg) > int(lim.MaxComputeSharedMemorySize) ||
		wg > int(lim.MaxComputeWorkGroupSize[0]) || wg > int(lim.MaxComputeWorkGroupInvocations)) {
		wg /= 2
	}
	if shared(wg) > int(lim.MaxComputeSharedMemorySize) {
		return 0, fmt.Errorf("G=%d D=%d needs %d bytes of shared memory, the device has %d", g, d, shared(wg), lim.MaxComputeSharedMemorySize)
	}
	return wg, nil
}

// recordProjK records the key projection (hata_encode_k_*, loki_rotate_k_*:
// proj.glsl) of tokens [t0, t1) of every cache row through the first ncol
// columns of w: [Hkv][D][ldw] float32 into outs, the side buffers' runs of
// rows (each [rows][Cap][ostride] from its row0; sideRuns), in dispatches of
// at most maxComputeWorkGroupCount workgroups: one per run of rows that one
// buffer of the cache and one of the outputs both hold.
func (c *sparseCore) recordProjK(b *Batch, shader string, w *Buffer, outs []kvGroup, ncol, ldw, ostride, t0, t1 int) error {
	k, err := c.kernel(shader+"_"+c.opt.Storage.String(), 3, projPush{},
		projWorkgroup, uint32(c.d), uint32(ncol), projVectors, b32(c.opt.PairedKV))
	if err != nil {
		return err
	}
	step := projVectors * int(c.ctx.Info.Limits.MaxComputeWorkGroupCount[0])
	for _, g := range c.groups() {
		for _, o := range outs {
			r0, r1 := max(g.row0, o.row0), min(g.row0+g.rows, o.row0+o.rows)
			if r0 >= r1 {
				continue
			}
			orow := o.k.Size / uint64(o.rows) // bytes of one output row
			kr := g.k.Buf.Range(g.k.Off+uint64(r0-g.row0)*c.kv.rowBytes, uint64(r1-r0)*c.kv.rowBytes)
			or := o.k.Buf.Range(o.k.Off+uint64(r0-o.row0)*orow, uint64(r1-r0)*orow)
			set, err := c.set(k, kr, w.Whole(), or)
			if err != nil {
				return err
			}
			for a := t0; a < t1; a += step {
				e := min(a+step, t1)
				b.Dispatch(k, set, projPush{T0: uint32(a), T1: uint32(e), Cap: uint32(c.cap), Hkv: uint32(c.hkv), Group: 1, Ldw: uint32(ldw), Ostride: uint32(ostride), Row0: uint32(r0)},
					uint32((e-a+projVectors-1)/projVectors), uint32(r1-r0), 1)
			}
		}
	}
	b.Barrier()
	return nil
}

// sideLimit is the most bytes one side buffer kept in runs may take.
func (c *sparseCore) sideLimit() uint64 { return cmp.Or(c.maxSideBuf, c.cacheLimit()) }

// sideRowsPer returns the cache rows of rowBytes that one side buffer holds
// (at least one: sizeSideRuns refuses rows over sideLimit).
func (c *sparseCore) sideRowsPer(rowBytes uint64) int {
	return int(min(uint64(c.rows()), max(c.sideLimit()/rowBytes, 1)))
}

// sideRuns returns the runs of rows of a side buffer named name of rowBytes
// per cache row, in buffers of sideRowsPer rows, as sizeSideRuns allocated
// them: one run where the rows fit one buffer, the first named name and the
// rest name+" 2", name+" 3", ....
func (c *sparseCore) sideRuns(name string, rowBytes uint64) []kvGroup {
	rows, per := c.rows(), c.sideRowsPer(rowBytes)
	var runs []kvGroup
	for i, r0 := 0, 0; r0 < rows; i, r0 = i+1, r0+per {
		n := min(per, rows-r0)
		runs = append(runs, kvGroup{k: c.scratch[sideName(name, i)].Range(0, uint64(n)*rowBytes), row0: r0, rows: n})
	}
	return runs
}

// sizeSideRuns allocates the buffers of sideRuns(name, rowBytes), freeing
// those of an earlier, longer layout.
func (c *sparseCore) sizeSideRuns(name string, rowBytes uint64) error {
	if rowBytes > c.sideLimit() {
		return c.errorf("%s: one cache row of %s is over the %s a buffer may bind and allocate", name, bytesString(rowBytes), bytesString(c.sideLimit()))
	}
	runs := c.sideRuns(name, rowBytes)
	for i, r := range runs {
		if _, err := c.buf(sideName(name, i), uint64(r.rows)*rowBytes, DeviceLocal); err != nil {
			return err
		}
	}
	for i := len(runs); c.scratch[sideName(name, i)] != nil; i++ {
		c.dropSets()
		c.scratch[sideName(name, i)].Free()
		delete(c.scratch, sideName(name, i))
	}
	return nil
}

// sideName names buffer i of a side state kept in several.
func sideName(name string, i int) string {
	if i == 0 {
		return name
	}
	return fmt.Sprintf("%s %d", name, i+1)
}

// sideState is the per-token state a method keeps next to the K/V cache
// (HATA's key codes, Loki's rotated keys, Quest's page bounds), always a
// function of the cached keys, so that it can be rebuilt from the cache
// after the cache grows.
type sideState interface {
	// sizeSide sizes the side buffers for the core's current capacity
	// (contents may be lost: buildSide rebuilds them).
	sizeSide() error
	// buildSide records the kernels that compute the side state of tokens
	// [t0, t1) from the cache (the core's n is already t1 or more).
	buildSide(b *Batch, t0, t1 int) error
}

// planner is what a top-k method adds to a decode step: its plan (the
// selection stages and their buffers).
type planner interface {
	plan(q []float32, budget ref.Budget) (*stepPlan, error)
}

// sparseCore is what every GPU top-k method shares: the K/V cache
// [B*Hkv][Cap][D] on the device, its growth, the rebuild of the method's side
// state, the scratch buffers and descriptor sets of a decode step, the
// sparse attention over an index list [B*Hkv][k] (sparse_split +
// sparse_merge), and the methods every top-k method has the same way (Name,
// Len, Timings, Prefill, PrefillRandom, Append, Decode, Step, Close), which a
// method replaces where it does more.
type sparseCore struct {
	ctx     *Context
	name    string
	opt     SparseOptions
	side    sideState // nil: none
	planner planner   // nil: the method has its own Decode and Step

	b, hkv, d int // cache shape
	n, cap    int // tokens cached, tokens allocated per row
	// kv is the K and V cache [B*Hkv][Cap][D] in buffers of at most
	// cacheLimit bytes; every kernel that reads it is dispatched once per
	// buffer (its push constant row0). nil before Prefill.
	kv     *kvStore
	pf     *touches // the translation prefetch of kv's buffers, or nil (SparseOptions.Prefetch)
	maxBuf uint64   // tests lower it to force several buffers; 0: the device's limits
	// maxSideBuf, set by tests, bounds the side buffers kept in runs of rows
	// (sizeSideRuns: Loki's rotated keys) below cacheLimit; 0: cacheLimit.
	maxSideBuf uint64

	scratch map[string]*Buffer // decode buffers by name, grown on demand
	sets    map[setKey]*Set    // descriptor sets by kernel and ranges
	batch   *Batch
	second  bool // submit on the context's second queue where it has one (Halves)
	timings Timings

	hq int // query heads of the last decode

	stepped    bool       // a decode step has run since the last prefill
	lastScores scoreView  // where the last step left its float scores, if any
	lastAttend *attention // the last step's attention (AttentionTrace)
	// lastSelectTrace is the last recorded select's write trace
	// (SelectTrace), or empty.
	lastSelectTrace Range
	// planZeroed is the select plan's ctr (select_plan.glsl) last zeroed
	// on the device: hata_score's last workgroup of each row leaves its
	// counter 0, so it is zeroed only where the plan's layout moves or a
	// step without the plan came between.
	planZeroed Range
	// qup writes each step's queries by a compute kernel (queryUpload).
	qup queryUpload
}

// setKey identifies a descriptor set: the kernel and its bound ranges.
type setKey struct {
	k  *Kernel
	rs [bindingsPerSet]Range
}

func newSparseCore(ctx *Context, name string, d int, o SparseOptions) (*sparseCore, error) {
	if o.Storage != F32 && o.Storage != F16 {
		return nil, fmt.Errorf("vk %s: storage %d: want F32 or F16", name, o.Storage)
	}
	if err := checkDim(d, o.Storage); err != nil {
		return nil, fmt.Errorf("vk %s: %w", name, err)
	}
	o.Variant = cmp.Or(o.Variant, VariantFused)
	if !slices.Contains(sparseVariants, o.Variant) {
		return nil, fmt.Errorf("vk %s: variant %q: want one of %s", name, o.Variant, strings.Join(sparseVariants, ", "))
	}
	if o.Reserve == 0 {
		o.Reserve = 256
	}
	if o.Split.MinTokens == 0 && o.Split.Splits == 0 {
		// Fewer, longer splits than dense's 32 tokens: the row's merge reads
		// every split's partials. 128 entries per split, shrinking to 16
		// within a wave and 64 splits a row (FillTokens, fillMaxSplits), and
		// one split where 128 entries hold the row: on the H200 128
		// everywhere was slower at B1/64K-128K, B2, B4 and B8/32K, and at
		// B1/256K since session 20 (BENCHMARKS.md, runs 75, 98 and 241-242,
		// hata bench -opt mintokens).
		o.Split.MinTokens = 128
		if o.Split.FillTokens == 0 {
			o.Split.FillTokens = sparseFillTokens
			if o.Variant == VariantOneKernel {
				o.Split.FillTokens = 64 // its attention items were measured so (runs 237, 243)
			}
		}
		if o.Split.FillMaxSplits == 0 && o.Variant == VariantOneKernel {
			// hata_step's attention items: 64 splits a row at B1/256K took
			// its step 79.8 us on the H200 against 68.2 with 32 (runs 237
			// and 243), where the fused chain gained 0.7-1.1.
			o.Split.FillMaxSplits = 32
		}
	}
	if o.Reserve < 0 || o.ScoreChunk < 0 || o.SelectChunk < 0 || o.Tile < 0 || o.Tile > 16 || o.Workgroup < 0 || o.LanesPerToken < 0 || o.QueueGroups < 0 || o.AttendRows < 0 {
		return nil, fmt.Errorf("vk %s: option out of range in %+v (negative, or Tile over 16)", name, o)
	}
	if o.KeyBytes != 0 && o.KeyBytes != 1 && o.KeyBytes != 2 {
		return nil, fmt.Errorf("vk %s: key bytes %d: want 1 or 2, or 0 for the default", name, o.KeyBytes)
	}
	if w := o.ProjWorkgroup; w != 0 && (w < 32 || w > 1024 || w&(w-1) != 0) {
		return nil, fmt.Errorf("vk %s: projection workgroup %d: want a power of two from 32 to 1024, or 0 for the default", name, w)
	}
	if !o.Merge.valid() || !o.RowSelect.valid() || !o.SelectPlan.valid() || !o.Prefetch.valid() || !o.Warm.valid() {
		return nil, fmt.Errorf("vk %s: mode out of range: Merge %d, RowSelect %d, SelectPlan %d, Prefetch %d, Warm %d (each 0 for its rule, 1 or 2; Warm also 3)", name, o.Merge, o.RowSelect, o.SelectPlan, o.Prefetch, o.Warm)
	}
	for _, err := range []error{
		checkWorkgroup(ctx.Info, "workgroup", o.Workgroup),
		checkLanes(ctx.Info, o.LanesPerToken),
		checkWorkgroup(ctx.Info, "score workgroup", o.ScoreWorkgroup),
		checkWorkgroup(ctx.Info, "select workgroup", o.SelectWorkgroup),
		checkPrefetchStride(o.PrefetchStride),
	} {
		if err != nil {
			return nil, fmt.Errorf("vk %s: %w", name, err)
		}
	}
	if o.PairedKV && o.Variant != VariantFused {
		return nil, fmt.Errorf("vk %s (variant %s): PairedKV: only the fused chain reads a paired K/V cache", name, o.Variant)
	}
	if ops := ctx.Info.SubgroupOps; ops&SubgroupArithmetic == 0 {
		return nil, fmt.Errorf("vk %s: the select kernels need subgroup arithmetic in compute shaders; %s has [%s]", name, ctx.Info.Name, ops)
	}
	return &sparseCore{ctx: ctx, name: name, opt: o, d: d, scratch: map[string]*Buffer{}, sets: map[setKey]*Set{}}, nil
}

// Name implements ref.Method: the method's command-line name.
func (c *sparseCore) Name() string { return c.name }

// Len returns the number of cached tokens.
func (c *sparseCore) Len() int { return c.n }

// Timings returns the GPU time of every stage of the last Decode or Step
// (the method's doc names its stages): "upload", ["poison",] the method's
// own, "attend" (with the merge folded in; the naive HATA variant adds
// "merge"), ["readback"].
func (c *sparseCore) Timings() Timings { return c.timings }

func (c *sparseCore) errorf(format string, a ...any) error {
	return fmt.Errorf("vk %s: %s", c.name, fmt.Sprintf(format, a...))
}

func (c *sparseCore) rows() int { return c.b * c.hkv }

// tokBytes returns the bytes of one token's K (or V).
func (c *sparseCore) tokBytes() uint64 { return uint64(c.d) * uint64(c.opt.Storage.bytes()) }

// buf returns the scratch buffer called name with at least size bytes,
// reallocating it (and dropping every cached descriptor set) when it is
// smaller. Call it before recording a batch, never during.
func (c *sparseCore) buf(name string, size uint64, kind MemoryKind) (*Buffer, error) {
	if b := c.scratch[name]; b != nil && b.size >= size && b.kind == kind {
		return b, nil
	}
	c.dropSets()
	c.scratch[name].Free()
	delete(c.scratch, name)
	b, err := c.ctx.NewBuffer("vk "+c.name+" "+name, size, kind)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	c.scratch[name] = b
	return b, nil
}

// set returns the descriptor set binding rs to k, cached.
func (c *sparseCore) set(k *Kernel, rs ...Range) (*Set, error) {
	key := setKey{k: k}
	copy(key.rs[:], rs)
	if s := c.sets[key]; s != nil {
		return s, nil
	}
	s, err := k.NewSet(rs...)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	c.sets[key] = s
	return s, nil
}

func (c *sparseCore) dropSets() {
	for k, s := range c.sets {
		s.Free()
		delete(c.sets, k)
	}
}

func (c *sparseCore) kernel(shader string, bindings int, push any, spec ...uint32) (*Kernel, error) {
	k, err := c.ctx.SharedKernel(KernelSpec{Shader: shader, Bindings: bindings, Push: push, Spec: spec})
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	return k, nil
}

// zeroNow fills r with zeros on the device and waits for it.
func (c *sparseCore) zeroNow(r Range) error {
	b, err := c.getBatch()
	if err != nil {
		return err
	}
	if err := b.Begin(); err != nil {
		return err
	}
	b.Fill(r, 0)
	_, err = b.Submit()
	return err
}

// zeroedBuf is buf for a device-local scratch buffer whose users need it to
// hold zeros: a new one is zeroed at once (and dropped again where that
// fails); one returned again holds what its users left in it (the split
// counters, which every dispatch leaves zero; the warm workgroups' inputs,
// which nothing writes).
func (c *sparseCore) zeroedBuf(name string, size uint64) (*Buffer, error) {
	old := c.scratch[name]
	b, err := c.buf(name, size, DeviceLocal)
	if err != nil {
		return nil, err
	}
	if b != old {
		if err := c.zeroNow(b.Whole()); err != nil {
			c.scratch[name].Free()
			delete(c.scratch, name)
			return nil, c.errorf("zeroing the %s: %v", name, err)
		}
	}
	return b, nil
}

func (c *sparseCore) getBatch() (*Batch, error) {
	if c.batch == nil {
		b, err := c.ctx.NewBatch()
		if err != nil {
			return nil, err
		}
		b.second = c.second && c.ctx.queue2 != nil
		c.batch = b
	}
	return c.batch, nil
}

// onSecondQueue makes the method's decode steps run on the context's second
// queue where it has one (Halves' second half).
func (c *sparseCore) onSecondQueue() { c.second = true }

// encode converts float32 elements to the storage type's bytes.
func (c *sparseCore) encode(x []float32) []byte {
	if c.opt.Storage == F16 {
		return halfBytes(x)
	}
	return f32Bytes(x)
}

// cacheLimit returns the most bytes one buffer of the cache may hold: the
// smaller of maxStorageBufferRange and maxMemoryAllocationSize (or maxBuf).
func (c *sparseCore) cacheLimit() uint64 {
	lim := c.ctx.Info.Limits
	if c.maxBuf > 0 {
		return c.maxBuf
	}
	return min(lim.MaxStorageBufferRange, lim.MaxMemoryAllocationSize)
}

// kvGroup is one buffer of the K/V cache: K and V rows [row0, row0+rows).
type kvGroup struct {
	k, v       Range // [rows][Cap][D]
	row0, rows int
}

// allocCache replaces the cache with one of shape (b, hkv, n) and capacity cp
// tokens per row (contents undefined), in as few buffers as cacheLimit
// allows.
func (c *sparseCore) allocCache(b, hkv, n, cp int) error {
	c.freeCache()
	c.b, c.hkv, c.n, c.cap = b, hkv, n, cp
	kv, err := newKVStore(c.ctx, "vk "+c.name, c.rows(), cp, c.tokBytes(), c.cacheLimit(), cacheKind(c.opt.HostCache), c.opt.PairedKV)
	if err != nil {
		return c.errorf("K/V cache [B=%d][Hkv=%d][Cap=%d][D=%d] %s: %v", b, hkv, cp, c.d, c.opt.Storage, err)
	}
	return c.useCache(kv)
}

// useCache makes kv the cache of c's shape (b, hkv, n, cap), with its
// translation prefetch and the method's side state sized for it.
func (c *sparseCore) useCache(kv *kvStore) error {
	c.kv = kv
	var err error
	if c.pf, err = c.newKVPrefetch(kv); err != nil {
		return c.errorf("the cache's translation prefetch: %v", err)
	}
	if c.side != nil {
		return c.side.sizeSide()
	}
	return nil
}

// groups returns the cache's buffers as kvStore.groups does, each run at
// most the rows one dispatch may cover.
func (c *sparseCore) groups() []kvGroup {
	return c.kv.groups(int(c.ctx.Info.Limits.MaxComputeWorkGroupCount[1]))
}

// hasCache reports whether a cache is allocated (a Prefill has run).
func (c *sparseCore) hasCache() bool { return c.kv != nil }

func (c *sparseCore) freeCache() {
	c.dropSets()
	c.kv.free()
	c.pf.free()
	c.kv, c.pf, c.n, c.cap = nil, nil, 0, 0
}

// buildAll records and runs the side state of tokens [0, n).
func (c *sparseCore) buildAll() error {
	if c.side == nil || c.n == 0 {
		return nil
	}
	b, err := c.getBatch()
	if err != nil {
		return err
	}
	if err := b.Begin(); err != nil {
		return err
	}
	if err := c.side.buildSide(b, 0, c.n); err != nil {
		return err
	}
	if _, err := b.Submit(); err != nil {
		return c.errorf("building the side state of %d tokens: %v", c.n, err)
	}
	return nil
}

// Prefill implements ref.Method: it uploads kv to a new cache with room for
// Reserve more tokens and builds the method's side state on the device. An
// error after the checks of kv leaves no cache (a decode then fails as one
// before any prefill).
func (c *sparseCore) Prefill(kv *ref.KV) (err error) {
	c.stepped = false
	if err := kv.Validate(); err != nil {
		return c.errorf("prefill: %v", err)
	}
	if kv.D != c.d {
		return c.errorf("prefill: cache has D=%d, the method was built for D=%d", kv.D, c.d)
	}
	defer c.dropOnError(&err) // the checks above leave the cache; what follows replaces it
	if err := c.allocCache(kv.B, kv.Hkv, kv.N, roundUp(kv.N+c.opt.Reserve, 64)); err != nil {
		return err
	}
	regions := make([]Region, 0, 2*c.rows())
	for r := range c.rows() {
		regions = append(regions, c.kv.writes(r, 0, c.encode(kv.K[r][:c.n*c.d]), c.encode(kv.V[r][:c.n*c.d]))...)
	}
	if err := c.ctx.Write(regions...); err != nil {
		return c.errorf("prefill: %v", err)
	}
	return c.buildAll()
}

// PrefillRandom fills a new cache of b*hkv rows of n tokens on the device
// with FillRandom (K from seed, V from seed+1, uniform in [-1, 1), the cache
// RandomKV describes; see Dense.PrefillRandom) and builds the method's side
// state on the device. An error after the checks of the shape leaves no
// cache.
func (c *sparseCore) PrefillRandom(b, hkv, n, d int, seed uint32) (err error) {
	c.stepped = false
	if b < 1 || hkv < 1 || n < 1 {
		return c.errorf("prefill random: B=%d Hkv=%d N=%d, want >= 1", b, hkv, n)
	}
	if d != c.d {
		return c.errorf("prefill random: D=%d, the method was built for D=%d", d, c.d)
	}
	defer c.dropOnError(&err)
	if err := c.allocCache(b, hkv, n, roundUp(n+c.opt.Reserve, 64)); err != nil {
		return err
	}
	if err := c.kv.fillRandom(c.ctx, c.opt.Storage == F16, seed); err != nil {
		return err
	}
	return c.buildAll()
}

// dropOnError frees the cache where *err is set: a prefill that failed
// after allocating it leaves none, rather than one it never wrote.
func (c *sparseCore) dropOnError(err *error) {
	if *err != nil {
		c.freeCache()
	}
}

// Append implements ref.Method: it writes k, v: [B][Hkv][D] as token N of
// every row and builds its side state on the device; the capacity doubles
// (on the device) when it is full. On error the cache is left as it was
// (keepCache).
func (c *sparseCore) Append(k, v []float32) (err error) {
	if !c.hasCache() {
		return c.errorf("append before prefill")
	}
	want := c.rows() * c.d
	if len(k) != want || len(v) != want {
		return c.errorf("append: len(k)=%d len(v)=%d, want B*Hkv*D = %d*%d*%d = %d", len(k), len(v), c.b, c.hkv, c.d, want)
	}
	var old *kvStore // the cache before it grows
	if c.n == c.cap {
		old, c.kv = c.kv, nil
		oldCap := c.cap
		defer func() {
			if err != nil { // the new cache was never written: keep the old one
				err = c.keepCache(old, oldCap, err)
				return
			}
			old.free()
		}()
		if err := c.allocCache(c.b, c.hkv, c.n, 2*c.cap); err != nil {
			return err
		}
	}
	up, err := c.buf("append upload", 2*uint64(c.rows())*c.tokBytes(), Upload)
	if err != nil {
		return err
	}
	b, err := c.getBatch()
	if err != nil {
		return err
	}
	if err := b.Begin(); err != nil {
		return err
	}
	rebuild := old != nil
	var copies copyGroups   // one CopyRegions per pair of buffers
	if rebuild && c.n > 0 { // move the cached tokens to the new rows
		c.kv.moveRows(&copies, old, c.n)
	}
	c.kv.appendCopies(&copies, up, c.n, c.encode(k), c.encode(v))
	copies.record(b)
	b.Barrier()
	c.n++
	if c.side != nil {
		t0 := c.n - 1
		if rebuild {
			t0 = 0
		}
		if err := c.side.buildSide(b, t0, c.n); err != nil {
			c.n--
			return err
		}
	}
	if _, err := b.Submit(); err != nil {
		c.n--
		return c.errorf("append: %v", err)
	}
	return nil
}

// keepCache puts back old, the cache of capacity cp that a growth which
// failed with cause was to replace, with its translation prefetch and its
// side state sized and rebuilt for it, and returns cause. Where that fails
// too, no cache is left (the next call asks for a Prefill) and the error
// says so.
func (c *sparseCore) keepCache(old *kvStore, cp int, cause error) error {
	b, hkv, n := c.b, c.hkv, c.n
	c.freeCache() // the new cache, if any, its prefetch and the sets bound to them
	c.b, c.hkv, c.n, c.cap = b, hkv, n, cp
	err := c.useCache(old)
	if err == nil {
		err = c.buildAll()
	}
	if err != nil {
		c.freeCache()
		return c.errorf("%v; keeping the cache of %d tokens failed too, and it is dropped (prefill again): %v", cause, n, err)
	}
	return cause
}

// step is one decode step's state, handed to the method's recording.
type step struct {
	hq, g, rows, k int
	q              Range // q: [B][Hq][D] float32 on the device
	sel            Range // sel: [rows][k] uint32, the ascending selection the attention reads
}

// checkQuery returns Hq for q: [B][Hq][D] over the cache.
func (c *sparseCore) checkQuery(q []float32) (int, error) {
	if !c.hasCache() {
		return 0, c.errorf("decode before prefill")
	}
	if c.n < 1 {
		return 0, c.errorf("decode over an empty cache (N=0)")
	}
	bd := c.b * c.d
	if len(q) == 0 || len(q)%bd != 0 || (len(q)/bd)%c.hkv != 0 {
		return 0, c.errorf("q: len %d, want B*Hq*D with B=%d D=%d and Hq a multiple of Hkv=%d", len(q), c.b, c.d, c.hkv)
	}
	return len(q) / bd, nil
}

// prepareStep checks q: [B][Hq][D] against the cache, turns budget into k
// tokens, sizes the buffers every step uses and returns the step state.
func (c *sparseCore) prepareStep(q []float32, budget ref.Budget) (*step, error) {
	hq, err := c.checkQuery(q)
	if err != nil {
		return nil, err
	}
	k, err := budget.Tokens(c.n)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	rows := c.rows()
	qBytes := uint64(c.b*hq*c.d) * 4
	s := &step{hq: hq, g: hq / c.hkv, rows: rows, k: k}
	qb, err := c.buf("q", qBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	if _, err := c.buf("q upload", qBytes, Upload); err != nil {
		return nil, err
	}
	sel, err := c.buf("selection", uint64(rows*k)*4, DeviceLocal)
	if err != nil {
		return nil, err
	}
	s.q, s.sel = qb.Range(0, qBytes), sel.Range(0, uint64(rows*k)*4)
	c.hq = hq
	return s, nil
}

// hostSelection returns the selection [rows][k] as uint32 bytes, checking it.
func (c *sparseCore) hostSelection(sel [][]int32, k int) ([]byte, error) {
	if len(sel) != c.rows() {
		return nil, c.errorf("selection of %d rows, want B*Hkv = %d", len(sel), c.rows())
	}
	out := make([]uint32, 0, c.rows()*k)
	for r, row := range sel {
		if len(row) != k {
			return nil, c.errorf("selection row %d has %d tokens, want k = %d", r, len(row), k)
		}
		for _, t := range row {
			if t < 0 || int(t) >= c.n {
				return nil, c.errorf("selection row %d: token %d outside [0, %d)", r, t, c.n)
			}
			out = append(out, uint32(t))
		}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*len(out)), nil
}

// attention is the sparse attention's plan for one step.
type attention struct {
	split          *Kernel
	merge          *Kernel // naive: sparse_merge; nil: split merges (its last workgroup of a row)
	splits, length int
	// overlap: the splits are hostOverlapSplits', and the attention reads
	// the cache at once, not in windows (attendGroups)
	overlap      bool
	gather       *Kernel // naive: the gather kernel, nil otherwise
	po, pml, out Range
	cnt          Range // cnt: [rows] uint32 finished splits per row, 0 between dispatches; never poisoned
	trace        Range // SparseOptions.Trace: [rows][S][tracePoints] uint32 clock readings, else empty
	kc, vc       Range // naive: the gathered K/V
}

// prepareAttention sizes the attention's buffers and kernels for s. The naive
// chain (gather) keeps Fig. 9's separate merge, as does SparseOptions.Merge
// where it chooses MergeSeparate or MergeAuto's rule does:
// sparse_split writes the S partials and sparse_merge merges them in a
// dispatch of its own; otherwise sparse_split's last workgroup of every row
// merges them (its counters are zeroed here, once, when they are allocated).
//
// splits > 0 fixes S for a method whose own kernel attends (HATA's
// select_attend, one split per select chunk): no sparse_split is built.
func (c *sparseCore) prepareAttention(s *step, gather bool, splits int) (*attention, error) {
	lim := c.ctx.Info.Limits
	qBytes := s.q.Size
	maxSplits := int(min(lim.MaxStorageBufferRange/qBytes, uint64(lim.MaxComputeWorkGroupCount[0])))
	if maxSplits < 1 {
		return nil, c.errorf("q of %s is over maxStorageBufferRange", bytesString(qBytes))
	}
	a := &attention{}
	policy := c.opt.Split
	if o := c.hostOverlapSplits(s.k); o > 0 && splits == 0 && !gather {
		policy.Splits, a.overlap = o, true
	}
	a.splits, a.length = policy.Plan(s.k, s.rows, c.ctx.Info.ComputeUnits, maxSplits)
	if splits > 0 {
		if splits > maxSplits {
			return nil, c.errorf("%d splits, over the %d that fit", splits, maxSplits)
		}
		a.splits, a.length = splits, 0
	} else if a.length > maxSplitLen { // sparse_split stages a split's indices in shared memory
		a.splits = (s.k + maxSplitLen - 1) / maxSplitLen
		a.length = (s.k + a.splits - 1) / a.splits
		a.splits = (s.k + a.length - 1) / a.length
		if a.splits > maxSplits {
			return nil, c.errorf("k=%d needs %d splits of at most %d, over the %d that fit", s.k, a.splits, maxSplitLen, maxSplits)
		}
	}
	separate := gather || splits == 0 && c.opt.Merge.separate(mergeSeparately(c.ctx.Info, s.rows, a.splits, a.length))
	if separate && (s.hq > int(lim.MaxComputeWorkGroupCount[0]) || c.b > int(lim.MaxComputeWorkGroupCount[1])) {
		return nil, c.errorf("merge grid Hq=%d x B=%d over maxComputeWorkGroupCount %v", s.hq, c.b, lim.MaxComputeWorkGroupCount)
	}
	var err error
	if splits == 0 {
		if a.split, err = c.sparseKernel(s.g, a.length, !gather, !separate); err != nil {
			return nil, err
		}
	}
	if separate {
		if c.d/4 > sparseMergeWorkgroup {
			return nil, c.errorf("head dim D=%d over the merge kernel's %d", c.d, 4*sparseMergeWorkgroup)
		}
		if a.merge, err = c.kernel("sparse_merge", 3, mergePush{}, sparseMergeWorkgroup, uint32(c.d)); err != nil {
			return nil, err
		}
	}
	cnt, err := c.zeroedBuf("split counters", uint64(s.rows)*4) // every dispatch leaves it zero
	if err != nil {
		return nil, err
	}
	po, err := c.buf("partial o", uint64(a.splits)*qBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	pml, err := c.buf("partial m,l", uint64(a.splits*c.b*s.hq)*8, DeviceLocal)
	if err != nil {
		return nil, err
	}
	out, err := c.buf("out", qBytes, DeviceLocal)
	if err != nil {
		return nil, err
	}
	a.po, a.pml, a.out = po.Range(0, uint64(a.splits)*qBytes), pml.Range(0, uint64(a.splits*c.b*s.hq)*8), out.Range(0, qBytes)
	a.cnt = cnt.Range(0, uint64(s.rows)*4)
	if c.opt.Trace && a.split != nil {
		if a.trace, err = c.traceBuffer("attention trace", s.rows*a.splits, tracePoints); err != nil {
			return nil, err
		}
	}
	if gather {
		if a.gather, err = c.kernel("sparse_gather", 5, gatherPush{}, gatherWorkgroup); err != nil {
			return nil, err
		}
		size := uint64(s.rows*s.k*c.d) * uint64(c.opt.Storage.bytes())
		kc, err := c.buf("gathered K", size, DeviceLocal)
		if err != nil {
			return nil, err
		}
		vc, err := c.buf("gathered V", size, DeviceLocal)
		if err != nil {
			return nil, err
		}
		a.kc, a.vc = kc.Range(0, size), vc.Range(0, size)
	}
	return a, nil
}

// sparseKernel returns sparse_split for group size g, reading the K/V rows
// through the index list (indexed) or in order, and merging the splits in
// its last workgroup of a row (fused) or leaving them to sparse_merge, over
// splits of splitLen entries: lanes per token TPT as
// SparseOptions.LanesPerToken says (the f16h entry point when they need
// fp16's 8-byte vectors), the workgroup halved while its shared memory does
// not fit, and its TILE SparseOptions.Tile or sparseTile's rule.
func (c *sparseCore) sparseKernel(g, splitLen int, indexed, fused bool) (*Kernel, error) {
	info := c.ctx.Info
	tpt, shader, err := c.sparseLanes("sparse_split")
	if err != nil {
		return nil, err
	}
	wg := cmp.Or(c.opt.Workgroup, sparseWorkgroup)
	shared := func(wg int) int { return listMergeShared(wg/tpt, c.d, g) }
	for wg > int(info.MaxSubgroupSize) && wg/2%tpt == 0 && shared(wg) > int(info.Limits.MaxComputeSharedMemorySize) {
		wg /= 2
	}
	if shared(wg) > int(info.Limits.MaxComputeSharedMemorySize) || wg%int(info.MaxSubgroupSize) != 0 {
		return nil, c.errorf("D=%d G=%d needs %d bytes of shared memory at workgroup %d, the device has %d", c.d, g, shared(wg), wg, info.Limits.MaxComputeSharedMemorySize)
	}
	bindings := 8
	if c.opt.Trace {
		shader += "_trace"
		bindings = 9
	}
	tile := c.opt.Tile
	if tile == 0 {
		tile = sparseTileRule(info.Type, splitLen, wg/tpt)
	}
	return c.kernel(shader, bindings, sparsePush{},
		uint32(wg), uint32(tpt), uint32(c.d), uint32(g), b32(indexed), uint32(tile), b32(fused), b32(c.opt.PairedKV))
}

// sparseTileRule is the tile rule of SparseOptions.Tile = 0; a variable so
// that a test can make lavapipe (a CPU device, tile 1) switch tiles between
// steps.
var sparseTileRule = sparseTile

// sparseTile returns sparse_split's TILE for splits of splitLen entries
// walked by nslot slots on a device of type dev: on a GPU 2 where a slot
// walks at most 16 entries, else 4; on a CPU 1 (as tile()). Measured on the
// H200 with every step after an L2 flush (session 25, runs 288-290): where a
// slot walks 4-8 entries (the split fill's short splits at B1/16K-128K,
// B2/16K-64K, B4/16K-32K and B8/16K) tile 2 took HATA's step 0.5-2.3 us
// shorter than 4, Quest's, Loki's and the exact top-k's up to 2.3; at 16
// entries (B1/192K-256K, B4/64K, B8/32K) 1.2 us shorter to even; at 32 and
// more (every 8K shape, whose rows take one split of 127 entries, B8/64K
// and B8/128K) 4 was 1.4-4.8 us faster (BENCHMARKS.md).
func sparseTile(dev DeviceType, splitLen, nslot int) int {
	switch {
	case dev == DeviceCPU:
		return 1
	case splitLen <= 16*nslot:
		return 2
	}
	return 4
}

// sparseLanes returns the lanes per token of the sparse attention and the
// entry point of family (sparse_split, hata_step) for the cache's storage:
// SparseOptions.LanesPerToken, or by default for fp16 twice the row's
// 16-byte vectors (its 8-byte ones, the "f16h" entry point) when that many
// lanes fit the smallest subgroup and 32: on the H200 32 lanes beat 16 for
// the sparse attention (B8/128K 123.3 us vs 130.8, B1/256K 60.5 vs 62.5,
// B8/32K 61.7 vs 62.9; BENCHMARKS.md, hata bench -opt tpt), while
// dense_split stays faster at 16; otherwise splitLanes' default.
func (c *sparseCore) sparseLanes(family string) (tpt int, shader string, err error) {
	info := c.ctx.Info
	want := c.opt.LanesPerToken
	if vecs := c.d / c.opt.Storage.vec(); want == 0 && c.opt.Storage == F16 && 2*vecs <= min(int(info.MinSubgroupSize), 32) {
		want = 2 * vecs
	}
	tpt, shader, err = splitLanes(info, family, c.d, c.opt.Storage, want)
	if err != nil {
		return 0, "", c.errorf("%v", err)
	}
	return tpt, shader, nil
}

// tile returns the TILE of the attention kernels whose splits are not known
// when they are built (select_attend, hata_step): SparseOptions.Tile, or 4 on
// GPUs and 1 on CPU devices (no latency to hide there, and LLVM compiles the
// unrolled tile slowly). sparse_split's is sparseTile's.
func (c *sparseCore) tile() int {
	if c.opt.Tile != 0 {
		return c.opt.Tile
	}
	if c.ctx.Info.Type == DeviceCPU {
		return 1
	}
	return 4
}

// lanesPerToken returns the largest power of two <= min(the smallest
// subgroup size, 32) that divides vecs, the 16-byte vectors of a row.
func lanesPerToken(info DeviceInfo, vecs int) int {
	tpt := 1
	for tpt*2 <= int(info.MinSubgroupSize) && tpt*2 <= 32 && vecs%(tpt*2) == 0 {
		tpt *= 2
	}
	return tpt
}

// checkWorkgroup reports whether w, an optional workgroup size (0: the
// default), is a multiple of the device's largest subgroup size and at most
// maxComputeWorkGroupInvocations; what names it in the error.
func checkWorkgroup(info DeviceInfo, what string, w int) error {
	if w != 0 && (w < 0 || w%int(info.MaxSubgroupSize) != 0 || uint32(w) > info.Limits.MaxComputeWorkGroupInvocations) {
		return fmt.Errorf("%s %d: want a multiple of the subgroup size %d, at most %d", what, w, info.MaxSubgroupSize, info.Limits.MaxComputeWorkGroupInvocations)
	}
	return nil
}

// checkLanes reports whether l, an optional lanes-per-token count (0: the
// default), is a power of two no larger than the smallest subgroup; whether
// it divides a row is splitLanes' check, once the head dimension is known.
func checkLanes(info DeviceInfo, l int) error {
	if l < 0 || l&(l-1) != 0 || l > int(info.MinSubgroupSize) {
		return fmt.Errorf("lanes per token %d: want a power of two <= the smallest subgroup size %d", l, info.MinSubgroupSize)
	}
	return nil
}

// splitLanes returns the lanes per token (TPT) of an attention split kernel
// (dense_split, sparse_split) over rows of d elements stored as st, and the
// kernel's entry point for st: want lanes if want is a power of two <= the
// smallest subgroup size dividing the row's 16-byte vectors, or, for fp16,
// dividing its 8-byte vectors (the "f16h" entry points, which hold half as
// many elements per lane); lanesPerToken's choice when want is 0.
func splitLanes(info DeviceInfo, family string, d int, st Storage, want int) (tpt int, shader string, err error) {
	shader = family + "_" + st.String()
	vecs := d / st.vec()
	switch {
	case want == 0:
		return lanesPerToken(info, vecs), shader, nil
	case want&(want-1) != 0 || want > int(info.MinSubgroupSize):
	case vecs%want == 0:
		return want, shader, nil
	case st == F16 && (2*vecs)%want == 0:
		return want, shader + "h", nil
	}
	return 0, "", fmt.Errorf("lanes per token %d: want a power of two <= the smallest subgroup size %d dividing the row's %d 16-byte vectors (or, fp16, its %d 8-byte ones)",
		want, info.MinSubgroupSize, vecs, 2*vecs)
}

func b32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// hostWindow is the bytes of K and V a cache in host memory is read in by
// each of the attention's dispatches (SparseOptions.AttendRows): on the
// H200 a window of 512 MiB beat 256 MiB and 1 GiB at B8/128K and B8/256K
// (run 439). A variable so that tests can scale it down to their small
// caches.
var hostWindow uint64 = 512 << 20

// hostOverlap is the rule of hostOverlapSplits: a cache in host memory of
// more than min bytes of K and V filled is read at once by splits short
// enough that the workgroups resident at any time read the rows of about
// span bytes, and of at least splitMin entries. On the H200 (runs 444-445,
// K and V paired) HATA-off at B8/128K took 1429 us in 128 splits a row
// against 1535 in windows of 512 MiB, and at B8/256K 2835 in 256 splits
// against 3174; at B8/32K and B1/256K (1 GiB each) 32 splits a row were
// within 2% of the windows, and more splits slower. A variable so that
// tests can scale it down to their small caches.
var hostOverlap = struct {
	min, span uint64
	splitMin  int
}{1 << 30, 256 << 20, 16}

// hostOverlapSplits returns the attention's splits a row over a cache in
// host memory past hostOverlap.min, read at once: workgroups launch in
// order of their row, and a row's splits are as many as leave the
// SplitPolicy's target of workgroups (those resident at once) on the rows
// of hostOverlap.span bytes, so that the gathers in flight spread over
// that much of the cache without the barriers of windows, but no more than
// ceil(k / hostOverlap.splitMin) (SplitPolicy.Plan then evens them out:
// about splitMin entries each, k=100 7 splits of 15). 0 where the windows'
// rule (hostWindows) does not apply, where SplitPolicy.Splits is set, or
// for a smaller cache.
func (c *sparseCore) hostOverlapSplits(k int) int {
	rowBytes := kvRowBytes(c.n, c.tokBytes())
	if !c.hostWindows() || c.opt.Split.Splits > 0 || uint64(c.rows())*rowBytes <= hostOverlap.min {
		return 0
	}
	target, _ := c.opt.Split.defaults(c.ctx.Info.ComputeUnits)
	inFlight := int(max(hostOverlap.span/rowBytes, 1))
	splitMin := max(hostOverlap.splitMin, 1)
	return max(min((target+inFlight-1)/inFlight, (k+splitMin-1)/splitMin), 1)
}

// attendGroups returns the cache's groups of rows as the attention a reads
// them, one dispatch each (SparseOptions.AttendRows), and whether they are
// windows of the cache that need a barrier between them.
func (c *sparseCore) attendGroups(a *attention) ([]kvGroup, bool) {
	rows, most := c.rows(), int(c.ctx.Info.Limits.MaxComputeWorkGroupCount[1])
	per := c.opt.AttendRows
	if c.hostWindows() && !a.overlap {
		per = windowRows(c.n, c.tokBytes())
	}
	if per <= 0 || per >= min(rows, most) {
		return c.groups(), false
	}
	return c.kv.groups(evenRows(rows, per)), true
}

// hostWindows reports whether the attention reads the cache in windows of
// hostWindow by default, or past hostOverlap.min at once in the short
// splits of hostOverlapSplits: a cache in host memory (HostCache,
// AttendRows 0) of a method that selects single tokens, not runs of them
// (quest's pages, streaming's sink and recent window), where the attention
// is a dispatch of its own (not the twokernel and onekernel variants of
// hata and lsh).
func (c *sparseCore) hostWindows() bool {
	inside := c.opt.Variant == VariantTwoKernel || c.opt.Variant == VariantOneKernel
	return c.opt.AttendRows == 0 && c.opt.HostCache && c.name != "quest" && c.name != "streaming" && !inside
}

// windowRows returns the cache rows of n tokens of tokBytes bytes each in
// K and in V that fit hostWindow, at least one.
func windowRows(n int, tokBytes uint64) int {
	return int(max(hostWindow/kvRowBytes(n, tokBytes), 1))
}

// kvRowBytes is the bytes of K and V of one cache row of n tokens (at
// least one) of tokBytes bytes each: what the host memory rules count.
func kvRowBytes(n int, tokBytes uint64) uint64 { return 2 * uint64(max(n, 1)) * tokBytes }

// evenRows returns the rows of each window when rows are read at most per
// at a time: as many windows, evened out (64 rows at most 7 at a time: 10
// windows of at most 7; 6 rows at most 4: two of 3).
func evenRows(rows, per int) int {
	windows := (rows + per - 1) / per
	return (rows + windows - 1) / windows
}

// recordAttention records the attention of s over its selection: "gather"
// (naive only), "attend" (sparse_split, with the merge folded in unless
// naive or merged separately, SparseOptions.Merge) and "merge"
// (sparse_merge, naive or merged separately).
//
// Both read the cache one buffer at a time (kvGroup), or one window of its
// rows at a time with a barrier between (attendGroups); the attention after
// a gather reads the gathered rows, one buffer.
func (c *sparseCore) recordAttention(b *Batch, s *step, a *attention) error {
	gs, windows := c.attendGroups(a)
	cp := c.cap
	if a.gather != nil {
		b.Stage("gather")
		dv := c.d * c.opt.Storage.bytes() / 16
		groups := min((s.k*dv+gatherWorkgroup-1)/gatherWorkgroup, 1024)
		for i, g := range gs {
			if i > 0 && windows {
				b.Barrier()
			}
			set, err := c.set(a.gather, s.sel, g.k, g.v, a.kc, a.vc)
			if err != nil {
				return err
			}
			b.Dispatch(a.gather, set, gatherPush{K: uint32(s.k), KStride: uint32(s.k), Cap: uint32(c.cap), DV: uint32(dv), Row0: uint32(g.row0)},
				uint32(groups), uint32(g.rows), 1)
		}
		b.Barrier()
		gs, cp, windows = []kvGroup{{k: a.kc, v: a.vc, row0: 0, rows: s.rows}}, s.k, false
	}
	b.Stage("attend")
	for i, g := range gs {
		if i > 0 && windows {
			b.Barrier()
		}
		bufs := []Range{s.q, s.sel, g.k, g.v, a.po, a.pml, a.out, a.cnt}
		if a.trace.Buf != nil {
			bufs = append(bufs, a.trace)
		}
		set, err := c.set(a.split, bufs...)
		if err != nil {
			return err
		}
		b.Dispatch(a.split, set, c.splitPush(s, a, cp, g.row0), uint32(a.splits), uint32(g.rows), 1)
	}
	b.Barrier()
	if a.merge == nil {
		return nil
	}
	b.Stage("merge")
	mset, err := c.set(a.merge, a.po, a.pml, a.out)
	if err != nil {
		return err
	}
	b.Dispatch(a.merge, mset, mergePush{Splits: uint32(a.splits)}, uint32(s.hq), uint32(c.b), 1)
	b.Barrier()
	return nil
}

// splitPush returns sparse_split's push constants for the attention a of s
// over a cache of row stride cp whose bound buffers start at cache row row0.
func (c *sparseCore) splitPush(s *step, a *attention, cp, row0 int) sparsePush {
	return sparsePush{
		K: uint32(s.k), KStride: uint32(s.k), Cap: uint32(cp),
		SplitLen: uint32(a.length), Splits: uint32(a.splits),
		Scale: float32(1 / math.Sqrt(float64(c.d))), Row0: uint32(row0),
	}
}

// stepPlan is what a method hands to run: how to select, and what to poison.
type stepPlan struct {
	s       *step
	hostSel []byte // the selection made on the host, uploaded with q; nil: rec selects
	poison  []Range
	// rec records the method's selection stages ("encode", "score",
	// "select"), leaving the ascending selection in s.sel.
	rec func(b *Batch) error
	// prepare, when set, is called with the step's attention once run has
	// prepared it and allocated its own buffers, before anything is
	// recorded (HATA's warm workgroups, SparseOptions.Warm, size their
	// buffers by it and zero them).
	prepare func(a *attention) error
	// zero: ranges filled with 0 in the "upload" stage, before its barrier,
	// so that a buffer rec accumulates into needs no barrier of its own.
	zero []Range
	// attend, when set, records the attention in place of recordAttention
	// (HATA's select_attend, which selects and attends in one dispatch),
	// into the buffers of an attention of splits splits.
	attend func(b *Batch, a *attention) error
	splits int
	gather bool
	// extra readbacks after the step: dst (a Readback buffer) <- src
	extra []copyOp
	// scores: where the step leaves its float scores (topk, loki, quest)
	scores scoreView
}

// Decode implements ref.Method: one decode step on the GPU (the method's
// plan, then the attention), returning the output and the selection, read
// back with it.
func (c *sparseCore) Decode(q []float32, budget ref.Budget) (*ref.Result, error) {
	p, err := c.planner.plan(q, budget)
	if err != nil {
		return nil, err
	}
	res, err := c.run(q, p, true)
	c.stepped, c.lastScores = err == nil, p.scores
	return res, err
}

// Step runs one decode step without reading anything back (for timing it:
// Timings gives the stages). The output stays on the device.
func (c *sparseCore) Step(q []float32, budget ref.Budget) (Timings, error) {
	p, err := c.planner.plan(q, budget)
	if err != nil {
		return Timings{}, err
	}
	_, err = c.run(q, p, false)
	c.stepped, c.lastScores = err == nil, p.scores
	if err != nil {
		return Timings{}, err
	}
	return c.timings, nil
}

// run records and submits one decode step: "upload" (q, and a host
// selection), "poison" (when the context poisons), the method's stages, the
// attention, and with readback "readback" (the output and the selection). It
// returns Out and, with readback, Selected.
func (c *sparseCore) run(q []float32, p *stepPlan, readback bool) (*ref.Result, error) {
	s := p.s
	a, err := c.prepareAttention(s, p.gather, p.splits)
	if err != nil {
		return nil, err
	}
	c.lastAttend = a
	qUp := c.scratch["q upload"]
	copy(qUp.Bytes(), f32Bytes(q))
	var selUp, outRB, selRB *Buffer
	if p.hostSel != nil {
		if selUp, err = c.buf("selection upload", uint64(len(p.hostSel)), Upload); err != nil {
			return nil, err
		}
		copy(selUp.Bytes(), p.hostSel)
	}
	var pro *Buffer
	if c.opt.Prologue > 0 {
		if pro, err = c.buf("prologue", c.opt.Prologue, DeviceLocal); err != nil {
			return nil, err
		}
	}
	if readback {
		if outRB, err = c.buf("out readback", s.q.Size, Readback); err != nil {
			return nil, err
		}
		if selRB, err = c.buf("selection readback", s.sel.Size, Readback); err != nil {
			return nil, err
		}
	}
	if p.prepare != nil { // after the buffers above, whose allocation frees the cached sets
		if err := p.prepare(a); err != nil {
			return nil, err
		}
	}
	b, err := c.getBatch()
	if err != nil {
		return nil, err
	}
	if err := b.Begin(); err != nil {
		return nil, err
	}
	b.Stage("upload")
	if pro != nil {
		b.Fill(pro.Range(0, c.opt.Prologue&^3), 0)
	}
	if err := c.qup.record(c.ctx, b, s.q, qUp.Range(0, s.q.Size)); err != nil {
		return nil, c.errorf("%v", err)
	}
	for _, r := range p.zero {
		b.Fill(r, 0)
	}
	if selUp != nil {
		b.Copy(s.sel, selUp.Range(0, s.sel.Size))
	}
	b.Barrier()
	if c.ctx.poison {
		b.Stage("poison")
		for _, r := range p.poison {
			if r.Buf != nil { // an optional range left empty (a trace off)
				b.Fill(r, NaNBits)
			}
		}
		if selUp == nil {
			b.Fill(s.sel, NaNBits)
		}
		for _, r := range []Range{a.po, a.pml, a.out, a.kc, a.vc, a.trace} {
			if r.Buf != nil {
				b.Fill(r, NaNBits)
			}
		}
		b.Barrier()
		if readback {
			for _, r := range []*Buffer{outRB, selRB} {
				w := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(r.Bytes()))), r.size/4)
				for i := range w {
					w[i] = NaNBits
				}
			}
		}
	}
	if p.rec != nil {
		if err := p.rec(b); err != nil {
			return nil, err
		}
	}
	if p.attend != nil {
		if err := p.attend(b, a); err != nil {
			return nil, err
		}
	} else if err := c.recordAttention(b, s, a); err != nil {
		return nil, err
	}
	if readback {
		b.Stage("readback")
		b.Copy(outRB.Range(0, s.q.Size), a.out)
		b.Copy(selRB.Range(0, s.sel.Size), s.sel)
		for _, op := range p.extra {
			b.Copy(op.dst, op.src)
		}
	}
	t, err := b.Submit()
	if err != nil {
		return nil, c.errorf("decode (B=%d Hq=%d Hkv=%d N=%d k=%d): %v", c.b, s.hq, c.hkv, c.n, s.k, err)
	}
	c.timings = t
	if !readback {
		return nil, nil
	}
	for _, r := range append([]*Buffer{outRB, selRB}, extraBuffers(p.extra)...) {
		if err := r.invalidate(); err != nil {
			return nil, err
		}
	}
	out := make([]float32, len(q))
	copy(out, bytesF32(outRB.Bytes()))
	words := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(selRB.Bytes()))), s.rows*s.k)
	sel := make([][]int32, s.rows)
	flat := make([]int32, s.rows*s.k)
	for i, w := range words {
		flat[i] = int32(w)
	}
	for r := range sel {
		sel[r] = flat[r*s.k : (r+1)*s.k : (r+1)*s.k]
	}
	return &ref.Result{Out: out, Selected: sel}, nil
}

func extraBuffers(ops []copyOp) []*Buffer {
	var bs []*Buffer
	for _, op := range ops {
		bs = append(bs, op.dst.Buf)
	}
	return bs
}

// readWords reads n uint32 words at byte offset off of buf (any kind).
func (c *sparseCore) readWords(buf *Buffer, off uint64, n int) ([]uint32, error) {
	w := make([]uint32, n)
	if n == 0 {
		return w, nil
	}
	if err := c.ctx.Read(buf, off, unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4*n)); err != nil {
		return nil, c.errorf("%v", err)
	}
	return w, nil
}

// Close frees the device memory of the method.
func (c *sparseCore) Close() error { c.close(); return nil }

// close frees everything the core allocated.
func (c *sparseCore) close() {
	c.freeCache()
	for name, b := range c.scratch {
		b.Free()
		delete(c.scratch, name)
	}
	c.batch.Free()
	c.batch = nil
	c.qup.free()
}

// windows returns the forced tokens of w among n with budget k as ref.Windows
// does (sinks first, then the most recent tokens, inside k): tokens t <
// sinkEnd or t >= recentStart, forced of them.
func windows(w ref.Windows, n, k int) (sinkEnd, recentStart, forced int) {
	sinkEnd, recentStart = w.Bounds(n, k)
	return sinkEnd, recentStart, sinkEnd + n - recentStart
}

// The push constants of the top-k kernels, mirroring their GLSL blocks.
type (
	// projPush mirrors proj.glsl (hata_encode_*, loki_rotate_*).
	projPush struct {
		T0, T1  uint32 // keys: token range; q: 0 and the number of query vectors
		Cap     uint32 // keys: row stride of K and the output, in tokens
		Hkv     uint32
		Group   uint32 // q: G
		Ldw     uint32 // row stride of W, in floats
		Ostride uint32 // output row stride, in words or floats
		Row0    uint32 // keys: the cache row of the bound K's row 0
	}
	// hataScorePush mirrors hata_score.comp.
	hataScorePush struct {
		N, Cap, ChunkLen, SinkEnd, RecentStart, KeyStride uint32
		Hkv, Ldw, Rbit                                    uint32 // its query encode (fused variant)
		KK, KStride                                       uint32 // SelectPlan: the select's kk and row stride
	}
	// selectPush mirrors select.glsl (select_hist, select_count, select_write,
	// select_groups, select_attend).
	selectPush struct {
		N, KK, SinkEnd, RecentStart, ChunkLen, NChunks, KeyStride, Page, KStride, Pass, Radix, NBins, Cum uint32
		// select_attend only: K/V row stride, 1/sqrt(D), S = NChunks
		Cap    uint32
		Scale  float32
		Splits uint32
		Plan   uint32 // 1: T and the chunk starts from hata_score's plan (select_plan.glsl)
	}
	// sparsePush mirrors sparse_split.glsl.
	sparsePush struct {
		K, KStride, Cap, SplitLen, Splits uint32
		Scale                             float32
		Row0                              uint32 // the cache row of the bound K's and V's row 0
	}
	// gatherPush mirrors sparse_gather.comp.
	gatherPush struct {
		K, KStride, Cap, DV uint32
		Row0                uint32 // the cache row of the bound K's and V's row 0
	}
	// logitsPush mirrors score_logits.glsl.
	logitsPush struct {
		N, Cap, KStride, ChunkLen, NChunks, XStride uint32
		Scale                                       float32
		Row0                                        uint32 // the cache row of the bound K's row 0
	}
	// softmaxPush mirrors score_softmax.comp.
	softmaxPush struct {
		N, XStride, ChunkLen, NChunks, KeyStride uint32
	}
	// questBoundsPush mirrors quest_bounds.glsl.
	questBoundsPush struct {
		N, Cap, Page, P0, PCap uint32
		Row0                   uint32 // the cache row of the bound K's row 0
	}
	// questScorePush mirrors quest_score.glsl.
	questScorePush struct {
		Pages, PCap, PStride, Chunk uint32
	}
)
