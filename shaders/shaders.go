// Package shaders holds the GLSL compute kernels of package vk and their
// SPIR-V, compiled ahead of time and committed, embedded here with go:embed.
//
// Layout (ggml's): every *.comp is an entry point that becomes <name>.spv;
// *.glsl are includes. A kernel family shares one .glsl body, and its storage
// variants are two-line .comp files that #define a type and include it
// (dense_split_f32.comp, dense_split_f16.comp). Sizes are specialization
// constants (`layout(local_size_x_id = 0) in;`, head dim, group size, ...),
// and each kernel declares one push-constant block that package vk mirrors
// with exactly one Go struct (checked by vk's tests against the SPIR-V).
//
// Regenerate the SPIR-V after editing a shader with
//
//	make shaders         # glslc --target-env=vulkan1.2 -O, then spirv-val
//
// and CI runs `make shaders-check`, which fails when the committed .spv
// differ from a fresh compile.
package shaders

//go:generate make -C .. shaders

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

//go:embed *.spv
var files embed.FS

// SPIRV returns the SPIR-V binary of the entry point name (the .comp file's
// base name, e.g. "dense_merge").
func SPIRV(name string) ([]byte, error) {
	b, err := files.ReadFile(name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("shaders: no compiled shader %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Names returns the entry points that have SPIR-V, sorted.
func Names() []string {
	ents, err := fs.Glob(files, "*.spv")
	if err != nil {
		return nil // the pattern is constant and valid
	}
	for i, e := range ents {
		ents[i] = strings.TrimSuffix(e, ".spv")
	}
	slices.Sort(ents)
	return ents
}
