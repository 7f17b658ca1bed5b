package vk

// pushStructs maps every shader entry point of package shaders to the Go
// struct that mirrors its push-constant block (nil: the shader declares
// none). TestPushConstantLayouts checks each pair against the SPIR-V and
// fails for a shader missing here, so a new kernel cannot skip the check.
var pushStructs = map[string]any{
	"dense_split_f32":  densePush{},
	"dense_split_f16":  densePush{},
	"dense_split_f16h": densePush{},
	"dense_merge":      mergePush{},
	"copy":             copyPush{},
	"fill_random":      randomPush{},

	// The top-k methods (sparse*.go, hata.go, topk.go, loki.go, quest.go).
	"hata_encode_q":           projPush{},
	"hata_encode_k_f32":       projPush{},
	"hata_encode_k_f16":       projPush{},
	"loki_rotate_q":           projPush{},
	"loki_rotate_k_f32":       projPush{},
	"loki_rotate_k_f16":       projPush{},
	"loki_rotate_kh_f32":      projPush{},
	"loki_rotate_kh_f16":      projPush{},
	"chase":                   chasePush{},
	"hata_score":              hataScorePush{},
	"hata_score_trace":        hataScorePush{},
	"hata_step_f16":           hataStepPush{},
	"hata_step_f16h":          hataStepPush{},
	"hata_step_f32":           hataStepPush{},
	"select_hist":             selectPush{},
	"select_count":            selectPush{},
	"select_write":            selectPush{},
	"select_groups":           selectPush{},
	"select_rows":             selectPush{},
	"select_write_trace":      selectPush{},
	"select_groups_trace":     selectPush{},
	"sparse_split_f32":        sparsePush{},
	"sparse_split_f16":        sparsePush{},
	"sparse_split_f16h":       sparsePush{},
	"sparse_split_f32_trace":  sparsePush{},
	"sparse_split_f16_trace":  sparsePush{},
	"sparse_split_f16h_trace": sparsePush{},
	"select_attend_f32":       selectPush{},
	"select_attend_f16":       selectPush{},
	"sparse_gather":           gatherPush{},
	"sparse_merge":            mergePush{},
	"score_logits_f32":        logitsPush{},
	"score_logits_f16":        logitsPush{},
	"score_softmax":           softmaxPush{},
	"quest_bounds_f32":        questBoundsPush{},
	"quest_bounds_f16":        questBoundsPush{},
	"quest_score_f32":         questScorePush{},
	"quest_score_f16":         questScorePush{},
}
