package ref

import (
	"runtime"
	"sync"
)

// parallelFor calls f(i) for i in [0, n) on up to GOMAXPROCS goroutines. Every
// i is independent (one (batch, head) row each), so the result does not depend
// on the schedule.
func parallelFor(n int, f func(i int)) {
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
