package testkit

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	start := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	c := NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("Now after Advance = %v, want %v", got, want)
	}
	c.Set(start.Add(-time.Hour))
	if got, want := c.Now(), start.Add(-time.Hour); !got.Equal(want) {
		t.Errorf("Now after Set = %v, want %v", got, want)
	}
}

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	if !Poll(func() bool { calls++; return calls == 3 }) {
		t.Fatal("Poll = false, want true")
	}
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}
}

func TestAllocatedByCountsWhatTheCallAllocates(t *testing.T) {
	const size = 4 << 20
	var kept []byte
	a := AllocatedBy(func() { kept = make([]byte, size) })
	// The heap may shed a little garbage of other goroutines meanwhile, so
	// its growth is only bounded generously.
	if a.Total < size || a.HeapGrowth < size/2 {
		t.Errorf("AllocatedBy = %+v, want a Total of at least %d and a HeapGrowth of at least %d", a, size, size/2)
	}
	runtime.KeepAlive(kept)
}

func TestSendRequestReadsTheWholeAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("short and stout"))
	}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := SendRequest(t, srv.Client(), req)
	if a.Status != http.StatusTeapot || a.Header.Get("X-Method") != http.MethodPut || a.Body != "short and stout" {
		t.Errorf("answer = %+v, want 418, X-Method PUT, body %q", a, "short and stout")
	}
}

func TestProcessCPUTimeGrowsWithWork(t *testing.T) {
	before, ok := ProcessCPUTime()
	if !ok {
		t.Skip("no process CPU time on this system")
	}
	// Spin until the kernel has accounted some CPU time: its tick is
	// coarse, so a fixed amount of work could show as none.
	if !Poll(func() bool {
		for i := range 1_000_000 {
			_ = i * i
		}
		after, _ := ProcessCPUTime()
		return after > before
	}) {
		t.Error("ProcessCPUTime did not grow while the test worked")
	}
}
