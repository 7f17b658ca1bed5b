package experiments

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds config files and -set overrides to parse: whatever the
// text, it returns an experiment or an error, never a panic; a ConfigError
// names a line that exists; and a config that loads has an identity and
// points.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("../configs/*.toml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed configs in ../configs: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "")
	}
	f.Add(tiny, "synth.n=320")
	f.Add(tiny, "budgets=[0.1,")
	f.Add("kind = \"speed\"\n", "ns=[8192]")
	f.Add("kind = \"training\"\n[train]\nn = 2\n", "hash.steps=3")
	f.Add("kind = \"niah\"\n[model\n", "")
	f.Fuzz(func(t *testing.T, src, set string) {
		var ov Overrides
		if set != "" {
			ov.Set = strings.Split(set, "\n")
		}
		exp, err := parse("f.toml", src, ov)
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) && ce.File == "f.toml" && ce.Line > strings.Count(src, "\n")+1 {
				t.Errorf("%v: line %d of a %d-line file", err, ce.Line, strings.Count(src, "\n")+1)
			}
			return
		}
		if _, _, err := identity(exp); err != nil {
			t.Errorf("a config that loads has no identity: %v", err)
		}
		if len(exp.points()) == 0 {
			t.Error("a config that loads has no points")
		}
		_ = exp.columns()
	})
}
