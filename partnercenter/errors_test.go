package partnercenter_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// transportErr is the Err of the *Error a read ended with.
func transportErr(t *testing.T, err error) error {
	t.Helper()
	var apiErr *partnercenter.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 0 {
		t.Fatalf("read failed with %v, want an *Error without a status", err)
	}
	return apiErr.Err
}

// TestTransportFailure classifies failures the client really gets.
func TestTransportFailure(t *testing.T) {
	srv := newTestServer(t)
	whole := partnercentertest.RenderJSON(smallBatch)
	read := func(t *testing.T, c *partnercenter.Client, resp partnercentertest.Response, within time.Duration) error {
		t.Helper()
		srv.SetResponses(customerID, trackingID, smallBatch, resp)
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		_, err := c.BatchStatus(ctx, customerID, trackingID)
		return transportErr(t, err)
	}
	c := newTestClient(t, srv, nil, nil)

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	refused := newTestClient(t, srv, nil, func(cfg *partnercenter.ClientConfig) { cfg.BaseURL = closedURL })

	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(untrusted.Close)
	distrusting := newTestClient(t, srv, nil, func(cfg *partnercenter.ClientConfig) {
		cfg.BaseURL = untrusted.URL
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
	})

	tests := []struct {
		name string
		err  func(t *testing.T) error
		want string
	}{
		{"reset mid-body", func(t *testing.T) error {
			return read(t, c, partnercentertest.Response{Body: whole, Fault: partnercentertest.FaultReset}, 5*time.Second)
		}, partnercenter.FailureConnectionReset},
		{"truncated body", func(t *testing.T) error {
			return read(t, c, partnercentertest.Response{Body: whole, Fault: partnercentertest.FaultTruncate}, 5*time.Second)
		}, partnercenter.FailureEOF},
		{"stalled body", func(t *testing.T) error {
			return read(t, c, partnercentertest.Response{Body: whole, Fault: partnercentertest.FaultStall}, 300*time.Millisecond)
		}, partnercenter.FailureTimeout},
		{"connection refused", func(t *testing.T) error {
			return read(t, refused, partnercentertest.Response{}, 5*time.Second)
		}, partnercenter.FailureConnectionRefused},
		{"untrusted certificate", func(t *testing.T) error {
			return read(t, distrusting, partnercentertest.Response{}, 5*time.Second)
		}, partnercenter.FailureTLS},
		{"DNS", func(*testing.T) error {
			return fmt.Errorf("get: %w", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "api.example", IsNotFound: true}})
		}, partnercenter.FailureDNS},
		{"canceled", func(*testing.T) error { return fmt.Errorf("get: %w", context.Canceled) }, partnercenter.FailureCanceled},
		{"other", func(*testing.T) error { return errors.New("malformed HTTP response") }, partnercenter.FailureOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t)
			if got := partnercenter.TransportFailure(err); got != tt.want {
				t.Errorf("TransportFailure(%v) = %q, want %q", err, got, tt.want)
			}
		})
	}
}
