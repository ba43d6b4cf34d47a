package collector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/sync/singleflight"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Source reads one batch from Partner Center; *partnercenter.Client is one.
type Source interface {
	BatchStatus(ctx context.Context, customerID, trackingID string) (*partnercenter.Batch, error)
}

// Target names one configured batch.
type Target struct {
	CustomerID   string
	CustomerName string
	TrackingID   string
}

func (t Target) key() string { return t.CustomerID + "/" + t.TrackingID }

// BatchState is what the exporter knows of one batch.
type BatchState struct {
	// Batch is the last successful read, nil when there was none.
	Batch *partnercenter.Batch
	// LastSuccess is when Batch was read.
	LastSuccess time.Time
	// LastAttempt is when the last finished read started.
	LastAttempt time.Time
	// LastError is why the last read failed; nil after a success.
	LastError error
}

// Result is one batch as seen by one scrape.
type Result struct {
	Target
	BatchState
	// Current is true when Batch is the batch's current state: just read,
	// read within the refresh interval, or finished (it cannot change).
	Current bool
	// Attempted is true when this scrape asked the API (or joined a read
	// another scrape had started), and Err is that read's error.
	Attempted bool
	Err       error
}

// Cache remembers the last read of every configured batch and decides
// which batches a scrape must read again. Finished batches are read once;
// concurrent scrapes share reads of the same batch. It is safe for
// concurrent use.
type Cache struct {
	logger log.Logger
	now    func() time.Time
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]*entry
	// sem bounds the reads running at once across all scrapes.
	sem chan struct{}
}

type entry struct {
	state BatchState
	// loggedFailure is the last failure logged, so that a batch failing
	// the same way on every scrape is logged once.
	loggedFailure string
	// loggedUnknown holds status values already logged as unrecognised.
	loggedUnknown map[string]bool
}

// maxLoggedUnknown bounds the unrecognised values remembered per batch.
const maxLoggedUnknown = 64

// NewCache returns an empty cache that runs at most maxConcurrent reads at
// a time.
func NewCache(logger log.Logger, maxConcurrent int) *Cache {
	c := &Cache{logger: logger, now: time.Now, entries: map[string]*entry{}}
	c.SetMaxConcurrent(maxConcurrent)
	return c
}

// SetMaxConcurrent changes the bound on concurrent reads; reads already
// running finish under the old bound.
func (c *Cache) SetMaxConcurrent(n int) {
	if n < 1 {
		n = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sem == nil || cap(c.sem) != n {
		c.sem = make(chan struct{}, n)
	}
}

// Retain forgets every batch not in targets, after a reload dropped it.
func (c *Cache) Retain(targets []Target) {
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.key()] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep[k] {
			delete(c.entries, k)
		}
	}
}

// State returns what is known of one batch without asking the API.
func (c *Cache) State(t Target) (BatchState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[t.key()]
	if !ok {
		return BatchState{}, false
	}
	return e.state, true
}

// Refresh returns one Result per target, in order, reading from src the
// batches that are not current. It returns when every read is done or ctx
// expires, whichever comes first; a read still running then counts as
// failed for this scrape.
func (c *Cache) Refresh(ctx context.Context, src Source, targets []Target, refresh time.Duration) []Result {
	results := make([]Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		results[i] = Result{Target: t}
		state, _ := c.State(t)
		if c.isCurrent(state, refresh) {
			results[i].BatchState, results[i].Current = state, true
			continue
		}
		wg.Add(1)
		go func(r *Result) {
			defer wg.Done()
			c.read(ctx, src, r)
		}(&results[i])
	}
	wg.Wait()
	return results
}

func (c *Cache) isCurrent(s BatchState, refresh time.Duration) bool {
	if s.Batch == nil || s.LastError != nil {
		return false
	}
	return s.Batch.Status.Done() || c.now().Sub(s.LastSuccess) < refresh
}

// read fills r from a read of the batch, shared with any other scrape
// reading the same batch right now.
func (c *Cache) read(ctx context.Context, src Source, r *Result) {
	r.Attempted = true
	ch := c.flight.DoChan(r.key(), func() (any, error) {
		return nil, c.fetch(ctx, src, r.Target)
	})
	select {
	case res := <-ch:
		r.Err = res.Err
	case <-ctx.Done():
		r.Err = fmt.Errorf("scrape deadline reached before the read finished: %w", ctx.Err())
	}
	state, _ := c.State(r.Target)
	r.BatchState = state
	r.Current = r.Err == nil
}

// fetch performs one read under the concurrency bound and records it.
func (c *Cache) fetch(ctx context.Context, src Source, t Target) error {
	c.mu.Lock()
	sem := c.sem
	c.mu.Unlock()
	select {
	case sem <- struct{}{}:
		defer func() { <-sem }()
	case <-ctx.Done():
		err := fmt.Errorf("waiting for a free request slot: %w", ctx.Err())
		c.record(t, c.now(), nil, err)
		return err
	}
	started := c.now()
	batch, err := src.BatchStatus(ctx, t.CustomerID, t.TrackingID)
	c.record(t, started, batch, err)
	return err
}

// record stores a read's outcome and logs what changed.
func (c *Cache) record(t Target, started time.Time, batch *partnercenter.Batch, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[t.key()]
	if !ok {
		e = &entry{loggedUnknown: map[string]bool{}}
		c.entries[t.key()] = e
	}
	logger := log.With(c.logger, "customer_id", t.CustomerID, "batch_tracking_id", t.TrackingID)
	e.state.LastAttempt = started
	e.state.LastError = err
	if err != nil {
		c.logFailure(logger, e, err)
		return
	}
	if e.loggedFailure != "" {
		level.Info(logger).Log("msg", "batch read again successfully after failures")
		e.loggedFailure = ""
	}
	e.state.Batch = batch
	e.state.LastSuccess = c.now()
	c.logUnknownStatuses(logger, e, batch)
	level.Debug(logger).Log("msg", "batch read", "status", batch.Status, "devices", batch.Devices.Total())
}

// logFailure logs err unless the batch last failed the same way.
func (c *Cache) logFailure(logger log.Logger, e *entry, err error) {
	sig := failureSignature(err)
	if sig == e.loggedFailure {
		return
	}
	e.loggedFailure = sig
	kv := []any{"msg", "reading batch failed", "err", err}
	var apiErr *partnercenter.Error
	if errors.As(err, &apiErr) {
		kv = append(kv, "http_status", apiErr.StatusCode, "error_code", apiErr.Code,
			"request_id", apiErr.RequestID, "correlation_id", apiErr.CorrelationID)
	}
	level.Warn(logger).Log(kv...)
}

// failureSignature identifies a kind of failure: the same HTTP status and
// Partner Center code, or the same kind of local error, is the same failure.
func failureSignature(err error) string {
	var apiErr *partnercenter.Error
	if errors.As(err, &apiErr) {
		sig := fmt.Sprintf("http %d code %s", apiErr.StatusCode, apiErr.Code)
		if apiErr.StatusCode == 0 || apiErr.StatusCode == 200 {
			sig += ": " + fmt.Sprint(apiErr.Err)
		}
		return sig
	}
	var tokenErr *partnercenter.TokenError
	if errors.As(err, &tokenErr) {
		return "token " + tokenErr.Code
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "deadline"
	}
	return err.Error()
}

func (c *Cache) logUnknownStatuses(logger log.Logger, e *entry, b *partnercenter.Batch) {
	values := append([]string(nil), b.UnknownDeviceStatuses...)
	if _, ok := partnercenter.ParseStatus(b.RawStatus); !ok {
		values = append(values, b.RawStatus)
	}
	sort.Strings(values)
	for _, v := range values {
		if e.loggedUnknown[v] || len(e.loggedUnknown) >= maxLoggedUnknown {
			continue
		}
		e.loggedUnknown[v] = true
		level.Warn(logger).Log("msg", "unrecognised status value, counted as unknown", "value", v)
	}
}
