package batchstate

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/model"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Source reads one batch from Partner Center; *partnercenter.Client is one.
type Source interface {
	BatchStatus(ctx context.Context, customerID, trackingID string) (*partnercenter.Batch, error)
	// ThrottledUntil is when the hold after a 429 ends, zero when none is
	// in force.
	ThrottledUntil() time.Time
	// ReadStamp names the settings this source reads under: what is read
	// with it is stored with this stamp, and a stored read with another
	// stamp is read again.
	ReadStamp() string
}

// ReadPolicy is how the current configuration wants batches read.
type ReadPolicy struct {
	// Refresh is how old the last attempt at an unsettled batch must be
	// before it is read again.
	Refresh time.Duration
	// Timeout bounds one read, retries included. Reads do not end with the
	// scrape that started them, so this is their only bound.
	Timeout time.Duration
	// Retention retires a finished batch once its completion is longer ago
	// than this; 0 keeps every batch.
	Retention time.Duration
}

// defaultReadTimeout bounds a read when the policy names no timeout.
const defaultReadTimeout = 30 * time.Second

// Reader decides which batches a scrape reads and runs those reads: at
// most one read per batch at a time, shared by every scrape that wants it,
// at most a configured number at once, each detached from the scrape that
// started it. It records outcomes in its Store and logs what changed.
type Reader struct {
	store  *Store
	logger log.Logger
	now    func() time.Time
	// reads runs the reads: one per batch at a time, at most
	// max_concurrent_requests at once, the rest waiting in its FIFO.
	reads *queue
	// onRetire, when set, is told of each batch the reader retires, so
	// that what it exported can be freed at once (the collector's export cache).
	onRetire func(Target)

	health health
}

// NewReader returns a reader that records into store and runs at most
// maxConcurrent reads at a time.
func NewReader(store *Store, logger log.Logger, maxConcurrent int) *Reader {
	return &Reader{store: store, logger: logger, now: time.Now, reads: newQueue(maxConcurrent)}
}

// OnRetire has f told of each batch the reader retires from then on. It is
// set once, before the first read.
func (r *Reader) OnRetire(f func(Target)) { r.onRetire = f }

// SetClock has the reader take the time from now: for tests that run it
// at a fixed clock.
func (r *Reader) SetClock(now func() time.Time) { r.now = now }

// SetMaxConcurrent changes the bound on concurrent reads (at least one).
// Reads already running finish; waiting reads start under the new bound.
func (r *Reader) SetMaxConcurrent(n int) { r.reads.setLimit(n) }

// LastSuccess is when a read last succeeded: an answer from Partner Center
// that was read and decoded whole. It is zero before the first.
func (r *Reader) LastSuccess() time.Time { return loadTime(&r.health.lastSuccess) }

// Result is one batch as one scrape sees it.
type Result struct {
	Target
	BatchState
}

// Read returns one Result per target, in order, after reading the batches
// that are due. It returns when those reads are done or ctx ends, whichever
// comes first. A read still running then goes on, and its outcome serves
// later scrapes; this scrape shows what was known before it.
//
// A scrape joining reads already running costs a channel each, not a
// goroutine: many scrapers of many batches stay cheap.
func (r *Reader) Read(ctx context.Context, src Source, targets []Target, p ReadPolicy) []Result {
	results := make([]Result, len(targets))
	now := r.now()
	detached := context.WithoutCancel(ctx)
	stamp := src.ReadStamp()
	var pending []pendingRead
	for i, t := range targets {
		s, _ := r.store.Get(t)
		s = r.applyRetention(t, s, now, p.Retention, stamp)
		results[i] = Result{Target: t, BatchState: s}
		if due(s, now, p.Refresh, stamp) {
			pending = append(pending, pendingRead{index: i, done: r.join(detached, src, t, p)})
		}
	}
	for _, pr := range pending {
		select {
		case <-pr.done:
		case <-ctx.Done():
		}
		// Whether or not the read finished, the store has the latest; a
		// batch read for the first time may be past the retention.
		t := targets[pr.index]
		s, _ := r.store.Get(t)
		results[pr.index].BatchState = r.applyRetention(t, s, r.now(), p.Retention, stamp)
	}
	return results
}

// pendingRead is a read a scrape waits for.
type pendingRead struct {
	index int
	done  <-chan struct{}
}

// applyRetention retires a batch that has just passed the retention, and
// brings back one that a raised retention covers again, logging either
// once. Only a read made under the settings stamp names retires a batch:
// one read under others is read again first. It returns the batch's state
// after that.
func (r *Reader) applyRetention(t Target, s BatchState, now time.Time, retention time.Duration, stamp string) BatchState {
	expired := pastRetention(s, now, retention)
	switch {
	case expired && !s.Retired && s.Stamp == stamp:
		if retired, ok := r.store.Retire(t, stamp); ok {
			// What it exported is no longer shown: free it now rather
			// than at the next sweep.
			if r.onRetire != nil {
				r.onRetire(t)
			}
			r.batchLogger(t).Log("msg", "batch retired: finished longer ago than the retention",
				"completed", s.Batch.CompletedTime.UTC().Format(time.RFC3339), "retention", model.Duration(retention))
			return retired
		}
	case s.Retired && !expired:
		r.store.Unretire(t)
		r.batchLogger(t).Log("msg", "batch no longer retired after a retention change; reading it again")
		return BatchState{}
	}
	return s
}

// pastRetention reports whether a settled batch completed longer than
// retention ago. A batch without a completion time is never retired: its
// age is unknown.
func pastRetention(s BatchState, now time.Time, retention time.Duration) bool {
	return retention > 0 && s.Settled() && !s.Batch.CompletedTime.IsZero() &&
		now.Sub(s.Batch.CompletedTime) > retention
}

func (r *Reader) batchLogger(t Target) log.Logger {
	return level.Info(log.With(r.logger, "customer_id", t.CustomerID, "batch_tracking_id", t.TrackingID))
}

// join returns a channel that is closed when the batch's read ends,
// queueing the read unless one is queued or running. The read runs under
// ctx, which carries no cancellation: one scrape ending must not end a
// read another scrape is waiting for. A queued read waits without a
// deadline: there is at most one per batch and it sends nothing while it
// waits, so waiting is never an error; its timeout starts with the read.
func (r *Reader) join(ctx context.Context, src Source, t Target, p ReadPolicy) <-chan struct{} {
	return r.reads.do(t.Key(), func() { r.readIfDue(ctx, src, t, p) })
}

// readIfDue reads the batch unless another read finished since the caller
// looked (the queue forgets a key when its read ends) or a reload removed
// it meanwhile. It runs when the read's turn has come, however long it
// waited in the queue, so this one check is made right before the read.
func (r *Reader) readIfDue(ctx context.Context, src Source, t Target, p ReadPolicy) {
	if !r.stillDue(src, t, p) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout(p))
	defer cancel()
	started := r.now()
	batch, err := src.BatchStatus(ctx, t.CustomerID, t.TrackingID)
	r.record(src, t, started, batch, err)
}

// stillDue reports whether the batch is a member and due for src.
func (r *Reader) stillDue(src Source, t Target, p ReadPolicy) bool {
	s, ok := r.store.Get(t)
	return ok && due(s, r.now(), p.Refresh, src.ReadStamp())
}

// record stores a read's outcome and logs what changed. The read is stored
// with the stamp of src, the source that made it: a read that waited in the
// queue through a reload is stored as read under the old settings, and so
// is due again under the new ones.
func (r *Reader) record(src Source, t Target, started time.Time, batch *partnercenter.Batch, err error) {
	now := r.now()
	// Whether or not the store keeps it, the answer says the API works.
	r.health.note(now, err)
	prev, stored := r.store.Record(t, src.ReadStamp(), started, now, batch, err)
	if !stored {
		return
	}
	logOutcome(log.With(r.logger, "customer_id", t.CustomerID, "batch_tracking_id", t.TrackingID), prev, batch, err)
}

// readTimeout bounds one read, retries included.
func readTimeout(p ReadPolicy) time.Duration {
	if p.Timeout <= 0 {
		return defaultReadTimeout
	}
	return p.Timeout
}
