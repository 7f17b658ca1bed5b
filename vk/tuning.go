package vk

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Tuning is the kernel parameters a benchmark may set on the methods
// BenchMethod builds, so that one run can time several settings side by side
// (hata bench -opt). Every field is a count; 0 keeps the default of the
// option it sets. A non-zero field the method does not use is an error
// (Check), so that no row claims a setting its kernels ignored.
type Tuning struct {
	// Tile is the tokens (dense) or selected entries (the top-k methods)
	// each slot of the split kernel loads ahead and scores between two
	// rescales of its accumulator: DenseOptions.Tile, SparseOptions.Tile
	// (at most 16). Every method uses it.
	Tile int
	// Workgroup is the workgroup size of the attention's split kernel
	// (dense_split, sparse_split), a multiple of the device's largest
	// subgroup size: DenseOptions.Workgroup, SparseOptions.Workgroup. Every
	// method uses it (hata/twokernel's select_attend keeps its own).
	Workgroup int
	// Splits fixes S, the splits of flash-decoding: of the N cached tokens
	// (dense) or of the k selected ones (the top-k methods), capped at N or
	// k; SplitPolicy.Splits. Every method uses it.
	Splits int
	// TargetWorkgroups is the split workgroups B*Hkv*S to aim for when
	// Splits is 0: SplitPolicy.TargetWorkgroups. Every method uses it.
	TargetWorkgroups int
	// MinTokens is the fewest tokens (or selected entries) per split when
	// Splits is 0: SplitPolicy.MinTokens. Every method uses it.
	MinTokens int
	// FillTokens is the entries per split toward which the split fill
	// shrinks splits while they fit the waves (SplitPolicy.FillTokens: the
	// top-k methods' default, where MinTokens keeps its own; dense has no
	// fill unless it is set). Every method uses it.
	FillTokens int
	// FillMaxSplits bounds the splits per row that the top-k methods'
	// split fill makes (SplitPolicy.FillMaxSplits: 64, and 32 for hata's
	// and lsh's onekernel variant), where MinTokens keeps its default.
	// Every method but dense and the twokernel variants of hata and lsh
	// (one split per select chunk).
	FillMaxSplits int
	// ScoreChunk is the tokens each workgroup of the score kernels covers:
	// SparseOptions.ScoreChunk. Used by the methods with a GPU score kernel
	// over tokens: topk, hata, lsh, loki, quest (its pages), h2o.
	ScoreChunk int
	// SelectChunk is the tokens each workgroup of the radix-select kernels
	// covers: SparseOptions.SelectChunk. Used by the methods that select on
	// the GPU with the select kernels' own chunks: topk, loki, quest, and
	// hata and lsh in the naive variant (the fused one selects over the
	// score kernel's chunks, ScoreChunk, whenever its histogram of
	// G*Rbit+1 bins fits: every shape of the paper).
	SelectChunk int
	// TPT is the lanes per token of the attention's split kernel
	// (dense_split, sparse_split): DenseOptions.LanesPerToken,
	// SparseOptions.LanesPerToken. Every method uses it (hata/twokernel's
	// select_attend keeps its own).
	TPT int
	// ScoreWorkgroup is the score kernel's workgroup size (hata_score's,
	// quest_score's): SparseOptions.ScoreWorkgroup. hata, lsh and quest.
	ScoreWorkgroup int
	// SelectWorkgroup is the workgroup size of the select's histogram,
	// count and write kernels: SparseOptions.SelectWorkgroup. topk, loki,
	// quest (where the radix select runs), hata and lsh but their
	// twokernel and onekernel variants.
	SelectWorkgroup int
	// SepMerge = 1 runs the attention's log-sum-exp merge as a dispatch of
	// its own (DenseOptions.Merge, SparseOptions.Merge = MergeSeparate), 2
	// in the split kernel's last workgroup of a row (MergeFold); 0 keeps the
	// default, MergeAuto (each family's rule, denseMergeSeparately and
	// mergeSeparately). Every method but the twokernel, onekernel and naive
	// variants of hata and lsh (their own kernels merge, or the naive chain
	// always merges separately).
	SepMerge int
	// Trace = 1 times the attention with a clock read at each phase of every
	// workgroup (DenseOptions.Trace, SparseOptions.Trace; the top-k methods'
	// select and hata's score too); the benchmark then reports where the
	// kernels' time goes. Every method but the twokernel and onekernel
	// variants of hata and lsh.
	Trace int
	// QueueGroups is the workgroups per compute unit of hata's and lsh's
	// onekernel dispatch: SparseOptions.QueueGroups.
	QueueGroups int
	// RowSelect = 1 selects by one workgroup per row wherever a row's keys
	// fit one (SparseOptions.RowSelect = RowSelectOn), 2 by the radix
	// select over chunks (RowSelectOff); 0 keeps the default,
	// RowSelectAuto. topk, loki and quest.
	RowSelect int
	// LokiF32 = 1 stores Loki's rotated keys in float32
	// (SparseOptions.LokiF32Keys; the default is float16). loki only.
	LokiF32 int
	// Plan = 1 has hata_score resolve the select's threshold and chunk
	// starts wherever it can (SparseOptions.SelectPlan = PlanOn), 2 never
	// (PlanOff); 0 keeps the default, PlanAuto. The fused and threekernel
	// variants of hata and lsh.
	Plan int
	// ProjWorkgroup is the query projection's workgroup size:
	// SparseOptions.ProjWorkgroup (hata_encode_q, loki_rotate_q). hata and
	// lsh but their twokernel, threekernel and onekernel variants (which
	// encode inside another kernel), and loki.
	ProjWorkgroup int
	// KeyBytes is SparseOptions.KeyBytes: 1 has hata_score write one-byte
	// keys on every step where the select's plan and select_groups run, 2
	// uint16 keys; 0 keeps the default (one byte until a step of the cache
	// needs uint16). The fused and threekernel variants of hata and lsh.
	KeyBytes int
	// Rbit is the hash width of hata and lsh in bits, a multiple of 32 up
	// to 1024 (0: the paper's 128): the random weights BenchMethod draws
	// are [Hkv][D][Rbit] (ref.RandomHashWeights; lsh's ref.Options.Rbit).
	// Not a parameter of the kernels but of the method, timed as one so
	// that widths can be put side by side: the score reads Rbit/8 bytes a
	// token, and its histogram has G*Rbit+1 bins. Every variant of hata and
	// lsh. Where G*Rbit+1 passes maxDirectBins (4096: rbit 1024 at G 4) the
	// fused select cannot hold the histogram, and the radix select's
	// histogram passes run instead: two levels more (6 for the fused chain's
	// 4 at B1/8K, say).
	Rbit int
	// Prefetch = 1 runs the translation prefetch beside the score kernel
	// whatever the cache's allocations (SparseOptions.Prefetch =
	// PrefetchOn), 2 never (PrefetchOff; session 26's noprefetch=1); 0
	// keeps the default, PrefetchAuto. hata and lsh but their onekernel
	// variant, quest, topk and loki.
	Prefetch int
	// PrefetchKiB is the KiB between two of the translation prefetch's
	// loads, a power of two up to 1048576 (SparseOptions.PrefetchStride;
	// 0: 1024). The methods of Prefetch.
	PrefetchKiB int
	// Pieces = 2 has dense cut all the rows' tokens into equal pieces, one
	// per workgroup, where its merge is folded (DenseOptions.Pieces =
	// PiecesOn), 1 S splits of every row (PiecesOff); 0 keeps the default,
	// PiecesAuto (off). dense.
	Pieces int
	// Warm = 1 runs one workgroup of the select, of the attention and,
	// where the merge runs apart, of the merge, beside the score kernel on
	// buffers of their own (SparseOptions.Warm = WarmOn), 2 never
	// (WarmOff), 3 the attention's and the merge's beside the select's
	// write (WarmLate); 0 keeps the default, WarmAuto. hata and lsh but
	// their twokernel, onekernel and naive variants.
	Warm int
	// HostCache = 1 keeps the K/V cache in host memory, read by the kernels
	// over the bus (DenseOptions.HostCache, SparseOptions.HostCache: the
	// paper's HATA-off, one layer). Every method.
	HostCache int
	// PairedKV = 1 keeps a token's K and V side by side in one buffer
	// (DenseOptions.PairedKV, SparseOptions.PairedKV): with hostcache=1
	// the attention gathers one 512-byte run a selected token instead of
	// two of 256. 2 keeps them in two buffers. 0, the default, is 2 but
	// where ForMethod makes it 1: with hostcache=1, for the methods that
	// read the cache only in their attention (PairsHostCache). 1: every
	// method but the variants of hata and lsh other than the fused chain;
	// 2: every method.
	PairedKV int
	// AttendRows is SparseOptions.AttendRows: the most cache rows each of
	// the attention's dispatches reads, a barrier between them (0: with
	// hostcache=1 the rows of 512 MiB of K and V, and past 1 GiB all of
	// them in short splits, but for quest and streaming, else all). Every
	// method but dense and the twokernel and onekernel variants of hata
	// and lsh.
	AttendRows int
}

// tuningKey is one field of Tuning: its key in Set and String, and the
// methods whose kernels read it: a name of Methods for all its variants,
// name/variant for one, less the name/variant entries of except.
type tuningKey struct {
	key     string
	field   func(*Tuning) *int
	methods []string
	except  []string
}

// tuningKeys lists the fields of Tuning in the order String writes them. The
// methods of each are those whose decode step reads the option it sets:
// streaming and h2o select on the host and fused hata and lsh over the score
// kernel's chunks (no SelectChunk), streaming has no score kernel (quest's
// score kernel takes ScoreChunk in tokens, covering whole pages).
var tuningKeys = []tuningKey{
	{"tile", func(t *Tuning) *int { return &t.Tile }, Methods, nil},
	{"workgroup", func(t *Tuning) *int { return &t.Workgroup }, Methods, nil},
	{"splits", func(t *Tuning) *int { return &t.Splits }, Methods, nil},
	{"targetworkgroups", func(t *Tuning) *int { return &t.TargetWorkgroups }, Methods, nil},
	{"mintokens", func(t *Tuning) *int { return &t.MinTokens }, Methods, nil},
	{"filltokens", func(t *Tuning) *int { return &t.FillTokens }, Methods, nil},
	{"fillmaxsplits", func(t *Tuning) *int { return &t.FillMaxSplits }, []string{"topk", "hata", "lsh", "loki", "quest", "streaming", "h2o"},
		[]string{"hata/twokernel", "lsh/twokernel"}},
	{"scorechunk", func(t *Tuning) *int { return &t.ScoreChunk }, []string{"topk", "hata", "lsh", "loki", "quest", "h2o"}, nil},
	{"selectchunk", func(t *Tuning) *int { return &t.SelectChunk }, []string{"topk", "hata/naive", "lsh/naive", "loki", "quest"}, nil},
	{"tpt", func(t *Tuning) *int { return &t.TPT }, Methods, nil},
	{"scoreworkgroup", func(t *Tuning) *int { return &t.ScoreWorkgroup }, []string{"hata", "lsh", "quest"}, nil},
	{"selectworkgroup", func(t *Tuning) *int { return &t.SelectWorkgroup }, []string{"topk", "hata", "lsh", "loki", "quest"},
		[]string{"hata/twokernel", "hata/onekernel", "lsh/twokernel", "lsh/onekernel"}},
	{"sepmerge", func(t *Tuning) *int { return &t.SepMerge }, Methods,
		[]string{"hata/twokernel", "hata/onekernel", "hata/naive", "lsh/twokernel", "lsh/onekernel", "lsh/naive"}},
	{"trace", func(t *Tuning) *int { return &t.Trace }, Methods,
		[]string{"hata/twokernel", "hata/onekernel", "lsh/twokernel", "lsh/onekernel"}},
	{"queuegroups", func(t *Tuning) *int { return &t.QueueGroups }, []string{"hata/onekernel", "lsh/onekernel"}, nil},
	{"rowselect", func(t *Tuning) *int { return &t.RowSelect }, []string{"topk", "loki", "quest"}, nil},
	{"lokif32", func(t *Tuning) *int { return &t.LokiF32 }, []string{"loki"}, nil},
	{"plan", func(t *Tuning) *int { return &t.Plan }, []string{"hata", "lsh"},
		[]string{"hata/twokernel", "hata/onekernel", "hata/naive", "lsh/twokernel", "lsh/onekernel", "lsh/naive"}},
	{"projworkgroup", func(t *Tuning) *int { return &t.ProjWorkgroup }, []string{"hata", "lsh", "loki"},
		[]string{"hata/twokernel", "hata/threekernel", "hata/onekernel", "lsh/twokernel", "lsh/threekernel", "lsh/onekernel"}},
	{"keybytes", func(t *Tuning) *int { return &t.KeyBytes }, []string{"hata", "lsh"},
		[]string{"hata/twokernel", "hata/onekernel", "hata/naive", "lsh/twokernel", "lsh/onekernel", "lsh/naive"}},
	{"rbit", func(t *Tuning) *int { return &t.Rbit }, []string{"hata", "lsh"}, nil},
	{"prefetch", func(t *Tuning) *int { return &t.Prefetch }, []string{"hata", "lsh", "quest", "topk", "loki"},
		[]string{"hata/onekernel", "lsh/onekernel"}},
	{"prefetchkib", func(t *Tuning) *int { return &t.PrefetchKiB }, []string{"hata", "lsh", "quest", "topk", "loki"},
		[]string{"hata/onekernel", "lsh/onekernel"}},
	{"pieces", func(t *Tuning) *int { return &t.Pieces }, []string{"dense"}, nil},
	{"warm", func(t *Tuning) *int { return &t.Warm }, []string{"hata", "lsh"},
		[]string{"hata/twokernel", "hata/onekernel", "hata/naive", "lsh/twokernel", "lsh/onekernel", "lsh/naive"}},
	{"hostcache", func(t *Tuning) *int { return &t.HostCache }, Methods, nil},
	{"pairedkv", func(t *Tuning) *int { return &t.PairedKV }, Methods,
		[]string{"hata/twokernel", "hata/threekernel", "hata/onekernel", "hata/naive",
			"lsh/twokernel", "lsh/threekernel", "lsh/onekernel", "lsh/naive"}},
	{"attendrows", func(t *Tuning) *int { return &t.AttendRows }, []string{"topk", "hata", "lsh", "loki", "quest", "streaming", "h2o"},
		[]string{"hata/twokernel", "hata/onekernel", "lsh/twokernel", "lsh/onekernel"}},
}

// ForMethod returns t with the defaults that depend on method (a name of
// Methods, optionally "/variant") made explicit: with HostCache, PairedKV 0
// becomes 1 where PairsHostCache(method). BenchMethod applies it, and the
// benchmarks label their rows with its result.
func (t Tuning) ForMethod(method string) Tuning {
	if t.HostCache != 0 && t.PairedKV == 0 && PairsHostCache(method) {
		t.PairedKV = 1
	}
	return t
}

// PairsHostCache reports whether method (a name of Methods, optionally
// "/variant") keeps a K/V cache in host memory paired by default
// (Tuning.ForMethod): where it reads a paired cache, and reads the cache
// only in its attention, which takes a token's key and value together
// (its score reads codes, page bounds or rotated keys of its own). There
// the attention of HATA and Loki gathers a selected token's K and V in one
// run of 512 bytes instead of two of 256, which the bus reads at about
// half the rate: offloaded on the H200, 1534 against 1726 us and 1803
// against 1998 at B8/128K; dense (every key and value) and Quest (its
// pages') the same either way (83.8 against 83.7 ms, 1372 against 1374
// us; run 443, BENCHMARKS.md session 46). The exact top-k's and H2O's
// scores read keys in a pass of their own, which paired would bring their
// values over the bus with: every key for the exact top-k, which took
// 85.2 ms at B8/128K paired against 43.6 apart; the kept tokens' for H2O,
// which took 2288 us at B8/128K paired against 1661 apart, and 1.03-1.13x
// longer paired at B1/32K-128K and B8/32K (run 451, BENCHMARKS.md session
// 48).
func PairsHostCache(method string) bool {
	name, _, _ := strings.Cut(method, "/")
	return name != "topk" && name != "h2o" && (Tuning{PairedKV: 1}).Check(method) == nil
}

// MaxTuningRbit is the widest hash Tuning.Rbit accepts.
const MaxTuningRbit = 1024

// tuningChoices are the keys whose values choose among a few meanings, not
// counts: the largest value, and what the values mean (Check's error).
var tuningChoices = map[string]struct {
	max  int
	want string
}{
	"sepmerge":  {2, "1 (a merge dispatch), 2 (the folded merge)"},
	"rowselect": {2, "1 (a workgroup per row), 2 (the radix select over chunks)"},
	"lokif32":   {1, "1 (float32 rotated keys)"},
	"plan":      {2, "1 (the select's plan from the score kernel), 2 (none)"},
	"keybytes":  {2, "1 (one-byte keys on every step), 2 (uint16 keys)"},
	"prefetch":  {2, "1 (the translation prefetch over any cache), 2 (none)"},
	"pieces":    {2, "1 (S splits of every row), 2 (equal pieces of all the rows' tokens)"},
	"warm":      {3, "1 (the later kernels' warm workgroups beside the score), 2 (none), 3 (the attention's beside the select)"},
	"trace":     {1, "1 (every kernel's phases traced)"},
	"hostcache": {1, "1 (the K/V cache in host memory)"},
	"pairedkv":  {2, "1 (a token's K and V side by side in one buffer), 2 (K and V apart)"},
}

// TuningKeys returns the keys of Set and String, one per field of Tuning:
// the field names in lower case.
func TuningKeys() []string {
	keys := make([]string, len(tuningKeys))
	for i, k := range tuningKeys {
		keys[i] = k.key
	}
	return keys
}

// Set sets the field whose key (TuningKeys) is key to v.
func (t *Tuning) Set(key string, v int) error {
	for _, k := range tuningKeys {
		if k.key == key {
			*k.field(t) = v
			return nil
		}
	}
	return fmt.Errorf("vk: unknown tuning key %q (have %s)", key, strings.Join(TuningKeys(), ", "))
}

// String returns the non-zero fields as key=value pairs separated by commas,
// in the order of TuningKeys ("tile=4,splits=16"); "" for the zero Tuning.
func (t Tuning) String() string {
	var parts []string
	for _, k := range tuningKeys {
		if v := *k.field(&t); v != 0 {
			parts = append(parts, k.key+"="+strconv.Itoa(v))
		}
	}
	return strings.Join(parts, ",")
}

// Check reports whether method (a name of Methods, optionally followed by
// "/variant" as BenchMethod's variant) uses every non-zero field of t, and
// that none is negative. The zero Tuning passes for every method.
func (t Tuning) Check(method string) error {
	if t == (Tuning{}) {
		return nil
	}
	name, variant, _ := strings.Cut(method, "/")
	if !slices.Contains(Methods, name) {
		return fmt.Errorf("vk: %s has no GPU kernels to tune (tuning %s)", name, t)
	}
	if variant == VariantFused {
		variant = ""
	}
	for _, k := range tuningKeys {
		v := *k.field(&t)
		switch {
		case v < 0:
			return fmt.Errorf("vk: tuning key %s=%d: want a positive value, or 0 for the default", k.key, v)
		case tuningChoices[k.key].max > 0 && v > tuningChoices[k.key].max:
			return fmt.Errorf("vk: tuning key %s=%d: want %s or 0 (the default)", k.key, v, tuningChoices[k.key].want)
		case k.key == "prefetchkib" && (v&(v-1) != 0 || v > maxPrefetchStride>>10):
			return fmt.Errorf("vk: tuning key prefetchkib=%d: want a power of two up to %d, or 0 (the default, 1024)", v, maxPrefetchStride>>10)
		case k.key == "projworkgroup" && v != 0 && (v&(v-1) != 0 || v < 32 || v > 1024):
			return fmt.Errorf("vk: tuning key projworkgroup=%d: want a power of two from 32 to 1024, or 0 (the default)", v)
		case k.key == "rbit" && (v%32 != 0 || v > MaxTuningRbit):
			return fmt.Errorf("vk: tuning key rbit=%d: want a multiple of 32 up to %d, or 0 (the default, 128)", v, MaxTuningRbit)
		case k.key == "pairedkv" && v == 2:
			// K and V apart: the layout of every method, those that read no
			// paired cache included.
		case v != 0 && (!slices.Contains(k.methods, name) && (variant == "" || !slices.Contains(k.methods, name+"/"+variant)) ||
			variant != "" && slices.Contains(k.except, name+"/"+variant)):
			return fmt.Errorf("vk: tuning key %s: %s does not use it (used by %s)", k.key, method, strings.Join(k.methods, ", "))
		}
	}
	return nil
}

// applyDense returns o with the non-zero fields of t that dense uses.
func (t Tuning) applyDense(o DenseOptions) DenseOptions {
	o.Tile = cmp.Or(t.Tile, o.Tile)
	o.Workgroup = cmp.Or(t.Workgroup, o.Workgroup)
	o.LanesPerToken = cmp.Or(t.TPT, o.LanesPerToken)
	o.Split = t.applySplit(o.Split)
	o.Merge = t.applyMerge(o.Merge)
	o.Trace = o.Trace || t.Trace != 0
	o.HostCache = o.HostCache || t.HostCache != 0
	o.PairedKV = o.PairedKV || t.PairedKV == 1
	switch t.Pieces {
	case 1:
		o.Pieces = PiecesOff
	case 2:
		o.Pieces = PiecesOn
	}
	return o
}

// applyMerge returns m as SepMerge sets it: 1 MergeSeparate, 2 MergeFold,
// 0 m.
func (t Tuning) applyMerge(m MergeMode) MergeMode {
	switch t.SepMerge {
	case 1:
		return MergeSeparate
	case 2:
		return MergeFold
	}
	return m
}

// applySparse returns o with the non-zero fields of t that the top-k
// methods' kernels use (Rbit, the method's, is benchSparse's).
func (t Tuning) applySparse(o SparseOptions) SparseOptions {
	o.Tile = cmp.Or(t.Tile, o.Tile)
	o.Workgroup = cmp.Or(t.Workgroup, o.Workgroup)
	o.Split = t.applySplit(o.Split)
	o.ScoreChunk = cmp.Or(t.ScoreChunk, o.ScoreChunk)
	o.SelectChunk = cmp.Or(t.SelectChunk, o.SelectChunk)
	o.LanesPerToken = cmp.Or(t.TPT, o.LanesPerToken)
	o.ScoreWorkgroup = cmp.Or(t.ScoreWorkgroup, o.ScoreWorkgroup)
	o.SelectWorkgroup = cmp.Or(t.SelectWorkgroup, o.SelectWorkgroup)
	o.QueueGroups = cmp.Or(t.QueueGroups, o.QueueGroups)
	o.Trace = o.Trace || t.Trace != 0
	o.Merge = t.applyMerge(o.Merge)
	if t.RowSelect != 0 {
		o.RowSelect = RowSelectMode(t.RowSelect)
	}
	o.LokiF32Keys = o.LokiF32Keys || t.LokiF32 != 0
	if t.Plan != 0 {
		o.SelectPlan = PlanMode(t.Plan)
	}
	o.ProjWorkgroup = cmp.Or(t.ProjWorkgroup, o.ProjWorkgroup)
	o.KeyBytes = cmp.Or(t.KeyBytes, o.KeyBytes)
	if t.Prefetch != 0 {
		o.Prefetch = PrefetchMode(t.Prefetch)
	}
	o.PrefetchStride = cmp.Or(uint64(t.PrefetchKiB)<<10, o.PrefetchStride)
	if t.Warm != 0 {
		o.Warm = WarmMode(t.Warm)
	}
	o.HostCache = o.HostCache || t.HostCache != 0
	o.PairedKV = o.PairedKV || t.PairedKV == 1
	o.AttendRows = cmp.Or(t.AttendRows, o.AttendRows)
	return o
}

// applySplit returns p with the non-zero split fields of t.
func (t Tuning) applySplit(p SplitPolicy) SplitPolicy {
	p.Splits = cmp.Or(t.Splits, p.Splits)
	p.TargetWorkgroups = cmp.Or(t.TargetWorkgroups, p.TargetWorkgroups)
	p.MinTokens = cmp.Or(t.MinTokens, p.MinTokens)
	p.FillTokens = cmp.Or(t.FillTokens, p.FillTokens)
	p.FillMaxSplits = cmp.Or(t.FillMaxSplits, p.FillMaxSplits)
	return p
}
