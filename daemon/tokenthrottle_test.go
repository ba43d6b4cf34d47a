package daemon

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// TestTokenRefusalIsRemembered: with a refused secret, two scrapes of 40
// due batches send one token request between them; every read after it
// fails at once with the remembered refusal.
func TestTokenRefusalIsRemembered(t *testing.T) {
	srv := newFaultFake(t)
	srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-00000000b0%02x", i+1, i+1)
		srv.SetBatch(testkit.Customer1, ids[i], processing(ids[i]))
	}
	exp, _ := faultExporter(t, srv, []string{"refresh_interval: 0s"}, ids...)

	for scrape := 1; scrape <= 2; scrape++ {
		_, m := exp.scrape(t, faultScrapeTimeout)
		if got := srv.TokenRequests(); got != 1 {
			t.Fatalf("after scrape %d of %d batches the token endpoint was asked %d times, want 1", scrape, len(ids), got)
		}
		checkMetrics(t, m, append(tokenCounts(0, 1), metricWant{"partnercenter_up", "", 0}))
		for _, id := range ids {
			checkMetrics(t, m, []metricWant{{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, id), 0}})
		}
	}
	if got := srv.TotalBatchRequests(); got != 0 {
		t.Errorf("%d batch requests without a token, want 0", got)
	}
	const refusal = "get token: token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided. (remembered: no new token request before "
	if e := lastError(t, exp, ids[0]); e == nil || !strings.HasPrefix(e.Message, refusal) || e.HTTPStatus != http.StatusUnauthorized {
		t.Errorf("last_error after the second scrape = %+v, want the remembered refusal %q...", e, refusal)
	}
}

// TestThrottleHoldSurvivesReload: a reload that rebuilds the client, with
// another request_timeout or a lowered max_retry_after, keeps the 429 hold
// of the partner tenant: the next scrape sends nothing and still shows it.
func TestThrottleHoldSurvivesReload(t *testing.T) {
	srv := newFaultFake(t)
	srv.SetResponses(testkit.Customer1, faultA, processing(faultA),
		partnercentertest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"600"}}})
	exp, path := faultExporter(t, srv, []string{"refresh_interval: 0s", "max_retry_after: 10m"}, faultA)

	_, m := exp.scrape(t, faultScrapeTimeout)
	until := testkit.Value(t, m, "partnercenter_api_throttled_until_timestamp_seconds", "")
	if until == 0 || srv.TotalBatchRequests() != 1 {
		t.Fatalf("throttled_until %v after %d batch requests, want a hold after 1", until, srv.TotalBatchRequests())
	}
	for _, change := range []struct{ old, new string }{
		{"request_timeout: 1s", "request_timeout: 2s"},
		{"max_retry_after: 10m", "max_retry_after: 1s"},
	} {
		before := exp.state.live().client
		testkit.SetConfig(t, path, change.old, change.new)
		if err := exp.state.reload(); err != nil {
			t.Fatal(err)
		}
		if exp.state.live().client == before {
			t.Fatalf("%s: the reload kept the client; the test needs a new one", change.new)
		}
		_, m := exp.scrape(t, faultScrapeTimeout)
		if got := srv.TotalBatchRequests(); got != 1 {
			t.Errorf("after a reload to %s: %d batch requests, want still 1", change.new, got)
		}
		checkMetrics(t, m, []metricWant{{"partnercenter_api_throttled_until_timestamp_seconds", "", until}})
		if e := lastError(t, exp, faultA); e == nil || !strings.HasPrefix(e.Message, "held by the exporter until ") {
			t.Errorf("after a reload to %s: last_error %+v, want the exporter's hold", change.new, e)
		}
	}
}

// TestConnectionResetLoggedOnce: a batch whose connection is reset on
// every read is logged once, although each reset names another local port.
func TestConnectionResetLoggedOnce(t *testing.T) {
	srv := newFaultFake(t)
	srv.SetResponses(testkit.Customer1, faultA, processing(faultA),
		partnercentertest.Response{Body: partnercentertest.RenderJSON(processing(faultA)), Fault: partnercentertest.FaultReset})
	exp, _ := faultExporter(t, srv, []string{"refresh_interval: 0s"}, faultA)
	for range 3 {
		exp.scrape(t, faultScrapeTimeout)
	}
	if got := srv.BatchRequests(testkit.Customer1, faultA); got < 3 {
		t.Fatalf("%d reads of the batch, want at least 3", got)
	}
	if got := strings.Count(exp.logs.String(), `msg="reading batch failed"`); got != 1 {
		t.Errorf("the reset was logged %d times, want once:\n%s", got, exp.logs.String())
	}
}

// TestUnsavedRefreshTokenIsKept: a rotated refresh token that cannot be
// written back (here: the temporary file's name would be too long, which
// stops root too) is logged and counted without its value, the scrape
// still succeeds, and the next token request redeems the rotated token
// rather than the spent one in the file.
func TestUnsavedRefreshTokenIsKept(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	srv.SetRefreshToken("refresh-token-one", true)
	dir := t.TempDir()
	name := strings.Repeat("r", 250) // ".<name>.tmp-<random>" exceeds NAME_MAX
	credWriteFile(t, filepath.Join(dir, name), "refresh-token-one\n")
	credWriteFile(t, filepath.Join(dir, "client_secret"), testkit.ClientSecret)
	path := filepath.Join(dir, "partnercenter.yml")
	credWriteFile(t, path, fmt.Sprintf(`partner_center:
  base_url: %s
auth:
  client_id: %s
  client_secret_file: client_secret
  refresh_token_file: %s
  token_url: %s
customers:
  - id: %s
    batches: [%s]
`, srv.URL, testkit.ClientID, name, srv.TokenURL(), testkit.Customer1, testkit.FinishedID))
	exp := startExporter(t, path)

	_, m := exp.scrape(t, "")
	checkMetrics(t, m, []metricWant{
		{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID), 1},
		{"partnercenter_token_refresh_token_writes_total", "result=failure", 1},
		{"partnercenter_token_refresh_token_writes_total", "result=success", 0},
	})

	// The access token expires early: the next request must redeem rt-2,
	// the only refresh token the fake still accepts.
	srv.ExpireTokens()
	testkit.SetConfig(t, path, "batches: ["+testkit.FinishedID+"]", "batches: ["+testkit.FinishedID+", "+testkit.RunningID+"]")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	_, m = exp.scrape(t, "")
	checkMetrics(t, m, append(tokenCounts(2, 0),
		metricWant{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.RunningID), 1},
		metricWant{"partnercenter_token_refresh_token_writes_total", "result=failure", 3},
	))
	if got := string(readFile(t, filepath.Join(dir, name))); got != "refresh-token-one\n" {
		t.Errorf("refresh token file = %q, want it unchanged", got)
	}
	logs := exp.logs.String()
	if got := strings.Count(logs, "rotated refresh token kept in memory only"); got != 3 {
		t.Errorf("the unsaved refresh token was logged %d times, want 3 (one per write attempt):\n%s", got, logs)
	}
	for _, secret := range []string{testkit.ClientSecret, "refresh-token-one", "rt-2", "rt-3"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret %q", secret)
		}
	}
}
