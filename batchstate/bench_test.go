package batchstate

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
)

// BenchmarkQueuedReads queues the first read of many batches behind a
// source that answers nothing until released, four reads at a time, as a
// cold start behind a slow Partner Center does. It reports what the
// waiting reads cost while they wait, after a garbage collection: the
// goroutines, the goroutine stacks (stack-B) and the live heap (heap-B)
// beyond what the process held before the scrape. The time is that of
// queueing them all and draining the queue once released.
func BenchmarkQueuedReads(b *testing.B) {
	for _, n := range []int{20_000, 50_000} {
		b.Run(fmt.Sprintf("batches=%d", n), func(b *testing.B) {
			var cost queuedCost
			for range b.N {
				b.StopTimer()
				q := newQueuedReads(b, n, 4)
				b.StartTimer()
				q.queue()
				b.StopTimer()
				cost = q.measure(b)
				b.StartTimer()
				q.drain(b)
			}
			b.ReportMetric(float64(cost.goroutines), "goroutines")
			b.ReportMetric(float64(cost.stackBytes), "stack-B")
			b.ReportMetric(float64(cost.heapBytes), "heap-B")
		})
	}
}

// queuedReads is a harness whose batches are all due and whose source
// blocks every read until released.
type queuedReads struct {
	h       *harness
	limit   int
	started atomic.Int32
	release chan struct{}
	before  runtimeCost
}

// queuedCost is what reads waiting in the queue cost beyond the process
// before the scrape.
type queuedCost struct {
	goroutines, stackBytes, heapBytes int64
}

type runtimeCost struct {
	goroutines, stackBytes, heapBytes uint64
}

func newQueuedReads(tb testing.TB, batchCount, limit int) *queuedReads {
	tb.Helper()
	ids := make([]string, batchCount)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
	}
	q := &queuedReads{
		h:       newHarness(testConfig(time.Minute, config.Customer{ID: custA, Name: "Contoso", Batches: ids})),
		limit:   limit,
		release: make(chan struct{}),
	}
	q.h.reader.SetMaxConcurrent(limit)
	answer := blockingBatch(&q.started, q.release, processing())
	for _, id := range ids {
		q.h.src.Set(custA, id, answer)
	}
	q.before = readRuntimeCost()
	return q
}

// queue runs a scrape that gives up at once, leaving every read queued or
// running, and waits for limit reads to be running.
func (q *queuedReads) queue() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.h.read(ctx)
}

// measure waits for the running reads to block in the source, then
// returns what the waiting reads cost.
func (q *queuedReads) measure(tb testing.TB) queuedCost {
	tb.Helper()
	boundedWait(tb, "the first reads to start", func() bool { return int(q.started.Load()) == q.limit })
	now := readRuntimeCost()
	return queuedCost{
		goroutines: int64(now.goroutines) - int64(q.before.goroutines),
		stackBytes: int64(now.stackBytes) - int64(q.before.stackBytes),
		heapBytes:  int64(now.heapBytes) - int64(q.before.heapBytes),
	}
}

// drain releases the source and waits for every batch to have been read.
func (q *queuedReads) drain(tb testing.TB) {
	tb.Helper()
	close(q.release)
	n := len(q.h.cfg.Customers[0].Batches)
	boundedWait(tb, "every read to finish", func() bool {
		s, _ := q.h.store.Get(Target{CustomerID: custA, TrackingID: q.h.cfg.Customers[0].Batches[n-1]})
		return q.h.src.TotalCalls() == n && !s.LastAttempt.IsZero()
	})
}

// readRuntimeCost collects the garbage, then reads the goroutine count,
// the goroutine stacks and the live heap objects.
func readRuntimeCost() runtimeCost {
	runtime.GC()
	samples := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(samples)
	return runtimeCost{goroutines: samples[0].Value.Uint64(), stackBytes: samples[1].Value.Uint64(), heapBytes: samples[2].Value.Uint64()}
}

// boundedWait polls cond for up to 60 s: long enough for 50,000 reads
// under the race detector on a loaded machine.
func boundedWait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
