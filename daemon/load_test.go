package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// loadBatch is one batch of the load test and what the fake should see.
type loadBatch struct {
	customer, id string
	wantRequests int
}

// loadBatches scripts n batches over customer1 and customer2: per ten,
// four finished, four processing, one unknown (404) and one failing (500,
// retried once within the read).
func loadBatches(srv *partnercentertest.Server, n int) []loadBatch {
	batches := make([]loadBatch, 0, n)
	for i := range n {
		b := loadBatch{customer: [2]string{testkit.Customer1, testkit.Customer2}[i%2], id: fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1), wantRequests: 1}
		switch kind := i % 10; {
		case kind < 4:
			srv.SetBatch(b.customer, b.id, partnercentertest.Batch{
				TrackingID: b.id, Status: "finished",
				Devices: []partnercentertest.Device{{SerialNumber: "PF" + b.id[:6], Status: "finished"}},
			})
		case kind < 8:
			srv.SetBatch(b.customer, b.id, processing(b.id))
		case kind == 8:
			// Not set: the fake answers 404.
		default:
			srv.SetResponses(b.customer, b.id, partnercentertest.Batch{}, partnercentertest.Response{Status: http.StatusInternalServerError})
			b.wantRequests = 2
		}
		batches = append(batches, b)
	}
	return batches
}

// TestLoadManyScrapersShareReads: 50 scrapers hammer /metrics over 500
// batches for about three seconds. Every answer is a success, each batch
// costs one request per refresh interval (two for a 500: one retry), and
// nothing is left running once everything is closed.
func TestLoadManyScrapersShareReads(t *testing.T) {
	const (
		numBatches = 500
		scrapers   = 50
		// maxLoops is small because under -race on two cores the first
		// wave (50 scrapes waiting on 500 reads) alone takes 20-30s.
		maxLoops    = 3
		loadSeconds = 3
	)
	baseline := runtime.NumGoroutine()

	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetCredentials(testkit.ClientID, testkit.ClientSecret)
	batches := loadBatches(srv, numBatches)
	ids := map[string][]string{}
	for _, b := range batches {
		ids[b.customer] = append(ids[b.customer], b.id)
	}
	path := testkit.WriteConfig(t, t.TempDir(), srv, ids)
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 1m\n  max_concurrent_requests: 8")
	exp := startExporter(t, path)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: scrapers}}
	stop := time.Now().Add(loadSeconds * time.Second)
	var wg sync.WaitGroup
	for range scrapers {
		wg.Go(func() {
			for n := 0; n < maxLoops && time.Now().Before(stop); n++ {
				if status, err := scrapeStatus(client, exp.url+"/metrics"); err != nil || status != http.StatusOK {
					t.Errorf("GET /metrics: %d %v", status, err)
					return
				}
			}
		})
	}
	wg.Wait()

	want := 0
	for _, b := range batches {
		want += b.wantRequests
	}
	testkit.WaitFor(t, func() bool { return srv.TotalBatchRequests() >= want })
	for _, b := range batches {
		if got := srv.BatchRequests(b.customer, b.id); got != b.wantRequests {
			t.Errorf("batch %s: %d requests, want %d", b.id, got, b.wantRequests)
		}
	}
	if got := srv.TotalBatchRequests(); got != want {
		t.Errorf("%d batch requests in all, want %d", got, want)
	}
	if got := srv.MaxConcurrentBatchRequests(); got > 8 {
		t.Errorf("%d batch requests at once, want at most max_concurrent_requests 8", got)
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("%d token requests, want 1", got)
	}

	exp.web.Close()
	exp.state.httpc.CloseIdleConnections()
	client.CloseIdleConnections()
	srv.Close()
	checkGoroutinesBack(t, baseline)
}

// scrapeStatus GETs url and reads the whole answer.
func scrapeStatus(client *http.Client, url string) (int, error) {
	// The exporter's scrape timeout bounds the answer.
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// checkGoroutinesBack waits up to five seconds for the goroutine count to
// come back to within a small margin of baseline.
func checkGoroutinesBack(t *testing.T, baseline int) {
	t.Helper()
	const margin = 5
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline+margin {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines left, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
