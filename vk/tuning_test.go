package vk

import (
	"cmp"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hata-go/hata/ref"
)

// TestTuningKeys checks that every field of Tuning has one key, its name in
// lower case, that Set writes that field and String reads it back, and that
// Check refuses exactly the keys a method does not use.
func TestTuningKeys(t *testing.T) {
	typ := reflect.TypeFor[Tuning]()
	keys := TuningKeys()
	if len(keys) != typ.NumField() {
		t.Fatalf("TuningKeys() = %v, Tuning has %d fields", keys, typ.NumField())
	}
	var all Tuning
	var pairs []string
	for i, key := range keys {
		f, ok := typ.FieldByNameFunc(func(name string) bool { return strings.ToLower(name) == key })
		if !ok {
			t.Fatalf("key %q names no field of Tuning", key)
		}
		var one Tuning
		if err := one.Set(key, i+1); err != nil {
			t.Fatalf("Set(%q, %d): %v", key, i+1, err)
		}
		if got := reflect.ValueOf(one).FieldByIndex(f.Index).Int(); got != int64(i+1) {
			t.Errorf("Set(%q, %d) set %s to %d", key, i+1, f.Name, got)
		}
		if one.String() != key+"="+strconv.Itoa(i+1) {
			t.Errorf("Set(%q, %d): String() = %q", key, i+1, one.String())
		}
		all.Set(key, i+1)
		pairs = append(pairs, key+"="+strconv.Itoa(i+1))
	}
	if got, want := all.String(), strings.Join(pairs, ","); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if s := (Tuning{}).String(); s != "" {
		t.Errorf("Tuning{}.String() = %q, want empty", s)
	}
	for _, bad := range []int{3, 2 << 20} {
		if err := (Tuning{PrefetchKiB: bad}).Check("hata"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("prefetchkib=%d", bad)) {
			t.Errorf("Check(hata) with prefetchkib=%d = %v, want an error naming it", bad, err)
		}
	}
	if err := all.Set("tiles", 2); err == nil || !strings.Contains(err.Error(), `"tiles"`) {
		t.Errorf(`Set("tiles", 2) = %v, want an error naming the key`, err)
	}

	// The keys each method does not use (the rest it does).
	unused := map[string][]string{
		"dense":            {"fillmaxsplits", "scorechunk", "selectchunk", "scoreworkgroup", "selectworkgroup", "queuegroups", "rowselect", "lokif32", "plan", "projworkgroup", "keybytes", "rbit", "prefetch", "prefetchkib", "warm", "attendrows"},
		"topk":             {"scoreworkgroup", "queuegroups", "lokif32", "plan", "projworkgroup", "keybytes", "rbit", "pieces", "warm"},
		"hata":             {"selectchunk", "queuegroups", "rowselect", "lokif32", "pieces"},
		"hata/fused":       {"selectchunk", "queuegroups", "rowselect", "lokif32", "pieces"},
		"hata/twokernel":   {"fillmaxsplits", "selectchunk", "selectworkgroup", "sepmerge", "trace", "queuegroups", "rowselect", "lokif32", "plan", "projworkgroup", "keybytes", "pieces", "warm", "pairedkv", "attendrows"},
		"hata/threekernel": {"selectchunk", "queuegroups", "rowselect", "lokif32", "projworkgroup", "pieces", "pairedkv"},
		"hata/onekernel":   {"selectchunk", "selectworkgroup", "sepmerge", "trace", "rowselect", "lokif32", "plan", "projworkgroup", "keybytes", "prefetch", "prefetchkib", "pieces", "warm", "pairedkv", "attendrows"},
		"hata/naive":       {"sepmerge", "queuegroups", "rowselect", "lokif32", "plan", "keybytes", "pieces", "warm", "pairedkv"},
		"lsh":              {"selectchunk", "queuegroups", "rowselect", "lokif32", "pieces"},
		"lsh/naive":        {"sepmerge", "queuegroups", "rowselect", "lokif32", "plan", "keybytes", "pieces", "warm", "pairedkv"},
		"loki":             {"scoreworkgroup", "queuegroups", "plan", "keybytes", "rbit", "pieces", "warm"},
		"quest":            {"queuegroups", "lokif32", "plan", "projworkgroup", "keybytes", "rbit", "pieces", "warm"},
		"streaming":        {"scorechunk", "selectchunk", "scoreworkgroup", "selectworkgroup", "queuegroups", "rowselect", "lokif32", "plan", "projworkgroup", "keybytes", "rbit", "prefetch", "prefetchkib", "pieces", "warm"},
		"h2o":              {"selectchunk", "scoreworkgroup", "selectworkgroup", "queuegroups", "rowselect", "lokif32", "plan", "projworkgroup", "keybytes", "rbit", "prefetch", "prefetchkib", "pieces", "warm"},
	}
	// The smallest valid value of the keys for which 1 is not one.
	validOne := map[string]int{"rbit": 32, "projworkgroup": 32}
	for _, m := range Methods {
		if _, ok := unused[m]; !ok {
			t.Errorf("method %s missing from the test's table", m)
		}
	}
	for m := range unused {
		if err := (Tuning{}).Check(m); err != nil {
			t.Errorf("Tuning{}.Check(%q) = %v", m, err)
		}
		for _, key := range keys {
			var one Tuning
			one.Set(key, cmp.Or(validOne[key], 1))
			err := one.Check(m)
			if !slices.Contains(unused[m], key) {
				if err != nil {
					t.Errorf("Check(%q) with %s: %v, want nil", m, one, err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), m) {
				t.Errorf("Check(%q) with %s = %v, want an error naming %s and %s", m, one, err, key, m)
			}
		}
	}
	if err := (Tuning{Tile: -1}).Check("dense"); err == nil || !strings.Contains(err.Error(), "tile=-1") {
		t.Errorf("Check(dense) with tile=-1 = %v, want an error naming tile=-1", err)
	}
	for _, r := range []int{16, 33, MaxTuningRbit + 32} {
		if err := (Tuning{Rbit: r}).Check("hata"); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rbit=%d", r)) {
			t.Errorf("Check(hata) with rbit=%d = %v, want an error naming rbit=%d", r, err, r)
		}
	}
	if err := (Tuning{Rbit: MaxTuningRbit}).Check("lsh/naive"); err != nil {
		t.Errorf("Check(lsh/naive) with rbit=%d = %v, want nil", MaxTuningRbit, err)
	}
	if err := (Tuning{Tile: 2}).Check("magicpig"); err == nil || !strings.Contains(err.Error(), "magicpig") {
		t.Errorf("Check(magicpig) with tile=2 = %v, want an error naming magicpig", err)
	}
	if err := (Tuning{}).Check("magicpig"); err != nil {
		t.Errorf("Tuning{}.Check(magicpig) = %v, want nil", err)
	}
}

// The shape of benchStep: one batch row of 2 KV heads and 4 query heads,
// 200 cached tokens of 64 dimensions.
const benchB, benchHkv, benchHq, benchN, benchD = 1, 2, 4, 200, 64

// benchQuery returns queries of benchStep's shape, RandomValue(seed, i).
func benchQuery(seed uint32) []float32 {
	q := make([]float32, benchB*benchHq*benchD)
	for i := range q {
		q[i] = RandomValue(seed, uint32(i))
	}
	return q
}

// benchStep returns method name as BenchMethod builds it with tuning tu,
// prefilled with a random cache of its shape and stepped once with q and a
// budget of 40 tokens; it is closed when the test ends.
func benchStep(t *testing.T, ctx *Context, name string, tu Tuning, q []float32) ref.Method {
	t.Helper()
	m, err := ctx.BenchMethod(name, "", benchHkv, benchD, tu)
	if err != nil {
		t.Fatalf("BenchMethod(%s, %s): %v", name, tu, err)
	}
	t.Cleanup(func() { m.(io.Closer).Close() })
	if err := m.(interface {
		PrefillRandom(b, hkv, n, d int, seed uint32) error
	}).PrefillRandom(benchB, benchHkv, benchN, benchD, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Decode(q, ref.Budget{K: 40}); err != nil {
		t.Fatalf("%s with %s: decode: %v", name, tu, err)
	}
	return m
}

// TestBenchMethodTuning checks that BenchMethod's Tuning reaches the kernels:
// dense's split count and dense_split's workgroup and tile; the top-k
// attention's splits and tile, and the chunks of topk's score and select
// kernels, seen in the sizes of the buffers they need; and that a key the
// method does not use is refused.
func TestBenchMethodTuning(t *testing.T) {
	ctx := device(t)
	const b, hkv, hq, d = benchB, benchHkv, benchHq, benchD
	q := benchQuery(7)
	build := func(name string, tu Tuning) ref.Method { t.Helper(); return benchStep(t, ctx, name, tu, q) }

	// Dense: N=200 over 2 rows. By default S = min(the workgroups aimed
	// at / 2, ceil(200/32) = 7): 3 to 7 on the devices here; the test
	// fails rather than pass blind if the default is one of the wants.
	splits := func(tu Tuning) int { return build("dense", tu).(*Dense).splits }
	def := splits(Tuning{})
	fixed := 3 // a fixed S other than the default
	if def == fixed {
		fixed = 6
	}
	for _, c := range []struct {
		tu   Tuning
		want int
	}{
		{Tuning{Splits: fixed}, fixed},
		{Tuning{MinTokens: 100}, 2},                       // ceil(200/100)
		{Tuning{TargetWorkgroups: 2}, 1},                  // 2 workgroups over 2 rows
		{Tuning{Splits: 5, MinTokens: 1}, 5},              // Splits wins
		{Tuning{TargetWorkgroups: 64, FillTokens: 8}, 25}, // ceil(200/8), within 32 a row
	} {
		if c.want == def {
			t.Fatalf("the default plan has %d splits, as %s should: the test cannot tell them apart", def, c.tu)
		}
		if got := splits(c.tu); got != c.want {
			t.Errorf("dense with %s: %d splits, want %d (default %d)", c.tu, got, c.want, def)
		}
	}
	wg := 2 * int(ctx.Info.MaxSubgroupSize)
	dm := build("dense", Tuning{Tile: 3, Workgroup: wg}).(*Dense)
	if sp := dm.split.spec.Spec; sp[0] != uint32(wg) || sp[4] != 3 {
		t.Errorf("dense with tile=3,workgroup=%d: dense_split's specialization %v, want workgroup %d (id 0) and TILE 3 (id 4)", wg, sp, wg)
	}
	// Lanes per token: 2 is valid on every device here and not the default.
	if def := build("dense", Tuning{}).(*Dense).split.spec.Spec[1]; def == 2 {
		t.Fatal("dense_split's default TPT is 2: the test cannot tell tpt=2 from it")
	}
	if sp := build("dense", Tuning{TPT: 2}).(*Dense).split.spec.Spec; sp[1] != 2 {
		t.Errorf("dense with tpt=2: dense_split's specialization %v, want TPT 2 (id 1)", sp)
	}
	if m, err := ctx.BenchMethod("dense", "", hkv, d, Tuning{TPT: 3}); err == nil || !strings.Contains(err.Error(), "lanes per token 3") {
		if m != nil {
			m.(io.Closer).Close()
		}
		t.Errorf("dense with tpt=3: %v, want an error naming lanes per token 3", err)
	}
	for sm, want := range map[int]MergeMode{0: MergeAuto, 1: MergeSeparate, 2: MergeFold} {
		if got := build("dense", Tuning{SepMerge: sm}).(*Dense).opt.Merge; got != want {
			t.Errorf("dense with sepmerge=%d: DenseOptions.Merge %d, want %d", sm, got, want)
		}
	}
	// Loki's rotated keys: float16 by default, float32 with lokif32=1.
	for lf, want := range map[int]Storage{0: F16, 1: F32} {
		if got := build("loki", Tuning{LokiF32: lf}).(*Loki).keys; got != want {
			t.Errorf("loki with lokif32=%d: rotated keys in %s, want %s", lf, got, want)
		}
	}

	// topk, k=40 over 2 rows: the attention's partial outputs hold S
	// splits of q; the score kernel's partials one entry per chunk of N=200
	// tokens, head and row, the select's counts one per chunk and row. By
	// default S = 2 (ceil(40/32)) and both chunks cover all 200 tokens.
	chunks := func(tc Tuning) (core *sparseCore, s, score, sel uint64) {
		core = coreOf(build("topk", tc))
		size := func(buf string) uint64 {
			b := core.scratch[buf]
			if b == nil {
				t.Fatalf("topk: no scratch buffer %q", buf)
			}
			return b.size
		}
		return core, size("partial o") / uint64(len(q)*4), size("logit partials") / (8 * b * hq), size("select counts") / (8 * b * hkv)
	}
	wgs := 2 * int(ctx.Info.MaxSubgroupSize)
	if wgs == sparseWorkgroup {
		wgs *= 2
	}
	tu := Tuning{Tile: 3, Splits: 3, ScoreChunk: 64, SelectChunk: 50, Workgroup: wgs, TPT: 2}
	const wantS, wantScore, wantSelect = 3, 4, 4 // ceil(200/64), ceil(200/50)
	if _, s, score, sel := chunks(Tuning{}); s == wantS || score == wantScore || sel == wantSelect {
		t.Fatalf("topk defaults: %d splits, %d score chunks, %d select chunks: not told apart from %s", s, score, sel, tu)
	}
	core, s, score, sel := chunks(tu)
	if s != wantS || score != wantScore || sel != wantSelect {
		t.Errorf("topk with %s: %d splits, %d score chunks, %d select chunks; want %d, %d, %d", tu, s, score, sel, wantS, wantScore, wantSelect)
	}
	var tile, wgSpec, tpt []uint32
	for k := range core.sets {
		if strings.HasPrefix(k.k.spec.Shader, "sparse_split_") {
			tile = append(tile, k.k.spec.Spec[5])
			wgSpec = append(wgSpec, k.k.spec.Spec[0])
			tpt = append(tpt, k.k.spec.Spec[1])
		}
	}
	if len(tpt) == 0 || slices.ContainsFunc(tpt, func(x uint32) bool { return x != 2 }) {
		t.Errorf("topk with %s: sparse_split's TPT (id 1) %v, want 2", tu, tpt)
	}
	if len(tile) == 0 || slices.ContainsFunc(tile, func(x uint32) bool { return x != 3 }) {
		t.Errorf("topk with %s: sparse_split's TILE (id 5) %v, want 3", tu, tile)
	}
	if len(wgSpec) == 0 || slices.ContainsFunc(wgSpec, func(x uint32) bool { return x != uint32(wgs) }) {
		t.Errorf("topk with %s: sparse_split's workgroup (id 0) %v, want %d", tu, wgSpec, wgs)
	}

	// hata's scoreSpec workgroup (hata_score, or hata_score_k8 where the
	// step takes one-byte keys).
	swg := 2 * int(ctx.Info.MaxSubgroupSize)
	if swg == scoreWorkgroup {
		swg *= 2
	}
	var scoreSpec []uint32
	for k := range coreOf(build("hata", Tuning{ScoreWorkgroup: swg})).sets {
		if k.k.spec.Shader == "hata_score" || k.k.spec.Shader == "hata_score_k8" {
			scoreSpec = append(scoreSpec, k.k.spec.Spec[0])
		}
	}
	if len(scoreSpec) == 0 || slices.ContainsFunc(scoreSpec, func(x uint32) bool { return x != uint32(swg) }) {
		t.Errorf("hata with scoreworkgroup=%d: hata_score's workgroup (id 0) %v, want %d", swg, scoreSpec, swg)
	}
	// quest's quest_score: 128 lanes by default, 256 with the key.
	questScore := func(tu Tuning) (spec []uint32) {
		for k := range coreOf(build("quest", tu)).sets {
			if strings.HasPrefix(k.k.spec.Shader, "quest_score_") {
				spec = append(spec, k.k.spec.Spec[0])
			}
		}
		return spec
	}
	if def, got := questScore(Tuning{}), questScore(Tuning{ScoreWorkgroup: 256}); !slices.Equal(def, []uint32{questScoreWorkgroup}) || !slices.Equal(got, []uint32{256}) {
		t.Errorf("quest: quest_score's workgroup (id 0) %v by default and %v with scoreworkgroup=256, want [%d] and [256]", def, got, questScoreWorkgroup)
	}

	// selectworkgroup: the select's kernels (id 0), the radix select's for
	// topk (with selectchunk, so that no select_rows runs; 2048 bins want
	// 128 lanes or more) and the fused select's for hata (multiples of the
	// subgroup sizes here, 8 and 32, and not the default 256).
	for _, c := range []struct {
		method string
		tu     Tuning
	}{{"topk", Tuning{SelectChunk: 50, SelectWorkgroup: 512}}, {"hata", Tuning{SelectWorkgroup: 64}}} {
		var spec []uint32
		var names []string
		for k := range coreOf(build(c.method, c.tu)).sets {
			if sh := k.k.spec.Shader; strings.HasPrefix(sh, "select_") {
				spec = append(spec, k.k.spec.Spec[0])
				names = append(names, sh)
			}
		}
		if len(spec) == 0 || slices.ContainsFunc(spec, func(x uint32) bool { return x != uint32(c.tu.SelectWorkgroup) }) {
			t.Errorf("%s with %s: the select kernels %v have workgroups (id 0) %v, want %d", c.method, c.tu, names, spec, c.tu.SelectWorkgroup)
		}
	}

	// rbit: the bits of the weights hata draws and of lsh's, 128 by
	// default, and of the codes the step scored (a decode has run).
	for _, name := range []string{"hata", "lsh"} {
		for _, c := range []struct{ rbit, want int }{{0, 128}, {256, 256}, {32, 32}} {
			m := build(name, Tuning{Rbit: c.rbit}).(*HATA)
			if m.w.Rbit != c.want || m.words != c.want/32 {
				t.Errorf("%s with rbit=%d: weights of %d bits, codes of %d words; want %d bits, %d words", name, c.rbit, m.w.Rbit, m.words, c.want, c.want/32)
			}
		}
	}

	// projworkgroup: the query projections' workgroup (id 0), HATA's encode
	// and Loki's rotation.
	for _, c := range []struct{ method, shader string }{{"hata", "hata_encode_q"}, {"loki", "loki_rotate_q"}} {
		var spec []uint32
		for k := range coreOf(build(c.method, Tuning{ProjWorkgroup: 64})).sets {
			if k.k.spec.Shader == c.shader {
				spec = append(spec, k.k.spec.Spec[0])
			}
		}
		if len(spec) == 0 || slices.ContainsFunc(spec, func(x uint32) bool { return x != 64 }) {
			t.Errorf("%s with projworkgroup=64: %s's workgroup (id 0) %v, want 64", c.method, c.shader, spec)
		}
	}

	// sepmerge: sparse_split without its folded merge (FUSED, id 6) and a
	// sparse_merge dispatch; the default keeps the fold and no sparse_merge.
	merges := func(tu Tuning) (fused []uint32, merge bool) {
		for k := range coreOf(build("hata", tu)).sets {
			switch {
			case strings.HasPrefix(k.k.spec.Shader, "sparse_split_"):
				fused = append(fused, k.k.spec.Spec[6])
			case k.k.spec.Shader == "sparse_merge":
				merge = true
			}
		}
		return fused, merge
	}
	if fused, merge := merges(Tuning{SepMerge: 2}); len(fused) == 0 || slices.Contains(fused, 0) || merge {
		t.Errorf("hata with sepmerge=2: sparse_split's FUSED (id 6) %v and sparse_merge %v, want 1 and none", fused, merge)
	}
	if fused, merge := merges(Tuning{SepMerge: 1}); len(fused) == 0 || slices.Contains(fused, 1) || !merge {
		t.Errorf("hata with sepmerge=1: sparse_split's FUSED (id 6) %v and sparse_merge %v, want 0 and one", fused, merge)
	}
	if err := (Tuning{SepMerge: 3}).Check("hata"); err == nil || !strings.Contains(err.Error(), "sepmerge=3") {
		t.Errorf("Check(hata) with sepmerge=3 = %v, want an error naming sepmerge=3", err)
	}
	for _, c := range []struct {
		method, set string
		tu          Tuning
	}{{"topk", "rowselect=3", Tuning{RowSelect: 3}}, {"loki", "lokif32=2", Tuning{LokiF32: 2}}} {
		if err := c.tu.Check(c.method); err == nil || !strings.Contains(err.Error(), c.set) {
			t.Errorf("Check(%s) with %s = %v, want an error naming %s", c.method, c.set, err, c.set)
		}
	}

	for _, c := range []struct {
		name, variant string
		tu            Tuning
		key           string
	}{
		{"hata", VariantOneKernel, Tuning{SepMerge: 1}, "sepmerge"},
		{"streaming", "", Tuning{ScoreChunk: 512}, "scorechunk"},
		{"dense", "", Tuning{SelectChunk: 512}, "selectchunk"},
	} {
		if m, err := ctx.BenchMethod(c.name, c.variant, hkv, d, c.tu); err == nil || !strings.Contains(err.Error(), c.key) {
			if m != nil {
				m.(io.Closer).Close()
			}
			t.Errorf("BenchMethod(%s, %q, %s) = %v, want an error naming %s", c.name, c.variant, c.tu, err, c.key)
		}
	}
}

// TestMergeAuto checks MergeAuto's rules, sparse and dense, at the shapes
// they were measured on (the H200: 132 compute units; Llama-3.1-8B, budget
// 1.56%, the default split plans) and that CPU devices always fold.
func TestMergeAuto(t *testing.T) {
	gpu := DeviceInfo{Type: DeviceDiscrete, ComputeUnits: 132}
	for _, c := range []struct {
		what                 string
		rows, splits, length int
		want                 bool
	}{
		// The H200's plans from run 98 to session 23 (splits of 64 within a wave).
		{"B8/32K", 64, 8, 64, true},
		{"B1/256K", 8, 32, 128, true},
		{"B4/64K", 32, 16, 64, true},
		{"B1/128K", 8, 32, 64, true},
		{"B8/128K", 64, 8, 256, false},
		{"B4/256K", 32, 16, 256, false},
		{"B1/32K", 8, 8, 64, false},
		// Since session 24 (splits of 16 within a wave, sparseFillTokens).
		{"B1/32K, 16 a split", 8, 32, 16, true},
		{"B1/128K, 32 a split", 8, 64, 32, true},
		{"B4/32K, 32 a split", 32, 16, 32, true},
		// Before run 98 (splits of 128): B8/32K merged apart then; from
		// session 38 a row of 16 splits or fewer folds past 64 entries.
		{"B8/32K, 128 a split", 64, 4, 128, false},
		{"B1/128K, 128 a split", 8, 16, 128, false},
		{"one split", 200, 1, 100, false},
		// Session 38 (runs 406-407): 8-16 splits fold from 65 entries,
		// batch 2's 33 splits stay apart to 128.
		{"B8/64K", 64, 8, 128, false},
		{"B8/48K", 64, 8, 96, false},
		{"B4/128K", 32, 16, 128, false},
		{"B4/96K", 32, 16, 96, false},
		{"16 splits of 65", 32, 16, 65, false},
		{"B2/256K", 16, 33, 124, true},
		{"B2/224K", 16, 33, 109, true},
		{"17 splits of 128", 16, 17, 128, true},
		{"17 splits of 129", 16, 17, 129, false},
	} {
		if got := mergeSeparately(gpu, c.rows, c.splits, c.length); got != c.want {
			t.Errorf("%s (%d rows x %d splits of %d): separately %v, want %v", c.what, c.rows, c.splits, c.length, got, c.want)
		}
	}
	if mergeSeparately(DeviceInfo{Type: DeviceCPU, ComputeUnits: 2}, 64, 4, 128) {
		t.Error("a CPU device merges separately, want the fold")
	}
	// Dense: 396 split workgroups over B*8 rows (runs 60-61).
	for _, c := range []struct {
		what   string
		splits int
		want   bool
	}{{"B1", 49, true}, {"B2", 24, false}, {"B4", 12, false}, {"B8", 6, false}} {
		if got := denseMergeSeparately(gpu, c.splits); got != c.want {
			t.Errorf("dense %s (%d splits per row): separately %v, want %v", c.what, c.splits, got, c.want)
		}
	}
	if denseMergeSeparately(DeviceInfo{Type: DeviceCPU, ComputeUnits: 2}, 49) {
		t.Error("dense on a CPU device merges separately, want the fold")
	}
}

// h200Core is a top-k method's core with options opt on no device but the
// H200's 132 compute units and a grid of maxX workgroups across, for the
// rules that read only DeviceInfo.
func h200Core(opt SparseOptions, maxX uint32) *sparseCore {
	ctx := &Context{Info: DeviceInfo{Type: DeviceDiscrete, ComputeUnits: 132}}
	ctx.Info.Limits.MaxComputeWorkGroupCount = [3]uint32{maxX, 65535, 65535}
	return &sparseCore{ctx: ctx, opt: opt}
}

// TestScoreChunk pins the score kernels' default chunks on a device of 132
// compute units (the H200): whole chunks per row within one wave of 4
// workgroups per unit (B8/32K: 8 of 4096 tokens, where 9 of 3976 had made
// 576 workgroups for 528 places), the 512-token floor, the cap, the
// 2048-token rounding above scoreMaxChunk, SparseOptions.ScoreChunk, and the
// grid's limit; and that, off the floor, no default exceeds the wave.
func TestScoreChunk(t *testing.T) {
	c := h200Core(SparseOptions{}, 65535)
	for _, tc := range []struct {
		what                      string
		n, rows, max, perCU, want int
	}{
		{"hata B8/32K", 32768, 64, hataMaxChunk, hataScorePerCU, 4096},
		{"hata B4/64K", 65536, 32, hataMaxChunk, hataScorePerCU, 4096},
		{"hata B1/32K", 32768, 8, hataMaxChunk, hataScorePerCU, 512},
		{"hata B1/128K", 131072, 8, hataMaxChunk, hataScorePerCU, 1992},
		{"hata B1/256K", 262144, 8, hataMaxChunk, hataScorePerCU, 3976},
		{"hata B8/128K", 131072, 64, hataMaxChunk, hataScorePerCU, 16384},
		{"hata B8/256K", 262144, 64, hataMaxChunk, hataScorePerCU, 16384},
		{"topk B8/32K", 32768, 64, scoreMaxChunk, logitsPerCU, 2048},
		{"topk B1/256K", 262144, 8, scoreMaxChunk, logitsPerCU, 1992},
		{"topk B8/128K", 131072, 64, scoreMaxChunk, logitsPerCU, 4096},
		{"more rows than places", 4096, 1000, scoreMaxChunk, logitsPerCU, 4096},
	} {
		if got := c.scoreChunk(tc.n, tc.rows, tc.max, tc.perCU); got != tc.want {
			t.Errorf("%s (N %d, %d rows, cap %d): chunk %d, want %d", tc.what, tc.n, tc.rows, tc.max, got, tc.want)
		}
	}
	for _, n := range []int{8192, 20000, 32768, 65536, 100000, 131072, 262144} {
		for _, rows := range []int{8, 16, 24, 32, 64, 96, 128} {
			for _, per := range []int{hataScorePerCU, logitsPerCU} {
				ch := c.scoreChunk(n, rows, hataMaxChunk, per)
				if groups := rows * ((n + ch - 1) / ch); ch > 512 && ch < hataMaxChunk && groups > per*132 {
					t.Errorf("N %d, %d rows: chunks of %d make %d workgroups, over one wave of %d", n, rows, ch, groups, per*132)
				}
			}
		}
	}
	if got := h200Core(SparseOptions{ScoreChunk: 1000}, 65535).scoreChunk(32768, 64, hataMaxChunk, hataScorePerCU); got != 1000 {
		t.Errorf("ScoreChunk 1000: chunk %d", got)
	}
	if got := h200Core(SparseOptions{ScoreChunk: 512}, 16).scoreChunk(32768, 64, hataMaxChunk, hataScorePerCU); got != 2048 {
		t.Errorf("a grid of at most 16 workgroups across: chunk %d, want 2048", got)
	}
}

// TestHATAScoreChunk pins HATA's chunks on a device of 132 compute units
// (the H200): scoreChunk's wherever its chunks make one wave, including
// hataMaxChunk's where they just fit (B8/128K: 512 workgroups for 528
// places), and hataWavesChunk where even hataMaxChunk makes more (B8/256K,
// and Llama-2-7B's 32 KV heads at B2/256K, B4/128K and B8/64K); with
// one-byte keys up to hataKey8MaxChunk in one wave (B8/256K, B8/192K, those
// three Llama-2-7B shapes), hataWavesChunk past it (Llama-2-7B B8/256K),
// and only where a step can take them (key8Chunks: not with uint16 keys,
// the plan off or no one-pass histogram), and hataPlanChunk where shorter
// chunks would run no plan and hataPlanChunk still fills every compute
// unit (B1/80K, B1/128K, B2/48K, B4/32K, B8/16K, Llama-2-7B's B1/32K; not
// B1/64K, 128 workgroups);
// never below hataMinChunk (B1/8K to B1/64K); a little longer where the
// grid would fill its wave and the warm workgroups run (B1/128K with
// uint16 keys, B1/192K, B1/256K: warmChunk, TestWarmChunk); but not over
// SparseOptions.ScoreChunk, nor below the grid's limit, nor for the
// variants but the fused chain.
func TestHATAScoreChunk(t *testing.T) {
	c := h200Core(SparseOptions{Variant: VariantFused}, 65535)
	for _, tc := range []struct {
		what         string
		n, rows      int
		want, wantK8 int // uint16 keys, one-byte keys
	}{
		{"B1/8K", 8192, 8, hataMinChunk, hataMinChunk},
		{"B1/32K", 32768, 8, hataMinChunk, hataMinChunk},
		{"B1/64K", 65536, 8, hataMinChunk, hataMinChunk}, // 64 a row, as 1000 made; 4096 would make 128 < 132 workgroups
		{"B1/80K", 81920, 8, 1248, hataPlanChunk},
		{"B1/128K", 131072, 8, 2024, hataPlanChunk}, // uint16: 520 workgroups, not 1992's 528 (warmChunk)
		{"B2/48K", 49152, 16, 1496, hataPlanChunk},
		{"B4/32K", 32768, 32, 2048, hataPlanChunk},
		{"B8/16K", 16384, 64, 2048, hataPlanChunk},
		{"B8/32K", 32768, 64, 4096, 4096},
		{"B1/192K", 196608, 8, 3032, 3032}, // the plan runs already; 520 workgroups, not 2984's 528 (warmChunk)
		{"B1/256K", 262144, 8, 4040, 4040}, // 520, not 3976's 528 (warmChunk)
		{"B8/128K", 131072, 64, hataMaxChunk, hataMaxChunk},
		{"B4/256K", 262144, 32, hataMaxChunk, hataMaxChunk},
		{"B8/192K", 196608, 64, hataWavesChunk, 24576},
		{"B8/256K", 262144, 64, hataWavesChunk, hataKey8MaxChunk},
		{"Llama-2 B1/32K", 32768, 32, 2048, hataPlanChunk},
		{"Llama-2 B1/256K", 262144, 32, hataMaxChunk, hataMaxChunk},
		{"Llama-2 B2/256K", 262144, 64, hataWavesChunk, hataKey8MaxChunk},
		{"Llama-2 B4/128K", 131072, 128, hataWavesChunk, hataKey8MaxChunk},
		{"Llama-2 B8/64K", 65536, 256, hataWavesChunk, hataKey8MaxChunk},
		{"Llama-2 B8/256K", 262144, 256, hataWavesChunk, hataWavesChunk},
	} {
		for _, key8 := range []bool{false, true} {
			want := tc.want
			if key8 {
				want = tc.wantK8
			}
			if got := c.hataScoreChunk(tc.n, tc.rows, key8); got != want {
				t.Errorf("%s (N %d, %d rows), one-byte keys %v: chunk %d, want %d", tc.what, tc.n, tc.rows, key8, got, want)
			}
		}
	}
	if got := h200Core(SparseOptions{Variant: VariantFused, ScoreChunk: 16384}, 65535).hataScoreChunk(262144, 64, true); got != 16384 {
		t.Errorf("ScoreChunk 16384 at B8/256K: chunk %d", got)
	}
	if got := h200Core(SparseOptions{Variant: VariantFused, ScoreChunk: 512}, 65535).hataScoreChunk(32768, 8, true); got != 512 {
		t.Errorf("ScoreChunk 512 at B1/32K: chunk %d", got)
	}
	for _, v := range []string{VariantTwoKernel, VariantThreeKernel, VariantNaive} {
		if got := h200Core(SparseOptions{Variant: v}, 65535).hataScoreChunk(262144, 64, true); got != hataMaxChunk {
			t.Errorf("%s at B8/256K: chunk %d, want %d", v, got, hataMaxChunk)
		}
		if got := h200Core(SparseOptions{Variant: v}, 65535).hataScoreChunk(32768, 8, true); got != 512 {
			t.Errorf("%s at B1/32K: chunk %d, want waveChunk's 512", v, got)
		}
	}
	// The chunks assume one-byte keys only where a step can take them.
	for _, c := range []struct {
		o         SparseOptions
		fusedHist bool
		want      int
	}{
		{SparseOptions{Variant: VariantFused}, true, hataKey8MaxChunk},
		{SparseOptions{Variant: VariantFused, KeyBytes: 1}, true, hataKey8MaxChunk},
		{SparseOptions{Variant: VariantFused, KeyBytes: 2}, true, hataWavesChunk},
		{SparseOptions{Variant: VariantFused, SelectPlan: PlanOff}, true, hataWavesChunk},
		{SparseOptions{Variant: VariantFused}, false, hataWavesChunk}, // no one-pass histogram
	} {
		m := &HATA{sparseCore: h200Core(c.o, 65535)}
		if got := m.hataScoreChunk(262144, 64, m.key8Chunks(c.fusedHist)); got != c.want {
			t.Errorf("B8/256K, %+v, one-pass histogram %v: chunk %d, want %d", c.o, c.fusedHist, got, c.want)
		}
	}
	if got := h200Core(SparseOptions{Variant: VariantFused}, 16).hataScoreChunk(262144, 64, false); got != 16384 {
		t.Errorf("a grid of at most 16 workgroups across at B8/256K: chunk %d, want 16384", got)
	}
}

// TestProjQWorkgroup pins the query projection's lanes (HATA's encode and
// Loki's rotation): 512 by default, or the count asked, where the device
// allows it (the H200's limits), halved to the device's workgroup size, its
// invocations or its shared memory, and an error where even 32 lanes'
// shared memory does not fit; projQWave's default by the grid's lanes; and
// that HATA's encode kernel is built with them.
func TestProjQWorkgroup(t *testing.T) {
	h200 := Limits{MaxComputeSharedMemorySize: 48 << 10, MaxComputeWorkGroupSize: [3]uint32{1024, 1024, 64}, MaxComputeWorkGroupInvocations: 1024}
	small := h200
	small.MaxComputeWorkGroupInvocations = 256
	narrow := h200
	narrow.MaxComputeWorkGroupSize[0] = 128
	tight := h200
	tight.MaxComputeSharedMemorySize = 8 << 10
	for _, c := range []struct {
		what       string
		lim        Limits
		want, g, d int
		wg         int // 0: an error
	}{
		{"H200", h200, projQWorkgroupDefault, 4, 128, 512},
		{"H200, 256 asked", h200, 256, 4, 128, 256},
		{"256 invocations", small, projQWorkgroupDefault, 4, 128, 256},
		{"a workgroup of 128", narrow, projQWorkgroupDefault, 4, 128, 128},
		{"8 KiB of shared memory", tight, projQWorkgroupDefault, 4, 128, 256},
		{"nothing fits", tight, projQWorkgroupDefault, 16, 128, 0},
	} {
		wg, err := projQWorkgroup(c.lim, c.want, c.g, c.d)
		if c.wg == 0 {
			if err == nil {
				t.Errorf("%s: %d lanes, want an error", c.what, wg)
			}
			continue
		}
		if err != nil || wg != c.wg {
			t.Errorf("%s: %d lanes (%v), want %d", c.what, wg, err, c.wg)
		}
	}

	// projQWave: the default halved while the grid's lanes exceed the
	// H200's 132 compute units of 2048, down to 128; a CPU device, or one
	// whose units are not known, keeps the default.
	gpu := DeviceInfo{Type: DeviceDiscrete, ComputeUnits: 132}
	for _, c := range []struct {
		what       string
		info       DeviceInfo
		workgroups int
		wg         int
	}{
		{"Llama-3.1-8B B8 (256 workgroups)", gpu, 256, 512},
		{"Llama-2-7B B4 (512 workgroups)", gpu, 512, 512},
		{"a wave of 512 lanes", gpu, 528, 512},
		{"one workgroup past a wave of 512 lanes", gpu, 529, 256},
		{"Llama-2-7B B8 (1024 workgroups)", gpu, 1024, 256},
		{"2048 workgroups", gpu, 2048, 128},
		{"no fewer than 128 lanes", gpu, 1 << 16, 128},
		{"a CPU device", DeviceInfo{Type: DeviceCPU, ComputeUnits: 2}, 1024, projQWorkgroupDefault},
		{"compute units not known", DeviceInfo{Type: DeviceDiscrete}, 1024, projQWorkgroupDefault},
	} {
		if wg := projQWave(c.info, c.workgroups); wg != c.wg {
			t.Errorf("projQWave, %s: %d lanes, want %d", c.what, wg, c.wg)
		}
	}

	ctx := device(t)
	rng, s, w, kv := chunkedHATAInputs(12)
	m, want := prefilledHATAs(t, ctx, w, ref.Windows{}, SparseOptions{Storage: F16}, kv)
	defer m.Close()
	stepHATA(t, rng, "encode workgroup", kv, s.Hq, ref.Budget{K: 140}, want, m)
	wg, err := projQWorkgroup(ctx.Info.Limits, projQWorkgroupDefault, s.Hq/s.Hkv, s.D)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for k := range m.sets {
		if sp := k.k.spec; sp.Shader == "hata_encode_q" {
			found = true
			if sp.Spec[0] != uint32(wg) {
				t.Errorf("hata_encode_q built with %d lanes, want %d", sp.Spec[0], wg)
			}
		}
	}
	if !found {
		t.Error("no hata_encode_q ran")
	}
}
