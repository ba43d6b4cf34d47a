package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// The fault suite runs the real exporter wiring against a fake Partner
// Center that misbehaves in one way per case. Reads are bounded by a 1s
// request_timeout and scrapes by a 2.5s deadline (header "3" less the
// 0.5s offset), so that a fault that hangs costs about a second.

// Batches of the fault suite, all of customer1.
const (
	faultA = "fa000000-0000-4000-8000-00000000000a"
	faultB = "fb000000-0000-4000-8000-00000000000b"
	faultC = "fc000000-0000-4000-8000-00000000000c"
)

// faultScrapeTimeout is the X-Prometheus-Scrape-Timeout-Seconds of the suite.
const faultScrapeTimeout = "3"

// processing is a batch that is still running, so that it counts for
// partnercenter_up on every read.
func processing(id string) partnercentertest.Batch {
	return partnercentertest.Batch{TrackingID: id, Status: "processing", StartedTime: "2026-11-25T10:00:00Z"}
}

// newFaultFake is a fake that knows the exporter's test credentials.
func newFaultFake(t *testing.T) *partnercentertest.Server {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetCredentials(testkit.ClientID, testkit.ClientSecret)
	return srv
}

// faultExporter starts the exporter on the given batches of customer1 with
// the extra partner_center settings, one per line, and unless they say
// otherwise refresh_interval 1m (so that a second scrape sends nothing)
// and a 1s request_timeout.
func faultExporter(t *testing.T, srv *partnercentertest.Server, settings []string, ids ...string) (*testExporter, string) {
	t.Helper()
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: ids})
	pc := slices.Clone(settings)
	for _, d := range []string{"refresh_interval: 1m", "request_timeout: 1s"} {
		key, _, _ := strings.Cut(d, ":")
		if !slices.ContainsFunc(settings, func(s string) bool { return strings.HasPrefix(s, key+":") }) {
			pc = append(pc, d)
		}
	}
	testkit.SetConfig(t, path, "refresh_interval: 0s", strings.Join(pc, "\n  "))
	return startExporter(t, path), path
}

// metricWant is one expected sample.
type metricWant struct {
	name, labels string
	value        float64
}

func checkMetrics(t *testing.T, m map[string]*testkit.FamilyValues, wants []metricWant) {
	t.Helper()
	for _, w := range wants {
		if got := testkit.Value(t, m, w.name, w.labels); got != w.value {
			t.Errorf("%s{%s} = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
}

// checkFamily compares a whole family, label set by label set; want nil
// means the family must be absent (a counter vector nobody touched).
func checkFamily(t *testing.T, m map[string]*testkit.FamilyValues, name string, want map[string]float64) {
	t.Helper()
	f, ok := m[name]
	if !ok {
		if len(want) > 0 {
			t.Errorf("%s missing, want %v", name, want)
		}
		return
	}
	if len(*f) != len(want) {
		t.Errorf("%s = %v, want %v", name, *f, want)
		return
	}
	for labels, v := range want {
		if got, ok := (*f)[labels]; !ok || got != v {
			t.Errorf("%s = %v, want %v", name, *f, want)
			return
		}
	}
}

// tokenCounts is partnercenter_token_requests_total.
func tokenCounts(success, failure float64) []metricWant {
	return []metricWant{
		{"partnercenter_token_requests_total", "result=success", success},
		{"partnercenter_token_requests_total", "result=failure", failure},
	}
}

// scrapeUntil scrapes until cond holds, for counters updated just after a
// read gives up (a token request ends a moment after the read waiting for
// it), and returns that scrape's metrics.
func scrapeUntil(t *testing.T, exp *testExporter, cond func(map[string]*testkit.FamilyValues) bool) map[string]*testkit.FamilyValues {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, m := exp.scrape(t, faultScrapeTimeout)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatal("metrics did not settle within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkStillServing: after the fault, the exporter answers a scrape and
// its health check.
func checkStillServing(t *testing.T, exp *testExporter) {
	t.Helper()
	exp.scrape(t, faultScrapeTimeout)
	testkit.Get(t, exp.url+"/-/healthy", http.StatusOK)
}

// batchError is last_error of /batches/{id}?format=json.
type batchError struct {
	Source     string `json:"source"`
	Message    string `json:"message"`
	HTTPStatus int    `json:"http_status"`
}

func lastError(t *testing.T, exp *testExporter, id string) *batchError {
	t.Helper()
	var page struct {
		Batch struct {
			LastError *batchError `json:"last_error"`
		} `json:"batch"`
	}
	body := testkit.Get(t, exp.url+"/batches/"+id+"?format=json", http.StatusOK)
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("/batches/%s: %v\n%s", id, err, body)
	}
	return page.Batch.LastError
}

// countingServer is a second loopback server that must never be asked:
// it counts requests and, were a client to follow a redirect to it,
// answers a valid batch so that the follow would look like a success.
func countingServer(t *testing.T, id string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if r.Header.Get("Authorization") != "" || strings.Contains(string(body), testkit.ClientSecret) {
			t.Errorf("a redirect delivered credentials to %s %s", r.Method, r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(partnercentertest.RenderJSON(processing(id)))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func TestFaultTokenEndpoint(t *testing.T) {
	tests := []struct {
		name string
		// setup breaks the token endpoint; it returns the token URL to
		// configure, "" for the fake's own.
		setup func(t *testing.T, srv *partnercentertest.Server) string
		// wantTokenRequests is what the fake's token endpoint sees.
		wantTokenRequests int
		// wantErr is in last_error.message on the batch page.
		wantErr string
	}{
		{name: "down", setup: func(t *testing.T, _ *partnercentertest.Server) string {
			return "http://" + testkit.FreeLoopbackAddr(t) + "/contoso.onmicrosoft.com/oauth2/token"
		}, wantTokenRequests: 0, wantErr: "connect: connection refused"},
		{name: "slow", setup: func(_ *testing.T, srv *partnercentertest.Server) string {
			srv.SetTokenResponses(partnercentertest.Response{Latency: time.Hour})
			return ""
		}, wantTokenRequests: 1, wantErr: "context deadline exceeded"}, // the request's or the read's, whichever ends first
		{name: "400", setup: func(_ *testing.T, srv *partnercentertest.Server) string {
			srv.FailTokenRequests(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
			return ""
		}, wantTokenRequests: 1, wantErr: "token endpoint answered 400 invalid_request: AADSTS900144"},
		{name: "401 invalid_client", setup: func(_ *testing.T, srv *partnercentertest.Server) string {
			srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return ""
		}, wantTokenRequests: 1, wantErr: "token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided."},
		{name: "malformed JSON", setup: func(_ *testing.T, srv *partnercentertest.Server) string {
			srv.SetTokenResponses(partnercentertest.Response{Body: []byte(`{"access_token":"x`)})
			return ""
		}, wantTokenRequests: 1, wantErr: "decoding token response: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFaultFake(t)
			srv.SetResponses(testkit.Customer1, faultA, processing(faultA))
			tokenURL := tt.setup(t, srv)
			exp, path := faultExporter(t, srv, nil, faultA)
			if tokenURL != "" {
				testkit.SetConfig(t, path, "token_url: "+srv.TokenURL(), "token_url: "+tokenURL)
				if err := exp.state.reload(); err != nil {
					t.Fatal(err)
				}
			}
			m := scrapeUntil(t, exp, func(m map[string]*testkit.FamilyValues) bool {
				return testkit.Value(t, m, "partnercenter_token_requests_total", "result=failure") > 0
			})
			checkTokenFailure(t, exp, srv, m, tt.wantTokenRequests, tt.wantErr)
		})
	}
}

func checkTokenFailure(t *testing.T, exp *testExporter, srv *partnercentertest.Server, m map[string]*testkit.FamilyValues, wantTokenRequests int, wantErr string) {
	t.Helper()
	checkMetrics(t, m, append(tokenCounts(0, 1),
		metricWant{"partnercenter_up", "", 0},
		metricWant{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, faultA), 0},
	))
	checkFamily(t, m, "partnercenter_api_requests_total", nil)
	if got := srv.TotalBatchRequests(); got != 0 {
		t.Errorf("%d batch requests without a token, want 0", got)
	}
	if got := srv.TokenRequests(); got != wantTokenRequests {
		t.Errorf("token endpoint asked %d times, want %d", got, wantTokenRequests)
	}
	if e := lastError(t, exp, faultA); e == nil || !strings.HasPrefix(e.Message, "get token: ") || !strings.Contains(e.Message, wantErr) {
		t.Errorf("last_error = %+v, want a \"get token: \" message with %q", e, wantErr)
	}
	checkStillServing(t, exp)
	if got := srv.TokenRequests(); got != wantTokenRequests {
		t.Errorf("token endpoint asked %d times after a scrape within refresh_interval, want %d", got, wantTokenRequests)
	}
}

// TestFaultTokenRedirect: a token endpoint that redirects must not get
// the form, and so the client secret, re-posted elsewhere.
func TestFaultTokenRedirect(t *testing.T) {
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := newFaultFake(t)
			srv.SetResponses(testkit.Customer1, faultA, processing(faultA))
			elsewhere, asked := countingServer(t, faultA)
			srv.SetTokenResponses(partnercentertest.Response{Status: status, Header: http.Header{"Location": {elsewhere.URL + "/token"}}})
			exp, _ := faultExporter(t, srv, nil, faultA)
			m := scrapeUntil(t, exp, func(m map[string]*testkit.FamilyValues) bool {
				return testkit.Value(t, m, "partnercenter_token_requests_total", "result=failure") > 0
			})
			if got := asked.Load(); got != 0 {
				t.Errorf("the redirect target received %d requests, want 0", got)
			}
			checkTokenFailure(t, exp, srv, m, 1, fmt.Sprintf("token endpoint answered %d %s", status, http.StatusText(status)))
		})
	}
}

// apiCase is one way the batch endpoint fails.
type apiCase struct {
	name string
	// settings are extra partner_center lines.
	settings []string
	// apiDown points base_url at a closed port.
	apiDown bool
	batches []apiBatch
	wantUp  float64
	// wantCodes is partnercenter_api_requests_total by code label.
	wantCodes map[string]float64
	// wantAborted is how many requests the fake saw the client leave.
	wantAborted int
}

// apiBatch is one batch of an apiCase with its script and outcome.
type apiBatch struct {
	id           string
	responses    []partnercentertest.Response
	wantRequests int
	wantSuccess  float64
	wantErr      string // what last_error.message contains, "" for none
}

func TestFaultAPI(t *testing.T) {
	whole := partnercentertest.RenderJSON(processing(faultA))
	broken := func(f partnercentertest.Fault) []partnercentertest.Response {
		return []partnercentertest.Response{{Body: whole, Fault: f}}
	}
	status := func(code int) []partnercentertest.Response {
		return []partnercentertest.Response{{Status: code}}
	}
	ok := []partnercentertest.Response{{}}
	tests := []apiCase{
		{
			name: "connection refused", apiDown: true,
			batches:   []apiBatch{{faultA, ok, 0, 0, "connect: connection refused"}},
			wantCodes: map[string]float64{"code=error": 2},
		},
		{
			name:      "reset mid-body",
			batches:   []apiBatch{{faultA, broken(partnercentertest.FaultReset), 2, 0, "connection reset by peer"}},
			wantCodes: map[string]float64{"code=200": 2},
		},
		{
			name:      "truncated body",
			batches:   []apiBatch{{faultA, broken(partnercentertest.FaultTruncate), 2, 0, "unexpected EOF"}},
			wantCodes: map[string]float64{"code=200": 2},
		},
		{
			name:      "hanging before the headers",
			batches:   []apiBatch{{faultA, []partnercentertest.Response{{Latency: time.Hour}}, 1, 0, "context deadline exceeded"}},
			wantCodes: map[string]float64{"code=error": 1}, wantAborted: 1,
		},
		{
			name:      "stalling mid-body",
			batches:   []apiBatch{{faultA, broken(partnercentertest.FaultStall), 1, 0, "context deadline exceeded"}},
			wantCodes: map[string]float64{"code=200": 1},
		},
		{
			name: "5xx on every batch",
			batches: []apiBatch{
				{faultA, status(http.StatusInternalServerError), 2, 0, "HTTP 500"},
				{faultB, status(http.StatusServiceUnavailable), 2, 0, "HTTP 503"},
			},
			wantCodes: map[string]float64{"code=500": 2, "code=503": 2},
		},
		{
			name: "5xx on one batch", wantUp: 1,
			batches: []apiBatch{
				{faultA, status(http.StatusBadGateway), 2, 0, "HTTP 502"},
				{faultB, ok, 1, 1, ""},
			},
			wantCodes: map[string]float64{"code=502": 2, "code=200": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runAPICase(t, tt) })
	}
}

func runAPICase(t *testing.T, tt apiCase) {
	t.Helper()
	srv := newFaultFake(t)
	var ids []string
	for _, b := range tt.batches {
		srv.SetResponses(testkit.Customer1, b.id, processing(b.id), b.responses...)
		ids = append(ids, b.id)
	}
	exp, path := faultExporter(t, srv, tt.settings, ids...)
	if tt.apiDown {
		testkit.SetConfig(t, path, "base_url: "+srv.URL, "base_url: http://"+testkit.FreeLoopbackAddr(t))
		if err := exp.state.reload(); err != nil {
			t.Fatal(err)
		}
	}
	_, m := exp.scrape(t, faultScrapeTimeout)
	checkMetrics(t, m, append(tokenCounts(1, 0), metricWant{"partnercenter_up", "", tt.wantUp}))
	checkFamily(t, m, "partnercenter_api_requests_total", tt.wantCodes)
	for _, b := range tt.batches {
		checkMetrics(t, m, []metricWant{{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, b.id), b.wantSuccess}})
		if got := srv.BatchRequests(testkit.Customer1, b.id); got != b.wantRequests {
			t.Errorf("batch %s: %d requests, want %d", b.id, got, b.wantRequests)
		}
		e := lastError(t, exp, b.id)
		switch {
		case b.wantErr == "" && e != nil:
			t.Errorf("batch %s: last_error %+v, want none", b.id, e)
		case b.wantErr != "" && (e == nil || !strings.Contains(e.Message, b.wantErr)):
			t.Errorf("batch %s: last_error %+v, want a message with %q", b.id, e, b.wantErr)
		}
	}
	if tt.wantAborted > 0 {
		testkit.WaitFor(t, func() bool { return srv.AbortedRequests() == tt.wantAborted })
	}
	checkStillServing(t, exp)
	if got := srv.TotalBatchRequests(); got != sumRequests(tt.batches) {
		t.Errorf("%d batch requests after a scrape within refresh_interval, want still %d", got, sumRequests(tt.batches))
	}
}

func sumRequests(batches []apiBatch) int {
	n := 0
	for _, b := range batches {
		n += b.wantRequests
	}
	return n
}

// TestFaultRedirect: the API answering a redirect to another server must
// not make the exporter send the bearer token there. A 3xx concerns the
// batch, not the API as a whole, so up stays 1.
func TestFaultRedirect(t *testing.T) {
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			elsewhere, asked := countingServer(t, faultA)
			redirect := []partnercentertest.Response{{Status: code, Header: http.Header{
				"Location": {elsewhere.URL + "/v1/customers/" + testkit.Customer1 + "/batchJobStatus/" + faultA},
			}}}
			runAPICase(t, apiCase{
				batches:   []apiBatch{{faultA, redirect, 1, 0, "HTTP " + strconv.Itoa(code)}},
				wantUp:    1,
				wantCodes: map[string]float64{"code=" + strconv.Itoa(code): 1},
			})
			if got := asked.Load(); got != 0 {
				t.Errorf("the redirect target received %d requests, want 0", got)
			}
		})
	}
}

// TestFaultThrottleStorm: every batch answers 429. With one request slot
// the first read gets the 429 and the hold it sets (capped at
// max_retry_after 2s, longer than the 1s request_timeout) keeps the other
// reads from sending anything. The hold is released after 2s.
func TestFaultThrottleStorm(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
	}{
		{name: "no Retry-After", retryAfter: ""}, // 5s by default, capped to 2s
		{name: "Retry-After past the cap", retryAfter: "3"},
		{name: "Retry-After 86400", retryAfter: "86400"},
		{name: "Retry-After far-future date", retryAfter: "Fri, 31 Dec 9999 23:59:59 GMT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runThrottleStorm(t, tt.retryAfter)
		})
	}
}

func runThrottleStorm(t *testing.T, retryAfter string) {
	const hold = 2 * time.Second
	srv := newFaultFake(t)
	throttled := partnercentertest.Response{Status: http.StatusTooManyRequests}
	if retryAfter != "" {
		throttled.Header = http.Header{"Retry-After": {retryAfter}}
	}
	ids := []string{faultA, faultB, faultC}
	for _, id := range ids {
		srv.SetResponses(testkit.Customer1, id, processing(id), throttled)
	}
	// refresh_interval 0s: every scrape reads every batch, held or not.
	exp, _ := faultExporter(t, srv, []string{"max_retry_after: 2s", "max_concurrent_requests: 1", "refresh_interval: 0s"}, ids...)

	before := time.Now()
	_, m := exp.scrape(t, faultScrapeTimeout)
	after := time.Now()
	until := testkit.Value(t, m, "partnercenter_api_throttled_until_timestamp_seconds", "")
	if lo, hi := unixSeconds(before.Add(hold)), unixSeconds(after.Add(hold)); until < lo || until > hi {
		t.Errorf("throttled_until = %.3f, want within [%.3f, %.3f] (now + max_retry_after)", until, lo, hi)
	}
	checkMetrics(t, m, []metricWant{
		{"partnercenter_up", "", 1}, // 429 and holds concern batches, not the API
		{"partnercenter_api_throttled_total", "", 1},
	})
	checkFamily(t, m, "partnercenter_api_requests_total", map[string]float64{"code=429": 1})
	if got := srv.TotalBatchRequests(); got != 1 {
		t.Fatalf("%d batch requests in a 429 storm with one slot, want 1", got)
	}
	checkHeld(t, exp, m, ids, 1)

	// During the hold nothing is sent, and every batch shows the hold.
	_, m = exp.scrape(t, faultScrapeTimeout)
	if got := srv.TotalBatchRequests(); got != 1 {
		t.Errorf("%d batch requests during the hold, want still 1", got)
	}
	checkHeld(t, exp, m, ids, 0)

	// After the hold, the next scrape reads every batch again.
	time.Sleep(time.Until(time.Unix(0, int64(until*1e9))) + 50*time.Millisecond)
	for _, id := range ids {
		srv.SetResponses(testkit.Customer1, id, processing(id))
	}
	_, m = exp.scrape(t, faultScrapeTimeout)
	checkMetrics(t, m, []metricWant{{"partnercenter_api_throttled_until_timestamp_seconds", "", 0}})
	for _, id := range ids {
		checkMetrics(t, m, []metricWant{{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, id), 1}})
	}
	if got := srv.TotalBatchRequests(); got != 1+len(ids) {
		t.Errorf("%d batch requests after the hold, want %d", got, 1+len(ids))
	}
	testkit.Get(t, exp.url+"/-/healthy", http.StatusOK)
}

// checkHeld checks that want429 batches failed with the 429 and the rest
// were held by the exporter; all of them show scrape_success 0.
func checkHeld(t *testing.T, exp *testExporter, m map[string]*testkit.FamilyValues, ids []string, want429 int) {
	t.Helper()
	got429 := 0
	for _, id := range ids {
		checkMetrics(t, m, []metricWant{{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, id), 0}})
		e := lastError(t, exp, id)
		switch {
		case e == nil:
			t.Errorf("batch %s: no last_error", id)
		case e.HTTPStatus == http.StatusTooManyRequests:
			got429++
		case !strings.HasPrefix(e.Message, "held by the exporter until "):
			t.Errorf("batch %s: last_error %+v, want the exporter's hold", id, e)
		}
	}
	if got429 != want429 {
		t.Errorf("%d batches failed with the 429, want %d", got429, want429)
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// maxHeapGrowth bounds the heap a hostile body may cost, generously.
const maxHeapGrowth = 256 << 20

// TestFaultHugeBody: a 2 GiB answer, generated by the fake as it is sent,
// is cut at max_response_size; the exporter stays small and fast, and the
// fake stops sending once the exporter hangs up.
func TestFaultHugeBody(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		name := map[bool]string{false: "Content-Length", true: "chunked"}[chunked]
		t.Run(name, func(t *testing.T) {
			huge := &partnercentertest.Stream{
				Head:   []byte(`{"batchTrackingId":"` + faultA + `","status":"processing","devicesStatus":[`),
				Repeat: []byte(`{"serialNumber":"PF000000","status":"finished_with_errors","errorCode":"808","errorDescription":"x"},`),
				Size:   2 << 30, Chunked: chunked,
			}
			checkHostileBody(t, huge, "max_response_size: 1MiB", "response body too large")
		})
	}
}

// TestFaultDeepNesting: 10 MiB of openings is refused by the decoders'
// nesting limit, in bounded memory, not parsed level by level.
func TestFaultDeepNesting(t *testing.T) {
	tests := []struct {
		name         string
		head, repeat string
	}{
		{name: "json", head: `{"links":`, repeat: "["},
		{name: "json objects", head: `{"links":`, repeat: `{"a":`},
		{name: "xml", head: "<BatchUploadDetails>", repeat: "<a>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deep := &partnercentertest.Stream{Head: []byte(tt.head), Repeat: []byte(tt.repeat), Size: 10 << 20}
			checkHostileBody(t, deep, "max_response_size: 16MiB", "nesting deeper than 64 levels")
		})
	}
}

// checkHostileBody serves body for one batch and checks that the read
// fails with wantErr, once, within seconds and bounded memory.
func checkHostileBody(t *testing.T, body *partnercentertest.Stream, setting, wantErr string) {
	t.Helper()
	srv := newFaultFake(t)
	contentType := "application/json"
	if strings.HasPrefix(string(body.Head), "<") {
		contentType = "application/xml"
	}
	srv.SetResponses(testkit.Customer1, faultA, processing(faultA), partnercentertest.Response{Stream: body, ContentType: contentType})
	exp, _ := faultExporter(t, srv, []string{setting}, faultA)
	var m map[string]*testkit.FamilyValues
	began := time.Now()
	grew := testkit.HeapGrowth(func() { _, m = exp.scrape(t, faultScrapeTimeout) })
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("the scrape took %s", took)
	}
	if grew > maxHeapGrowth {
		t.Errorf("the heap grew by %d MiB reading the body, want less than %d MiB", grew>>20, maxHeapGrowth>>20)
	}
	checkMetrics(t, m, []metricWant{
		{"partnercenter_up", "", 1}, // a 200 that cannot be used concerns the batch
		{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, faultA), 0},
	})
	checkFamily(t, m, "partnercenter_api_requests_total", map[string]float64{"code=200": 1})
	if got := srv.BatchRequests(testkit.Customer1, faultA); got != 1 {
		t.Errorf("%d requests, want 1 (a bad body is not retried)", got)
	}
	if e := lastError(t, exp, faultA); e == nil || e.HTTPStatus != http.StatusOK || !strings.Contains(e.Message, wantErr) {
		t.Errorf("last_error = %+v, want HTTP status 200 and a message with %q", e, wantErr)
	}
	if body.Size > 1<<30 {
		// The fake stops streaming once the exporter hangs up.
		testkit.WaitFor(t, func() bool { return srv.AbortedRequests() == 1 })
	}
	checkStillServing(t, exp)
}

// TestFaultReloadRacingScrapes: reloads that add and remove a batch race
// with scrapes and page views for about two seconds. Every answer is a
// success, and once the batch is gone for good it shows nowhere.
func TestFaultReloadRacingScrapes(t *testing.T) {
	srv := newFaultFake(t)
	for _, id := range []string{faultA, faultB, faultC} {
		srv.SetResponses(testkit.Customer1, id, processing(id))
	}
	// Two configurations: with faultB, or with faultC instead; reads on
	// every scrape, so that reads of a removed batch are often in flight.
	withB := readFile(t, testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {faultA, faultB}}))
	withC := readFile(t, testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {faultA, faultC}}))
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {faultA, faultB}})
	exp := startExporter(t, path)

	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			for n := 0; time.Now().Before(stop) && n < 200; n++ {
				replaceFile(t, path, [][]byte{withB, withC}[(i+n)%2])
				if body, status, err := testkit.Post(exp.url + "/-/reload"); err != nil || status != http.StatusOK {
					t.Errorf("reload: %d %v %s", status, err, body)
					return
				}
			}
		})
	}
	for _, page := range []string{"/metrics", "/metrics", "/metrics", "/batches", "/batches?format=json"} {
		wg.Go(func() {
			for n := 0; time.Now().Before(stop) && n < 200; n++ {
				if body, status, err := testkit.Fetch(exp.url + page); err != nil || status != http.StatusOK {
					t.Errorf("GET %s: %d %v %s", page, status, err, body)
					return
				}
			}
		})
	}
	wg.Wait()

	replaceFile(t, path, withB)
	testkit.Do(t, http.MethodPost, exp.url+"/-/reload", http.StatusOK)
	body, m := exp.scrape(t, faultScrapeTimeout)
	checkMetrics(t, m, []metricWant{
		{"partnercenter_batches_configured", "", 2},
		{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, faultA), 1},
		{"partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, faultB), 1},
	})
	for where, text := range map[string]string{
		"/metrics":              body,
		"/batches":              testkit.Get(t, exp.url+"/batches", http.StatusOK),
		"/batches?format=json":  testkit.Get(t, exp.url+"/batches?format=json", http.StatusOK),
		"/batches/" + faultA:    testkit.Get(t, exp.url+"/batches/"+faultA+"?format=json", http.StatusOK),
		"/batches/ (csv of A)":  testkit.Get(t, exp.url+"/batches/"+faultA+"?format=csv", http.StatusOK),
		"/config after reloads": testkit.Get(t, exp.url+"/config", http.StatusOK),
	} {
		if strings.Contains(text, faultC) {
			t.Errorf("%s still shows the removed batch %s", where, faultC)
		}
	}
	testkit.Get(t, exp.url+"/batches/"+faultC, http.StatusNotFound)
	if _, ok := exp.state.store.Get(batchstate.Target{CustomerID: testkit.Customer1, TrackingID: faultC}); ok {
		t.Error("the store still holds the removed batch")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// replaceFile swaps path's content in one rename, so that a concurrent
// reload reads one whole configuration or the other. It may run in any
// goroutine: it reports with Errorf.
func replaceFile(t *testing.T, path string, data []byte) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err == nil {
		_, err = tmp.Write(data)
		if closeErr := tmp.Close(); err == nil {
			err = closeErr
		}
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		t.Errorf("replace %s: %v", path, err)
	}
}
