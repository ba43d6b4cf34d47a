package daemon

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// The demo's batches, by the role they play in the scenario.
const (
	demoContosoOld        = "2f5a9c4e-7b1d-4a3f-8e6c-1d2b3a4c5e6f"
	demoContosoErrors     = "8a1e4b7c-2d5f-4e8a-9b3c-6d7e8f9a0b1c"
	demoContosoClean      = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
	demoFabrikamOld       = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
	demoFabrikamThrottled = "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
	demoFabrikamMissing   = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	demoNorthwindStuck    = "7c6b5a4d-3e2f-4b1a-9c8d-7e6f5a4b3c2d"
	demoNorthwindLate     = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"
)

// demoTimeline is the scenario written out by hand: the status each batch
// must report at each instant after the start ("" for the batch that
// does not exist).
var demoTimeline = []struct {
	at     time.Duration
	status map[string]string
}{
	{0, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "queued", demoContosoClean: "queued",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "queued",
		demoNorthwindStuck: "processing", demoNorthwindLate: "queued",
	}},
	{25 * time.Second, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "queued", demoContosoClean: "queued",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "processing",
		demoNorthwindStuck: "processing", demoNorthwindLate: "queued",
	}},
	{time.Minute, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "processing", demoContosoClean: "processing",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "processing",
		demoNorthwindStuck: "processing", demoNorthwindLate: "queued",
	}},
	{3*time.Minute + 10*time.Second, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "finished_with_errors", demoContosoClean: "processing",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "processing",
		demoNorthwindStuck: "processing", demoNorthwindLate: "queued",
	}},
	{4 * time.Minute, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "finished_with_errors", demoContosoClean: "processing",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "finished_with_errors",
		demoNorthwindStuck: "processing", demoNorthwindLate: "queued",
	}},
	{6 * time.Minute, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "finished_with_errors", demoContosoClean: "finished",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "finished_with_errors",
		demoNorthwindStuck: "processing", demoNorthwindLate: "processing",
	}},
	{9 * time.Minute, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "finished_with_errors", demoContosoClean: "finished",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "finished_with_errors",
		demoNorthwindStuck: "processing", demoNorthwindLate: "finished",
	}},
	{48 * time.Hour, map[string]string{
		demoContosoOld: "finished", demoContosoErrors: "finished_with_errors", demoContosoClean: "finished",
		demoFabrikamOld: "finished_with_errors", demoFabrikamThrottled: "finished_with_errors",
		demoNorthwindStuck: "processing", demoNorthwindLate: "finished",
	}},
}

// demoEpoch is where the tests' clock starts.
var demoEpoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func startTestDemo(t *testing.T) (*demo, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(demoEpoch)
	d, err := newDemo(log.NewNopLogger(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, clock
}

func TestDemoTimeline(t *testing.T) {
	d, _ := startTestDemo(t)
	for _, step := range demoTimeline {
		t.Run(step.at.String(), func(t *testing.T) {
			now := d.start.Add(step.at)
			got := map[string]string{}
			for i, b := range demoBatches {
				if b.missing {
					continue
				}
				devices := partnercentertest.GenerateDevices(b.devices, int64(i+1), b.failures)
				batch := b.at(d.start, now, devices)
				got[b.trackingID] = batch.Status
				checkDemoBatchShape(t, b, batch)
			}
			if !maps.Equal(got, step.status) {
				t.Errorf("statuses\n got %v\nwant %v", got, step.status)
			}
		})
	}
}

// checkDemoBatchShape checks what must hold whatever the instant: every
// device is there, times are set exactly when the status says so, and
// only processed devices carry errors.
func checkDemoBatchShape(t *testing.T, b demoBatch, batch partnercentertest.Batch) {
	t.Helper()
	if len(batch.Devices) != b.devices {
		t.Errorf("%s: %d devices, want %d", b.trackingID, len(batch.Devices), b.devices)
	}
	wantStarted := batch.Status != "queued"
	wantCompleted := batch.Status == "finished" || batch.Status == "finished_with_errors"
	if (batch.StartedTime != "") != wantStarted || (batch.CompletedTime != "") != wantCompleted {
		t.Errorf("%s is %s with startedTime %q and completedTime %q", b.trackingID, batch.Status, batch.StartedTime, batch.CompletedTime)
	}
	for _, dev := range batch.Devices {
		if dev.ErrorCode != "" && dev.Status != "finished_with_errors" {
			t.Errorf("%s: device %s is %s with error %s", b.trackingID, dev.SerialNumber, dev.Status, dev.ErrorCode)
		}
	}
}

func TestDemoDeviceProgress(t *testing.T) {
	d, _ := startTestDemo(t)
	tests := []struct {
		batch string
		at    time.Duration
		// want counts devices queued, processing and done (finished
		// with or without errors).
		want map[string]int
		// wantFailed counts the devices finished with errors; -1 skips
		// the check while the failures depend on which devices are done.
		wantFailed int
	}{
		{demoContosoErrors, 0, map[string]int{"queued": 1200}, 0},
		// Processing from 0:30 to 3:00: half done at 1:45.
		{demoContosoErrors, 105 * time.Second, map[string]int{"processing": 600, "done": 600}, -1},
		{demoContosoErrors, 3 * time.Minute, map[string]int{"done": 1200}, 49},
		{demoNorthwindStuck, 0, map[string]int{"processing": 360, "done": 540}, 0},
		{demoNorthwindStuck, 48 * time.Hour, map[string]int{"processing": 360, "done": 540}, 0},
		{demoFabrikamOld, 0, map[string]int{"done": 250}, 44},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s at %s", tt.batch[:4], tt.at), func(t *testing.T) {
			b, devices := demoBatchByID(t, tt.batch)
			got, failed := map[string]int{}, 0
			for _, dev := range b.at(d.start, d.start.Add(tt.at), devices).Devices {
				switch dev.Status {
				case "queued", "processing":
					got[dev.Status]++
				case "finished_with_errors":
					failed++
					got["done"]++
				default:
					got["done"]++
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("devices %v, want %v", got, tt.want)
			}
			if tt.wantFailed >= 0 && failed != tt.wantFailed {
				t.Errorf("%d devices finished with errors, want %d", failed, tt.wantFailed)
			}
		})
	}
}

func demoBatchByID(t *testing.T, trackingID string) (demoBatch, []partnercentertest.Device) {
	t.Helper()
	for i, b := range demoBatches {
		if b.trackingID == trackingID {
			return b, partnercentertest.GenerateDevices(b.devices, int64(i+1), b.failures)
		}
	}
	t.Fatalf("no demo batch %s", trackingID)
	return demoBatch{}, nil
}

func TestDemoThrottledAnswers(t *testing.T) {
	b, _ := demoBatchByID(t, demoFabrikamThrottled)
	var got []string
	for call := range 7 {
		r := b.response(call)
		got = append(got, fmt.Sprintf("%d:%s", r.Status, r.Header.Get("Retry-After")))
	}
	want := []string{"0:", "0:", "429:1", "0:", "0:", "429:1", "0:"}
	if !slices.Equal(got, want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	other, _ := demoBatchByID(t, demoContosoErrors)
	if r := other.response(2); r.Status != 0 {
		t.Errorf("an unthrottled batch answered %d", r.Status)
	}
}

// TestDemoScrape plays the scenario through the exporter's own HTTP
// handler: the statuses a scrape shows at each instant are the timeline's.
func TestDemoScrape(t *testing.T) {
	for _, step := range demoTimeline {
		t.Run(step.at.String(), func(t *testing.T) {
			d, clock := startTestDemo(t)
			clock.Set(d.start.Add(step.at))
			exp := newDemoExporter(t, d.config)
			families := exp.scrape(t)

			if got := demoCurrentStatuses(families); !maps.Equal(got, step.status) {
				t.Errorf("statuses\n got %v\nwant %v", got, step.status)
			}
			wantSuccess := map[string]float64{}
			for id := range step.status {
				wantSuccess[id] = 1
			}
			wantSuccess[demoFabrikamMissing] = 0
			if got := demoBatchValues(families, "partnercenter_batch_scrape_success", nil); !maps.Equal(got, wantSuccess) {
				t.Errorf("partnercenter_batch_scrape_success\n got %v\nwant %v", got, wantSuccess)
			}
			exp.checkStayedLocal(t)
		})
	}
}

func TestDemoScrapeErrorCodes(t *testing.T) {
	d, clock := startTestDemo(t)
	clock.Set(d.start.Add(10 * time.Minute))
	families := newDemoExporter(t, d.config).scrape(t)
	got := demoBatchValues(families, "partnercenter_batch_device_errors", []string{"error_code", "error_description"})
	want := map[string]float64{
		demoContosoErrors + " 806 ZtdDeviceAlreadyAssigned":       12,
		demoContosoErrors + " 808 ZtdDeviceAssignedToOtherTenant": 37,
		demoFabrikamOld + " 807 ZtdDeviceIsNotRegistered":         3,
		demoFabrikamOld + " 808 ZtdDeviceAssignedToOtherTenant":   41,
		demoFabrikamThrottled + " 806 ZtdDeviceAlreadyAssigned":   5,
	}
	if !maps.Equal(got, want) {
		t.Errorf("partnercenter_batch_device_errors\n got %v\nwant %v", got, want)
	}
}

// TestDemoScrapeThrottled re-reads the unfinished batches on every
// scrape: the third read of the throttled batch gets a 429, the exporter
// waits out Retry-After and reads it in the same scrape.
func TestDemoScrapeThrottled(t *testing.T) {
	d, clock := startTestDemo(t)
	clock.Set(d.start.Add(time.Minute))
	exp := newDemoExporter(t, func() (*config.Config, error) {
		cfg, err := d.config()
		if err != nil {
			return nil, err
		}
		cfg.PartnerCenter.RefreshInterval = 0
		return cfg, nil
	})
	var families map[string]*dto.MetricFamily
	for range 3 {
		families = exp.scrape(t)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"partnercenter_api_throttled_total", nil, 1},
		{"partnercenter_api_requests_total", map[string]string{"code": "429"}, 1},
		{"partnercenter_batch_scrape_success", map[string]string{"batch_tracking_id": demoFabrikamThrottled}, 1},
		{"partnercenter_up", nil, 1},
	}
	for _, c := range checks {
		if got, ok := demoMetricValue(families, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %t), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if got := d.server.BatchRequests(demoCustomers[1].id, demoFabrikamThrottled); got != 4 {
		t.Errorf("throttled batch asked %d times, want 4 (three reads and one retry)", got)
	}
	exp.checkStayedLocal(t)
}

func TestDemoConfigStaysOnLoopback(t *testing.T) {
	d, _ := startTestDemo(t)
	cfg, err := d.config()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{cfg.PartnerCenter.BaseURL, cfg.Auth.TokenURL} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			t.Errorf("demo configuration points at %s, not at loopback", raw)
		}
	}
	if got, want := cfg.BatchCount(), len(demoBatches); got != want {
		t.Errorf("%d batches configured, want %d", got, want)
	}
}

// demoExporter is the exporter's HTTP handler in front of a demo, with
// an HTTP client that refuses to leave loopback.
type demoExporter struct {
	mux     http.Handler
	offsite *offsiteDials
}

func newDemoExporter(t *testing.T, load func() (*config.Config, error)) *demoExporter {
	t.Helper()
	logger := log.NewNopLogger()
	selfReg := prometheus.NewRegistry()
	offsite := &offsiteDials{}
	state := newExporterState(logger, load, offsite.client(), collector.NewAPIMetrics(selfReg), selfReg)
	if err := state.reload(); err != nil {
		t.Fatal(err)
	}
	mux, err := newMux(state, selfReg, serverOptions{metricsPath: "/metrics", scrapeTimeout: 10 * time.Second, description: DemoDescription}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return &demoExporter{mux: mux, offsite: offsite}
}

// scrape gets /metrics through the handler and parses the answer.
func (e *demoExporter) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

func (e *demoExporter) checkStayedLocal(t *testing.T) {
	t.Helper()
	if got := e.offsite.list(); len(got) > 0 {
		t.Errorf("the demo tried to reach %v", got)
	}
}

// offsiteDials records every attempt to connect anywhere but loopback,
// and refuses it.
type offsiteDials struct {
	mu    sync.Mutex
	addrs []string
}

func (o *offsiteDials) client() *http.Client {
	var dialer net.Dialer
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				o.mu.Lock()
				o.addrs = append(o.addrs, addr)
				o.mu.Unlock()
				return nil, fmt.Errorf("test refuses to dial %s: not loopback", addr)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		Proxy: nil,
	}
	return &http.Client{Transport: transport}
}

func (o *offsiteDials) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.addrs)
}

// demoCurrentStatuses maps each batch to the status whose series is 1.
func demoCurrentStatuses(families map[string]*dto.MetricFamily) map[string]string {
	out := map[string]string{}
	for key, v := range demoBatchValues(families, "partnercenter_batch_status", []string{"status"}) {
		if v == 1 {
			batch, status, _ := strings.Cut(key, " ")
			out[batch] = status
		}
	}
	return out
}

// demoBatchValues maps "<batch_tracking_id> <extra label values...>" to
// the value of each series of the gauge or counter name.
func demoBatchValues(families map[string]*dto.MetricFamily, name string, extra []string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range families[name].GetMetric() {
		key := []string{demoLabel(m, "batch_tracking_id")}
		for _, l := range extra {
			key = append(key, demoLabel(m, l))
		}
		out[strings.Join(key, " ")] = demoSampleValue(m)
	}
	return out
}

// demoMetricValue is the value of the one series of name whose labels
// include want.
func demoMetricValue(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range families[name].GetMetric() {
		matches := true
		for k, v := range want {
			matches = matches && demoLabel(m, k) == v
		}
		if matches {
			return demoSampleValue(m), true
		}
	}
	return 0, false
}

func demoLabel(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func demoSampleValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}
