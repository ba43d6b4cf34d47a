package batchstate

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestStoreReadsAndExportsOnlyMembers(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	b := Target{CustomerID: custA, TrackingID: batch2}
	s := NewStore()
	if _, stored := s.Record(a, "", t0, t0, finishedWithErrors(), nil); stored {
		t.Error("a batch that is not a member was stored")
	}
	s.SetMembers([]Target{a, b}, t0)
	if _, stored := s.Record(a, "", t0, t0.Add(time.Second), finishedWithErrors(), nil); !stored {
		t.Fatal("a member's read was not stored")
	}
	s.SetMembers([]Target{a}, t0)
	if got, ok := s.Get(a); !ok || got.Batch == nil || !got.LastSuccess.Equal(t0.Add(time.Second)) || !got.LastAttempt.Equal(t0) {
		t.Errorf("kept batch after SetMembers: ok=%v %+v", ok, got)
	}
	if _, ok := s.Get(b); ok {
		t.Error("removed batch is still a member")
	}
}

func TestStoreRecordKeepsTheLastGoodRead(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch2}
	s := NewStore()
	s.SetMembers([]Target{a}, t0)
	s.Record(a, "", t0, t0, processing(), nil)
	boom := errors.New("boom")
	prev, _ := s.Record(a, "", t0.Add(time.Minute), t0.Add(time.Minute), nil, boom)
	if prev.LastError != nil || prev.Batch == nil {
		t.Errorf("previous state = %+v, want the good read", prev)
	}
	got, _ := s.Get(a)
	if got.Batch == nil || !got.LastSuccess.Equal(t0) || !got.LastAttempt.Equal(t0.Add(time.Minute)) || !errors.Is(got.LastError, boom) {
		t.Errorf("after a failure: %+v, want the old batch, the new attempt and the error", got)
	}
}

func TestDue(t *testing.T) {
	settled := BatchState{Batch: finishedWithErrors(), LastAttempt: t0, Stamp: "now"}
	running := BatchState{Batch: processing(), LastAttempt: t0, Stamp: "now"}
	failedFinished := settled
	failedFinished.LastError = errors.New("boom")
	settledBefore := settled
	settledBefore.Stamp = "before"
	runningBefore := running
	runningBefore.Stamp = "before"
	failedBefore := failedFinished
	failedBefore.Stamp = "before"
	retiredBefore := settledBefore
	retiredBefore.Retired = true
	tests := []struct {
		name  string
		state BatchState
		after time.Duration
		want  bool
	}{
		{"never read", BatchState{}, 0, true},
		{"settled, long ago", settled, 1000 * time.Hour, false},
		{"running, within the interval", running, 59 * time.Second, false},
		{"running, interval passed", running, time.Minute, true},
		{"finished but last read failed, within", failedFinished, 59 * time.Second, false},
		{"finished but last read failed, passed", failedFinished, time.Minute, true},
		{"settled under other settings", settledBefore, 0, true},
		// Retired: neither exported nor shown, so a read would serve no one.
		{"retired under other settings", retiredBefore, 0, false},
		{"running under other settings, within the interval", runningBefore, 0, true},
		// The last attempt, made under whichever settings, failed: it
		// waits for the interval like any failure.
		{"failed, last read under other settings, within", failedBefore, 59 * time.Second, false},
		{"failed, last read under other settings, passed", failedBefore, time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := due(tt.state, t0.Add(tt.after), time.Minute, "now"); got != tt.want {
				t.Errorf("due = %v, want %v", got, tt.want)
			}
		})
	}
}

// recordingPersister logs every call, and fails while err is set. When
// gate is set, the next Save closes entered and waits until gate is closed.
type recordingPersister struct {
	mu      sync.Mutex
	calls   []string
	err     error
	gate    chan struct{}
	entered chan struct{}
}

func (p *recordingPersister) SaveBatch(t Target, s BatchState) error {
	kind := "read"
	if s.Retired {
		kind = "retired"
	}
	p.mu.Lock()
	gate, entered := p.gate, p.entered
	p.gate = nil
	p.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "save "+t.TrackingID[:8]+" "+kind+" "+s.Stamp)
	return p.err
}

func (p *recordingPersister) ForgetBatches(ts []Target) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.TrackingID[:8])
	}
	slices.Sort(ids)
	p.calls = append(p.calls, "delete "+strings.Join(ids, ","))
	return p.err
}

func (p *recordingPersister) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.calls, "|")
}

func (p *recordingPersister) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func TestStoreWritesOnlyWhatChanged(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	b := Target{CustomerID: custA, TrackingID: batch2}
	p := &recordingPersister{}
	var failures []error
	s := NewStore()
	s.Persist(p, func(err error) { failures = append(failures, err) })
	s.SetForgetAfter(time.Hour)
	s.SetMembers([]Target{a, b}, t0)

	s.Record(b, "s1", t0, t0, processing(), nil)                          // new: saved
	s.Record(b, "s1", t0, t0.Add(time.Minute), processing(), nil)         // same values: not saved
	s.Record(b, "s1", t0, t0.Add(2*time.Minute), nil, errors.New("boom")) // failure: not saved
	changed := processing()
	changed.Devices[0]++
	s.Record(b, "s1", t0, t0.Add(3*time.Minute), changed, nil) // changed: saved
	s.Record(b, "s2", t0, t0.Add(4*time.Minute), changed, nil) // same values, other settings: saved
	s.Record(a, "s1", t0, t0, finishedWithErrors(), nil)       // saved
	s.Retire(a, "s1")                                          // marker saved
	s.Retire(a, "s1")                                          // retired already: nothing
	s.SetMembers(nil, t0)                                      // both left: kept for an hour
	s.Sweep(t0.Add(time.Hour - time.Nanosecond))               // not yet
	s.Sweep(t0.Add(time.Hour))                                 // both deleted, in one call
	want := "save 22222222 read s1|save 22222222 read s1|save 22222222 read s2|save 11111111 read s1|save 11111111 retired s1|delete 11111111,22222222"
	if got := p.log(); got != want {
		t.Errorf("persister calls:\n got  %s\n want %s", got, want)
	}
	if len(failures) != 0 {
		t.Errorf("failures reported: %v", failures)
	}

	s.SetMembers([]Target{a}, t0)
	p.fail(errors.New("disk full"))
	s.Record(a, "s1", t0, t0, finishedWithErrors(), nil)
	if len(failures) != 1 || !errors.Is(failures[0], p.err) {
		t.Errorf("failures = %v, want the one write error", failures)
	}
	if got, _ := s.Get(a); got.Batch == nil {
		t.Error("a failed write lost the read: the store must keep serving from memory")
	}
}

// Membership decides what is read and exported; what is known of a batch
// that leaves it is kept for the forget-after period, so that it comes
// back as it was.
func TestStoreKeepsWhatLeftTheMembershipForAWhile(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	b := Target{CustomerID: custA, TrackingID: batch2}
	never := Target{CustomerID: custA, TrackingID: batch3}
	p := &recordingPersister{}
	s := NewStore()
	s.Persist(p, nil)
	s.SetForgetAfter(time.Hour)
	s.SetMembers([]Target{a, b, never}, t0)
	s.Record(a, "s", t0, t0, finishedWithErrors(), nil)
	s.Record(b, "s", t0, t0, processing(), nil)
	s.SetMembers(nil, t0.Add(time.Minute))
	for _, target := range []Target{a, b, never} {
		if _, ok := s.Get(target); ok {
			t.Errorf("batch %s is a member after leaving", target.TrackingID[:8])
		}
	}
	if _, stored := s.Record(a, "s", t0, t0, finishedWithErrors(), nil); stored {
		t.Error("a read of a batch that left was stored")
	}
	if at, ok := s.NextExpiry(); !ok || !at.Equal(t0.Add(61*time.Minute)) {
		t.Errorf("NextExpiry = %v, %v; want %v", at, ok, t0.Add(61*time.Minute))
	}
	// a comes back within the hour: as it was, settled.
	s.SetMembers([]Target{a, never}, t0.Add(30*time.Minute))
	if got, ok := s.Get(a); !ok || !got.Settled() || got.Stamp != "s" {
		t.Errorf("batch back within the period: ok=%v %+v, want it settled as before", ok, got)
	}
	if got, ok := s.Get(never); !ok || !got.LastAttempt.IsZero() {
		t.Errorf("batch never read: ok=%v %+v, want a member never read", ok, got)
	}
	if n := s.Sweep(t0.Add(61*time.Minute - time.Nanosecond)); n != 0 {
		t.Errorf("Sweep before the period forgot %d", n)
	}
	if n := s.Sweep(t0.Add(61 * time.Minute)); n != 1 {
		t.Errorf("Sweep after the period forgot %d, want 1", n)
	}
	if _, ok := s.NextExpiry(); ok {
		t.Error("NextExpiry after everything was forgotten")
	}
	s.SetMembers([]Target{a, b, never}, t0.Add(2*time.Hour))
	if got, _ := s.Get(b); !got.LastAttempt.IsZero() || got.Batch != nil {
		t.Errorf("batch back after the period: %+v, want never read", got)
	}
	if got, want := p.log(), "save 11111111 read s|save 22222222 read s|delete 22222222"; got != want {
		t.Errorf("persister calls:\n got  %s\n want %s", got, want)
	}
	// 0 forgets at once.
	s.SetForgetAfter(0)
	s.SetMembers(nil, t0.Add(3*time.Hour))
	if got, want := p.log(), "save 11111111 read s|save 22222222 read s|delete 22222222|delete 11111111"; got != want {
		t.Errorf("persister calls with no period:\n got  %s\n want %s", got, want)
	}
}

// The writes of one batch reach the persister in the order of the changes
// in memory: a Delete does not overtake the Save of the read before it,
// which would leave on disk a batch the exporter forgot.
func TestStoreWritesReachThePersisterInOrder(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	gate := make(chan struct{})
	p := &recordingPersister{gate: gate, entered: make(chan struct{})}
	s := NewStore()
	s.Persist(p, nil)
	s.SetForgetAfter(0)
	s.SetMembers([]Target{a}, t0)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		s.Record(a, "s", t0, t0, finishedWithErrors(), nil)
	}()
	<-p.entered // the Save is on its way to the disk
	removed := make(chan struct{})
	go func() {
		defer close(removed)
		s.SetMembers(nil, t0)
	}()
	// Give the removal every chance to overtake the Save; with ordered
	// writes it cannot finish before the Save does.
	select {
	case <-removed:
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	<-recorded
	<-removed
	if got, want := p.log(), "save 11111111 read s|delete 11111111"; got != want {
		t.Errorf("persister calls:\n got  %s\n want %s", got, want)
	}
}

// Persist may be called while the batch files change the membership.
func TestStorePersistWhileInUse(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	s := NewStore()
	s.SetForgetAfter(0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			s.SetMembers([]Target{a}, t0)
			s.Record(a, "s", t0, t0.Add(time.Duration(i)), finishedWithErrors(), nil)
			s.SetMembers(nil, t0)
		}
	}()
	p := &recordingPersister{}
	s.Persist(p, nil)
	<-done
	if calls := p.log(); calls != "" && !strings.HasSuffix(calls, "delete 11111111") {
		t.Errorf("the last write is not the last removal: %s", calls)
	}
}

// Retire reports a change once, however many scrapes ask at once.
func TestStoreRetiresOnce(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	s := NewStore()
	s.SetMembers([]Target{a}, t0)
	s.Record(a, "s", t0, t0, finishedWithErrors(), nil)
	if _, ok := s.Retire(a, "other"); ok {
		t.Error("a batch read under other settings was retired")
	}
	var wg sync.WaitGroup
	var retired atomic.Int32
	for range 8 {
		wg.Go(func() {
			if _, ok := s.Retire(a, "s"); ok {
				retired.Add(1)
			}
		})
	}
	wg.Wait()
	if n := retired.Load(); n != 1 {
		t.Errorf("Retire reported a change %d times, want 1", n)
	}
}

func TestStoreRestore(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	b := Target{CustomerID: custA, TrackingID: batch2}
	gone := Target{CustomerID: custA, TrackingID: batch3}
	s := NewStore()
	s.SetForgetAfter(time.Hour)
	s.SetMembers([]Target{a, b}, t0)
	readAt := t0.Add(-time.Hour)
	if !s.Restore(a, BatchState{Batch: finishedWithErrors(), LastSuccess: readAt, Stamp: "s"}, t0) ||
		!s.Restore(b, BatchState{Batch: processing(), LastSuccess: readAt, Stamp: "s"}, t0) {
		t.Fatal("a member was not restored as one")
	}
	if s.Restore(gone, BatchState{Batch: finishedWithErrors(), LastSuccess: readAt, Stamp: "s"}, t0) {
		t.Error("a batch that is not a member was restored as one")
	}
	if got, _ := s.Get(a); !got.Settled() || due(got, t0, time.Minute, "s") || got.Stamp != "s" {
		t.Errorf("restored finished batch %+v: want settled and not due", got)
	}
	if got, _ := s.Get(a); !due(got, t0, time.Minute, "other") {
		t.Errorf("restored finished batch read under other settings %+v: want due", got)
	}
	if got, _ := s.Get(b); !errors.Is(got.LastError, ErrRestored) || !due(got, t0, time.Minute, "s") || got.Batch == nil {
		t.Errorf("restored unfinished batch %+v: want its values, ErrRestored and due", got)
	}
	if _, ok := s.Get(gone); ok {
		t.Error("a restored batch that is not a member is exported")
	}
	// Its batch file appears after the start: it is known, not read again.
	s.SetMembers([]Target{a, b, gone}, t0.Add(59*time.Minute))
	if got, _ := s.Get(gone); !got.Settled() || due(got, t0, time.Minute, "s") {
		t.Errorf("restored batch that became a member %+v: want settled and not due", got)
	}
}
