package collector

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/singleflight"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Source reads one batch from Partner Center; *partnercenter.Client is one.
type Source interface {
	BatchStatus(ctx context.Context, customerID, trackingID string) (*partnercenter.Batch, error)
	// ThrottledUntil is when the hold after a 429 ends, zero when none is
	// in force.
	ThrottledUntil() time.Time
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
	flight singleflight.Group

	mu  sync.Mutex
	sem chan struct{}

	// tokenFailing is true while the latest read that needed a token could
	// not get one.
	tokenFailing atomic.Bool
}

// NewReader returns a reader that records into store and runs at most
// maxConcurrent reads at a time.
func NewReader(store *Store, logger log.Logger, maxConcurrent int) *Reader {
	r := &Reader{store: store, logger: logger, now: time.Now}
	r.SetMaxConcurrent(maxConcurrent)
	return r
}

// SetMaxConcurrent changes the bound on concurrent reads; reads already
// running or waiting finish under the old bound.
func (r *Reader) SetMaxConcurrent(n int) {
	n = max(n, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sem == nil || cap(r.sem) != n {
		r.sem = make(chan struct{}, n)
	}
}

// TokenFailing reports whether the latest read that asked for a token got
// none.
func (r *Reader) TokenFailing() bool { return r.tokenFailing.Load() }

// Result is one batch as one scrape sees it.
type Result struct {
	Target
	BatchState
}

// Read returns one Result per target, in order, after reading the batches
// that are due. It returns when those reads are done or ctx ends, whichever
// comes first. A read still running then goes on, and its outcome serves
// later scrapes; this scrape shows what was known before it.
func (r *Reader) Read(ctx context.Context, src Source, targets []Target, p ReadPolicy) []Result {
	results := make([]Result, len(targets))
	now := r.now()
	var wg sync.WaitGroup
	for i, t := range targets {
		results[i].Target = t
		s, _ := r.store.Get(t)
		s = r.applyRetention(t, s, now, p.Retention)
		if !due(s, now, p.Refresh) {
			results[i].BatchState = s
			continue
		}
		wg.Go(func() {
			r.await(ctx, src, t, p)
			// A batch read for the first time may be past the retention.
			s, _ := r.store.Get(t)
			results[i].BatchState = r.applyRetention(t, s, r.now(), p.Retention)
		})
	}
	wg.Wait()
	return results
}

// applyRetention retires a batch that has just passed the retention, and
// brings back one that a raised retention covers again, logging either
// once. It returns the batch's state after that.
func (r *Reader) applyRetention(t Target, s BatchState, now time.Time, retention time.Duration) BatchState {
	expired := pastRetention(s, now, retention)
	switch {
	case expired && !s.Retired:
		if retired, ok := r.store.Retire(t); ok {
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

// await joins the batch's read, starting it if none runs, and waits for it
// until ctx ends. The read runs without ctx's cancellation: one scrape
// ending must not end a read another scrape is waiting for.
func (r *Reader) await(ctx context.Context, src Source, t Target, p ReadPolicy) {
	detached := context.WithoutCancel(ctx)
	ch := r.flight.DoChan(t.key(), func() (any, error) {
		r.readIfDue(detached, src, t, p)
		return nil, nil
	})
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// readIfDue reads the batch unless another read finished since the caller
// looked (singleflight forgets a key when its flight ends) or a reload
// removed it meanwhile.
func (r *Reader) readIfDue(ctx context.Context, src Source, t Target, p ReadPolicy) {
	if !r.stillDue(t, p) {
		return
	}
	release := r.acquire()
	defer release()
	// Waiting for a slot may have taken long: check again.
	if !r.stillDue(t, p) {
		return
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = defaultReadTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	epoch := r.store.Epoch()
	started := r.now()
	batch, err := src.BatchStatus(ctx, t.CustomerID, t.TrackingID)
	r.record(t, epoch, started, batch, err)
}

func (r *Reader) stillDue(t Target, p ReadPolicy) bool {
	s, ok := r.store.Get(t)
	return ok && due(s, r.now(), p.Refresh)
}

// acquire takes a request slot. It waits without a deadline: there is at
// most one waiting read per configured batch, and a read that waits sends
// nothing, so waiting is never an error.
func (r *Reader) acquire() (release func()) {
	r.mu.Lock()
	sem := r.sem
	r.mu.Unlock()
	sem <- struct{}{}
	return func() { <-sem }
}

// record stores a read's outcome and logs what changed.
func (r *Reader) record(t Target, epoch uint64, started time.Time, batch *partnercenter.Batch, err error) {
	prev, stored := r.store.Record(t, epoch, started, r.now(), batch, err)
	if !stored {
		return
	}
	r.noteToken(err)
	logOutcome(log.With(r.logger, "customer_id", t.CustomerID, "batch_tracking_id", t.TrackingID), prev, batch, err)
}

// noteToken follows whether reads get a token: a token error says no, any
// answer from the API (or a success) says yes, and anything else (a hold,
// a local error) says nothing.
func (r *Reader) noteToken(err error) {
	var tokenErr *partnercenter.TokenError
	var apiErr *partnercenter.Error
	switch {
	case errors.As(err, &tokenErr):
		r.tokenFailing.Store(true)
	case err == nil, errors.As(err, &apiErr):
		r.tokenFailing.Store(false)
	}
}
