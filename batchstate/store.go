package batchstate

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
	// file, "file:line" for a batch file, OriginAPI for the intake API.
	Origin string
	// Registered is when the intake API registered the batch; zero for
	// the other origins.
	Registered time.Time
}

// OriginAPI is the Origin of a batch an upload pipeline registered
// through the intake API.
const OriginAPI = "api"

// Key identifies the batch in the store: one customer's tracking ID.
func (t Target) Key() string { return t.CustomerID + "/" + t.TrackingID }

// BatchState is what the exporter knows of one batch.
type BatchState struct {
	// Batch is the last successful read, nil when there was none.
	Batch *partnercenter.Batch
	// LastSuccess is when Batch was read.
	LastSuccess time.Time
	// Stamp names the settings Batch was read under: the ReadStamp of the
	// Source that read it. Empty while Batch is nil.
	Stamp string
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
// succeeded and found it finished. A settled batch is not read again while
// the settings it was read under (its Stamp) stay those of the reads.
func (s BatchState) Settled() bool {
	return s.LastError == nil && s.Batch != nil && s.Batch.Status.Done()
}

// due is the one place that decides whether a batch must be read under the
// settings stamp names: it was never read; or its last read succeeded
// under other settings (another API, partner or failed-device cap), so
// what is known is not what a read now would return; or it is not settled
// and its last attempt, successful or not, is at least refresh old.
// Failed batches wait like the others, so that a batch answering 404
// costs one request per refresh interval however many scrapers ask. A
// retired batch is never due, whatever its stamp: it is neither exported
// nor shown, so a read under new settings would serve no one (50k
// requests after a failed-device cap change in the large case); a raised
// retention that brings it back forgets it, and it is read then.
func due(s BatchState, now time.Time, refresh time.Duration, stamp string) bool {
	switch {
	case s.LastAttempt.IsZero():
		return true
	case s.Retired:
		return false
	case s.LastError == nil && s.Batch != nil && s.Stamp != stamp:
		return true
	case s.Settled():
		return false
	}
	return now.Sub(s.LastAttempt) >= refresh
}

// Persister keeps what a Store knows across restarts. Its errors are
// reported through the Store's error hook, never fatal: the Store keeps
// serving from memory. Calls come one at a time, in the order of the
// changes they record.
type Persister interface {
	// SaveBatch stores the state of one batch: its last successful read,
	// or the marker of a retired batch.
	SaveBatch(t Target, s BatchState) error
	// ForgetBatches forgets the batches ts names, all in one write.
	ForgetBatches(ts []Target) error
}

// Store holds what is known of batches. The members (see SetMembers) are
// the batches that are read and exported; what is known of a batch that
// leaves them is kept for the forget-after period, so that a batch that
// comes back (a batch file missing for a moment, a reload undone) is not
// read again, and then forgotten. It is safe for concurrent use.
type Store struct {
	mu      sync.RWMutex
	entries map[string]entry
	// departed counts the entries that are not members.
	departed int
	// forgetAfter is how long an entry outlives its membership.
	forgetAfter time.Duration
	// pending holds the writes of changes made in memory that have not
	// reached the persister yet, in the order of those changes. It is
	// appended to under mu, so that the order is that of memory.
	pending []write

	// writeMu is held while pending writes are handed to the persister:
	// the writes of one change may not overtake those of an earlier one,
	// and the persister's I/O runs without mu, so that reads of the store
	// never wait for the disk.
	writeMu sync.Mutex
	// persist and onError are set under both locks: read under either.
	persist Persister
	onError func(error)
}

// entry is what the store holds of one batch.
type entry struct {
	state  BatchState
	target Target
	// member is false once the batch left the membership; left is when.
	member bool
	left   time.Time
}

// write is one persister call: a save of target's state, or a delete of
// the batches del names.
type write struct {
	target Target
	state  BatchState
	del    []Target
}

// DefaultForgetAfter is how long a Store keeps what it knows of a batch
// that left the membership, until SetForgetAfter says otherwise.
const DefaultForgetAfter = 24 * time.Hour

// NewStore returns a store that knows no batch and keeps everything in
// memory only.
func NewStore() *Store {
	return &Store{entries: map[string]entry{}, forgetAfter: DefaultForgetAfter}
}

// Persist makes the store write every later change through p; onError is
// told of each failed write. It may be called while the store is in use.
func (s *Store) Persist(p Persister, onError func(error)) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.persist, s.onError = p, onError
}

// queue records a write for the change just made. The caller holds mu and
// calls flush once it released it.
func (s *Store) queue(w write) bool {
	if s.persist == nil {
		return false
	}
	s.pending = append(s.pending, w)
	return true
}

// flush hands the pending writes to the persister, in order, and reports
// each failure. When it returns, every write queued before the call has
// been made, by this call or by the one that held writeMu before it.
func (s *Store) flush() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	writes := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, w := range writes {
		var err error
		if w.del != nil {
			err = s.persist.ForgetBatches(w.del)
		} else {
			err = s.persist.SaveBatch(w.target, w.state)
		}
		if err != nil && s.onError != nil {
			s.onError(err)
		}
	}
}

// Get returns what is known of one batch; ok is false when the batch is
// not a member.
func (s *Store) Get(t Target) (state BatchState, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[t.Key()]
	if !ok || !e.member {
		return BatchState{}, false
	}
	return e.state, true
}

// SetForgetAfter sets how long what is known of a batch outlives its
// membership; 0 forgets it when it leaves. It applies from the next
// SetMembers or Sweep on, to the batches that left already too.
func (s *Store) SetForgetAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetAfter = max(d, 0)
}

// SetMembers makes targets (the listed batches and those /probe admitted) the members:
// the batches that are read and exported. What is known of a target that
// was a member, or left the membership less than the forget-after period
// ago, is kept; a new target starts as never read. A batch that leaves
// keeps what is known of it until the period has passed since now, when
// SetMembers or Sweep forgets it, in memory and in the persister (one
// write for all of them).
func (s *Store) SetMembers(targets []Target, now time.Time) {
	s.mu.Lock()
	listed := make(map[string]bool, len(targets))
	for _, t := range targets {
		k := t.Key()
		listed[k] = true
		e, ok := s.entries[k]
		if ok && !e.member {
			s.departed--
		}
		s.entries[k] = entry{state: e.state, target: t, member: true}
	}
	for k, e := range s.entries {
		if !e.member || listed[k] {
			continue
		}
		if e.state.Batch == nil {
			// Nothing was read that a return would spare reading again,
			// and the persister holds nothing of it.
			delete(s.entries, k)
			continue
		}
		e.member, e.left = false, now
		s.entries[k] = e
		s.departed++
	}
	queued := s.sweepLocked(now)
	s.mu.Unlock()
	if queued {
		s.flush()
	}
}

// Sweep forgets the batches that left the membership at least the
// forget-after period before now, and returns how many.
func (s *Store) Sweep(now time.Time) int {
	s.mu.Lock()
	before := s.departed
	queued := s.sweepLocked(now)
	forgotten := before - s.departed
	s.mu.Unlock()
	if queued {
		s.flush()
	}
	return forgotten
}

// sweepLocked is Sweep under mu; it reports whether it queued a write.
func (s *Store) sweepLocked(now time.Time) bool {
	if s.departed == 0 {
		return false
	}
	var gone []Target
	for k, e := range s.entries {
		if !e.member && now.Sub(e.left) >= s.forgetAfter {
			delete(s.entries, k)
			s.departed--
			gone = append(gone, e.target)
		}
	}
	return len(gone) > 0 && s.queue(write{del: gone})
}

// NextExpiry is when Sweep will next have something to forget; ok is
// false when no batch waits to be forgotten.
func (s *Store) NextExpiry() (at time.Time, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.departed == 0 {
		return time.Time{}, false
	}
	for _, e := range s.entries {
		if !e.member && (!ok || e.left.Before(at)) {
			at, ok = e.left, true
		}
	}
	return at.Add(s.forgetAfter), ok
}

// Restore puts back what a persister kept of a batch after a restart, and
// reports whether the batch is a member. A batch that is not is kept as if
// it had left the membership at now, so that a batch file that appears
// only after the start finds its batches known. A settled batch is served
// as it was; any other shows its values with ErrRestored until it is read,
// which is due at once. A member read since the start keeps that read.
func (s *Store) Restore(t Target, saved BatchState, now time.Time) (member bool) {
	saved.LastError, saved.LastAttempt = nil, time.Time{}
	if saved.Settled() {
		saved.LastAttempt = saved.LastSuccess
	} else {
		saved.LastError = ErrRestored
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[t.Key()]
	switch {
	case ok && e.member:
		if e.state.Batch == nil && e.state.LastAttempt.IsZero() {
			e.state = saved
			s.entries[t.Key()] = e
		}
		return true
	case ok:
		return false
	}
	s.entries[t.Key()] = entry{state: saved, target: t, left: now}
	s.departed++
	return false
}

// Retire drops what is known of a settled batch but its status and times,
// and marks it retired. It returns the new state, and false when it
// changed nothing: the batch is not a member, not settled under the
// settings stamp names, or retired already (so that concurrent scrapes
// retire, and log, a batch once).
func (s *Store) Retire(t Target, stamp string) (BatchState, bool) {
	s.mu.Lock()
	e, ok := s.entries[t.Key()]
	if !ok || !e.member || e.state.Retired || !e.state.Settled() || e.state.Stamp != stamp {
		s.mu.Unlock()
		return e.state, false
	}
	e.state.Retired = true
	e.state.Batch = retiredBatch(e.state.Batch)
	s.entries[t.Key()] = e
	queued := s.queue(write{target: t, state: e.state})
	s.mu.Unlock()
	if queued {
		s.flush()
	}
	return e.state, true
}

// retiredBatch is what a retired batch keeps of b.
func retiredBatch(b *partnercenter.Batch) *partnercenter.Batch {
	return &partnercenter.Batch{
		TrackingID: b.TrackingID, Status: b.Status, RawStatus: b.RawStatus,
		StartedTime: b.StartedTime, CompletedTime: b.CompletedTime,
	}
}

// Unretire forgets a retired batch entirely, so that it is read again,
// after a reload raised the retention.
func (s *Store) Unretire(t Target) {
	s.mu.Lock()
	e, ok := s.entries[t.Key()]
	if !ok || !e.member || !e.state.Retired {
		s.mu.Unlock()
		return
	}
	e.state = BatchState{}
	s.entries[t.Key()] = e
	queued := s.queue(write{del: []Target{t}})
	s.mu.Unlock()
	if queued {
		s.flush()
	}
}

// Record stores the outcome of a read that started at started, made under
// the settings stamp names. It returns the state before the read, and
// stored=false (changing nothing) when the batch is no longer a member.
//
// A successful read that changed the batch or its stamp is written through
// the persister; a read that found the same values under the same
// settings, or failed, writes nothing. A retired batch read again (under
// new settings) stays retired while it is finished.
func (s *Store) Record(t Target, stamp string, started, now time.Time, batch *partnercenter.Batch, err error) (prev BatchState, stored bool) {
	s.mu.Lock()
	e, ok := s.entries[t.Key()]
	if !ok || !e.member {
		s.mu.Unlock()
		return BatchState{}, false
	}
	prev = e.state
	next := prev
	next.LastAttempt = started
	next.LastError = err
	if err == nil {
		next.Batch, next.LastSuccess, next.Stamp = batch, now, stamp
		next.Retired = prev.Retired && batch.Status.Done()
		if next.Retired {
			next.Batch = retiredBatch(batch)
		}
	}
	e.state = next
	s.entries[t.Key()] = e
	changed := err == nil && (prev.Batch == nil || prev.Stamp != stamp || prev.Retired != next.Retired ||
		!reflect.DeepEqual(prev.Batch, next.Batch))
	queued := changed && s.queue(write{target: t, state: next})
	s.mu.Unlock()
	if queued {
		s.flush()
	}
	return prev, true
}
