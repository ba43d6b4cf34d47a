package batchstate

import "sync"

// queue runs keyed jobs in the order they were asked for: at most one job
// per key at a time, at most limit jobs at once. A job waiting its turn is
// an entry in a slice, not a parked goroutine, so that tens of thousands
// of due batches behind a slow API cost kilobytes of heap rather than
// megabytes of goroutine stacks. Workers exist only while there is work:
// when the queue is empty, none is left running.
type queue struct {
	mu sync.Mutex
	// limit bounds the workers, and so the jobs running at once.
	limit int
	// workers is how many worker goroutines are running.
	workers int
	// pending holds the jobs waiting for a worker, oldest first.
	pending []*job
	// jobs holds every pending or running job by key, for joiners.
	jobs map[string]*job
}

// job is one queued or running piece of work.
type job struct {
	key  string
	run  func()
	done chan struct{}
}

// newQueue returns a queue that runs at most limit jobs at once (at
// least one).
func newQueue(limit int) *queue {
	return &queue{limit: max(limit, 1), jobs: map[string]*job{}}
}

// do queues run under key unless a job of that key is already pending or
// running, and returns a channel closed when that job has ended. Once a
// key's job has ended the key is forgotten: the next do of it queues run
// again, so run must check for itself whether it is still needed.
func (q *queue) do(key string, run func()) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if j, ok := q.jobs[key]; ok {
		return j.done
	}
	j := &job{key: key, run: run, done: make(chan struct{})}
	q.jobs[key] = j
	q.pending = append(q.pending, j)
	if q.workers < q.limit {
		q.workers++
		go q.work()
	}
	return j.done
}

// setLimit changes the bound on jobs running at once. Raising it starts
// workers for waiting jobs at once; lowering it lets running jobs finish,
// and workers beyond the new bound exit instead of taking another job.
func (q *queue) setLimit(limit int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.limit = max(limit, 1)
	// One new worker per waiting job at most: every running worker is busy
	// with a job of its own.
	for range min(q.limit-q.workers, len(q.pending)) {
		q.workers++
		go q.work()
	}
}

// work runs pending jobs until there are none left, or until the workers
// outnumber the limit.
func (q *queue) work() {
	for {
		j := q.next()
		if j == nil {
			return
		}
		j.run()
		q.mu.Lock()
		// Forget the key before waking the joiners, so that one which
		// joins again on waking queues a new job instead of getting this
		// ended one.
		delete(q.jobs, j.key)
		q.mu.Unlock()
		close(j.done)
	}
}

// next takes the oldest pending job, or returns nil after counting the
// calling worker out.
func (q *queue) next() *job {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 || q.workers > q.limit {
		q.workers--
		return nil
	}
	j := q.pending[0]
	q.pending[0] = nil
	q.pending = q.pending[1:]
	if len(q.pending) == 0 {
		// Let go of the backing array a burst of jobs grew.
		q.pending = nil
	}
	return j
}
