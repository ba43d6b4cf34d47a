package partnercenter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/auth"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

const (
	customerID = "6f1c2a8e-3b4d-4e5f-9a01-23456789abcd"
	trackingID = "2f5a9c4e-7b1d-4a3f-8e6c-1d2b3a4c5e6f"
	otherBatch = "8a1e4b7c-2d5f-4e8a-9b3c-6d7e8f9a0b1c"
)

// countingObserver records what the client reports.
type countingObserver struct {
	partnercenter.NopObserver // no refresh tokens here
	mu                        sync.Mutex
	codes                     map[int]int
	throttled                 int
	tokens                    map[string]int
}

func newCountingObserver() *countingObserver {
	return &countingObserver{codes: map[int]int{}, tokens: map[string]int{}}
}

func (o *countingObserver) APIRequest(code int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes[code]++
}

func (o *countingObserver) Throttled() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.throttled++
}

func (o *countingObserver) TokenRequest(result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tokens[result]++
}

func newTestClient(t *testing.T, srv *partnercentertest.Server, obs partnercenter.Observer, tune func(*partnercenter.ClientConfig)) *partnercenter.Client {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	tokens := auth.NewClientCredentialsSource(auth.ClientCredentials{
		TokenURL: srv.TokenURL(), ClientID: partnercentertest.DefaultClientID, Resource: "https://api.partnercenter.microsoft.com",
		ClientSecret: func() string { return partnercentertest.DefaultClientSecret },
	}, hc, obs)
	cfg := partnercenter.ClientConfig{
		BaseURL: srv.URL, HTTPClient: hc, Tokens: tokens, UserAgent: "partnercenter_exporter/test", Observer: obs,
		Decode: partnercenter.DecodeOptions{MaxFailedDevices: partnercenter.DefaultMaxFailedDevices},
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := partnercenter.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestServer(t *testing.T) *partnercentertest.Server {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

var smallBatch = partnercentertest.Batch{
	TrackingID: trackingID, Status: "FinishedWithErrors", StartedTime: "2026-11-25T10:00:00.1234567", CompletedTime: "2026-11-25T10:05:00Z",
	Devices: []partnercentertest.Device{
		{DeviceID: "d1", SerialNumber: "PF3XK2Q7", ProductKey: "1234567890123", Status: "Finished"},
		{
			DeviceID: "d2", SerialNumber: "5CG1234ABC", ProductKey: "1234567890124", Status: "finished_with_errors",
			ErrorCode: "808", ErrorDescription: "ZtdDeviceAssignedToOtherTenant",
		},
	},
}

func TestBatchStatusSendsRequiredHeaders(t *testing.T) {
	srv := newTestServer(t)
	srv.SetBatch(customerID, trackingID, smallBatch)
	c := newTestClient(t, srv, nil, nil)
	ctx := partnercenter.WithCorrelationID(context.Background(), "0f0f0f0f-1111-4222-8333-444444444444")
	for range 2 {
		if _, err := c.BatchStatus(ctx, customerID, trackingID); err != nil {
			t.Fatal(err)
		}
	}
	var requestIDs []string
	for _, r := range srv.Requests() {
		if !strings.Contains(r.Path, "batchJobStatus") {
			continue
		}
		if want := "/v1/customers/" + customerID + "/batchJobStatus/" + trackingID; r.Path != want {
			t.Errorf("path = %s, want %s", r.Path, want)
		}
		checks := map[string]string{
			"Authorization":    "Bearer " + srv.LastAccessToken(),
			"Accept":           "application/json",
			"Ms-Correlationid": "0f0f0f0f-1111-4222-8333-444444444444",
			"User-Agent":       "partnercenter_exporter/test",
		}
		for h, want := range checks {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		id := r.Header.Get("MS-RequestId")
		if !partnercenter.ValidGUID(id) {
			t.Errorf("MS-RequestId %q is not a GUID", id)
		}
		requestIDs = append(requestIDs, id)
	}
	if len(requestIDs) != 2 || requestIDs[0] == requestIDs[1] {
		t.Errorf("request IDs = %v, want two different ones", requestIDs)
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests = %d, want 1 for two reads", got)
	}
}

func TestBatchStatusDecodes(t *testing.T) {
	for _, format := range []string{"json", "json-bom", "xml"} {
		t.Run(format, func(t *testing.T) {
			srv := newTestServer(t)
			srv.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Format: format})
			b, err := newTestClient(t, srv, nil, nil).BatchStatus(context.Background(), customerID, trackingID)
			if err != nil {
				t.Fatal(err)
			}
			if b.Status != partnercenter.StatusFinishedWithErrors || b.Devices[partnercenter.StatusFinished] != 1 ||
				b.Devices[partnercenter.StatusFinishedWithErrors] != 1 || len(b.Errors) != 1 || b.Errors[0].Code != "808" ||
				!b.StartedTime.Equal(time.Date(2026, 11, 25, 10, 0, 0, 123456700, time.UTC)) ||
				len(b.FailedDevices) != 1 || b.FailedDevices[0].SerialNumber != "5CG1234ABC" {
				t.Errorf("decoded %+v", b)
			}
		})
	}
}

func TestBatchStatusRetries(t *testing.T) {
	status := func(code int) partnercentertest.Response { return partnercentertest.Response{Status: code} }
	ok := partnercentertest.Response{}
	tests := []struct {
		name        string
		responses   []partnercentertest.Response
		wantErr     string
		wantStatus  int
		wantReqs    int
		wantCodes   map[int]int
		wantTokens  int
		expireFirst bool
	}{
		{
			name: "500 then success", responses: []partnercentertest.Response{status(500), ok},
			wantReqs: 2, wantCodes: map[int]int{500: 1, 200: 1}, wantTokens: 1,
		},
		{
			name: "503 twice gives up", responses: []partnercentertest.Response{status(503)},
			wantErr: "HTTP 503", wantStatus: 503, wantReqs: 2, wantCodes: map[int]int{503: 2}, wantTokens: 1,
		},
		{
			name: "404 is not retried", responses: []partnercentertest.Response{status(404)},
			wantErr: "HTTP 404", wantStatus: 404, wantReqs: 1, wantCodes: map[int]int{404: 1}, wantTokens: 1,
		},
		{
			name: "400 is not retried", responses: []partnercentertest.Response{status(400)},
			wantErr: "HTTP 400", wantStatus: 400, wantReqs: 1, wantCodes: map[int]int{400: 1}, wantTokens: 1,
		},
		{
			name: "expired token is renewed once", responses: []partnercentertest.Response{ok}, expireFirst: true,
			wantReqs: 2, wantCodes: map[int]int{401: 1, 200: 1}, wantTokens: 2,
		},
		{
			name: "403 is not retried", responses: []partnercentertest.Response{status(403)},
			wantErr: "HTTP 403", wantStatus: 403, wantReqs: 1, wantCodes: map[int]int{403: 1}, wantTokens: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t)
			srv.SetResponses(customerID, trackingID, smallBatch, tt.responses...)
			obs := newCountingObserver()
			c := newTestClient(t, srv, obs, nil)
			if tt.expireFirst {
				// Fetch a token through another batch, then make it stale.
				srv.SetBatch(customerID, otherBatch, smallBatch)
				if _, err := c.BatchStatus(context.Background(), customerID, otherBatch); err != nil {
					t.Fatal(err)
				}
				srv.ExpireTokens()
				obs.codes = map[int]int{}
			}
			_, err := c.BatchStatus(context.Background(), customerID, trackingID)
			checkErr(t, err, tt.wantErr, tt.wantStatus)
			if got := srv.BatchRequests(customerID, trackingID); got != tt.wantReqs {
				t.Errorf("requests = %d, want %d", got, tt.wantReqs)
			}
			if got := srv.TokenRequests(); got != tt.wantTokens {
				t.Errorf("token requests = %d, want %d", got, tt.wantTokens)
			}
			if !equalCounts(obs.codes, tt.wantCodes) {
				t.Errorf("observed codes = %v, want %v", obs.codes, tt.wantCodes)
			}
		})
	}
}

func checkErr(t *testing.T, err error, wantPrefix string, wantStatus int) {
	t.Helper()
	if wantPrefix == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var apiErr *partnercenter.Error
	if !errors.As(err, &apiErr) || !strings.HasPrefix(err.Error(), wantPrefix) || apiErr.StatusCode != wantStatus {
		t.Fatalf("error = %v, want *partnercenter.Error with status %d starting %q", err, wantStatus, wantPrefix)
	}
	if !partnercenter.ValidGUID(apiErr.RequestID) || !partnercenter.ValidGUID(apiErr.CorrelationID) {
		t.Errorf("error lacks request IDs: %+v", apiErr)
	}
}

func equalCounts(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestNotFoundCarriesPartnerCenterError(t *testing.T) {
	srv := newTestServer(t)
	c := newTestClient(t, srv, nil, nil)
	_, err := c.BatchStatus(context.Background(), customerID, trackingID)
	var apiErr *partnercenter.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %v, want *partnercenter.Error", err)
	}
	if apiErr.StatusCode != 404 || apiErr.Code == "" || apiErr.Description == "" {
		t.Errorf("error = %+v, want status 404 with the service's code and description", apiErr)
	}
	if partnercenter.Unavailable(err) {
		t.Error("a 404 must not count as the API being unavailable")
	}
}

func TestThrottlingHonoursRetryAfter(t *testing.T) {
	srv := newTestServer(t)
	throttled := partnercentertest.Response{Status: 429, Header: http.Header{"Retry-After": {"1"}}}
	srv.SetResponses(customerID, trackingID, smallBatch, throttled, partnercentertest.Response{})
	obs := newCountingObserver()
	c := newTestClient(t, srv, obs, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.BatchStatus(ctx, customerID, trackingID); err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, r := range srv.Requests() {
		if strings.Contains(r.Path, trackingID) {
			times = append(times, r.Time)
		}
	}
	if len(times) != 2 {
		t.Fatalf("requests = %d, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	if obs.throttled != 1 {
		t.Errorf("throttled = %d, want 1", obs.throttled)
	}
}

func TestThrottlingBeyondDeadlineHoldsAllRequests(t *testing.T) {
	srv := newTestServer(t)
	srv.SetResponses(customerID, trackingID, smallBatch,
		partnercentertest.Response{Status: 429, Header: http.Header{"Retry-After": {"120"}}})
	srv.SetBatch(customerID, otherBatch, smallBatch)
	obs := newCountingObserver()
	c := newTestClient(t, srv, obs, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !c.ThrottledUntil().IsZero() {
		t.Errorf("ThrottledUntil = %v before any 429, want the zero time", c.ThrottledUntil())
	}
	_, err := c.BatchStatus(ctx, customerID, trackingID)
	checkErr(t, err, "HTTP 429", 429)
	until := c.ThrottledUntil()
	if until.IsZero() {
		t.Fatal("ThrottledUntil is zero after a 429 with Retry-After: 120")
	}
	// Another batch within the Retry-After window is not even asked for.
	_, err = c.BatchStatus(ctx, customerID, otherBatch)
	var holdErr *partnercenter.HoldError
	var apiErr *partnercenter.Error
	if !errors.As(err, &holdErr) || errors.As(err, &apiErr) || !holdErr.Until.Equal(until) {
		t.Fatalf("second batch error = %#v, want a *HoldError until %v and no *Error", err, until)
	}
	want := "held by the exporter until " + until.UTC().Format(time.RFC3339) + " after an HTTP 429 from Partner Center; no request sent"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if got := srv.TotalBatchRequests(); got != 1 {
		t.Errorf("batch requests = %d, want 1", got)
	}
	if obs.throttled != 1 {
		t.Errorf("throttled = %d, want 1", obs.throttled)
	}
}

// TestSharedHoldOutlivesTheClient: a client built later with other
// settings but the same Hold sends nothing while the hold lasts.
func TestSharedHoldOutlivesTheClient(t *testing.T) {
	srv := newTestServer(t)
	srv.SetResponses(customerID, trackingID, smallBatch,
		partnercentertest.Response{Status: 429, Header: http.Header{"Retry-After": {"120"}}})
	srv.SetBatch(customerID, otherBatch, smallBatch)
	hold := &partnercenter.Hold{}
	first := newTestClient(t, srv, nil, func(cfg *partnercenter.ClientConfig) { cfg.Hold = hold })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := first.BatchStatus(ctx, customerID, trackingID)
	checkErr(t, err, "HTTP 429", 429)
	until := hold.Until()
	if until.IsZero() {
		t.Fatal("no hold after a 429 with Retry-After: 120")
	}

	second := newTestClient(t, srv, nil, func(cfg *partnercenter.ClientConfig) {
		cfg.Hold = hold
		cfg.RequestTimeout = 5 * time.Second
		cfg.MaxRetryAfter = time.Second // lowered: the hold in force keeps its end
	})
	if got := second.ThrottledUntil(); !got.Equal(until) {
		t.Errorf("the second client's ThrottledUntil = %v, want %v", got, until)
	}
	_, err = second.BatchStatus(ctx, customerID, otherBatch)
	var holdErr *partnercenter.HoldError
	if !errors.As(err, &holdErr) || !holdErr.Until.Equal(until) {
		t.Errorf("second client error = %v, want a *HoldError until %v", err, until)
	}
	if got := srv.TotalBatchRequests(); got != 1 {
		t.Errorf("batch requests = %d, want 1", got)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	srv := newTestServer(t)
	at := time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
	srv.SetResponses(customerID, trackingID, smallBatch,
		partnercentertest.Response{Status: 429, Header: http.Header{"Retry-After": {at}}}, partnercentertest.Response{})
	c := newTestClient(t, srv, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.BatchStatus(ctx, customerID, trackingID); err != nil {
		t.Fatal(err)
	}
	if got := srv.BatchRequests(customerID, trackingID); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

func TestResponseSizeCap(t *testing.T) {
	srv := newTestServer(t)
	big := smallBatch
	big.Devices = partnercentertest.GenerateDevices(2000, 1, nil)
	srv.SetBatch(customerID, trackingID, big)
	c := newTestClient(t, srv, nil, func(cfg *partnercenter.ClientConfig) { cfg.MaxResponseSize = 64 << 10 })
	_, err := c.BatchStatus(context.Background(), customerID, trackingID)
	want := "bad response: response body too large: Content-Length 438218 exceeds 65536 bytes"
	if !errors.Is(err, partnercenter.ErrResponseTooLarge) || err.Error() != want {
		t.Fatalf("error = %v, want ErrResponseTooLarge saying %q", err, want)
	}
	if got := srv.BatchRequests(customerID, trackingID); got != 1 {
		t.Errorf("requests = %d, want 1 (an oversized body is not retried)", got)
	}
}

// TestResponseSizeCapWhileStreaming covers a body sent without
// Content-Length, which is only found too large while it is decoded.
func TestResponseSizeCapWhileStreaming(t *testing.T) {
	body := partnercentertest.RenderJSON(partnercentertest.Batch{
		TrackingID: trackingID, Status: "finished",
		Devices: partnercentertest.GenerateDevices(2000, 1, nil),
	})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for chunk := range slices.Chunk(body, 4096) {
			_, _ = w.Write(chunk)
			w.(http.Flusher).Flush() // Chunked: no Content-Length.
		}
	}))
	defer api.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("opaque-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := partnercenter.NewClient(partnercenter.ClientConfig{
		BaseURL: api.URL, MaxResponseSize: 64 << 10,
		Tokens: auth.NewAccessTokenFileSource(tokenFile, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.BatchStatus(context.Background(), customerID, trackingID)
	// Which device the decoder was reading when the cap hit depends on how
	// the network split the body.
	want := regexp.MustCompile(`^bad response: decode batch: devicesStatus\[\d+\]: response body too large: more than 65536 bytes$`)
	if !errors.Is(err, partnercenter.ErrResponseTooLarge) || !want.MatchString(err.Error()) {
		t.Fatalf("error = %v, want ErrResponseTooLarge matching %s", err, want)
	}
}

func TestSlowResponseIsCancelledAtDeadline(t *testing.T) {
	srv := newTestServer(t)
	srv.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Latency: time.Minute})
	c := newTestClient(t, srv, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.BatchStatus(ctx, customerID, trackingID)
	if !errors.Is(err, context.DeadlineExceeded) || !partnercenter.Unavailable(err) {
		t.Fatalf("error = %v, want a deadline error that counts as unavailable", err)
	}
	if got := srv.BatchRequests(customerID, trackingID); got != 1 {
		t.Errorf("requests = %d, want 1 (no retry once the deadline passed)", got)
	}
}

func TestInvalidIDsSendNothing(t *testing.T) {
	srv := newTestServer(t)
	c := newTestClient(t, srv, nil, nil)
	tests := []struct{ customer, batch, want string }{
		{"../../etc", trackingID, `customer ID "../../etc" is not a GUID`},
		{customerID, "12ab", `batch tracking ID "12ab" is not a GUID`},
	}
	for _, tt := range tests {
		_, err := c.BatchStatus(context.Background(), tt.customer, tt.batch)
		if err == nil || err.Error() != tt.want {
			t.Errorf("error = %v, want %q", err, tt.want)
		}
	}
	if got := srv.TotalBatchRequests() + srv.TokenRequests(); got != 0 {
		t.Errorf("requests sent = %d, want 0", got)
	}
}

func TestNewClientRefusesPlainHTTPOffLoopback(t *testing.T) {
	tokens := auth.NewAccessTokenFileSource("/nonexistent", nil)
	tests := []struct {
		url     string
		wantErr string
	}{
		{"http://api.partnercenter.microsoft.com", `base URL "http://api.partnercenter.microsoft.com": must be https (plain http only on a loopback address)`},
		{"http://127.0.0.1:8080", ""},
		{"http://[::1]:8080", ""},
		{"http://localhost:8080", ""},
		{"http://LOCALHOST:1234", ""},
		{"http://localhost.:1234", ""},
		{"http://example.com", `base URL "http://example.com": must be https (plain http only on a loopback address)`},
		{"http://localhost.example.com", `base URL "http://localhost.example.com": must be https (plain http only on a loopback address)`},
		{"ftp://127.0.0.1", `base URL "ftp://127.0.0.1": must be https (plain http only on a loopback address)`},
		{"https://api.partnercenter.microsoft.com", ""},
	}
	for _, tt := range tests {
		_, err := partnercenter.NewClient(partnercenter.ClientConfig{BaseURL: tt.url, Tokens: tokens})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("%s: error = %q, want %q", tt.url, got, tt.wantErr)
		}
	}
}

func TestBatchURLEscapes(t *testing.T) {
	c, err := partnercenter.NewClient(partnercenter.ClientConfig{
		BaseURL: "https://partner.partnercenterapi.microsoftonline.cn/", APIVersion: "v1",
		Tokens: auth.NewAccessTokenFileSource("/nonexistent", nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://partner.partnercenterapi.microsoftonline.cn/v1/customers/a%2Fb/batchJobStatus/c%3Fd"
	if got := c.BatchURL("a/b", "c?d"); got != want {
		t.Errorf("BatchURL = %s, want %s", got, want)
	}
}

// TestRetryAfterHold checks the hold each Retry-After value gives. The
// deadline is shorter than any hold, so every call fails at once with the
// 429 and its hold, after one request.
func TestRetryAfterHold(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name, retryAfter string
		want             time.Duration
	}{
		{"missing", "", 5 * time.Second},
		{"unreadable", "soon", 5 * time.Second},
		{"seconds", "7", 7 * time.Second},
		{"zero", "0", time.Second},
		{"negative", "-30", time.Second},
		{"a day", "86400", 10 * time.Minute},
		{"beyond int64", "99999999999999999999", 10 * time.Minute},
		{"date in the past", now.Add(-time.Hour).UTC().Format(http.TimeFormat), time.Second},
		{"date far ahead", now.Add(48 * time.Hour).UTC().Format(http.TimeFormat), 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t)
			throttled := partnercentertest.Response{Status: 429}
			if tt.retryAfter != "" {
				throttled.Header = http.Header{"Retry-After": {tt.retryAfter}}
			}
			srv.SetResponses(customerID, trackingID, smallBatch, throttled)
			c := newTestClient(t, srv, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, err := c.BatchStatus(ctx, customerID, trackingID)
			var apiErr *partnercenter.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.RetryAfter != tt.want {
				t.Fatalf("error = %#v, want a 429 holding %s", err, tt.want)
			}
			if got := srv.BatchRequests(customerID, trackingID); got != 1 {
				t.Errorf("requests = %d, want 1", got)
			}
		})
	}
}

// TestMaxRetryAfterCapsTheHold: with the cap below the deadline, a
// Retry-After of a day is waited out for the cap only, and the read
// succeeds in the same call.
func TestMaxRetryAfterCapsTheHold(t *testing.T) {
	srv := newTestServer(t)
	srv.SetResponses(customerID, trackingID, smallBatch,
		partnercentertest.Response{Status: 429, Header: http.Header{"Retry-After": {"86400"}}}, partnercentertest.Response{})
	c := newTestClient(t, srv, nil, func(cfg *partnercenter.ClientConfig) { cfg.MaxRetryAfter = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.BatchStatus(ctx, customerID, trackingID); err != nil {
		t.Fatal(err)
	}
	if got := srv.BatchRequests(customerID, trackingID); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

func TestPlainHTTPAllowed(t *testing.T) {
	tests := map[string]bool{
		"https://api.partnercenter.microsoft.com": true,
		"https://example.com":                     true,
		"http://localhost":                        true,
		"http://LOCALHOST:1234":                   true,
		"http://LocalHost.:1234/x":                true,
		"http://127.0.0.1:80":                     true,
		"http://127.9.9.9":                        true,
		"http://[::1]:8080":                       true,
		"HTTP://localhost":                        true,
		"http://example.com":                      false,
		"http://localhost.example.com":            false,
		"http://10.0.0.1":                         false,
		"http://[::2]":                            false,
		"ftp://localhost":                         false,
		"localhost:8080":                          false,
	}
	for raw, want := range tests {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got := partnercenter.PlainHTTPAllowed(u); got != want {
			t.Errorf("PlainHTTPAllowed(%s) = %t, want %t", raw, got, want)
		}
	}
}

func TestUnavailable(t *testing.T) {
	apiErr := func(status int) error {
		return fmt.Errorf("read batch: %w", &partnercenter.Error{StatusCode: status})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"token endpoint refusal", fmt.Errorf("get token: %w", &partnercenter.TokenError{StatusCode: 400, Code: "invalid_client"}), true},
		{"token transport failure", errors.New("get token: token request: connection refused"), true},
		{"context expiry", fmt.Errorf("get token: waiting for token: %w", context.DeadlineExceeded), true},
		{"no response", apiErr(0), true},
		{"401", apiErr(401), true},
		{"500", apiErr(500), true},
		{"503", apiErr(503), true},
		{"200 not decodable", &partnercenter.Error{StatusCode: 200, Err: errors.New("decode batch: unexpected EOF")}, false},
		{"302", apiErr(302), false},
		{"307", apiErr(307), false},
		{"400", apiErr(400), false},
		{"403", apiErr(403), false},
		{"404", apiErr(404), false},
		{"429", apiErr(429), false},
		{"hold", fmt.Errorf("read batch: %w", &partnercenter.HoldError{Until: time.Now().Add(time.Minute)}), false},
	}
	for _, tt := range tests {
		if got := partnercenter.Unavailable(tt.err); got != tt.want {
			t.Errorf("%s: Unavailable(%v) = %t, want %t", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestResetMidBodyIsNoResponse: a connection that ends before the body
// Content-Length announced is a failed request (status 0, retried once),
// not a bad answer from a working service.
func TestResetMidBodyIsNoResponse(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "1000")
		// Returning after fewer bytes makes the server drop the connection.
		_, _ = io.WriteString(w, `{"batchTrackingId":"2f5a`)
	}))
	defer api.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("opaque-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := partnercenter.NewClient(partnercenter.ClientConfig{
		BaseURL: api.URL,
		Tokens:  auth.NewAccessTokenFileSource(tokenFile, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.BatchStatus(context.Background(), customerID, trackingID)
	var apiErr *partnercenter.Error
	want := "request failed: decode batch: batchTrackingId: unexpected EOF"
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 0 || err.Error() != want || !partnercenter.Unavailable(err) {
		t.Fatalf("error = %v, want an unavailable *Error with status 0 saying %q", err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 2 {
		t.Errorf("requests = %d, want 2 (a connection failure is retried once)", requests)
	}
}

// countingServer counts the requests it gets; it stands for whatever a
// redirect points to.
type countingServer struct {
	*httptest.Server
	mu sync.Mutex
	n  int
}

func newCountingServer(t *testing.T) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		http.Error(w, "should never be asked", http.StatusTeapot)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// newRedirectingServer answers every request with status and a Location
// on target that carries a query, which must never show in an error.
func newRedirectingServer(t *testing.T, status int, target string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, target+r.URL.Path+"?sig=hunter2", status)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestAPIRedirectIsNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			target := newCountingServer(t)
			origin, originRequests := newRedirectingServer(t, status, target.URL)
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte("opaque-token"), 0o600); err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Timeout: 10 * time.Second}
			c, err := partnercenter.NewClient(partnercenter.ClientConfig{
				BaseURL: origin.URL, HTTPClient: hc,
				Tokens: auth.NewAccessTokenFileSource(tokenFile, nil),
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.BatchStatus(context.Background(), customerID, trackingID)
			want := fmt.Sprintf("HTTP %d: redirect to %s not followed", status, target.Listener.Addr())
			var apiErr *partnercenter.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != status || err.Error() != want {
				t.Fatalf("error = %v, want an *Error saying %q", err, want)
			}
			if partnercenter.Unavailable(err) {
				t.Error("a redirect counts as the API being unavailable")
			}
			if got := target.count(); got != 0 {
				t.Errorf("redirect target got %d requests, want 0", got)
			}
			if got := originRequests.Load(); got != 1 {
				t.Errorf("origin got %d requests, want 1 (a redirect is not retried)", got)
			}
			if hc.CheckRedirect != nil {
				t.Error("NewClient changed the caller's http.Client")
			}
		})
	}
}
