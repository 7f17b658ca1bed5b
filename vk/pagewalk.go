package vk

import "fmt"

// PageWalkCost measures what the address translations of cold memory cost
// a kernel that touches it, in plain and in dedicated allocations
// (NewBuffer's choice, session 27): size bytes of device-local memory (in
// buffers of at most maxStorageBufferRange and maxMemoryAllocationSize),
// loaded 16 bytes every MiB by touch.comp, the translation prefetch's
// kernel. It returns, for plain memory then dedicated memory, the median
// over reps of the loads' time after flush.Run minus their median time
// without it (the translations and the data warm from the run before),
// divided by the MiB touched: nanoseconds a MiB. flush must evict the TLBs
// (L2Flush.AddPages) for the difference to be the walks' (and the loads'
// own misses of L2). On the H200, about 25 ns a MiB plain and 3 dedicated
// (runs 308 and 310).
func (c *Context) PageWalkCost(flush *L2Flush, size uint64, reps int) (plain, dedicated float64, err error) {
	const stride = 1 << 20
	if size < stride || reps < 1 {
		return 0, 0, fmt.Errorf("vk: page walk cost over %d bytes, reps %d: want at least 1 MiB and reps >= 1", size, reps)
	}
	b, err := c.NewBatch()
	if err != nil {
		return 0, 0, err
	}
	defer b.Free()
	var out [2]float64
	for i, ded := range []bool{false, true} {
		bufs, err := c.newBuffers("page walk cost", size, stride, ded)
		if err != nil {
			return 0, 0, err
		}
		free := func() {
			for _, buf := range bufs {
				buf.Free()
			}
		}
		t, err := c.newTouches("page walk cost results", bufs, stride)
		if err != nil {
			free()
			return 0, 0, err
		}
		record := func(b *Batch) {
			b.Stage("touch")
			t.record(b)
			b.Stage("end")
		}
		warm, err := medianRun(b, reps, "touch", record)
		var cold float64
		if err == nil {
			cold, err = medianRunAfter(b, reps, "touch", flush.Run, record)
		}
		t.free()
		free()
		if err != nil {
			return 0, 0, err
		}
		out[i] = (cold - warm) / float64(size>>20)
	}
	return out[0], out[1], nil
}
