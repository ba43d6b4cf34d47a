package waitcmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// The shared fixture's credentials and a batch of it, under short names.
const (
	testSecret   = testkit.ClientSecret
	testClientID = testkit.ClientID
	customer     = testkit.Customer1
	batchID      = testkit.RunningID
)

// fake is a fake Partner Center with the test's credentials.
func fake(t *testing.T) *partnercentertest.Server {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetCredentials(testClientID, testSecret)
	return srv
}

// writeConfig writes a configuration for srv, with extra appended to its
// partner_center block, and returns its path.
func writeConfig(t *testing.T, srv *partnercentertest.Server, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "client_secret"), []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("partner_center:\n  base_url: %s\n%sauth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: %s\n  client_secret_file: client_secret\n  token_url: %s\n",
		srv.URL, extra, testClientID, srv.TokenURL())
	path := filepath.Join(dir, "partnercenter.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testOptions waits for the test batch with short intervals.
func testOptions(configFile string, args ...string) Options {
	if len(args) == 0 {
		args = []string{"/customers/" + customer + "/batchJobStatus/" + batchID}
	}
	return Options{
		ConfigFile: configFile, Batch: args, Timeout: 20 * time.Second, Interval: 5 * time.Millisecond,
		Output: "text", MaxReadFailures: DefaultMaxReadFailures,
	}
}

// fixedNow is the test clock: every elapsed time is 0s, so outputs are
// exact.
func fixedNow() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }

// syncBuffer collects output written from another goroutine.
type syncBuffer = testkit.SyncBuffer

type result struct {
	code           int
	stdout, stderr string
}

// runWait runs the command with output to buffers (not a terminal).
func runWait(t *testing.T, opts Options) result {
	t.Helper()
	return runWaitWith(t, opts, make(chan os.Signal, 1))
}

func runWaitWith(t *testing.T, opts Options, sigs chan os.Signal) result {
	t.Helper()
	return runWaitTo(t, opts, sigs, &syncBuffer{})
}

// runWaitTo is runWaitWith writing stderr to a buffer the test can watch.
func runWaitTo(t *testing.T, opts Options, sigs chan os.Signal, stderr *syncBuffer) result {
	t.Helper()
	var stdout syncBuffer
	code := run(context.Background(), opts, env{
		stdout: &stdout, stderr: stderr, sigs: sigs, now: fixedNow, registerPause: time.Millisecond,
	})
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, testSecret) {
			t.Errorf("the output contains the client secret:\n%s", out)
		}
	}
	return r
}

// script answers the n-th read of the test batch with batches[n], the last
// one repeating.
func script(srv *partnercentertest.Server, batches ...partnercentertest.Batch) {
	srv.SetHandler(customer, batchID, func(call int, _ time.Time) (partnercentertest.Batch, partnercentertest.Response) {
		return batches[min(call, len(batches)-1)], partnercentertest.Response{}
	})
}

func devices(status string, n int) []partnercentertest.Device {
	out := make([]partnercentertest.Device, n)
	for i := range out {
		out[i] = partnercentertest.Device{SerialNumber: fmt.Sprintf("SN%03d", i), ProductKey: fmt.Sprintf("PK%03d", i), Status: status}
	}
	return out
}

func failing(serial, key, code string) partnercentertest.Device {
	return partnercentertest.Device{
		SerialNumber: serial, ProductKey: key, Status: "finished_with_errors",
		ErrorCode: code, ErrorDescription: partnercentertest.ErrorName(code),
	}
}

func batch(status string, devs ...[]partnercentertest.Device) partnercentertest.Batch {
	b := partnercentertest.Batch{TrackingID: batchID, Status: status, StartedTime: "2026-12-01T09:00:00Z"}
	if status == "finished" || status == "finished_with_errors" {
		b.CompletedTime = "2026-12-01T09:30:00Z"
	}
	for _, d := range devs {
		b.Devices = append(b.Devices, d...)
	}
	return b
}

func check(t *testing.T, name string, got, want any) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %#v\nwant %#v", name, got, want)
	}
}

func writeToken(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
