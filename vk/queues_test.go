package vk

import "testing"

// TestQueueOverlap runs the two-queue probe: both chains complete with two
// batches pending at once (Batch.start, then finish), the queues it reports
// are the compute family's (at most 2), and every time is positive where it
// was measured. lavapipe has one queue: there only the one-queue rows run.
func TestQueueOverlap(t *testing.T) {
	ctx := device(t)
	o, err := ctx.QueueOverlap(8, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := min(max(ctx.Info.ComputeQueues, 1), 2)
	if o.Queues != want {
		t.Errorf("QueueOverlap used %d queues; the compute family has %d, want %d", o.Queues, ctx.Info.ComputeQueues, want)
	}
	if o.Alone <= 0 || o.OneQueue <= 0 || (o.Queues == 2) != (o.TwoQueues > 0) {
		t.Errorf("QueueOverlap = %+v: want every time measured positive, TwoQueues only with two queues", o)
	}
	if _, err := ctx.QueueOverlap(0, 1); err == nil {
		t.Error("QueueOverlap(0 dispatches): no error")
	}
	t.Logf("%d queue(s): %s", o.Queues, o)
}
