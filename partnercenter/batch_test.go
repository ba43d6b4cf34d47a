package partnercenter

import (
	"testing"
	"time"
)

func TestBatchDuration(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		batch       Batch
		want        time.Duration
		wantRunning bool
		wantOK      bool
	}{
		{"not started", Batch{Status: StatusQueued}, 0, false, false},
		{"running", Batch{Status: StatusProcessing, StartedTime: now.Add(-time.Minute)}, time.Minute, true, true},
		{"completed", Batch{Status: StatusFinished, StartedTime: now.Add(-time.Hour), CompletedTime: now.Add(-time.Minute)}, 59 * time.Minute, false, true},
		{"finished without completion time", Batch{Status: StatusFinished, StartedTime: now.Add(-time.Hour)}, 0, false, false},
		{"clock skew", Batch{Status: StatusProcessing, StartedTime: now.Add(time.Minute)}, 0, true, true},
		{"completed before started", Batch{Status: StatusFinished, StartedTime: now, CompletedTime: now.Add(-time.Minute)}, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, running, ok := tt.batch.Duration(now)
			if got != tt.want || running != tt.wantRunning || ok != tt.wantOK {
				t.Errorf("Duration = %v, %v, %v; want %v, %v, %v", got, running, ok, tt.want, tt.wantRunning, tt.wantOK)
			}
		})
	}
}

func TestErrorsByDevices(t *testing.T) {
	b := Batch{Errors: []ErrorCount{{Code: "806", Devices: 1}, {Code: "807", Devices: 3}, {Code: "808", Devices: 1}, {Code: "809", Devices: 3}}}
	got := b.ErrorsByDevices()
	var codes string
	for _, e := range got {
		codes += e.Code + " "
	}
	if codes != "807 809 806 808 " {
		t.Errorf("order = %s, want 807 809 806 808 (most devices first, ties as listed)", codes)
	}
	if b.Errors[0].Code != "806" {
		t.Error("ErrorsByDevices sorted the batch's own slice")
	}
}
