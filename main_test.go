package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

const (
	testSecret   = "s3cr3t-client-value-that-must-not-leak"
	testClientID = "0a1b2c3d-0000-4000-8000-00000000c11e"
	customer1    = "6f1c2a8e-3b4d-4e5f-9a01-23456789abcd"
	customer2    = "0b7e5d3c-1a2f-4c6d-8e9f-0a1b2c3d4e5f"
	finishedID   = "10000000-0000-4000-8000-000000000001"
	runningID    = "20000000-0000-4000-8000-000000000002"
	slowID       = "30000000-0000-4000-8000-000000000003"
	throttledID  = "40000000-0000-4000-8000-000000000004"
	missingID    = "50000000-0000-4000-8000-000000000005"
	brokenID     = "60000000-0000-4000-8000-000000000006"
)

// fakeWithBatches is a simulated Partner Center with one batch of each
// kind the exporter must cope with.
func fakeWithBatches(t *testing.T) *partnercentertest.Server {
	t.Helper()
	return fakeWithSlowStart(t, 0)
}

// fakeWithSlowStart is fakeWithBatches where the first answer for every
// batch takes at least firstLatency, so that a test can be sure reads
// are still in flight when it starts a second scrape.
func fakeWithSlowStart(t *testing.T, firstLatency time.Duration) *partnercentertest.Server {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetCredentials(testClientID, testSecret)
	// script answers as rs say (the last one repeats), with the first
	// answer delayed by at least firstLatency.
	script := func(customer, id string, b partnercentertest.Batch, rs ...partnercentertest.Response) {
		first := rs[0]
		first.Latency = max(first.Latency, firstLatency)
		answers := append([]partnercentertest.Response{first}, rs[1:]...)
		if len(rs) == 1 {
			answers = append(answers, rs[0]) // Only the first answer is delayed.
		}
		srv.SetResponses(customer, id, b, answers...)
	}
	ok := partnercentertest.Response{}
	devices := partnercentertest.GenerateDevices(100, 7, map[string]int{"808": 4, "806": 1})
	script(customer1, finishedID, partnercentertest.Batch{TrackingID: finishedID, Status: "finished_with_errors",
		StartedTime: "2026-11-25T10:00:00.123", CompletedTime: "2026-11-25T10:30:00.123", Devices: devices}, ok)
	script(customer1, runningID, partnercentertest.Batch{TrackingID: runningID, Status: "InProgress",
		StartedTime: "2026-11-25T11:00:00Z", Devices: []partnercentertest.Device{{SerialNumber: "X1", Status: "processing"}}}, ok)
	script(customer1, slowID, partnercentertest.Batch{TrackingID: slowID, Status: "queued"},
		partnercentertest.Response{Latency: time.Minute})
	// Throttled once, for less than the scrape deadline: the exporter
	// waits and reads it in the same scrape.
	script(customer2, throttledID, partnercentertest.Batch{TrackingID: throttledID, Status: "queued"},
		partnercentertest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}}, ok)
	script(customer2, missingID, partnercentertest.Batch{TrackingID: missingID},
		partnercentertest.Response{Status: http.StatusNotFound})
	script(customer2, brokenID, partnercentertest.Batch{TrackingID: brokenID},
		partnercentertest.Response{Status: http.StatusInternalServerError})
	return srv
}

func writeConfig(t *testing.T, dir string, srv *partnercentertest.Server, batches map[string][]string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "client_secret"), []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "partner_center:\n  base_url: %s\n  refresh_interval: 0s\n", srv.URL)
	fmt.Fprintf(&b, "auth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: %s\n  client_secret_file: client_secret\n  token_url: %s\n",
		testClientID, srv.TokenURL())
	b.WriteString("customers:\n")
	for _, c := range []string{customer1, customer2} {
		if len(batches[c]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  - id: %s\n    name: Customer %s\n    batches:\n", c, c[:4])
		for _, id := range batches[c] {
			fmt.Fprintf(&b, "      - %s\n", id)
		}
	}
	path := filepath.Join(dir, "partnercenter.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type testExporter struct {
	url   string
	logs  *syncBuffer
	state *exporterState
	// web serves the exporter; tests that count goroutines close it early.
	web *httptest.Server
}

func startExporter(t *testing.T, configPath string) *testExporter {
	t.Helper()
	return startExporterWith(t, configPath, serverOptions{
		metricsPath: "/metrics", scrapeTimeout: 10 * time.Second, timeoutOffset: 500 * time.Millisecond,
	})
}

func startExporterWith(t *testing.T, configPath string, opts serverOptions) *testExporter {
	t.Helper()
	logs := &syncBuffer{}
	logger := log.NewLogfmtLogger(logs)
	selfReg := prometheus.NewRegistry()
	obs := collector.NewAPIMetrics(selfReg)
	state := newExporterState(logger, func() (*config.Config, error) { return config.Load(configPath) }, pcclient.DefaultHTTPClient(), obs, selfReg)
	t.Cleanup(state.close)
	if err := state.reload(); err != nil {
		t.Fatal(err)
	}
	mux, err := newMux(state, selfReg, opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	return &testExporter{url: web.URL, logs: logs, state: state, web: web}
}

func (e *testExporter) scrape(t *testing.T, timeoutHeader string) (string, map[string]*familyValues) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, e.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if timeoutHeader != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	return string(body), parseMetrics(t, string(body))
}

// familyValues maps a rendered label set to its value.
type familyValues map[string]float64

func parseMetrics(t *testing.T, text string) map[string]*familyValues {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	out := map[string]*familyValues{}
	for name, f := range families {
		values := familyValues{}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var v float64
			switch {
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				v = m.GetUntyped().GetValue()
			}
			values[strings.Join(labels, ",")] = v
			if m.TimestampMs != nil {
				t.Errorf("%s carries a sample timestamp", name)
			}
		}
		out[name] = &values
	}
	return out
}

func value(t *testing.T, metrics map[string]*familyValues, name, labels string) float64 {
	t.Helper()
	f, ok := metrics[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
	v, ok := (*f)[labels]
	if !ok {
		t.Fatalf("%s{%s} missing; have %v", name, labels, *f)
	}
	return v
}

func batchLabels(customer, batch string) string {
	return "batch_tracking_id=" + batch + ",customer_id=" + customer
}

func TestEndToEnd(t *testing.T) {
	srv := fakeWithSlowStart(t, time.Second)
	path := writeConfig(t, t.TempDir(), srv, map[string][]string{
		customer1: {finishedID, runningID, slowID},
		customer2: {throttledID, missingID, brokenID},
	})
	// Unfinished batches are served from memory for a minute, and all six
	// batches are read at once.
	setConfig(t, path, "refresh_interval: 0s", "refresh_interval: 1m\n  max_concurrent_requests: 8")
	exp := startExporter(t, path)

	// Two concurrent scrapes with a 5s Prometheus timeout (4.5s after the
	// offset). The second starts once the first has asked for every batch
	// and while those first answers (at least 1s each) are still on their
	// way, so it must join the first scrape's reads, not send its own.
	var wg sync.WaitGroup
	bodies := make([]string, 2)
	results := make([]map[string]*familyValues, 2)
	wg.Go(func() { bodies[0], results[0] = exp.scrape(t, "5") })
	waitFor(t, func() bool { return srv.TotalBatchRequests() == 6 })
	wg.Go(func() { bodies[1], results[1] = exp.scrape(t, "5") })
	wg.Wait()

	for i, m := range results {
		t.Run(fmt.Sprintf("scrape %d", i), func(t *testing.T) {
			checkBatchMetrics(t, m)
		})
	}
	checkLint(t, bodies[0])

	// The throttled batch is asked twice (429, then success after
	// Retry-After); the broken one twice (500, one retry); every other
	// batch once over both scrapes.
	requests := map[string]int{finishedID: 1, runningID: 1, slowID: 1, missingID: 1, throttledID: 2, brokenID: 2}
	for id, want := range requests {
		customer := customer1
		if id == throttledID || id == brokenID || id == missingID {
			customer = customer2
		}
		if got := srv.BatchRequests(customer, id); got != want {
			t.Errorf("batch %s: %d requests after two concurrent scrapes, want %d", id, got, want)
		}
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}

	// A third scrape after the tokens expired, within refresh_interval: no
	// batch is due. The finished one is settled, the running one fresh, and
	// the failing ones (404, 500) wait for refresh_interval like the others.
	// The slow batch's read outlived the scrapes that gave up on it and is
	// still running: it is joined, not sent again.
	srv.ExpireTokens()
	_, m := exp.scrape(t, "5")
	if got := srv.TotalBatchRequests(); got != 8 {
		t.Errorf("%d batch requests after a third scrape within refresh_interval, want still 8", got)
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests = %d, want 1 (nothing was due)", got)
	}
	if v := value(t, m, "partnercenter_batch_scrape_success", batchLabels(customer1, runningID)); v != 1 {
		t.Errorf("running batch scrape_success within refresh_interval = %v, want 1", v)
	}

	// With refresh_interval 0s every unsettled batch is due: the 404 batch
	// gets a 401 for the expired token, a new token and a retry. The
	// reload keeps the client and its token, as only read settings changed.
	setConfig(t, path, "refresh_interval: 1m", "refresh_interval: 0s")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	_, m = exp.scrape(t, "5")
	if got := srv.BatchRequests(customer1, finishedID); got != 1 {
		t.Errorf("finished batch read %d times over four scrapes, want 1", got)
	}
	if got := srv.BatchRequests(customer1, slowID); got != 1 {
		t.Errorf("slow batch: %d requests, want 1 (its first read is still running)", got)
	}
	if got := srv.BatchRequests(customer2, missingID); got != 3 {
		t.Errorf("404 batch: %d requests, want 3 (the first, then a 401 and the retry)", got)
	}
	if got := srv.TokenRequests(); got != 2 {
		t.Errorf("token requests after expiry = %d, want 2", got)
	}
	if v := value(t, m, "partnercenter_token_requests_total", "result=success"); v != 2 {
		t.Errorf("partnercenter_token_requests_total{result=success} = %v, want 2", v)
	}
	if v := value(t, m, "partnercenter_api_throttled_total", ""); v != 1 {
		t.Errorf("partnercenter_api_throttled_total = %v, want 1", v)
	}

	checkNoSecret(t, exp, bodies[0])
}

// setConfig replaces old with new in the configuration file at path.
func setConfig(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s lacks %q", path, old)
	}
	data = bytes.Replace(data, []byte(old), []byte(new), 1)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func checkBatchMetrics(t *testing.T, m map[string]*familyValues) {
	t.Helper()
	want := []struct {
		name, labels string
		value        float64
	}{
		{"partnercenter_up", "", 1},
		{"partnercenter_batches_configured", "", 6},
		{"partnercenter_batch_scrape_success", batchLabels(customer1, finishedID), 1},
		{"partnercenter_batch_scrape_success", batchLabels(customer1, runningID), 1},
		{"partnercenter_batch_scrape_success", batchLabels(customer1, slowID), 0},
		{"partnercenter_batch_scrape_success", batchLabels(customer2, throttledID), 1},
		{"partnercenter_batch_scrape_success", batchLabels(customer2, missingID), 0},
		{"partnercenter_batch_scrape_success", batchLabels(customer2, brokenID), 0},
		{"partnercenter_batch_status", batchLabels(customer1, finishedID) + ",status=finished_with_errors", 1},
		{"partnercenter_batch_status", batchLabels(customer1, finishedID) + ",status=finished", 0},
		{"partnercenter_batch_status", batchLabels(customer1, runningID) + ",status=processing", 1},
		{"partnercenter_batch_devices", batchLabels(customer1, finishedID) + ",status=finished", 95},
		{"partnercenter_batch_devices", batchLabels(customer1, finishedID) + ",status=finished_with_errors", 5},
		{"partnercenter_batch_device_errors", batchLabels(customer1, finishedID) + ",error_code=808,error_description=ZtdDeviceAssignedToOtherTenant", 4},
		{"partnercenter_batch_device_errors", batchLabels(customer1, finishedID) + ",error_code=806,error_description=ZtdDeviceAlreadyAssigned", 1},
		{"partnercenter_batch_started_timestamp_seconds", batchLabels(customer1, finishedID), 1795600800.123},
		{"partnercenter_batch_completed_timestamp_seconds", batchLabels(customer1, finishedID), 1795602600.123},
		{"partnercenter_batch_duration_seconds", batchLabels(customer1, finishedID), 1800},
		{"partnercenter_customer_info", "customer_id=" + customer1 + ",customer_name=Customer 6f1c", 1},
	}
	for _, w := range want {
		if got := value(t, m, w.name, w.labels); got != w.value {
			t.Errorf("%s{%s} = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	// Batches never read successfully have no status series.
	for _, id := range []string{slowID, missingID, brokenID} {
		for labels := range *m["partnercenter_batch_status"] {
			if strings.Contains(labels, id) {
				t.Errorf("batch %s was never read but has status series %s", id, labels)
			}
		}
	}
}

func checkLint(t *testing.T, exposition string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(exposition)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func checkNoSecret(t *testing.T, exp *testExporter, metrics string) {
	t.Helper()
	cfgPage := get(t, exp.url+"/config", http.StatusOK)
	if !strings.Contains(cfgPage, "client_secret_file: ") {
		t.Errorf("/config does not show the configuration:\n%s", cfgPage)
	}
	for name, text := range map[string]string{"logs": exp.logs.String(), "/config": cfgPage, "/metrics": metrics} {
		if strings.Contains(text, testSecret) {
			t.Errorf("%s contain the client secret", name)
		}
	}
	if !strings.Contains(exp.logs.String(), "reading batch failed") {
		t.Errorf("failures were not logged:\n%s", exp.logs.String())
	}
}

func get(t *testing.T, url string, wantStatus int) string {
	t.Helper()
	return do(t, http.MethodGet, url, wantStatus)
}

func do(t *testing.T, method, url string, wantStatus int) string {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d, want %d\n%s", method, url, resp.StatusCode, wantStatus, body)
	}
	return string(body)
}

func TestReloadKeepsOldConfigOnError(t *testing.T) {
	srv := fakeWithBatches(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID, runningID}})
	exp := startExporter(t, path)
	_, m := exp.scrape(t, "")
	if v := value(t, m, "partnercenter_batches_configured", ""); v != 2 {
		t.Fatalf("batches_configured = %v, want 2", v)
	}

	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(good, []byte("base_url"), []byte("base_ulr"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	body := do(t, http.MethodPost, exp.url+"/-/reload", http.StatusInternalServerError)
	if want := "failed to reload config: " + path + ":2: partner_center.base_ulr: unknown field (did you mean base_url?)\n"; body != want {
		t.Errorf("reload answer = %q, want %q", body, want)
	}
	if !strings.Contains(exp.logs.String(), "partner_center.base_ulr: unknown field") {
		t.Errorf("bad reload not logged:\n%s", exp.logs.String())
	}
	_, m = exp.scrape(t, "")
	if v := value(t, m, "partnercenter_batches_configured", ""); v != 2 {
		t.Errorf("after a bad reload batches_configured = %v, want the old 2", v)
	}
	if v := value(t, m, "partnercenter_config_last_reload_successful", ""); v != 0 {
		t.Errorf("last_reload_successful = %v, want 0", v)
	}

	// A good reload that keeps the finished batch does not read it again.
	writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID}})
	do(t, http.MethodPost, exp.url+"/-/reload", http.StatusOK)
	_, m = exp.scrape(t, "")
	if v := value(t, m, "partnercenter_config_last_reload_successful", ""); v != 1 {
		t.Errorf("last_reload_successful = %v, want 1", v)
	}
	if v := value(t, m, "partnercenter_batches_configured", ""); v != 1 {
		t.Errorf("batches_configured = %v, want 1", v)
	}
	if got := srv.BatchRequests(customer1, finishedID); got != 1 {
		t.Errorf("finished batch read %d times across a reload, want 1", got)
	}
	for labels := range *m["partnercenter_batch_scrape_success"] {
		if strings.Contains(labels, runningID) {
			t.Errorf("removed batch still exported: %s", labels)
		}
	}
	do(t, http.MethodGet, exp.url+"/-/reload", http.StatusMethodNotAllowed)
}

func TestScrapeTimeout(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 10 * time.Second},
		{"2", 1500 * time.Millisecond},
		{"0.25", 250 * time.Millisecond},
		{"junk", 10 * time.Second},
		{"-3", 10 * time.Second},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tt.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tt.header)
		}
		if got := scrapeTimeout(r, 10*time.Second, 500*time.Millisecond); got != tt.want {
			t.Errorf("header %q: timeout %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	srv := fakeWithBatches(t)
	dir := t.TempDir()
	good := writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID}})
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("customers:\n  - id: 12ab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path       string
		code       int
		stdout     string
		stderrPart string
	}{
		{good, 0, good + ": OK: 1 customer, 1 batch, auth client_credentials, base_url " + srv.URL + "\n", ""},
		{bad, 1, "", bad + `:2: customers[0].id: "12ab" is not a GUID`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run([]string{"--config.check", "--config.file", tt.path}, &stdout, &stderr, make(chan os.Signal, 1))
		if code != tt.code || stdout.String() != tt.stdout || !strings.Contains(stderr.String(), tt.stderrPart) {
			t.Errorf("--config.check %s: code %d stdout %q stderr %q; want %d, %q, containing %q",
				filepath.Base(tt.path), code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderrPart)
		}
	}
}

// TestRunServesReloadsAndStops runs the whole program: it serves, reloads
// on SIGHUP, and exits 0 on SIGTERM.
func TestRunServesReloadsAndStops(t *testing.T) {
	srv := fakeWithBatches(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID}})
	addr := freeLoopbackAddr(t)
	sigs := make(chan os.Signal, 1)
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--config.file", path, "--web.listen-address", addr, "--log.format", "json"}, io.Discard, stderr, sigs)
	}()
	base := "http://" + addr
	waitFor(t, func() bool { _, status, _ := fetch(base + "/-/ready"); return status == http.StatusOK })
	if body := get(t, base+"/", http.StatusOK); !strings.Contains(body, "Partner Center Exporter") {
		t.Errorf("landing page lacks the exporter name:\n%s", body)
	}
	if body := get(t, base+"/metrics", http.StatusOK); !strings.Contains(body, "partnercenter_exporter_build_info{") {
		t.Error("build_info missing from /metrics")
	}

	writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID, runningID}})
	sigs <- syscall.SIGHUP
	waitFor(t, func() bool { return strings.Contains(get(t, base+"/config", http.StatusOK), runningID) })

	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, want 0; log:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("exporter did not stop after SIGTERM")
	}
	if strings.Contains(stderr.String(), testSecret) {
		t.Error("the log contains the client secret")
	}
}

// TestSIGTERMDuringASlowScrape: a scrape waits on a read that takes a
// minute, with a scrape timeout longer than the shutdown bound. SIGTERM
// ends that scrape, and the exporter exits 0 well within 10 s.
func TestSIGTERMDuringASlowScrape(t *testing.T) {
	srv := fakeWithBatches(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, srv, map[string][]string{customer1: {slowID}})
	addr := freeLoopbackAddr(t)
	sigs := make(chan os.Signal, 1)
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--config.file", path, "--web.listen-address", addr, "--scrape.timeout", "2m"}, io.Discard, stderr, sigs)
	}()
	base := "http://" + addr
	waitFor(t, func() bool { _, status, _ := fetch(base + "/-/ready"); return status == http.StatusOK })
	scraped := make(chan error, 1)
	go func() { _, _, err := fetch(base + "/metrics"); scraped <- err }()
	waitFor(t, func() bool { return srv.BatchRequests(customer1, slowID) == 1 })

	sigs <- syscall.SIGTERM
	start := time.Now()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, want 0; log:\n%s", code, stderr.String())
		}
		if waited := time.Since(start); waited >= shutdownTimeout {
			t.Errorf("exit took %s, want less than %s", waited, shutdownTimeout)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("exporter did not stop after SIGTERM")
	}
	if err := <-scraped; err == nil {
		t.Log("the slow scrape was answered before the server closed")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBatchPagesCanBeDisabled(t *testing.T) {
	srv := fakeWithBatches(t)
	path := writeConfig(t, t.TempDir(), srv, map[string][]string{customer1: {finishedID}})
	tests := []struct {
		disable    bool
		wantStatus int
		wantLink   bool
	}{
		{disable: false, wantStatus: http.StatusOK, wantLink: true},
		{disable: true, wantStatus: http.StatusNotFound, wantLink: false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("disabled=%v", tt.disable), func(t *testing.T) {
			exp := startExporterWith(t, path, serverOptions{metricsPath: "/metrics", scrapeTimeout: 5 * time.Second, disableBatchDetails: tt.disable})
			exp.scrape(t, "")
			list := get(t, exp.url+"/batches", tt.wantStatus)
			get(t, exp.url+"/batches/"+finishedID, tt.wantStatus)
			get(t, exp.url+"/batches/"+finishedID+"?format=csv", tt.wantStatus)
			if tt.disable && strings.Contains(list, "PF3") {
				t.Error("disabled pages still show device data")
			}
			landing := get(t, exp.url+"/", http.StatusOK)
			if got := strings.Contains(landing, `href="/batches"`); got != tt.wantLink {
				t.Errorf("landing page links /batches: %v, want %v", got, tt.wantLink)
			}
			if strings.Contains(landing, "/debug/pprof") {
				t.Error("landing page links profiling endpoints the exporter does not serve")
			}
		})
	}
}

func TestTokenFailureMarksAPIDown(t *testing.T) {
	srv := fakeWithBatches(t)
	srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
	path := writeConfig(t, t.TempDir(), srv, map[string][]string{customer1: {finishedID, runningID}})
	exp := startExporter(t, path)
	body, m := exp.scrape(t, "3")
	checks := []struct {
		name, labels string
		want         float64
	}{
		{"partnercenter_up", "", 0},
		{"partnercenter_batch_scrape_success", batchLabels(customer1, finishedID), 0},
		{"partnercenter_batch_scrape_success", batchLabels(customer1, runningID), 0},
		{"partnercenter_token_requests_total", "result=success", 0},
	}
	for _, c := range checks {
		if got := value(t, m, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(t, m, "partnercenter_token_requests_total", "result=failure"); got < 1 {
		t.Errorf("token failures counted = %v, want at least 1", got)
	}
	if got := srv.TotalBatchRequests(); got != 0 {
		t.Errorf("batch requests without a token = %d, want 0", got)
	}
	logs := exp.logs.String()
	want := `err="get token: token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided."`
	if !strings.Contains(logs, want) {
		t.Errorf("log lacks %s:\n%s", want, logs)
	}
	for name, text := range map[string]string{"logs": logs, "/metrics": body} {
		if strings.Contains(text, testSecret) {
			t.Errorf("%s contain the client secret", name)
		}
	}
}

// TestAppUserRefreshTokenIsRotated runs the App+User mode through the real
// wiring: the refresh token grant is used, and the rotated refresh token
// the endpoint returns replaces the file's content.
func TestAppUserRefreshTokenIsRotated(t *testing.T) {
	srv := fakeWithBatches(t)
	srv.SetRefreshToken("refresh-token-one", true)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "refresh_token")
	if err := os.WriteFile(tokenFile, []byte("refresh-token-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`partner_center:
  base_url: %s
auth:
  client_id: %s
  client_secret_file: client_secret
  refresh_token_file: refresh_token
  token_url: %s
customers:
  - id: %s
    batches: [%s]
`, srv.URL, testClientID, srv.TokenURL(), customer1, finishedID)
	if err := os.WriteFile(filepath.Join(dir, "client_secret"), []byte(testSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "partnercenter.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := startExporter(t, path)
	_, m := exp.scrape(t, "")
	if v := value(t, m, "partnercenter_batch_scrape_success", batchLabels(customer1, finishedID)); v != 1 {
		t.Fatalf("scrape_success = %v, want 1; log:\n%s", v, exp.logs.String())
	}
	var grants []string
	for _, r := range srv.Requests() {
		if r.Grant != "" {
			grants = append(grants, r.Grant)
		}
	}
	if strings.Join(grants, ",") != "refresh_token" {
		t.Errorf("token grants = %v, want one refresh_token grant", grants)
	}
	rotated, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	// The fake issues "rt-2" as the first rotated refresh token.
	if got := string(rotated); got != "rt-2\n" {
		t.Errorf("refresh token file = %q, want the rotated token %q", got, "rt-2\n")
	}
	for _, secret := range []string{testSecret, "refresh-token-one", strings.TrimSpace(string(rotated))} {
		if strings.Contains(exp.logs.String(), secret) {
			t.Errorf("log contains a secret %q", secret)
		}
	}
}
