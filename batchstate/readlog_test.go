package batchstate

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/auth"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

const (
	logTestCustomer = "c0000000-0000-4000-8000-000000000001"
	logTestBatch    = "b0000000-0000-4000-8000-000000000001"
)

// logTestClient is a real client of srv with its own 429 hold.
func logTestClient(t *testing.T, srv *partnercentertest.Server) *partnercenter.Client {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	tokens := auth.NewClientCredentialsSource(auth.ClientCredentials{
		TokenURL: srv.TokenURL(), ClientID: partnercentertest.DefaultClientID, Resource: "https://api.partnercenter.microsoft.com",
		ClientSecret: func() string { return partnercentertest.DefaultClientSecret },
	}, hc, nil)
	c, err := partnercenter.NewClient(partnercenter.ClientConfig{BaseURL: srv.URL, HTTPClient: hc, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logTestRead reads the batch once, within a second, and returns the error.
func logTestRead(t *testing.T, c *partnercenter.Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.BatchStatus(ctx, logTestCustomer, logTestBatch)
	if err == nil {
		t.Fatal("read succeeded, want a failure")
	}
	return err
}

// TestFailureLoggedOnceUntilItChanges feeds logOutcome the errors of real
// reads, one after the other, and counts the warnings.
func TestFailureLoggedOnceUntilItChanges(t *testing.T) {
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	logger := log.NewLogfmtLogger(&logs)
	var prev BatchState
	// read logs the outcome of one read and returns how many warnings that
	// added.
	read := func(err error) int {
		before := strings.Count(logs.String(), "level=warn")
		logOutcome(logger, prev, nil, err)
		prev.LastError = err
		return strings.Count(logs.String(), "level=warn") - before
	}
	script := func(rs ...partnercentertest.Response) {
		srv.SetResponses(logTestCustomer, logTestBatch, partnercentertest.Batch{TrackingID: logTestBatch, Status: "processing"}, rs...)
	}
	body := partnercentertest.RenderJSON(partnercentertest.Batch{TrackingID: logTestBatch, Status: "processing"})
	c := logTestClient(t, srv)

	// A connection reset names the local port, new on every connection:
	// the first read is logged, the repeats are not.
	script(partnercentertest.Response{Body: body, Fault: partnercentertest.FaultReset})
	var texts []string
	for i := range 4 {
		err := logTestRead(t, c)
		texts = append(texts, err.Error())
		want := 0
		if i == 0 {
			want = 1
		}
		if got := read(err); got != want {
			t.Errorf("reset read %d logged %d warnings, want %d: %v", i+1, got, want, err)
		}
	}
	t.Logf("the reset errors read %q", texts)

	// Throttled: a 429, then the hold it set, then another client's 429
	// and hold are one kind, logged once, as the first change of kind.
	script(partnercentertest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"120"}}})
	throttled := 0
	for _, client := range []*partnercenter.Client{c, logTestClient(t, srv)} {
		for range 2 {
			throttled += read(logTestRead(t, client))
		}
	}
	if throttled != 1 {
		t.Errorf("429 and hold alternating logged %d warnings, want 1:\n%s", throttled, logs.String())
	}

	// Each new kind is logged again: a 500, a 404, a reset again.
	other := logTestClient(t, srv) // not held
	for _, step := range []struct {
		name string
		resp partnercentertest.Response
	}{
		{"HTTP 500", partnercentertest.Response{Status: http.StatusInternalServerError}},
		{"HTTP 404", partnercentertest.Response{Status: http.StatusNotFound}},
		{"reset", partnercentertest.Response{Body: body, Fault: partnercentertest.FaultReset}},
	} {
		script(step.resp)
		if got := read(logTestRead(t, other)); got != 1 {
			t.Errorf("%s after another kind logged %d warnings, want 1", step.name, got)
		}
		if got := read(logTestRead(t, other)); got != 0 {
			t.Errorf("%s again logged %d warnings, want 0", step.name, got)
		}
	}
}

func TestFailureSignature(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"429", &partnercenter.Error{StatusCode: 429, RequestID: "r1"}, "throttled"},
		{"hold", &partnercenter.HoldError{Until: time.Unix(1e9, 0)}, "throttled"},
		{"500 with code", &partnercenter.Error{StatusCode: 500, Code: "3000", RequestID: "r2"}, "http 500 code 3000"},
		{"no answer", &partnercenter.Error{Err: context.DeadlineExceeded, RequestID: "r3"}, "no answer: timeout"},
		{"undecodable", &partnercenter.Error{StatusCode: 200, Err: errors.New("decode batch: devices: offset 12")}, "bad response"},
		{"too large", &partnercenter.Error{StatusCode: 200, Err: partnercenter.ErrResponseTooLarge}, "bad response: too large"},
		{"token refused", &partnercenter.TokenError{StatusCode: 401, Code: "invalid_client", Description: "AADSTS7000215"}, "token endpoint 401 invalid_client"},
		{"scrape over", context.Canceled, "local: canceled"},
	}
	for _, tt := range tests {
		if got := failureSignature(tt.err); got != tt.want {
			t.Errorf("%s: failureSignature(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
}
