package vk

import (
	"fmt"
	"slices"
	"time"
)

// QueueOverlap is what Context.QueueOverlap measured: host wall-clock
// medians of one chain of dependent dispatches alone, of two such chains
// submitted together to one queue, and of the two on two queues of the
// compute family.
type QueueOverlap struct {
	Queues    int           // compute queues the context holds (1 or 2)
	Alone     time.Duration // one chain
	OneQueue  time.Duration // two chains, one queue: the second waits for the first's barriers
	TwoQueues time.Duration // two chains, two queues; 0 with one queue
}

// String formats the measurement for a benchmark's header.
func (o QueueOverlap) String() string {
	s := fmt.Sprintf("%.0f us alone, %.0f us two on one queue", us(o.Alone), us(o.OneQueue))
	if o.Queues < 2 {
		return s + " (one compute queue)"
	}
	return s + fmt.Sprintf(", %.0f us two on two queues", us(o.TwoQueues))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// QueueOverlap measures whether the device runs two independent chains of n
// dependent dispatches (1-workgroup copies, each behind a barrier, as
// DispatchFloor's) side by side when they come from two queues: the question
// behind splitting a decode step's rows over two queues so that one half's
// latency-bound stages run beside the other's (BENCHMARKS.md). In one queue
// a barrier waits for every command submitted before it, so two chains there
// take about twice one; on two queues they take about one where the device
// overlaps them. Host wall-clock medians over reps rounds (after one to warm
// up), each from the first submit to the last fence; n should make a chain
// long against a submission (hundreds of dispatches).
func (c *Context) QueueOverlap(n, reps int) (QueueOverlap, error) {
	if n < 1 || reps < 1 {
		return QueueOverlap{}, fmt.Errorf("vk: queue overlap: %d dispatches, reps %d: want both >= 1", n, reps)
	}
	o := QueueOverlap{Queues: 1}
	if c.queue2 != nil {
		o.Queues = 2
	}
	const groups = 1
	// Two chains, each ping-ponging between its own two buffers.
	var chains [2]struct {
		ch *copyChain
		b  *Batch
	}
	for i := range chains {
		ch, err := c.newCopyChain(fmt.Sprintf("queue overlap %d", i), groups*copyWorkgroup*16)
		if err != nil {
			return o, err
		}
		defer ch.free()
		chains[i].ch = ch
		if chains[i].b, err = c.NewBatch(); err != nil {
			return o, err
		}
		defer chains[i].b.Free()
	}
	record := func(i int) error {
		b := chains[i].b
		if err := b.Begin(); err != nil {
			return err
		}
		b.Stage("chain")
		chains[i].ch.record(b, n, groups, false)
		return nil
	}
	// run times the chains in use (1 or 2), the second on the second queue
	// when second.
	run := func(use int, second bool) (time.Duration, error) {
		var times []time.Duration
		for r := range reps + 1 {
			for i := range use {
				if err := record(i); err != nil {
					return 0, err
				}
			}
			chains[1].b.second = second
			start := time.Now()
			var ns [2]uint32
			for i := range use {
				var err error
				if ns[i], err = chains[i].b.start(); err != nil {
					for j := range i { // do not leave an earlier chain pending
						chains[j].b.finish(ns[j])
					}
					return 0, err
				}
			}
			for i := range use {
				if _, err := chains[i].b.finish(ns[i]); err != nil {
					return 0, err
				}
			}
			if r > 0 {
				times = append(times, time.Since(start))
			}
		}
		chains[1].b.second = false
		slices.Sort(times)
		return times[len(times)/2], nil
	}
	var err error
	if o.Alone, err = run(1, false); err != nil {
		return o, err
	}
	if o.OneQueue, err = run(2, false); err != nil {
		return o, err
	}
	if o.Queues == 2 {
		if o.TwoQueues, err = run(2, true); err != nil {
			return o, err
		}
	}
	return o, nil
}
