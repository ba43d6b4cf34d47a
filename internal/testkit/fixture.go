package testkit

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// The fixture's credentials, customers and batches: one batch of each
// kind the exporter must cope with.
const (
	ClientSecret = "s3cr3t-client-value-that-must-not-leak"
	ClientID     = "0a1b2c3d-0000-4000-8000-00000000c11e"
	Customer1    = "6f1c2a8e-3b4d-4e5f-9a01-23456789abcd"
	Customer2    = "0b7e5d3c-1a2f-4c6d-8e9f-0a1b2c3d4e5f"
	FinishedID   = "10000000-0000-4000-8000-000000000001"
	RunningID    = "20000000-0000-4000-8000-000000000002"
	SlowID       = "30000000-0000-4000-8000-000000000003"
	ThrottledID  = "40000000-0000-4000-8000-000000000004"
	MissingID    = "50000000-0000-4000-8000-000000000005"
	BrokenID     = "60000000-0000-4000-8000-000000000006"
)

// FakeWithBatches is a simulated Partner Center with one batch of each
// kind the exporter must cope with.
func FakeWithBatches(t *testing.T) *partnercentertest.Server {
	t.Helper()
	return FakeWithSlowStart(t, 0)
}

// FakeWithSlowStart is FakeWithBatches where the first answer for every
// batch takes at least firstLatency, so that a test can be sure reads
// are still in flight when it starts a second scrape.
func FakeWithSlowStart(t *testing.T, firstLatency time.Duration) *partnercentertest.Server {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetCredentials(ClientID, ClientSecret)
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
	script(Customer1, FinishedID, partnercentertest.Batch{
		TrackingID: FinishedID, Status: "finished_with_errors",
		StartedTime: "2026-11-25T10:00:00.123", CompletedTime: "2026-11-25T10:30:00.123", Devices: devices,
	}, ok)
	script(Customer1, RunningID, partnercentertest.Batch{
		TrackingID: RunningID, Status: "InProgress",
		StartedTime: "2026-11-25T11:00:00Z", Devices: []partnercentertest.Device{{SerialNumber: "X1", Status: "processing"}},
	}, ok)
	script(Customer1, SlowID, partnercentertest.Batch{TrackingID: SlowID, Status: "queued"},
		partnercentertest.Response{Latency: time.Minute})
	// Throttled once, for less than the scrape deadline: the exporter
	// waits and reads it in the same scrape.
	script(Customer2, ThrottledID, partnercentertest.Batch{TrackingID: ThrottledID, Status: "queued"},
		partnercentertest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}}, ok)
	script(Customer2, MissingID, partnercentertest.Batch{TrackingID: MissingID},
		partnercentertest.Response{Status: http.StatusNotFound})
	script(Customer2, BrokenID, partnercentertest.Batch{TrackingID: BrokenID},
		partnercentertest.Response{Status: http.StatusInternalServerError})
	return srv
}

// WriteConfig writes a configuration for srv listing batches by customer
// to dir/partnercenter.yml, with the client secret in a file beside it,
// and returns its path.
func WriteConfig(t *testing.T, dir string, srv *partnercentertest.Server, batches map[string][]string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "client_secret"), []byte(ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "partner_center:\n  base_url: %s\n  refresh_interval: 0s\n", srv.URL)
	fmt.Fprintf(&b, "auth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: %s\n  client_secret_file: client_secret\n  token_url: %s\n",
		ClientID, srv.TokenURL())
	b.WriteString("customers:\n")
	for _, c := range []string{Customer1, Customer2} {
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

// SetConfig replaces old with new in the configuration file at path.
func SetConfig(t *testing.T, path, old, new string) {
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
