package daemon

import (
	"net/http"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// TestAPIHealthBelongsToTheExporter probes batches one target at a time,
// as the hashmod example and the chart's probe mode do. A probe of the
// batch answering 500 shows that batch failing and nothing about the API;
// the exporter's own view, which a sharded setup scrapes for its health
// alerts, serves partnercenter_up and the API timestamps, judged on every
// answer: the finished batch answered, so Partner Center is up.
func TestAPIHealthBelongsToTheExporter(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}, testkit.Customer2: {testkit.BrokenID}})
	exp := startExporter(t, path)

	healthy := testkit.ParseMetrics(t, testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.FinishedID), http.StatusOK))
	broken := testkit.ParseMetrics(t, testkit.Get(t, probeURL(exp, testkit.Customer2, testkit.BrokenID), http.StatusOK))
	for name, m := range map[string]map[string]*testkit.FamilyValues{"finished": healthy, "broken": broken} {
		for _, family := range []string{"partnercenter_up", "partnercenter_api_last_success_timestamp_seconds", "partnercenter_api_throttled_until_timestamp_seconds"} {
			if _, ok := m[family]; ok {
				t.Errorf("/probe of the %s batch serves %s", name, family)
			}
		}
	}
	if v := testkit.Value(t, broken, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer2, testkit.BrokenID)); v != 0 {
		t.Errorf("broken batch scrape_success = %v, want 0", v)
	}

	own := testkit.ParseMetrics(t, testkit.Get(t, exp.url+"/metrics?collect[]=exporter", http.StatusOK))
	if v := testkit.Value(t, own, "partnercenter_up", ""); v != 1 {
		t.Errorf("exporter view partnercenter_up = %v, want 1: the finished batch answered", v)
	}
	if v := testkit.Value(t, own, "partnercenter_api_last_success_timestamp_seconds", ""); v == 0 {
		t.Error("exporter view partnercenter_api_last_success_timestamp_seconds = 0 after a successful read")
	}
	if _, ok := own["partnercenter_api_throttled_until_timestamp_seconds"]; !ok {
		t.Error("exporter view lacks partnercenter_api_throttled_until_timestamp_seconds")
	}
	// The full /metrics agrees, and the exporter view read nothing.
	_, all := exp.scrape(t, "")
	if v := testkit.Value(t, all, "partnercenter_up", ""); v != 1 {
		t.Errorf("/metrics partnercenter_up = %v, want 1", v)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished batch read %d times, want 1", got)
	}
}
