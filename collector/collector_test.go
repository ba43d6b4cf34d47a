package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

const (
	custA  = "aaaaaaaa-0000-4000-8000-000000000001"
	custB  = "bbbbbbbb-0000-4000-8000-000000000002"
	batch1 = "11111111-1111-4111-8111-111111111111"
	batch2 = "22222222-2222-4222-8222-222222222222"
	batch3 = "33333333-3333-4333-8333-333333333333"
)

// fakeSource answers from a map and counts calls per batch.
type fakeSource struct {
	mu      sync.Mutex
	answers map[string]func(ctx context.Context) (*partnercenter.Batch, error)
	calls   map[string]int
}

func newFakeSource() *fakeSource {
	return &fakeSource{answers: map[string]func(context.Context) (*partnercenter.Batch, error){}, calls: map[string]int{}}
}

func (f *fakeSource) set(customer, batch string, fn func(ctx context.Context) (*partnercenter.Batch, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[customer+"/"+batch] = fn
}

func (f *fakeSource) setBatch(customer, batch string, b *partnercenter.Batch) {
	f.set(customer, batch, func(context.Context) (*partnercenter.Batch, error) { return b, nil })
}

func (f *fakeSource) setErr(customer, batch string, err error) {
	f.set(customer, batch, func(context.Context) (*partnercenter.Batch, error) { return nil, err })
}

func (f *fakeSource) count(customer, batch string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[customer+"/"+batch]
}

func (f *fakeSource) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *fakeSource) BatchStatus(ctx context.Context, customer, batch string) (*partnercenter.Batch, error) {
	f.mu.Lock()
	f.calls[customer+"/"+batch]++
	fn, ok := f.answers[customer+"/"+batch]
	f.mu.Unlock()
	if !ok {
		return nil, &partnercenter.Error{StatusCode: 404, Code: "600", Description: "not found"}
	}
	return fn(ctx)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testConfig(refresh time.Duration, customers ...config.Customer) *config.Config {
	cfg := &config.Config{Customers: customers}
	cfg.PartnerCenter.RefreshInterval = refresh
	return cfg
}

type harness struct {
	cfg    *config.Config
	src    *fakeSource
	cache  *Cache
	clock  *clock
	logs   *bytes.Buffer
	logsMu *sync.Mutex
}

func newHarness(cfg *config.Config) *harness {
	h := &harness{cfg: cfg, src: newFakeSource(), clock: &clock{t: t0}, logs: &bytes.Buffer{}, logsMu: &sync.Mutex{}}
	h.cache = NewCache(log.NewLogfmtLogger(log.NewSyncWriter(lockedWriter{h.logs, h.logsMu})), 4)
	h.cache.now = h.clock.now
	return h
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (h *harness) logText() string {
	h.logsMu.Lock()
	defer h.logsMu.Unlock()
	return h.logs.String()
}

func (h *harness) scrape(ctx context.Context) *Scrape {
	s := NewScrape(ctx, h.cfg, h.src, h.cache)
	s.now = h.clock.now
	return s
}

func finishedWithErrors() *partnercenter.Batch {
	b := &partnercenter.Batch{
		TrackingID:    batch1,
		Status:        partnercenter.StatusFinishedWithErrors,
		RawStatus:     "finished_with_errors",
		StartedTime:   t0.Add(-2 * time.Hour),
		CompletedTime: t0.Add(-90 * time.Minute),
		Errors: []partnercenter.ErrorCount{
			{Code: "806", Description: "ZtdDeviceAlreadyAssigned", Devices: 2},
			{Code: "808", Description: "ZtdDeviceAssignedToOtherTenant", Devices: 5},
		},
	}
	b.Devices[partnercenter.StatusFinished] = 93
	b.Devices[partnercenter.StatusFinishedWithErrors] = 7
	return b
}

func processing() *partnercenter.Batch {
	b := &partnercenter.Batch{
		TrackingID:  batch2,
		Status:      partnercenter.StatusProcessing,
		RawStatus:   "processing",
		StartedTime: t0.Add(-10 * time.Minute),
	}
	b.Devices[partnercenter.StatusProcessing] = 40
	b.Devices[partnercenter.StatusQueued] = 10
	return b
}

const expectedHeader = `# HELP partnercenter_batch_completed_timestamp_seconds When processing of the batch completed, as a Unix timestamp; absent while unset.
# TYPE partnercenter_batch_completed_timestamp_seconds gauge
`

func TestCollectExposition(t *testing.T) {
	h := newHarness(testConfig(time.Minute,
		config.Customer{ID: custA, Name: "Contoso", Batches: []string{batch1, batch2}},
		config.Customer{ID: custB, Name: "Fabrikam", Batches: []string{batch3}},
	))
	h.src.setBatch(custA, batch1, finishedWithErrors())
	h.src.setBatch(custA, batch2, processing())
	h.src.setErr(custB, batch3, &partnercenter.Error{StatusCode: 404, Code: "600", Description: "The batch was not found."})

	expected := expectedHeader + `partnercenter_batch_completed_timestamp_seconds{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1.7956026e+09
# HELP partnercenter_batch_device_errors Number of devices in the batch that reported an error code (at most 20 codes per batch, the rest under error_code="other").
# TYPE partnercenter_batch_device_errors gauge
partnercenter_batch_device_errors{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",error_code="806",error_description="ZtdDeviceAlreadyAssigned"} 2
partnercenter_batch_device_errors{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",error_code="808",error_description="ZtdDeviceAssignedToOtherTenant"} 5
# HELP partnercenter_batch_devices Number of devices in the batch per device status.
# TYPE partnercenter_batch_devices gauge
partnercenter_batch_devices{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished"} 93
partnercenter_batch_devices{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished_with_errors"} 7
partnercenter_batch_devices{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="processing"} 0
partnercenter_batch_devices{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="queued"} 0
partnercenter_batch_devices{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="unknown"} 0
partnercenter_batch_devices{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished"} 0
partnercenter_batch_devices{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished_with_errors"} 0
partnercenter_batch_devices{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="processing"} 40
partnercenter_batch_devices{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="queued"} 10
partnercenter_batch_devices{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="unknown"} 0
# HELP partnercenter_batch_duration_seconds Processing time of the batch: completed minus started, or now minus started while it runs.
# TYPE partnercenter_batch_duration_seconds gauge
partnercenter_batch_duration_seconds{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1800
partnercenter_batch_duration_seconds{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 600
# HELP partnercenter_batch_last_success_timestamp_seconds When the values shown for the batch were read from Partner Center, as a Unix timestamp.
# TYPE partnercenter_batch_last_success_timestamp_seconds gauge
partnercenter_batch_last_success_timestamp_seconds{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1.795608e+09
partnercenter_batch_last_success_timestamp_seconds{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1.795608e+09
# HELP partnercenter_batch_scrape_success 1 when the values shown for the batch are current, 0 when its last read failed or it was never read.
# TYPE partnercenter_batch_scrape_success gauge
partnercenter_batch_scrape_success{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1
partnercenter_batch_scrape_success{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1
partnercenter_batch_scrape_success{batch_tracking_id="33333333-3333-4333-8333-333333333333",customer_id="bbbbbbbb-0000-4000-8000-000000000002"} 0
# HELP partnercenter_batch_started_timestamp_seconds When processing of the batch started, as a Unix timestamp; absent while unset.
# TYPE partnercenter_batch_started_timestamp_seconds gauge
partnercenter_batch_started_timestamp_seconds{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1.7956008e+09
partnercenter_batch_started_timestamp_seconds{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 1.7956074e+09
# HELP partnercenter_batch_status Status of the batch: 1 for the current status, 0 for the others.
# TYPE partnercenter_batch_status gauge
partnercenter_batch_status{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished"} 0
partnercenter_batch_status{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished_with_errors"} 1
partnercenter_batch_status{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="processing"} 0
partnercenter_batch_status{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="queued"} 0
partnercenter_batch_status{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="unknown"} 0
partnercenter_batch_status{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished"} 0
partnercenter_batch_status{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="finished_with_errors"} 0
partnercenter_batch_status{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="processing"} 1
partnercenter_batch_status{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="queued"} 0
partnercenter_batch_status{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001",status="unknown"} 0
# HELP partnercenter_batches_configured Number of configured batches.
# TYPE partnercenter_batches_configured gauge
partnercenter_batches_configured 3
# HELP partnercenter_customer_info Configured customer, with its name.
# TYPE partnercenter_customer_info gauge
partnercenter_customer_info{customer_id="aaaaaaaa-0000-4000-8000-000000000001",customer_name="Contoso"} 1
partnercenter_customer_info{customer_id="bbbbbbbb-0000-4000-8000-000000000002",customer_name="Fabrikam"} 1
# HELP partnercenter_scrape_duration_seconds Wall time this scrape spent collecting batch data.
# TYPE partnercenter_scrape_duration_seconds gauge
partnercenter_scrape_duration_seconds 0
# HELP partnercenter_up 0 when no token could be obtained or every API request of this scrape failed, 1 otherwise.
# TYPE partnercenter_up gauge
partnercenter_up 1
`
	s := h.scrape(context.Background())
	if err := testutil.CollectAndCompare(s, strings.NewReader(expected)); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(h.scrape(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestFinishedBatchIsReadOnce(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.setBatch(custA, batch1, finishedWithErrors())
	h.src.setBatch(custA, batch2, processing())
	for range 5 {
		h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), h.cfg.PartnerCenter.RefreshInterval)
		h.clock.advance(time.Hour)
	}
	if got := h.src.count(custA, batch1); got != 1 {
		t.Errorf("finished batch read %d times, want 1", got)
	}
	if got := h.src.count(custA, batch2); got != 5 {
		t.Errorf("processing batch read %d times with refresh_interval 0, want 5", got)
	}
}

func TestRefreshIntervalHoldsUnfinishedBatches(t *testing.T) {
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.setBatch(custA, batch2, processing())
	refresh := func() Result {
		return h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), time.Minute)[0]
	}
	steps := []struct {
		advance       time.Duration
		wantReads     int
		wantAttempted bool
	}{
		{0, 1, true},
		{30 * time.Second, 1, false},
		{29 * time.Second, 1, false},
		{time.Second, 2, true},
	}
	for i, step := range steps {
		h.clock.advance(step.advance)
		r := refresh()
		if got := h.src.count(custA, batch2); got != step.wantReads || r.Attempted != step.wantAttempted || !r.Current {
			t.Errorf("step %d: reads=%d attempted=%v current=%v, want reads=%d attempted=%v current=true",
				i, got, r.Attempted, r.Current, step.wantReads, step.wantAttempted)
		}
	}
}

func TestFailureKeepsLastValuesAndIsLoggedOnce(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.setBatch(custA, batch2, processing())
	h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), 0)
	readAt := h.clock.now()

	h.src.setErr(custA, batch2, &partnercenter.Error{StatusCode: 500, Code: "500", Description: "boom",
		RequestID: "req-1", CorrelationID: "corr-1"})
	for range 3 {
		h.clock.advance(time.Minute)
		h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), 0)
	}
	expected := `# HELP partnercenter_batch_last_success_timestamp_seconds When the values shown for the batch were read from Partner Center, as a Unix timestamp.
# TYPE partnercenter_batch_last_success_timestamp_seconds gauge
partnercenter_batch_last_success_timestamp_seconds{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} ` + fmt.Sprint(float64(readAt.Unix())) + `
# HELP partnercenter_batch_scrape_success 1 when the values shown for the batch are current, 0 when its last read failed or it was never read.
# TYPE partnercenter_batch_scrape_success gauge
partnercenter_batch_scrape_success{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 0
# HELP partnercenter_up 0 when no token could be obtained or every API request of this scrape failed, 1 otherwise.
# TYPE partnercenter_up gauge
partnercenter_up 0
`
	if err := testutil.CollectAndCompare(h.scrape(context.Background()), strings.NewReader(expected),
		"partnercenter_batch_last_success_timestamp_seconds", "partnercenter_batch_scrape_success", "partnercenter_up"); err != nil {
		t.Fatal(err)
	}
	// The status keeps the last known value beside the failure.
	if got := testutil.CollectAndCount(h.scrape(context.Background()), "partnercenter_batch_status"); got != 5 {
		t.Errorf("partnercenter_batch_status series = %d, want 5", got)
	}
	want := `level=warn customer_id=aaaaaaaa-0000-4000-8000-000000000001 batch_tracking_id=22222222-2222-4222-8222-222222222222 msg="reading batch failed" err="HTTP 500, error code 500: boom" http_status=500 error_code=500 request_id=req-1 correlation_id=corr-1`
	if got := strings.Count(h.logText(), "reading batch failed"); got != 1 {
		t.Errorf("failure logged %d times over 5 failing reads, want 1:\n%s", got, h.logText())
	}
	if !strings.Contains(h.logText(), want) {
		t.Errorf("log lacks %q:\n%s", want, h.logText())
	}

	h.src.setBatch(custA, batch2, processing())
	h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), 0)
	if !strings.Contains(h.logText(), `msg="batch read again successfully after failures"`) {
		t.Errorf("recovery not logged:\n%s", h.logText())
	}
}

func TestSlowBatchDoesNotBlockOthers(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.setBatch(custA, batch1, finishedWithErrors())
	h.src.set(custA, batch2, func(ctx context.Context) (*partnercenter.Batch, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	results := h.cache.Refresh(ctx, h.src, Targets(h.cfg), 0)
	if !results[0].Current || results[0].Err != nil {
		t.Errorf("fast batch: current=%v err=%v, want current, no error", results[0].Current, results[0].Err)
	}
	if results[1].Current || !errors.Is(results[1].Err, context.DeadlineExceeded) {
		t.Errorf("slow batch: current=%v err=%v, want not current with a deadline error", results[1].Current, results[1].Err)
	}
}

func TestConcurrentScrapesShareReads(t *testing.T) {
	// With a refresh interval, a scrape that arrives after the read has
	// finished finds it in the cache; one that arrives during the read
	// joins it. Either way there is exactly one read. (The end-to-end test
	// makes the second scrape arrive during the reads for sure.)
	h := newHarness(testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch2}}))
	release := make(chan struct{})
	var started atomic.Int32
	h.src.set(custA, batch2, func(context.Context) (*partnercenter.Batch, error) {
		started.Add(1)
		<-release
		return processing(), nil
	})
	var wg sync.WaitGroup
	results := make([][]Result, 3)
	for i := range results {
		wg.Go(func() {
			results[i] = h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), time.Minute)
		})
	}
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := h.src.count(custA, batch2); got != 1 {
		t.Errorf("three concurrent scrapes made %d reads, want 1", got)
	}
	for i, r := range results {
		if !r[0].Current || r[0].Batch == nil {
			t.Errorf("scrape %d: current=%v batch=%v", i, r[0].Current, r[0].Batch)
		}
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	const limit = 3
	var batches []string
	for i := range 12 {
		batches = append(batches, fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
	}
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: batches}))
	h.cache.SetMaxConcurrent(limit)
	var running, peak atomic.Int32
	full := make(chan struct{})
	var fullOnce sync.Once
	for _, b := range batches {
		h.src.set(custA, b, func(context.Context) (*partnercenter.Batch, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if n == limit {
				fullOnce.Do(func() { close(full) })
			}
			// Hold the slot until the limit was reached once, so that the
			// peak does not depend on scheduling; a bound that lets more
			// through still shows up as a higher peak.
			select {
			case <-full:
			case <-time.After(5 * time.Second):
			}
			running.Add(-1)
			return processing(), nil
		})
	}
	h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), 0)
	if got := peak.Load(); got != limit {
		t.Errorf("peak concurrent reads = %d, want %d", got, limit)
	}
	if got := h.src.totalCalls(); got != len(batches) {
		t.Errorf("reads = %d, want %d", got, len(batches))
	}
}

func TestTopErrors(t *testing.T) {
	b := &partnercenter.Batch{OtherErrorDevices: 4}
	for i := range 25 {
		b.Errors = append(b.Errors, partnercenter.ErrorCount{Code: fmt.Sprint(800 + i), Devices: 1 + i%3})
	}
	b.Errors = append(b.Errors, partnercenter.ErrorCount{Code: "other", Devices: 10})
	got := topErrors(b)
	if len(got) != 21 {
		t.Fatalf("got %d codes, want 20 + other", len(got))
	}
	// Devices per code cycle 1,2,3: the 8 codes with 3 and 8 with 2 are
	// kept, then 4 of the 9 with 1, in first-seen order.
	wantCodes := "802 805 808 811 814 817 820 823 801 804 807 810 813 816 819 822 800 803 806 809 other"
	var codes []string
	for _, e := range got {
		codes = append(codes, e.Code)
	}
	if strings.Join(codes, " ") != wantCodes {
		t.Errorf("codes = %s\nwant    %s", strings.Join(codes, " "), wantCodes)
	}
	// other = 4 (decoder overflow) + 10 (code "other") + five left-out codes with 1 device each.
	if other := got[20].Devices; other != 19 {
		t.Errorf("other = %d, want 19", other)
	}
}

func TestAPIUp(t *testing.T) {
	notFound := &partnercenter.Error{StatusCode: 404}
	serverErr := &partnercenter.Error{StatusCode: 503}
	tokenErr := fmt.Errorf("get token: %w", &partnercenter.TokenError{StatusCode: 401, Code: "invalid_client"})
	tests := []struct {
		name    string
		results []Result
		want    bool
	}{
		{"nothing asked", []Result{{}}, true},
		{"all 5xx", []Result{{Attempted: true, Err: serverErr}, {Attempted: true, Err: serverErr}}, false},
		{"one 404 among 5xx", []Result{{Attempted: true, Err: serverErr}, {Attempted: true, Err: notFound}}, true},
		{"one success", []Result{{Attempted: true, Err: serverErr}, {Attempted: true}}, true},
		{"token failure", []Result{{Attempted: true}, {Attempted: true, Err: tokenErr}}, false},
		{"timeout", []Result{{Attempted: true, Err: context.DeadlineExceeded}}, false},
		{"cached only", []Result{{Current: true}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apiUp(tt.results); got != tt.want {
				t.Errorf("apiUp = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	now := t0
	tests := []struct {
		name   string
		batch  partnercenter.Batch
		want   time.Duration
		wantOK bool
	}{
		{"not started", partnercenter.Batch{Status: partnercenter.StatusQueued}, 0, false},
		{"running", partnercenter.Batch{Status: partnercenter.StatusProcessing, StartedTime: now.Add(-time.Minute)}, time.Minute, true},
		{"completed", partnercenter.Batch{Status: partnercenter.StatusFinished, StartedTime: now.Add(-time.Hour), CompletedTime: now.Add(-time.Minute)}, 59 * time.Minute, true},
		{"finished without completion time", partnercenter.Batch{Status: partnercenter.StatusFinished, StartedTime: now.Add(-time.Hour)}, 0, false},
		{"clock skew", partnercenter.Batch{Status: partnercenter.StatusProcessing, StartedTime: now.Add(time.Minute)}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := duration(&tt.batch, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("duration = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRetainForgetsRemovedBatches(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch1, batch2}}))
	h.src.setBatch(custA, batch1, finishedWithErrors())
	h.src.setBatch(custA, batch2, processing())
	h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), 0)
	h.cache.Retain([]Target{{CustomerID: custA, TrackingID: batch1}})
	if _, ok := h.cache.State(Target{CustomerID: custA, TrackingID: batch1}); !ok {
		t.Error("kept batch was forgotten")
	}
	if _, ok := h.cache.State(Target{CustomerID: custA, TrackingID: batch2}); ok {
		t.Error("removed batch is still cached")
	}
	h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), 0)
	if got := h.src.count(custA, batch1); got != 1 {
		t.Errorf("finished batch read %d times across a reload that kept it, want 1", got)
	}
}

func TestUnknownStatusLoggedOncePerValue(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	b := processing()
	b.Status, b.RawStatus = partnercenter.StatusUnknown, "Paused"
	b.UnknownDeviceStatuses = []string{"Held"}
	h.src.setBatch(custA, batch2, b)
	for range 3 {
		h.cache.Refresh(context.Background(), h.src, Targets(h.cfg), 0)
	}
	logs := h.logText()
	for _, v := range []string{"value=Paused", "value=Held"} {
		if got := strings.Count(logs, v); got != 1 {
			t.Errorf("%s logged %d times, want 1:\n%s", v, got, logs)
		}
	}
}

func TestInvalidUTF8FromTheServiceDoesNotBreakTheScrape(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch1}}))
	b := finishedWithErrors()
	b.Errors = []partnercenter.ErrorCount{{Code: "8\xff8", Description: "bad \xfe text", Devices: 7}}
	h.src.setBatch(custA, batch1, b)
	expected := `# HELP partnercenter_batch_device_errors Number of devices in the batch that reported an error code (at most 20 codes per batch, the rest under error_code="other").
# TYPE partnercenter_batch_device_errors gauge
partnercenter_batch_device_errors{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",error_code="8` + "\uFFFD" + `8",error_description="bad ` + "\uFFFD" + ` text"} 7
`
	if err := testutil.CollectAndCompare(h.scrape(context.Background()), strings.NewReader(expected), "partnercenter_batch_device_errors"); err != nil {
		t.Fatal(err)
	}
}
