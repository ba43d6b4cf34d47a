package collector

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStoreKeepsOnlyConfiguredBatches(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	b := Target{CustomerID: custA, TrackingID: batch2}
	s := NewStore()
	if _, stored := s.Record(a, s.Epoch(), t0, t0, finishedWithErrors(), nil); stored {
		t.Error("a batch that is not configured was stored")
	}
	s.Retain([]Target{a, b})
	if _, stored := s.Record(a, s.Epoch(), t0, t0.Add(time.Second), finishedWithErrors(), nil); !stored {
		t.Fatal("a configured batch was not stored")
	}
	s.Retain([]Target{a})
	if got, ok := s.Get(a); !ok || got.Batch == nil || !got.LastSuccess.Equal(t0.Add(time.Second)) || !got.LastAttempt.Equal(t0) {
		t.Errorf("kept batch after Retain: ok=%v %+v", ok, got)
	}
	if _, ok := s.Get(b); ok {
		t.Error("removed batch is still configured")
	}
}

func TestStoreRecordKeepsTheLastGoodRead(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch2}
	s := NewStore()
	s.Retain([]Target{a})
	s.Record(a, s.Epoch(), t0, t0, processing(), nil)
	boom := errors.New("boom")
	prev, _ := s.Record(a, s.Epoch(), t0.Add(time.Minute), t0.Add(time.Minute), nil, boom)
	if prev.LastError != nil || prev.Batch == nil {
		t.Errorf("previous state = %+v, want the good read", prev)
	}
	got, _ := s.Get(a)
	if got.Batch == nil || !got.LastSuccess.Equal(t0) || !got.LastAttempt.Equal(t0.Add(time.Minute)) || !errors.Is(got.LastError, boom) {
		t.Errorf("after a failure: %+v, want the old batch, the new attempt and the error", got)
	}
}

func TestDue(t *testing.T) {
	settled := BatchState{Batch: finishedWithErrors(), LastAttempt: t0}
	running := BatchState{Batch: processing(), LastAttempt: t0}
	failedFinished := settled
	failedFinished.LastError = errors.New("boom")
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := due(tt.state, t0.Add(tt.after), time.Minute); got != tt.want {
				t.Errorf("due = %v, want %v", got, tt.want)
			}
		})
	}
}

// recordingPersister logs every call, and fails while err is set.
type recordingPersister struct {
	calls []string
	err   error
}

func (p *recordingPersister) Save(t Target, s BatchState) error {
	kind := "read"
	if s.Retired {
		kind = "retired"
	}
	p.calls = append(p.calls, "save "+t.TrackingID[:8]+" "+kind)
	return p.err
}

func (p *recordingPersister) Delete(t Target) error {
	p.calls = append(p.calls, "delete "+t.TrackingID[:8])
	return p.err
}

func TestStoreWritesOnlyWhatChanged(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	b := Target{CustomerID: custA, TrackingID: batch2}
	p := &recordingPersister{}
	var failures []error
	s := NewStore()
	s.Persist(p, func(err error) { failures = append(failures, err) })
	s.Retain([]Target{a, b})

	s.Record(b, s.Epoch(), t0, t0, processing(), nil)                          // new: saved
	s.Record(b, s.Epoch(), t0, t0.Add(time.Minute), processing(), nil)         // same values: not saved
	s.Record(b, s.Epoch(), t0, t0.Add(2*time.Minute), nil, errors.New("boom")) // failure: not saved
	changed := processing()
	changed.Devices[0]++
	s.Record(b, s.Epoch(), t0, t0.Add(3*time.Minute), changed, nil) // changed: saved
	s.Record(a, s.Epoch(), t0, t0, finishedWithErrors(), nil)       // saved
	s.Retire(a)                                                     // marker saved
	s.Retain([]Target{a})                                           // b removed: deleted
	s.Reset()                                                       // a dropped: deleted
	want := "save 22222222 read|save 22222222 read|save 11111111 read|save 11111111 retired|delete 22222222|delete 11111111"
	if got := strings.Join(p.calls, "|"); got != want {
		t.Errorf("persister calls:\n got  %s\n want %s", got, want)
	}
	if len(failures) != 0 {
		t.Errorf("failures reported: %v", failures)
	}

	p.err = errors.New("disk full")
	s.Record(a, s.Epoch(), t0, t0, finishedWithErrors(), nil)
	if len(failures) != 1 || !errors.Is(failures[0], p.err) {
		t.Errorf("failures = %v, want the one write error", failures)
	}
	if got, _ := s.Get(a); got.Batch == nil {
		t.Error("a failed write lost the read: the store must keep serving from memory")
	}
}

func TestStoreRestore(t *testing.T) {
	a := Target{CustomerID: custA, TrackingID: batch1}
	b := Target{CustomerID: custA, TrackingID: batch2}
	gone := Target{CustomerID: custA, TrackingID: batch3}
	s := NewStore()
	s.Retain([]Target{a, b})
	readAt := t0.Add(-time.Hour)
	if !s.Restore(a, BatchState{Batch: finishedWithErrors(), LastSuccess: readAt}) ||
		!s.Restore(b, BatchState{Batch: processing(), LastSuccess: readAt}) {
		t.Fatal("a configured batch was not restored")
	}
	if s.Restore(gone, BatchState{Batch: processing(), LastSuccess: readAt}) {
		t.Error("a batch no longer configured was restored")
	}
	if got, _ := s.Get(a); !got.Settled() || due(got, t0, time.Minute) {
		t.Errorf("restored finished batch %+v: want settled and not due", got)
	}
	if got, _ := s.Get(b); !errors.Is(got.LastError, ErrRestored) || !due(got, t0, time.Minute) || got.Batch == nil {
		t.Errorf("restored unfinished batch %+v: want its values, ErrRestored and due", got)
	}
}
