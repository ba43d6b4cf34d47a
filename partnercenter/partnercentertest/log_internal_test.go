package partnercentertest

import (
	"strconv"
	"testing"
)

func TestRequestLogKeepsTheNewest(t *testing.T) {
	tests := []struct {
		added     int
		wantFirst string
		wantLast  string
	}{
		{added: 3, wantFirst: "/0", wantLast: "/2"},
		{added: maxLoggedRequests, wantFirst: "/0", wantLast: "/9999"},
		{added: maxLoggedRequests + 5, wantFirst: "/5", wantLast: "/10004"},
		{added: 3*maxLoggedRequests + 1, wantFirst: "/20001", wantLast: "/30000"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.added), func(t *testing.T) {
			var l requestLog
			for i := range tt.added {
				l.add(Request{Path: "/" + strconv.Itoa(i)})
			}
			got := l.snapshot()
			if want := min(tt.added, maxLoggedRequests); len(got) != want {
				t.Fatalf("%d entries, want %d", len(got), want)
			}
			if got[0].Path != tt.wantFirst || got[len(got)-1].Path != tt.wantLast {
				t.Errorf("oldest %s newest %s, want %s %s", got[0].Path, got[len(got)-1].Path, tt.wantFirst, tt.wantLast)
			}
			for i := 1; i < len(got); i++ {
				prev, _ := strconv.Atoi(got[i-1].Path[1:])
				cur, _ := strconv.Atoi(got[i].Path[1:])
				if cur != prev+1 {
					t.Fatalf("entries %d and %d out of order: %s, %s", i-1, i, got[i-1].Path, got[i].Path)
				}
			}
		})
	}
}

func TestBatchCountersAreBounded(t *testing.T) {
	s := &Server{stats: stats{batchRequests: make(map[batchKey]int)}}
	for i := range maxCountedBatches + 10 {
		s.beginBatchRequest(newBatchKey("c", strconv.Itoa(i)))
		s.endBatchRequest()
	}
	s.beginBatchRequest(newBatchKey("c", "0"))
	s.endBatchRequest()
	if got := len(s.stats.batchRequests); got != maxCountedBatches {
		t.Errorf("%d counted batches, want %d", got, maxCountedBatches)
	}
	if got := s.BatchRequests("C", "0"); got != 2 {
		t.Errorf("BatchRequests of a counted batch = %d, want 2", got)
	}
	if got := s.TotalBatchRequests(); got != maxCountedBatches+11 {
		t.Errorf("TotalBatchRequests = %d, want %d", got, maxCountedBatches+11)
	}
}
