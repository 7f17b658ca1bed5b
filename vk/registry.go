package vk

// pushStructs maps every shader entry point of package shaders to the Go
// struct that mirrors its push-constant block (nil: the shader declares
// none). TestPushConstantLayouts checks each pair against the SPIR-V and
// fails for a shader missing here, so a new kernel cannot skip the check.
var pushStructs = map[string]any{
	"dense_split_f32": densePush{},
	"dense_split_f16": densePush{},
	"dense_merge":     mergePush{},
	"copy":            copyPush{},
	"fill_random":     randomPush{},
}
