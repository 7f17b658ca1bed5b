package ref

import (
	"runtime"
	"sync"
)

// ParallelFor calls f(i) for every i in [0, n) on up to GOMAXPROCS goroutines
// and returns when every call has returned; n <= 0 calls nothing. The calls
// run in any order and at once, so f(i) must write only outputs of its own i:
// ref gives each i one (batch, head) row, and its results do not depend on
// the schedule.
func ParallelFor(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}
