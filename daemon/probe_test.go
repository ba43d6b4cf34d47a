package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

const unconfiguredCustomer = "99999999-0000-4000-8000-000000000009"

func probeURL(exp *testExporter, customer string, batches ...string) string {
	q := url.Values{"customer_id": {customer}}
	for _, b := range batches {
		q.Add("batch_tracking_id", b)
	}
	return exp.url + "/probe?" + q.Encode()
}

func TestProbeServesJustTheNamedBatches(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{
		testkit.Customer1: {testkit.FinishedID, testkit.RunningID},
		testkit.Customer2: {testkit.MissingID},
	})
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 1m")
	exp := startExporter(t, path)
	body := testkit.Get(t, probeURL(exp, testkit.Customer1, strings.ToUpper(testkit.RunningID), testkit.FinishedID), http.StatusOK)
	m := testkit.ParseMetrics(t, body)
	var ids []string
	for labels := range *m["partnercenter_batch_scrape_success"] {
		ids = append(ids, labels)
	}
	sort.Strings(ids)
	want := []string{testkit.BatchLabels(testkit.Customer1, testkit.FinishedID), testkit.BatchLabels(testkit.Customer1, testkit.RunningID)}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("probe series for %v, want %v", ids, want)
	}
	// API health is the exporter's, served on /metrics: one target per
	// batch must not turn one batch's failure into an API-wide signal.
	for _, name := range []string{
		"partnercenter_batches_configured", "partnercenter_customer_info", "go_goroutines",
		"partnercenter_up", "partnercenter_api_last_success_timestamp_seconds", "partnercenter_api_throttled_until_timestamp_seconds",
	} {
		if _, ok := m[name]; ok {
			t.Errorf("/probe exposes %s; it should hold only the probed batches", name)
		}
	}
	checkLint(t, body)

	// A batch already read costs no request, through /probe or /metrics.
	exp.scrape(t, "")
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 1 {
		t.Errorf("running batch requested %d times across /probe and /metrics, want 1", got)
	}
}

func TestProbeRefusals(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	exp := startExporter(t, path)
	tooMany := url.Values{"customer_id": {testkit.Customer1}}
	for range maxProbeBatches + 1 {
		tooMany.Add("batch_tracking_id", testkit.FinishedID)
	}
	tests := []struct {
		name, url string
		status    int
		body      string
	}{
		{"no customer", exp.url + "/probe?batch_tracking_id=" + testkit.FinishedID, 400, "exactly one customer_id parameter is required\n"},
		{"two customers", exp.url + "/probe?customer_id=" + testkit.Customer1 + "&customer_id=" + testkit.Customer2 + "&batch_tracking_id=" + testkit.FinishedID, 400, "exactly one customer_id parameter is required\n"},
		{"malformed customer", probeURL(exp, "12ab", testkit.FinishedID), 400, "customer_id \"12ab\" is not a GUID\n"},
		{"no batch", probeURL(exp, testkit.Customer1), 400, "at least one batch_tracking_id parameter is required\n"},
		{"malformed batch", probeURL(exp, testkit.Customer1, testkit.FinishedID, "nope"), 400, "batch_tracking_id \"nope\" is not a GUID\n"},
		{"too many batches", exp.url + "/probe?" + tooMany.Encode(), 400, "at most 100 batch_tracking_id parameters per probe, got 101\n"},
		{
			"unconfigured customer", probeURL(exp, unconfiguredCustomer, testkit.FinishedID), 403,
			"customer " + unconfiguredCustomer + " is not configured (set probe.allow_unconfigured_customers to probe it)\n",
		},
		// Customer IDs are public on /sd: a tracking ID of one's choosing
		// under a configured customer must not cost a request.
		{
			"unlisted batch", probeURL(exp, testkit.Customer1, testkit.BrokenID), 404,
			"batch " + testkit.BrokenID + " of customer " + testkit.Customer1 + " is not listed in the configuration or a batch file " +
				"(set probe.allow_unlisted_batches to probe it)\n",
		},
		{
			"unlisted batch beside a listed one", probeURL(exp, testkit.Customer1, testkit.FinishedID, testkit.MissingID), 404,
			"batch " + testkit.MissingID + " of customer " + testkit.Customer1 + " is not listed in the configuration or a batch file " +
				"(set probe.allow_unlisted_batches to probe it)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testkit.Get(t, tt.url, tt.status); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
		})
	}
	if got := srv.TotalBatchRequests(); got != 0 {
		t.Errorf("refused probes sent %d batch requests, want 0", got)
	}
	if got := srv.TokenRequests(); got != 0 {
		t.Errorf("refused probes sent %d token requests, want 0", got)
	}
}

func TestProbeUnconfiguredCustomerWhenAllowed(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "probe:\n  allow_unconfigured_customers: true\ncustomers:")
	exp := startExporter(t, path)
	body := testkit.Get(t, probeURL(exp, testkit.Customer2, testkit.MissingID), http.StatusOK)
	if v := testkit.Value(t, testkit.ParseMetrics(t, body), "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer2, testkit.MissingID)); v != 0 {
		t.Errorf("404 batch scrape_success = %v, want 0", v)
	}
	if got := srv.BatchRequests(testkit.Customer2, testkit.MissingID); got != 1 {
		t.Errorf("batch requested %d times, want 1", got)
	}
}

func TestServiceDiscovery(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{
		testkit.Customer1: {testkit.FinishedID, testkit.RunningID},
		testkit.Customer2: {testkit.MissingID},
	})
	exp := startExporter(t, path)
	var groups []sdTargetGroup
	if err := json.Unmarshal([]byte(testkit.Get(t, exp.url+"/sd", http.StatusOK)), &groups); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(exp.url, "http://")
	var got []string
	for _, g := range groups {
		if len(g.Targets) != 1 || g.Targets[0] != host {
			t.Errorf("targets %v, want [%s]", g.Targets, host)
		}
		got = append(got, g.Labels["customer_id"]+" "+g.Labels["batch_tracking_id"]+" "+g.Labels["customer_name"])
	}
	want := []string{
		testkit.Customer1 + " " + testkit.FinishedID + " Customer 6f1c",
		testkit.Customer1 + " " + testkit.RunningID + " Customer 6f1c",
		testkit.Customer2 + " " + testkit.MissingID + " Customer 0b7e",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("/sd:\n got  %v\n want %v", got, want)
	}
	if got := srv.TotalBatchRequests(); got != 0 {
		t.Errorf("/sd sent %d batch requests, want 0", got)
	}
}

func TestProbeFollowsTheScrapeTimeout(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.SlowID}})
	exp := startExporter(t, path)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, probeURL(exp, testkit.Customer1, testkit.SlowID), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The slow batch answers after a minute; a 1s Prometheus timeout
	// (0.5s after the offset) still gets an answer, without the batch.
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := testkit.ParseMetrics(t, string(body))
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.SlowID)); resp.StatusCode != http.StatusOK || v != 0 {
		t.Errorf("status %d, slow batch scrape_success %v; want 200 and 0", resp.StatusCode, v)
	}
}

func TestMetricsOfTheExporterOnlyReadNoBatch(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	exp := startExporter(t, path)
	m := testkit.ParseMetrics(t, testkit.Get(t, exp.url+"/metrics?collect[]=exporter", http.StatusOK))
	if got := srv.TotalBatchRequests(); got != 0 {
		t.Errorf("/metrics?collect[]=exporter sent %d batch requests, want 0", got)
	}
	for _, name := range []string{"partnercenter_token_requests_total", "partnercenter_config_last_reload_successful", "partnercenter_api_throttled_total"} {
		if _, ok := m[name]; !ok {
			t.Errorf("%s missing from the exporter's own metrics", name)
		}
	}
	if _, ok := m["partnercenter_batch_scrape_success"]; ok {
		t.Error("batch series served with collect[]=exporter")
	}
}

// TestServiceDiscoveryListsRetiredBatches: /sd gives the same targets
// whichever replica answers, so a retired batch stays listed (only the
// replica that read it knows it is retired), and probing it costs nothing.
func TestServiceDiscoveryListsRetiredBatches(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	// finishedID completed on 2026-11-25: retired once read.
	testkit.SetConfig(t, path, "customers:", "retention: 1d\ncustomers:")
	exp := startExporter(t, path)
	if _, m := exp.scrape(t, ""); testkit.Value(t, m, "partnercenter_batches_retired", "") != 1 {
		t.Fatalf("partnercenter_batches_retired = %v, want 1", testkit.Value(t, m, "partnercenter_batches_retired", ""))
	}
	var groups []sdTargetGroup
	if err := json.Unmarshal([]byte(testkit.Get(t, exp.url+"/sd", http.StatusOK)), &groups); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groups {
		got = append(got, g.Labels["batch_tracking_id"])
	}
	if want := []string{testkit.FinishedID, testkit.RunningID}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("/sd lists %v, want %v (the retired batch too)", got, want)
	}
	m := testkit.ParseMetrics(t, testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.FinishedID), http.StatusOK))
	if f, ok := m["partnercenter_batch_scrape_success"]; ok {
		t.Errorf("probe of a retired batch shows batch series: %v", *f)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("retired batch requested %d times, want 1 (before it was retired)", got)
	}
}
