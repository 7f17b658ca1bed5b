package ref

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// TestParallelFor checks that every index of [0, n) is visited exactly once,
// serially (GOMAXPROCS 1) and on several goroutines, and that n <= 0 visits
// none.
func TestParallelFor(t *testing.T) {
	for _, procs := range []int{1, 4} {
		old := runtime.GOMAXPROCS(procs)
		for _, n := range []int{-3, 0, 1, 2, 5, 4099} {
			calls := make([]atomic.Int32, max(n, 0))
			var outside atomic.Int32
			ParallelFor(n, func(i int) {
				if i < 0 || i >= n {
					outside.Add(1)
					return
				}
				calls[i].Add(1)
			})
			if o := outside.Load(); o != 0 {
				t.Errorf("GOMAXPROCS %d, ParallelFor(%d): %d calls outside [0, %d)", procs, n, o, n)
			}
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Errorf("GOMAXPROCS %d, ParallelFor(%d): f(%d) called %d times, want 1", procs, n, i, c)
					break
				}
			}
		}
		runtime.GOMAXPROCS(old)
	}
}
