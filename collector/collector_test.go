package collector

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/fakesource"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

const (
	custA  = "aaaaaaaa-0000-4000-8000-000000000001"
	custB  = "bbbbbbbb-0000-4000-8000-000000000002"
	batch1 = "11111111-1111-4111-8111-111111111111"
	batch2 = "22222222-2222-4222-8222-222222222222"
	batch3 = "33333333-3333-4333-8333-333333333333"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testConfig(refresh time.Duration, customers ...config.Customer) *config.Config {
	cfg := &config.Config{Customers: customers}
	cfg.PartnerCenter.RefreshInterval = refresh
	return cfg
}

type harness struct {
	cfg    *config.Config
	src    *fakesource.Source
	store  *batchstate.Store
	reader *Reader
	clock  *testkit.Clock
	logs   *bytes.Buffer
	logsMu *sync.Mutex
}

func newHarness(cfg *config.Config) *harness {
	h := &harness{cfg: cfg, src: fakesource.New(), clock: testkit.NewClock(t0), logs: &bytes.Buffer{}, logsMu: &sync.Mutex{}}
	h.store = batchstate.NewStore()
	h.store.SetMembers(targetsOf(cfg), t0)
	logger := level.NewFilter(log.NewLogfmtLogger(log.NewSyncWriter(lockedWriter{h.logs, h.logsMu})), level.AllowInfo())
	h.reader = NewReader(h.store, logger, 4)
	h.reader.SetClock(h.clock.Now)
	return h
}

// read runs one round of reads as a scrape would, with the configured
// refresh interval.
func (h *harness) read(ctx context.Context) []batchstate.Result {
	return h.reader.Read(ctx, h.src, targetsOf(h.cfg), h.policy())
}

func (h *harness) policy() batchstate.ReadPolicy {
	return batchstate.ReadPolicy{Refresh: h.cfg.PartnerCenter.RefreshInterval, Timeout: 5 * time.Second}
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
	s := NewScrape(ctx, policyOf(h.cfg), customersOf(h.cfg), targetsOf(h.cfg), h.src, h.reader)
	s.now = h.clock.Now
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

const expectedHeader = `# HELP partnercenter_api_last_success_timestamp_seconds When a batch was last read successfully from Partner Center (answered and decoded), as a Unix timestamp; 0 before the first.
# TYPE partnercenter_api_last_success_timestamp_seconds gauge
partnercenter_api_last_success_timestamp_seconds 1.795608e+09
# HELP partnercenter_api_throttled_until_timestamp_seconds When the exporter's hold on API requests after an HTTP 429 ends, as a Unix timestamp; 0 when none is in force.
# TYPE partnercenter_api_throttled_until_timestamp_seconds gauge
partnercenter_api_throttled_until_timestamp_seconds 0
# HELP partnercenter_batch_completed_timestamp_seconds When processing of the batch completed, as a Unix timestamp; absent while unset.
# TYPE partnercenter_batch_completed_timestamp_seconds gauge
`

func TestCollectExposition(t *testing.T) {
	h := newHarness(testConfig(time.Minute,
		config.Customer{ID: custA, Name: "Contoso", Batches: []string{batch1, batch2}},
		config.Customer{ID: custB, Name: "Fabrikam", Batches: []string{batch3}},
	))
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.src.SetBatch(custA, batch2, processing())
	h.src.SetErr(custB, batch3, &partnercenter.Error{StatusCode: 404, Code: "600", Description: "The batch was not found."})

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
# HELP partnercenter_batch_scrape_success 1 when the last read of the batch succeeded, 0 when it failed or no read has finished yet.
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
# HELP partnercenter_batches_listed Number of configured batches by where they are listed: config (the configuration file), batch_file, or api (the intake API).
# TYPE partnercenter_batches_listed gauge
partnercenter_batches_listed{source="api"} 0
partnercenter_batches_listed{source="batch_file"} 0
partnercenter_batches_listed{source="config"} 3
# HELP partnercenter_batches_retired Number of configured batches retired: finished longer ago than the retention, no longer read or exported.
# TYPE partnercenter_batches_retired gauge
partnercenter_batches_retired 0
# HELP partnercenter_customer_info Configured customer, with its name.
# TYPE partnercenter_customer_info gauge
partnercenter_customer_info{customer_id="aaaaaaaa-0000-4000-8000-000000000001",customer_name="Contoso"} 1
partnercenter_customer_info{customer_id="bbbbbbbb-0000-4000-8000-000000000002",customer_name="Fabrikam"} 1
# HELP partnercenter_scrape_duration_seconds Wall time this scrape spent collecting batch data.
# TYPE partnercenter_scrape_duration_seconds gauge
partnercenter_scrape_duration_seconds 0
# HELP partnercenter_up 1 when Partner Center is usable with the configured credentials. 0 while reads fail for want of a token; or while reads fail with no answer, a timeout, 401 or 5xx and either a canary read of a finished batch fails too or nothing has answered for max(5m, 2 x refresh_interval).
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

func TestInvalidUTF8FromTheServiceDoesNotBreakTheScrape(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch1}}))
	b := finishedWithErrors()
	b.Errors = []partnercenter.ErrorCount{{Code: "8\xff8", Description: "bad \xfe text", Devices: 7}}
	h.src.SetBatch(custA, batch1, b)
	expected := `# HELP partnercenter_batch_device_errors Number of devices in the batch that reported an error code (at most 20 codes per batch, the rest under error_code="other").
# TYPE partnercenter_batch_device_errors gauge
partnercenter_batch_device_errors{batch_tracking_id="11111111-1111-4111-8111-111111111111",customer_id="aaaaaaaa-0000-4000-8000-000000000001",error_code="8` + "\uFFFD" + `8",error_description="bad ` + "\uFFFD" + ` text"} 7
`
	if err := testutil.CollectAndCompare(h.scrape(context.Background()), strings.NewReader(expected), "partnercenter_batch_device_errors"); err != nil {
		t.Fatal(err)
	}
}

func TestFailureKeepsLastValues(t *testing.T) {
	h := newHarness(testConfig(0, config.Customer{ID: custA, Batches: []string{batch2}}))
	h.src.SetBatch(custA, batch2, processing())
	h.read(context.Background())
	readAt := h.clock.Now()

	h.src.SetErr(custA, batch2, &partnercenter.Error{
		StatusCode: 500, Code: "500", Description: "boom",
		RequestID: "req-1", CorrelationID: "corr-1",
	})
	// Failing for longer than the health window, with no finished batch
	// to read as a canary, the API counts as down.
	for range 3 {
		h.clock.Advance(2 * time.Minute)
		h.read(context.Background())
	}
	expected := `# HELP partnercenter_batch_last_success_timestamp_seconds When the values shown for the batch were read from Partner Center, as a Unix timestamp.
# TYPE partnercenter_batch_last_success_timestamp_seconds gauge
partnercenter_batch_last_success_timestamp_seconds{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} ` + fmt.Sprint(float64(readAt.Unix())) + `
# HELP partnercenter_batch_scrape_success 1 when the last read of the batch succeeded, 0 when it failed or no read has finished yet.
# TYPE partnercenter_batch_scrape_success gauge
partnercenter_batch_scrape_success{batch_tracking_id="22222222-2222-4222-8222-222222222222",customer_id="aaaaaaaa-0000-4000-8000-000000000001"} 0
# HELP partnercenter_up 1 when Partner Center is usable with the configured credentials. 0 while reads fail for want of a token; or while reads fail with no answer, a timeout, 401 or 5xx and either a canary read of a finished batch fails too or nothing has answered for max(5m, 2 x refresh_interval).
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
}

func TestThrottledUntil(t *testing.T) {
	h := newHarness(testConfig(0))
	h.src.Hold(t0.Add(90 * time.Second))
	expected := `# HELP partnercenter_api_throttled_until_timestamp_seconds When the exporter's hold on API requests after an HTTP 429 ends, as a Unix timestamp; 0 when none is in force.
# TYPE partnercenter_api_throttled_until_timestamp_seconds gauge
partnercenter_api_throttled_until_timestamp_seconds ` + fmt.Sprint(float64(t0.Unix()+90)) + "\n"
	if err := testutil.CollectAndCompare(h.scrape(context.Background()), strings.NewReader(expected), "partnercenter_api_throttled_until_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
}

// targetsOf lists the batches of cfg in file order, as the daemon does.
func targetsOf(cfg *config.Config) []batchstate.Target {
	var targets []batchstate.Target
	for _, c := range cfg.Customers {
		for _, b := range c.Batches {
			targets = append(targets, batchstate.Target{CustomerID: c.ID, CustomerName: c.Name, TrackingID: b})
		}
	}
	return targets
}

// policyOf is how cfg wants batches read, as the daemon builds it.
func policyOf(cfg *config.Config) batchstate.ReadPolicy {
	return batchstate.ReadPolicy{
		Refresh:   cfg.PartnerCenter.RefreshInterval,
		Timeout:   cfg.PartnerCenter.RequestTimeout,
		Retention: cfg.Retention,
	}
}

// customersOf lists cfg's customers for customer_info.
func customersOf(cfg *config.Config) []Customer {
	out := make([]Customer, len(cfg.Customers))
	for i, c := range cfg.Customers {
		out[i] = Customer{ID: c.ID, Name: c.Name}
	}
	return out
}
