package tensorio

import (
	"fmt"
	"math"
)

// CheckFinite returns an error naming the tensor, the first non-finite entry's
// index and its value, or nil when every entry of x is finite.
func CheckFinite(name string, x []float32) error {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: entry %d of %d is %v", name, i, len(x), v)
		}
	}
	return nil
}
