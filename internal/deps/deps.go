// Package deps pins the modules the design names until the packages that use
// them land; it is removed once every one of them is imported for real.
package deps

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/vulkan-go/vulkan"
	_ "gonum.org/v1/gonum/mat"
	_ "gonum.org/v1/plot"
)
