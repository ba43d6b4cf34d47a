package daemon

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// testExporter is a daemon serving on loopback until the test ends or
// stop is called, as a process of the exporter runs until SIGTERM.
type testExporter struct {
	url    string
	logs   *testkit.SyncBuffer
	daemon *Daemon
	state  *exporterState
	// web serves the exporter; tests that count goroutines close it early.
	web *httptest.Server
}

// testOptions are the command line's defaults.
func testOptions() Options {
	return Options{MetricsPath: "/metrics", ScrapeTimeout: 10 * time.Second, ScrapeTimeoutOffset: 500 * time.Millisecond}
}

func startExporter(t *testing.T, configPath string) *testExporter {
	t.Helper()
	return startExporterWith(t, configPath, testOptions())
}

// startExporterWith starts a daemon for the configuration at configPath,
// logging to the testExporter's logs.
func startExporterWith(t *testing.T, configPath string, opts Options) *testExporter {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	opts.ConfigFile, opts.Logger = configPath, log.NewLogfmtLogger(logs)
	d, err := New(opts)
	if err != nil {
		t.Fatalf("exporter did not start: %v\n%s", err, logs)
	}
	web := httptest.NewServer(d.Handler())
	e := &testExporter{url: web.URL, logs: logs, daemon: d, state: d.state, web: web}
	t.Cleanup(func() { e.stop(t) })
	return e
}

// stop stops serving, then closes the daemon; it may be called more than
// once.
func (e *testExporter) stop(t *testing.T) {
	t.Helper()
	e.web.Close()
	if err := e.daemon.Close(); err != nil {
		t.Errorf("close: %v\n%s", err, e.logs)
	}
}

// startTestServer serves h on loopback until the test ends and returns its
// URL.
func startTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (e *testExporter) scrape(t *testing.T, timeoutHeader string) (string, map[string]*testkit.FamilyValues) {
	t.Helper()
	header := http.Header{}
	if timeoutHeader != "" {
		header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeoutHeader)
	}
	a := testkit.Send(t, http.MethodGet, e.url+"/metrics", nil, header)
	if a.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s\n%s", a.Status, http.StatusText(a.Status), a.Body)
	}
	return a.Body, testkit.ParseMetrics(t, a.Body)
}

// startFixtureExporter serves testkit's fake (one batch of each kind,
// first answers at least 1s late) with unfinished batches kept for a
// minute and all six read at once.
func startFixtureExporter(t *testing.T) (*partnercentertest.Server, string, *testExporter) {
	t.Helper()
	srv := testkit.FakeWithSlowStart(t, time.Second)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{
		testkit.Customer1: {testkit.FinishedID, testkit.RunningID, testkit.SlowID},
		testkit.Customer2: {testkit.ThrottledID, testkit.MissingID, testkit.BrokenID},
	})
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 1m\n  max_concurrent_requests: 8")
	return srv, path, startExporter(t, path)
}

// TestConcurrentScrapesShareReads: two concurrent scrapes with a 5s
// Prometheus timeout (4.5s after the offset). The second starts once the
// first has asked for every batch and while those first answers (at
// least 1s each) are still on their way, so it must join the first
// scrape's reads, not send its own. Both show the exposition of
// testdata/e2e-output-fixture.txt.
func TestConcurrentScrapesShareReads(t *testing.T) {
	srv, _, exp := startFixtureExporter(t)
	var wg sync.WaitGroup
	bodies := make([]string, 2)
	wg.Go(func() { bodies[0], _ = exp.scrape(t, "5") })
	testkit.WaitFor(t, func() bool { return srv.TotalBatchRequests() == 6 })
	wg.Go(func() { bodies[1], _ = exp.scrape(t, "5") })
	wg.Wait()

	for i, body := range bodies {
		t.Run(fmt.Sprintf("scrape %d", i), func(t *testing.T) {
			// Which of the two scrapes is answered first is up to the
			// scheduler, and so are the scrape counts each one shows.
			checkGolden(t, "e2e-output-fixture.txt", goldenNormalize(t, body,
				"promhttp_metric_handler_requests_in_flight", "promhttp_metric_handler_requests_total"))
		})
	}
	checkLint(t, bodies[0])

	// The throttled batch is asked twice (429, then success after
	// Retry-After); the broken one twice (500, one retry); every other
	// batch once over both scrapes.
	requests := map[string]int{testkit.FinishedID: 1, testkit.RunningID: 1, testkit.SlowID: 1, testkit.MissingID: 1, testkit.ThrottledID: 2, testkit.BrokenID: 2}
	for id, want := range requests {
		customer := testkit.Customer1
		if id == testkit.ThrottledID || id == testkit.BrokenID || id == testkit.MissingID {
			customer = testkit.Customer2
		}
		if got := srv.BatchRequests(customer, id); got != want {
			t.Errorf("batch %s: %d requests after two concurrent scrapes, want %d", id, got, want)
		}
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
	checkNoSecret(t, exp, bodies[0])
}

// TestNothingDueWithinRefreshInterval: a second scrape after the tokens
// expired, within refresh_interval: no batch is due. The finished one is
// settled, the running one fresh, and the failing ones (404, 500) wait
// for refresh_interval like the others. The slow batch's read outlived
// the scrape that gave up on it and is still running: it is joined, not
// sent again.
func TestNothingDueWithinRefreshInterval(t *testing.T) {
	srv, _, exp := startFixtureExporter(t)
	exp.scrape(t, "5")
	srv.ExpireTokens()
	_, m := exp.scrape(t, "5")
	if got := srv.TotalBatchRequests(); got != 8 {
		t.Errorf("%d batch requests after a second scrape within refresh_interval, want still 8", got)
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests = %d, want 1 (nothing was due)", got)
	}
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.RunningID)); v != 1 {
		t.Errorf("running batch scrape_success within refresh_interval = %v, want 1", v)
	}
}

// TestReloadToZeroRefreshReadsUnsettled: with refresh_interval 0s every
// unsettled batch is due: the 404 batch gets a 401 for the expired
// token, a new token and a retry. The reload keeps the client and its
// token, as only read settings changed.
func TestReloadToZeroRefreshReadsUnsettled(t *testing.T) {
	srv, path, exp := startFixtureExporter(t)
	exp.scrape(t, "5")
	srv.ExpireTokens()
	testkit.SetConfig(t, path, "refresh_interval: 1m", "refresh_interval: 0s")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	// The scrape ends at its deadline (the slow batch takes a minute); on
	// a loaded machine the 404 batch's 401, token request and retry may
	// still be under way then. They run on, detached: wait for them, then
	// read the counters from the exporter's own view, which reads nothing.
	exp.scrape(t, "5")
	testkit.WaitFor(t, func() bool {
		return srv.BatchRequests(testkit.Customer2, testkit.MissingID) >= 3 && srv.TokenRequests() >= 2
	})
	m := testkit.ParseMetrics(t, testkit.Get(t, exp.url+"/metrics?collect[]=exporter", http.StatusOK))
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished batch read %d times over two scrapes, want 1", got)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.SlowID); got != 1 {
		t.Errorf("slow batch: %d requests, want 1 (its first read is still running)", got)
	}
	if got := srv.BatchRequests(testkit.Customer2, testkit.MissingID); got != 3 {
		t.Errorf("404 batch: %d requests, want 3 (the first, then a 401 and the retry)", got)
	}
	if got := srv.TokenRequests(); got != 2 {
		t.Errorf("token requests after expiry = %d, want 2", got)
	}
	if v := testkit.Value(t, m, "partnercenter_token_requests_total", "result=success"); v != 2 {
		t.Errorf("partnercenter_token_requests_total{result=success} = %v, want 2", v)
	}
	if v := testkit.Value(t, m, "partnercenter_api_throttled_total", ""); v != 1 {
		t.Errorf("partnercenter_api_throttled_total = %v, want 1", v)
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
	cfgPage := testkit.Get(t, exp.url+"/config", http.StatusOK)
	if !strings.Contains(cfgPage, "client_secret_file: ") {
		t.Errorf("/config does not show the configuration:\n%s", cfgPage)
	}
	for name, text := range map[string]string{"logs": exp.logs.String(), "/config": cfgPage, "/metrics": metrics} {
		if strings.Contains(text, testkit.ClientSecret) {
			t.Errorf("%s contain the client secret", name)
		}
	}
	if !strings.Contains(exp.logs.String(), "reading batch failed") {
		t.Errorf("failures were not logged:\n%s", exp.logs.String())
	}
}

func TestReloadKeepsOldConfigOnError(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	exp := startExporter(t, path)
	_, m := exp.scrape(t, "")
	if v := testkit.Value(t, m, "partnercenter_batches_configured", ""); v != 2 {
		t.Fatalf("batches_configured = %v, want 2", v)
	}

	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(good, []byte("base_url"), []byte("base_ulr"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	body := testkit.Do(t, http.MethodPost, exp.url+"/-/reload", http.StatusInternalServerError)
	if want := "failed to reload config: " + path + ":2: partner_center.base_ulr: unknown field (did you mean base_url?)\n"; body != want {
		t.Errorf("reload answer = %q, want %q", body, want)
	}
	if !strings.Contains(exp.logs.String(), "partner_center.base_ulr: unknown field") {
		t.Errorf("bad reload not logged:\n%s", exp.logs.String())
	}
	_, m = exp.scrape(t, "")
	if v := testkit.Value(t, m, "partnercenter_batches_configured", ""); v != 2 {
		t.Errorf("after a bad reload batches_configured = %v, want the old 2", v)
	}
	if v := testkit.Value(t, m, "partnercenter_config_last_reload_successful", ""); v != 0 {
		t.Errorf("last_reload_successful = %v, want 0", v)
	}

	// A good reload that keeps the finished batch does not read it again.
	testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.Do(t, http.MethodPost, exp.url+"/-/reload", http.StatusOK)
	_, m = exp.scrape(t, "")
	if v := testkit.Value(t, m, "partnercenter_config_last_reload_successful", ""); v != 1 {
		t.Errorf("last_reload_successful = %v, want 1", v)
	}
	if v := testkit.Value(t, m, "partnercenter_batches_configured", ""); v != 1 {
		t.Errorf("batches_configured = %v, want 1", v)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished batch read %d times across a reload, want 1", got)
	}
	for labels := range *m["partnercenter_batch_scrape_success"] {
		if strings.Contains(labels, testkit.RunningID) {
			t.Errorf("removed batch still exported: %s", labels)
		}
	}
	testkit.Do(t, http.MethodGet, exp.url+"/-/reload", http.StatusMethodNotAllowed)
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

func TestBatchPagesCanBeDisabled(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
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
			exp := startExporterWith(t, path, Options{MetricsPath: "/metrics", ScrapeTimeout: 5 * time.Second, DisableBatchDetails: tt.disable})
			exp.scrape(t, "")
			list := testkit.Get(t, exp.url+"/batches", tt.wantStatus)
			testkit.Get(t, exp.url+"/batches/"+testkit.FinishedID, tt.wantStatus)
			testkit.Get(t, exp.url+"/batches/"+testkit.FinishedID+"?format=csv", tt.wantStatus)
			if tt.disable && strings.Contains(list, "PF3") {
				t.Error("disabled pages still show device data")
			}
			landing := testkit.Get(t, exp.url+"/", http.StatusOK)
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
	srv := testkit.FakeWithBatches(t)
	srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	exp := startExporter(t, path)
	body, m := exp.scrape(t, "3")
	checks := []struct {
		name, labels string
		want         float64
	}{
		{"partnercenter_up", "", 0},
		{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID), 0},
		{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.RunningID), 0},
		{"partnercenter_token_requests_total", "result=success", 0},
	}
	for _, c := range checks {
		if got := testkit.Value(t, m, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := testkit.Value(t, m, "partnercenter_token_requests_total", "result=failure"); got < 1 {
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
		if strings.Contains(text, testkit.ClientSecret) {
			t.Errorf("%s contain the client secret", name)
		}
	}
}

// TestAppUserRefreshTokenIsRotated runs the App+User mode through the real
// wiring: the refresh token grant is used, and the rotated refresh token
// the endpoint returns replaces the file's content.
func TestAppUserRefreshTokenIsRotated(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
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
`, srv.URL, testkit.ClientID, srv.TokenURL(), testkit.Customer1, testkit.FinishedID)
	if err := os.WriteFile(filepath.Join(dir, "client_secret"), []byte(testkit.ClientSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "partnercenter.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := startExporter(t, path)
	_, m := exp.scrape(t, "")
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); v != 1 {
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
	for _, secret := range []string{testkit.ClientSecret, "refresh-token-one", strings.TrimSpace(string(rotated))} {
		if strings.Contains(exp.logs.String(), secret) {
			t.Errorf("log contains a secret %q", secret)
		}
	}
}
