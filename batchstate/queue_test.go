package batchstate

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a job body that counts its runs, tracks how many run at once
// and blocks until released.
type gate struct {
	release chan struct{}
	mu      sync.Mutex
	order   []string
	running int
	peak    int
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) job(name string) func() {
	return func() {
		g.mu.Lock()
		g.order = append(g.order, name)
		g.running++
		g.peak = max(g.peak, g.running)
		g.mu.Unlock()
		<-g.release
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}
}

func (g *gate) started() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.order)
}

func (g *gate) runningNow() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

func (g *gate) peakSoFar() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak
}

func (q *queue) counts() (workers, pending, jobs int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.workers, len(q.pending), len(q.jobs)
}

// waitIdle waits for the queue to have no job and no worker left.
func waitIdle(t *testing.T, q *queue) {
	t.Helper()
	waitFor(t, "the queue to be idle", func() bool {
		w, p, j := q.counts()
		return w == 0 && p == 0 && j == 0
	})
}

// waitClosed waits up to 5 s for ch to be closed.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestQueueJoinersShareTheRunningAndTheQueuedJob(t *testing.T) {
	q := newQueue(1)
	g := newGate()
	running := q.do("a", g.job("a1"))
	waitFor(t, "a to start", func() bool { return len(g.started()) == 1 })
	queued := q.do("b", g.job("b1"))
	if q.do("a", g.job("a2")) != running {
		t.Error("joining a running key got a channel of its own")
	}
	if q.do("b", g.job("b2")) != queued {
		t.Error("joining a queued key got a channel of its own")
	}
	close(g.release)
	waitClosed(t, "a", running)
	waitClosed(t, "b", queued)
	if got, want := g.started(), []string{"a1", "b1"}; !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v: a joiner's job must not run", got, want)
	}
	waitIdle(t, q)
}

func TestQueueForgetsAKeyWhoseJobEnded(t *testing.T) {
	q := newQueue(2)
	var runs atomic.Int32
	run := func() { runs.Add(1) }
	first := q.do("a", run)
	waitClosed(t, "the first job", first)
	// The key is forgotten before the joiners wake: a join from one of
	// them queues a new job instead of getting the ended one.
	second := q.do("a", run)
	if second == first {
		t.Fatal("a key whose job ended still hands out the ended job")
	}
	waitClosed(t, "the second job", second)
	if got := runs.Load(); got != 2 {
		t.Errorf("ran %d times, want 2", got)
	}
	waitIdle(t, q)
}

func TestQueueRunsJobsInTheOrderAskedFor(t *testing.T) {
	q := newQueue(1)
	var mu sync.Mutex
	var order []string
	release := make(chan struct{})
	first := q.do("0", func() { <-release })
	var last <-chan struct{}
	var want []string
	for i := 1; i <= 20; i++ {
		name := fmt.Sprint(i)
		want = append(want, name)
		last = q.do(name, func() {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, name)
		})
	}
	close(release)
	waitClosed(t, "the first job", first)
	waitClosed(t, "the last job", last)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(order, want) {
		t.Errorf("ran %v, want %v", order, want)
	}
	waitIdle(t, q)
}

func TestQueueRunsAtMostLimitAtOnce(t *testing.T) {
	q := newQueue(3)
	g := newGate()
	var dones []<-chan struct{}
	for i := range 10 {
		dones = append(dones, q.do(fmt.Sprint(i), g.job(fmt.Sprint(i))))
	}
	waitFor(t, "three jobs to start", func() bool { return g.runningNow() == 3 })
	if w, p, j := q.counts(); w != 3 || p != 7 || j != 10 {
		t.Errorf("workers %d, pending %d, jobs %d; want 3, 7, 10: a waiting job must cost no goroutine", w, p, j)
	}
	close(g.release)
	for i, d := range dones {
		waitClosed(t, fmt.Sprint("job ", i), d)
	}
	if got := g.peakSoFar(); got != 3 {
		t.Errorf("peak %d jobs at once, want 3", got)
	}
	waitIdle(t, q)
}

func TestQueueLoweringTheLimitStartsNoMoreThanTheNewLimit(t *testing.T) {
	q := newQueue(4)
	before := newGate()
	for i := range 4 {
		q.do(fmt.Sprint("before", i), before.job(fmt.Sprint(i)))
	}
	waitFor(t, "four jobs to start", func() bool { return before.runningNow() == 4 })
	after := newGate()
	var dones []<-chan struct{}
	for i := range 6 {
		dones = append(dones, q.do(fmt.Sprint("after", i), after.job(fmt.Sprint(i))))
	}
	q.setLimit(2)
	if w, _, _ := q.counts(); w != 4 {
		t.Errorf("workers %d right after lowering, want the 4 running jobs left to finish", w)
	}
	close(before.release)
	// The two workers beyond the new limit exit instead of taking a job.
	waitFor(t, "two jobs queued after lowering to start", func() bool {
		w, _, _ := q.counts()
		return after.runningNow() == 2 && w == 2
	})
	if got := after.peakSoFar(); got != 2 {
		t.Errorf("%d jobs started at once after lowering the limit to 2", got)
	}
	close(after.release)
	for i, d := range dones {
		waitClosed(t, fmt.Sprint("job ", i), d)
	}
	if got := after.peakSoFar(); got != 2 {
		t.Errorf("peak %d jobs at once after lowering the limit to 2, want 2", got)
	}
	waitIdle(t, q)
}

func TestQueueRaisingTheLimitStartsWaitingJobsAtOnce(t *testing.T) {
	q := newQueue(1)
	g := newGate()
	var dones []<-chan struct{}
	for i := range 5 {
		dones = append(dones, q.do(fmt.Sprint(i), g.job(fmt.Sprint(i))))
	}
	waitFor(t, "one job to start", func() bool { return g.runningNow() == 1 })
	// Nothing ends here: the two new workers start on the raise alone.
	q.setLimit(3)
	waitFor(t, "three jobs to run", func() bool { return g.runningNow() == 3 })
	if w, p, _ := q.counts(); w != 3 || p != 2 {
		t.Errorf("workers %d, pending %d after raising the limit to 3; want 3, 2", w, p)
	}
	// Raising beyond the work starts no idle worker.
	q.setLimit(100)
	if w, _, _ := q.counts(); w != 5 {
		t.Errorf("workers %d after raising the limit to 100, want 5: one per job", w)
	}
	waitFor(t, "every job to run", func() bool { return g.runningNow() == 5 })
	close(g.release)
	for i, d := range dones {
		waitClosed(t, fmt.Sprint("job ", i), d)
	}
	waitIdle(t, q)
}

func TestQueueLeavesNoGoroutineWhenIdle(t *testing.T) {
	baseline := runtime.NumGoroutine()
	q := newQueue(4)
	for round := range 3 {
		var dones []<-chan struct{}
		for i := range 100 {
			dones = append(dones, q.do(fmt.Sprint(i), func() { runtime.Gosched() }))
		}
		for _, d := range dones {
			waitClosed(t, fmt.Sprint("round ", round), d)
		}
		waitIdle(t, q)
		waitFor(t, "the workers to exit", func() bool { return runtime.NumGoroutine() <= baseline })
	}
}

func TestQueuedReadsCostAQueueEntryNotAGoroutine(t *testing.T) {
	// 20,000 due batches behind a source that answers nothing, 4 reads at
	// a time: a cold start behind a slow Partner Center. Parked in
	// goroutines, as before the queue, the waiting reads held 20,000
	// goroutines and about 80 MB of stacks (see BENCHMARKS.md).
	const batches, limit = 20_000, 4
	baseline := runtime.NumGoroutine()
	q := newQueuedReads(t, batches, limit)
	q.queue()
	cost := q.measure(t)
	if cost.goroutines >= 100 {
		t.Errorf("%d goroutines while %d reads wait, want fewer than 100", cost.goroutines, batches)
	}
	if cost.stackBytes >= 4<<20 {
		t.Errorf("%d bytes of goroutine stacks while %d reads wait, want under 4 MiB", cost.stackBytes, batches)
	}
	if cost.heapBytes >= 32<<20 {
		t.Errorf("%d bytes of heap while %d reads wait, want under 32 MiB", cost.heapBytes, batches)
	}
	if w, p, j := q.h.reader.reads.counts(); w != limit || p != batches-limit || j != batches {
		t.Errorf("workers %d, pending %d, jobs %d; want %d, %d, %d", w, p, j, limit, batches-limit, batches)
	}
	q.drain(t)
	for _, id := range q.h.cfg.Customers[0].Batches {
		if got := q.h.src.Count(custA, id); got != 1 {
			t.Fatalf("batch %s read %d times, want 1", id, got)
		}
		if s, _ := q.h.store.Get(Target{CustomerID: custA, TrackingID: id}); s.Batch == nil {
			t.Fatalf("batch %s not stored: %+v", id, s)
		}
	}
	waitIdle(t, q.h.reader.reads)
	waitFor(t, "the workers to exit", func() bool { return runtime.NumGoroutine() <= baseline })
}
