package collector

import (
	"errors"
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
