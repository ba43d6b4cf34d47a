package waitcmd

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// TestFinished: a batch that is read as queued, processing (twice) and
// finished exits 0 after four reads, with one line per change on a pipe.
func TestFinished(t *testing.T) {
	srv := fake(t)
	script(srv,
		batch("queued"),
		batch("processing", devices("finished", 1), devices("processing", 2)),
		batch("processing", devices("finished", 1), devices("processing", 2)),
		batch("finished", devices("finished", 3)))
	r := runWait(t, testOptions(writeConfig(t, srv, "")))
	check(t, "exit status", r.code, ExitFinished)
	check(t, "stderr", r.stderr, ""+
		"[0s] queued, no devices yet\n"+
		"[0s] processing, 3 devices: 2 processing, 1 finished\n"+
		"[0s] finished, 3 devices: 3 finished\n")
	check(t, "stdout", r.stdout, ""+
		"batch "+batchID+" of customer "+customer+"\n"+
		"status: finished\n"+
		"devices: 3 devices: 3 finished\n"+
		"elapsed: 0s\n"+
		"result: finished (exit status 0)\n")
	check(t, "reads", srv.BatchRequests(customer, batchID), 4)
	check(t, "token requests", srv.TokenRequests(), 1)
}

// TestFinishedWithErrors exits 1 and lists the error codes and the failed
// devices.
func TestFinishedWithErrors(t *testing.T) {
	srv := fake(t)
	script(srv, batch("finished_with_errors", devices("finished", 2),
		[]partnercentertest.Device{
			failing("5CG1234ABC", "1234567890123", "808"),
			failing("PF3XK2Q7", "", "806"),
			failing("5CG9999XYZ", "3210987654321", "808"),
		}))
	r := runWait(t, testOptions(writeConfig(t, srv, "")))
	check(t, "exit status", r.code, ExitFinishedWithErrors)
	check(t, "stdout", r.stdout, ""+
		"batch "+batchID+" of customer "+customer+"\n"+
		"status: finished_with_errors\n"+
		"devices: 5 devices: 2 finished, 3 finished_with_errors\n"+
		"error codes:\n"+
		"  CODE  DEVICES  DESCRIPTION\n"+
		"  808   2        ZtdDeviceAssignedToOtherTenant\n"+
		"  806   1        ZtdDeviceAlreadyAssigned\n"+
		"failed devices:\n"+
		"  SERIAL NUMBER  PRODUCT KEY    CODE  DESCRIPTION\n"+
		"  5CG1234ABC     1234567890123  808   ZtdDeviceAssignedToOtherTenant\n"+
		"  PF3XK2Q7       -              806   ZtdDeviceAlreadyAssigned\n"+
		"  5CG9999XYZ     3210987654321  808   ZtdDeviceAssignedToOtherTenant\n"+
		"elapsed: 0s\n"+
		"result: finished with errors: 3 devices failed (exit status 1)\n")
	check(t, "reads", srv.BatchRequests(customer, batchID), 1)
}

// TestIgnoreErrorCodes: 806 alone is success when ignored; 806 with 808
// is not; a batch that says finished_with_errors without any error code
// fails whatever is ignored.
func TestIgnoreErrorCodes(t *testing.T) {
	tests := []struct {
		name   string
		devs   []partnercentertest.Device
		ignore []string
		code   int
		result string
	}{
		{
			"806 ignored",
			[]partnercentertest.Device{failing("A1", "", "806"), failing("A2", "", "806")},
			[]string{"806"},
			ExitFinished, "result: finished; 2 devices with an ignored error code (exit status 0)\n",
		},
		{
			"806 not ignored",
			[]partnercentertest.Device{failing("A1", "", "806")},
			nil, ExitFinishedWithErrors, "result: finished with errors: 1 device failed (exit status 1)\n",
		},
		{
			"806 ignored, 808 not",
			[]partnercentertest.Device{failing("A1", "", "806"), failing("A2", "", "808")},
			[]string{"801,806", "812"},
			ExitFinishedWithErrors, "result: finished with errors: 1 device failed (exit status 1)\n",
		},
		{
			"no code",
			[]partnercentertest.Device{{SerialNumber: "A1", Status: "finished_with_errors"}},
			[]string{"806"},
			ExitFinishedWithErrors, "result: finished with errors: 1 device failed (exit status 1)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t)
			script(srv, batch("finished_with_errors", devices("finished", 1), tt.devs))
			opts := testOptions(writeConfig(t, srv, ""))
			opts.IgnoreErrorCodes = tt.ignore
			r := runWait(t, opts)
			check(t, "exit status", r.code, tt.code)
			lines := strings.SplitAfter(r.stdout, "\n")
			check(t, "result line", lines[len(lines)-2], tt.result)
			if tt.ignore != nil && tt.code == ExitFinished && !strings.Contains(r.stdout, "ZtdDeviceAlreadyAssigned (ignored)") {
				t.Errorf("the summary does not mark 806 ignored:\n%s", r.stdout)
			}
		})
	}
}

// TestTimeout: a batch that keeps processing ends at --timeout with exit
// status 2 and the last state.
func TestTimeout(t *testing.T) {
	srv := fake(t)
	script(srv, batch("processing", devices("processing", 2)))
	opts := testOptions(writeConfig(t, srv, ""))
	opts.Timeout = 200 * time.Millisecond
	r := runWait(t, opts)
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "stderr", r.stderr, "[0s] processing, 2 devices: 2 processing\n")
	check(t, "stdout", r.stdout, ""+
		"batch "+batchID+" of customer "+customer+"\n"+
		"status: processing\n"+
		"devices: 2 devices: 2 processing\n"+
		"elapsed: 0s\n"+
		"result: timed out (--timeout=200ms) before the batch finished (exit status 2)\n")
	if n := srv.BatchRequests(customer, batchID); n < 1 {
		t.Errorf("%d reads, want at least 1", n)
	}
}

// TestUnknownStatus: a status the exporter does not know ends the wait at
// once with exit status 2.
func TestUnknownStatus(t *testing.T) {
	srv := fake(t)
	script(srv, batch("Paused", devices("processing", 1)))
	r := runWait(t, testOptions(writeConfig(t, srv, "")))
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "stderr", r.stderr, "[0s] unknown (\"Paused\"), 1 device: 1 processing\n")
	check(t, "stdout", r.stdout, ""+
		"batch "+batchID+" of customer "+customer+"\n"+
		"status: unknown (Partner Center sent \"Paused\")\n"+
		"devices: 1 device: 1 processing\n"+
		"elapsed: 0s\n"+
		"result: the batch's status is unknown (exit status 2)\n")
	check(t, "reads", srv.BatchRequests(customer, batchID), 1)
}

// TestReadKeepsFailing: with --max-read-failures=3, three failed reads in
// a row end the wait with exit status 2. Each read is two requests: the
// client retries a 5xx once.
func TestReadKeepsFailing(t *testing.T) {
	srv := fake(t)
	srv.SetResponses(customer, batchID, partnercentertest.Batch{}, partnercentertest.Response{Status: http.StatusServiceUnavailable})
	opts := testOptions(writeConfig(t, srv, ""))
	opts.MaxReadFailures = 3
	r := runWait(t, opts)
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "reads", srv.BatchRequests(customer, batchID), 6)
	const failure = "HTTP 503, error code 503: Service Unavailable."
	check(t, "stderr", r.stderr, ""+
		"[0s] not read yet; read failed (1 of 3): "+failure+"\n"+
		"[0s] not read yet; read failed (2 of 3): "+failure+"\n"+
		"[0s] not read yet; read failed (3 of 3): "+failure+"\n")
	check(t, "stdout", r.stdout, ""+
		"batch "+batchID+" of customer "+customer+"\n"+
		"status: not read\n"+
		"elapsed: 0s\n"+
		"result: reads keep failing (3 in a row): "+failure+" (exit status 2)\n")
}

// TestFailedReadsRecover: failures that stop before the limit are
// forgotten once a read succeeds.
func TestFailedReadsRecover(t *testing.T) {
	srv := fake(t)
	done := batch("finished", devices("finished", 1))
	srv.SetResponses(customer, batchID, done,
		partnercentertest.Response{Status: http.StatusBadGateway}, partnercentertest.Response{Status: http.StatusBadGateway},
		partnercentertest.Response{Status: http.StatusNotFound},
		partnercentertest.Response{})
	opts := testOptions(writeConfig(t, srv, ""))
	opts.MaxReadFailures = 3
	r := runWait(t, opts)
	// 502 twice is one read (retried once); the 404 is the second failed
	// read; then the batch.
	check(t, "exit status", r.code, ExitFinished)
	check(t, "reads", srv.BatchRequests(customer, batchID), 4)
	check(t, "stderr", r.stderr, ""+
		"[0s] not read yet; read failed (1 of 3): HTTP 502, error code 502: Bad Gateway.\n"+
		"[0s] not read yet; read failed (2 of 3): HTTP 404, error code 404: Not Found.\n"+
		"[0s] finished, 1 device: 1 finished\n")
}

// TestPermanentFailure: a 403 (no permission for the customer) is not
// read again.
func TestPermanentFailure(t *testing.T) {
	srv := fake(t)
	srv.SetResponses(customer, batchID, partnercentertest.Batch{}, partnercentertest.Response{Status: http.StatusForbidden})
	r := runWait(t, testOptions(writeConfig(t, srv, "")))
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "reads", srv.BatchRequests(customer, batchID), 1)
	if !strings.Contains(r.stdout, "elapsed: 0s\n"+
		"result: reads keep failing (1 in a row): HTTP 403") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

// TestThrottled: a 429 whose Retry-After outlasts the read's bound is
// waited out by the command, not read through: with a 5 ms interval and a
// 300 ms timeout, one request is sent, and the timeout is reported.
func TestThrottled(t *testing.T) {
	srv := fake(t)
	srv.SetResponses(customer, batchID, batch("finished"),
		partnercentertest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"30"}}},
		partnercentertest.Response{})
	opts := testOptions(writeConfig(t, srv, ""))
	opts.Timeout = 300 * time.Millisecond
	r := runWait(t, opts)
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "reads", srv.BatchRequests(customer, batchID), 1)
	if !strings.HasPrefix(r.stderr, "[0s] not read yet; throttled by Partner Center (HTTP 429) until ") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, "elapsed: 0s\n"+
		"result: timed out (--timeout=300ms)") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

// TestSignals: SIGINT ends the wait at once with 130 and the summary so
// far; SIGTERM with 143.
func TestSignals(t *testing.T) {
	for _, tt := range []struct {
		sig  os.Signal
		code int
	}{{os.Interrupt, ExitInterrupted}, {syscall.SIGTERM, ExitTerminated}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			srv := fake(t)
			script(srv, batch("processing", devices("processing", 1)))
			opts := testOptions(writeConfig(t, srv, ""))
			opts.Interval = time.Hour // Only a signal can end the wait early.
			sigs := make(chan os.Signal, 1)
			stderr := &syncBuffer{}
			go func() {
				// Once the read is shown, the command pauses for an hour.
				for i := 0; i < 2000 && !strings.Contains(stderr.String(), "processing"); i++ {
					time.Sleep(5 * time.Millisecond)
				}
				sigs <- tt.sig
			}()
			r := runWaitTo(t, opts, sigs, stderr)
			check(t, "exit status", r.code, tt.code)
			check(t, "stdout", r.stdout, ""+
				"batch "+batchID+" of customer "+customer+"\n"+
				"status: processing\n"+
				"devices: 1 device: 1 processing\n"+
				"elapsed: 0s\n"+
				"result: interrupted before the batch finished (exit status "+itoa(tt.code)+")\n")
			check(t, "reads", srv.BatchRequests(customer, batchID), 1)
		})
	}
}

// TestSignalDuringARead: a signal ends a read still waiting for its
// answer.
func TestSignalDuringARead(t *testing.T) {
	srv := fake(t)
	srv.SetResponses(customer, batchID, batch("finished"), partnercentertest.Response{Latency: time.Minute})
	opts := testOptions(writeConfig(t, srv, ""))
	sigs := make(chan os.Signal, 1)
	go func() {
		for i := 0; i < 2000 && srv.BatchRequests(customer, batchID) == 0; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		sigs <- os.Interrupt
	}()
	r := runWaitWith(t, opts, sigs)
	check(t, "exit status", r.code, ExitInterrupted)
	check(t, "stdout", r.stdout, ""+
		"batch "+batchID+" of customer "+customer+"\n"+
		"status: not read\n"+
		"elapsed: 0s\n"+
		"result: interrupted before the batch finished (exit status 130)\n")
	testkit.WaitFor(t, func() bool { return srv.AbortedRequests() == 1 })
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestCredentialFileMissing: a client secret file that cannot be read is
// a configuration error, found before any request.
func TestCredentialFileMissing(t *testing.T) {
	srv := fake(t)
	script(srv, batch("finished"))
	cfg := writeConfig(t, srv, "")
	if err := os.Remove(filepath.Join(filepath.Dir(cfg), "client_secret")); err != nil {
		t.Fatal(err)
	}
	r := runWait(t, testOptions(cfg))
	check(t, "exit status", r.code, ExitUsage)
	check(t, "requests", len(srv.Requests()), 0)
	check(t, "stdout", r.stdout, "")
	if !strings.Contains(r.stderr, "auth.client_secret_file: cannot read") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestFailedDevicesNotKept: the table says how many failed devices
// max_failed_devices_per_batch left out, and the exit status still counts
// them by error code.
func TestFailedDevicesNotKept(t *testing.T) {
	srv := fake(t)
	script(srv, batch("finished_with_errors", []partnercentertest.Device{
		failing("A1", "", "806"), failing("A2", "", "808"), failing("A3", "", "808"),
	}))
	cfg := writeConfig(t, srv, "")
	if err := os.WriteFile(cfg, append(mustRead(t, cfg), "max_failed_devices_per_batch: 1\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(cfg)
	opts.IgnoreErrorCodes = []string{"806"}
	r := runWait(t, opts)
	check(t, "exit status", r.code, ExitFinishedWithErrors)
	if !strings.Contains(r.stdout, "  A1             -            806   ZtdDeviceAlreadyAssigned (ignored)\n  and 2 more, not kept (max_failed_devices_per_batch)\n") ||
		!strings.Contains(r.stdout, "result: finished with errors: 2 devices failed (exit status 1)\n") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCredentialsRefused: a token endpoint that refuses the credentials
// ends the wait at once: one token request, no read.
func TestCredentialsRefused(t *testing.T) {
	srv := fake(t)
	script(srv, batch("finished"))
	srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
	r := runWait(t, testOptions(writeConfig(t, srv, "")))
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "token requests", srv.TokenRequests(), 1)
	check(t, "reads", srv.BatchRequests(customer, batchID), 0)
	if !strings.Contains(r.stdout, "result: reads keep failing (1 in a row): get token: token endpoint answered 401 invalid_client") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

// TestStatusUnknownAsSent: the service's own "unknown" is not repeated.
func TestStatusUnknownAsSent(t *testing.T) {
	srv := fake(t)
	script(srv, batch("Unknown"))
	r := runWait(t, testOptions(writeConfig(t, srv, "")))
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "stderr", r.stderr, "[0s] unknown, no devices yet\n")
}
