package collector

import (
	"sync"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

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
	// LastAttempt is when the last finished read started; zero before the
	// first one.
	LastAttempt time.Time
	// LastError is why the last read failed; nil after a success.
	LastError error
}

// Settled reports whether the batch can never change again: its last read
// succeeded and found it finished. A settled batch is not read again.
func (s BatchState) Settled() bool {
	return s.LastError == nil && s.Batch != nil && s.Batch.Status.Done()
}

// due is the one place that decides whether a batch must be read: it was
// never read, or it is not settled and its last attempt, successful or
// not, is at least refresh old. Failed batches wait like the others, so
// that a batch answering 404 costs one request per refresh interval
// however many scrapers ask.
func due(s BatchState, now time.Time, refresh time.Duration) bool {
	switch {
	case s.LastAttempt.IsZero():
		return true
	case s.Settled():
		return false
	}
	return now.Sub(s.LastAttempt) >= refresh
}

// Store holds what is known of each configured batch. Only configured
// batches (see Retain) are kept, so a read that finishes after a reload
// removed its batch cannot bring it back. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	states map[string]BatchState
	// epoch changes whenever every stored read is dropped, so that a read
	// started before then cannot store a result obtained under the old
	// settings.
	epoch uint64
}

// NewStore returns a store that knows no batch.
func NewStore() *Store {
	return &Store{states: map[string]BatchState{}}
}

// Get returns what is known of one batch; ok is false when the batch is
// not configured.
func (s *Store) Get(t Target) (state BatchState, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	state, ok = s.states[t.key()]
	return state, ok
}

// Retain makes targets the configured batches: it keeps what is known of
// those already present, adds the new ones as never read and forgets the
// rest.
func (s *Store) Retain(targets []Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]BatchState, len(targets))
	for _, t := range targets {
		next[t.key()] = s.states[t.key()]
	}
	s.states = next
}

// Reset forgets every stored read but keeps the configured batches, after a
// reload changed a setting the stored reads depend on.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.states {
		s.states[k] = BatchState{}
	}
	s.epoch++
}

// Epoch identifies the current generation of stored reads; pass it back to
// Record.
func (s *Store) Epoch() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.epoch
}

// Record stores the outcome of a read that started at started in the given
// epoch. It returns the state before the read, and stored=false (changing
// nothing) when the batch is no longer configured or the stored reads were
// reset since.
func (s *Store) Record(t Target, epoch uint64, started, now time.Time, batch *partnercenter.Batch, err error) (prev BatchState, stored bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.states[t.key()]
	if !ok || epoch != s.epoch {
		return BatchState{}, false
	}
	next := prev
	next.LastAttempt = started
	next.LastError = err
	if err == nil {
		next.Batch, next.LastSuccess = batch, now
	}
	s.states[t.key()] = next
	return prev, true
}
