package collector

import (
	"errors"
	"reflect"
	"sync"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Target names one configured batch.
type Target struct {
	CustomerID   string
	CustomerName string
	TrackingID   string
	// Origin says where the batch is listed: empty for the configuration
	// file, "file:line" for a batch file.
	Origin string
}

// Key identifies the batch in the store: one customer's tracking ID.
func (t Target) Key() string { return t.CustomerID + "/" + t.TrackingID }

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
	// Retired is true when the batch finished longer ago than the
	// retention: it is no longer read, exported or shown, and Batch keeps
	// only its status and times.
	Retired bool
}

// ErrRestored is the LastError of an unfinished batch restored from
// storage and not read since the exporter started.
var ErrRestored = errors.New("restored from storage; not read since the exporter started")

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

// Persister keeps what a Store knows across restarts. Its errors are
// reported through the Store's error hook, never fatal: the Store keeps
// serving from memory.
type Persister interface {
	// Save stores the state of one batch: its last successful read, or the
	// marker of a retired batch.
	Save(t Target, s BatchState) error
	// Delete forgets one batch.
	Delete(t Target) error
}

// Store holds what is known of each configured batch. Only configured
// batches (see Retain) are kept, so a read that finishes after a reload
// removed its batch cannot bring it back. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	states map[string]BatchState
	// targets holds the configured batches by key, for deleting what the
	// persister holds of them.
	targets map[string]Target
	// epoch changes whenever every stored read is dropped, so that a read
	// started before then cannot store a result obtained under the old
	// settings.
	epoch uint64

	persist Persister
	onError func(error)
}

// NewStore returns a store that knows no batch and keeps everything in
// memory only.
func NewStore() *Store {
	return &Store{states: map[string]BatchState{}, targets: map[string]Target{}}
}

// Persist makes the store write every change through p; onError is told
// of each failed write. Call it before the store is used.
func (s *Store) Persist(p Persister, onError func(error)) {
	s.persist, s.onError = p, onError
}

// write runs a persister call outside the store's lock and reports its
// failure.
func (s *Store) write(call func(Persister) error) {
	if s.persist == nil {
		return
	}
	if err := call(s.persist); err != nil && s.onError != nil {
		s.onError(err)
	}
}

// Get returns what is known of one batch; ok is false when the batch is
// not configured.
func (s *Store) Get(t Target) (state BatchState, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	state, ok = s.states[t.Key()]
	return state, ok
}

// Retain makes targets the configured batches: it keeps what is known of
// those already present, adds the new ones as never read and forgets the
// rest.
func (s *Store) Retain(targets []Target) {
	s.mu.Lock()
	next := make(map[string]BatchState, len(targets))
	nextTargets := make(map[string]Target, len(targets))
	for _, t := range targets {
		next[t.Key()] = s.states[t.Key()]
		nextTargets[t.Key()] = t
	}
	var removed []Target
	for k, t := range s.targets {
		if _, ok := next[k]; !ok {
			removed = append(removed, t)
		}
	}
	s.states, s.targets = next, nextTargets
	s.mu.Unlock()
	for _, t := range removed {
		s.write(func(p Persister) error { return p.Delete(t) })
	}
}

// Reset forgets every stored read but keeps the configured batches, after a
// reload changed a setting the stored reads depend on.
func (s *Store) Reset() {
	s.mu.Lock()
	var dropped []Target
	for k, st := range s.states {
		if st.Batch != nil {
			dropped = append(dropped, s.targets[k])
		}
		s.states[k] = BatchState{}
	}
	s.epoch++
	s.mu.Unlock()
	for _, t := range dropped {
		s.write(func(p Persister) error { return p.Delete(t) })
	}
}

// Restore puts back what a persister kept of a configured batch after a
// restart, and reports false for a batch that is no longer configured. A
// settled batch is served as it was; any other shows its values with
// ErrRestored until it is read, which is due at once.
func (s *Store) Restore(t Target, saved BatchState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.states[t.Key()]; !ok {
		return false
	}
	saved.LastError, saved.LastAttempt = nil, time.Time{}
	if saved.Settled() {
		saved.LastAttempt = saved.LastSuccess
	} else {
		saved.LastError = ErrRestored
	}
	s.states[t.Key()] = saved
	return true
}

// Retire drops what is known of a settled batch but its status and times,
// and marks it retired. It returns the new state, and false when the
// batch is not configured.
func (s *Store) Retire(t Target) (BatchState, bool) {
	s.mu.Lock()
	st, ok := s.states[t.Key()]
	if !ok || !st.Settled() {
		s.mu.Unlock()
		return st, false
	}
	st.Retired = true
	st.Batch = &partnercenter.Batch{
		TrackingID: st.Batch.TrackingID, Status: st.Batch.Status, RawStatus: st.Batch.RawStatus,
		StartedTime: st.Batch.StartedTime, CompletedTime: st.Batch.CompletedTime,
	}
	s.states[t.Key()] = st
	s.mu.Unlock()
	s.write(func(p Persister) error { return p.Save(t, st) })
	return st, true
}

// Unretire forgets a retired batch entirely, so that it is read again,
// after a reload raised the retention.
func (s *Store) Unretire(t Target) {
	s.mu.Lock()
	st, ok := s.states[t.Key()]
	if !ok || !st.Retired {
		s.mu.Unlock()
		return
	}
	s.states[t.Key()] = BatchState{}
	s.mu.Unlock()
	s.write(func(p Persister) error { return p.Delete(t) })
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
//
// A successful read that changed the batch is written through the
// persister; a read that found the same values, or failed, writes nothing.
func (s *Store) Record(t Target, epoch uint64, started, now time.Time, batch *partnercenter.Batch, err error) (prev BatchState, stored bool) {
	s.mu.Lock()
	prev, ok := s.states[t.Key()]
	if !ok || epoch != s.epoch {
		s.mu.Unlock()
		return BatchState{}, false
	}
	next := prev
	next.LastAttempt = started
	next.LastError = err
	if err == nil {
		next.Batch, next.LastSuccess = batch, now
	}
	s.states[t.Key()] = next
	s.mu.Unlock()
	if err == nil && (prev.Batch == nil || !reflect.DeepEqual(prev.Batch, batch)) {
		s.write(func(p Persister) error { return p.Save(t, next) })
	}
	return prev, true
}
