package waitcmd

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// TestJSONOutput: --output=json prints the final state, exactly, on
// stdout; the progress stays on stderr.
func TestJSONOutput(t *testing.T) {
	srv := fake(t)
	script(srv, batch("processing", devices("processing", 3)), batch("finished_with_errors", devices("finished", 1),
		[]partnercentertest.Device{failing("5CG1234ABC", "1234567890123", "808"), failing("PF3XK2Q7", "", "806")}))
	opts := testOptions(writeConfig(t, srv, ""))
	opts.Output = "json"
	opts.IgnoreErrorCodes = []string{"806"}
	r := runWait(t, opts)
	check(t, "exit status", r.code, ExitFinishedWithErrors)
	check(t, "stderr", r.stderr, ""+
		"[0s] processing, 3 devices: 3 processing\n"+
		"[0s] finished_with_errors, 3 devices: 1 finished, 2 finished_with_errors\n")
	check(t, "stdout", r.stdout, `{
  "customer_id": "`+customer+`",
  "batch_tracking_id": "`+batchID+`",
  "result": "finished_with_errors",
  "exit_code": 1,
  "elapsed_seconds": 0,
  "status": "finished_with_errors",
  "started_time": "2026-12-01T09:00:00Z",
  "completed_time": "2026-12-01T09:30:00Z",
  "devices": {
    "queued": 0,
    "processing": 0,
    "finished": 1,
    "finished_with_errors": 2,
    "unknown": 0,
    "total": 3
  },
  "failed_device_count": 1,
  "ignored_device_count": 1,
  "ignored_error_codes": [
    "806"
  ],
  "errors": [
    {
      "error_code": "808",
      "description": "ZtdDeviceAssignedToOtherTenant",
      "devices": 1,
      "ignored": false
    },
    {
      "error_code": "806",
      "description": "ZtdDeviceAlreadyAssigned",
      "devices": 1,
      "ignored": true
    }
  ],
  "other_error_devices": 0,
  "failed_devices": [
    {
      "serial_number": "5CG1234ABC",
      "device_id": "",
      "product_key": "1234567890123",
      "status": "finished_with_errors",
      "error_code": "808",
      "error_description": "ZtdDeviceAssignedToOtherTenant",
      "ignored": false
    },
    {
      "serial_number": "PF3XK2Q7",
      "device_id": "",
      "product_key": "",
      "status": "finished_with_errors",
      "error_code": "806",
      "error_description": "ZtdDeviceAlreadyAssigned",
      "ignored": true
    }
  ],
  "failed_devices_omitted": 0,
  "last_error": null,
  "read_failures": 0
}
`)
}

// TestJSONOutputWithoutARead: a wait that never read the batch still
// prints valid JSON, its batch fields null.
func TestJSONOutputWithoutARead(t *testing.T) {
	srv := fake(t)
	srv.SetResponses(customer, batchID, batch("finished"), partnercentertest.Response{Status: 403})
	opts := testOptions(writeConfig(t, srv, ""))
	opts.Output = "json"
	r := runWait(t, opts)
	check(t, "exit status", r.code, ExitIncomplete)
	check(t, "stdout", r.stdout, `{
  "customer_id": "`+customer+`",
  "batch_tracking_id": "`+batchID+`",
  "result": "read_failed",
  "exit_code": 2,
  "elapsed_seconds": 0,
  "status": null,
  "started_time": null,
  "completed_time": null,
  "devices": null,
  "failed_device_count": 0,
  "ignored_device_count": 0,
  "ignored_error_codes": [],
  "errors": [],
  "other_error_devices": 0,
  "failed_devices": [],
  "failed_devices_omitted": 0,
  "last_error": "HTTP 403, error code 403: Forbidden.",
  "read_failures": 1
}
`)
}

// TestUsageErrors exit 3 before any request.
func TestUsageErrors(t *testing.T) {
	srv := fake(t)
	cfg := writeConfig(t, srv, "")
	tokenFile := writeToken(t, "intake-token")
	tests := []struct {
		name   string
		change func(*Options)
		stderr string
	}{
		{"no batch", func(o *Options) { o.Batch = nil }, `no batch given: pass the upload's Location, or "<customer GUID> <batch GUID>"`},
		{"three arguments", func(o *Options) { o.Batch = []string{customer, batchID, "x"} }, "3 arguments: expected the upload's Location, or a customer GUID and a batch GUID"},
		{"not a GUID", func(o *Options) { o.Batch = []string{customer, "12ab"} }, "batch: batch tracking ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"},
		{"http location", func(o *Options) {
			o.Batch = []string{"http://api.partnercenter.microsoft.com/v1/customers/" + customer + "/batchJobStatus/" + batchID}
		}, "batch: location URL is not https"},
		{"comment", func(o *Options) { o.Batch = []string{"#", batchID} }, "an empty argument where the batch was expected"},
		{"interval", func(o *Options) { o.Interval = 0 }, "--interval must be positive, not 0s"},
		{"timeout", func(o *Options) { o.Timeout = -time.Second }, "--timeout must be positive, not -1s"},
		{"max read failures", func(o *Options) { o.MaxReadFailures = 0 }, "--max-read-failures must be at least 1, not 0"},
		{"config file", func(o *Options) { o.ConfigFile = cfg + ".missing" }, "partnercenter.yml.missing"},
		{"register without token", func(o *Options) { o.Register = "https://exporter.example" }, "--register needs --register.token-file"},
		{"token without register", func(o *Options) { o.RegisterTokenFile = tokenFile }, "--register.token-file needs --register"},
		{
			"register in clear", func(o *Options) { o.Register, o.RegisterTokenFile = "http://exporter.example:10046", tokenFile },
			"--register http://exporter.example:10046: must be https, so that the token is not sent in clear (plain http only on a loopback address)",
		},
		{
			"register not a URL", func(o *Options) { o.Register, o.RegisterTokenFile = "exporter:10046", tokenFile },
			"--register: not an http or https URL with a host",
		},
		{"empty token file", func(o *Options) { o.Register, o.RegisterTokenFile = "https://exporter.example", writeToken(t, "\n") }, "is empty"},
		{"two tokens", func(o *Options) {
			o.Register, o.RegisterTokenFile = "https://exporter.example", writeToken(t, "a\nb\n")
		}, "holds more than one word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(cfg)
			tt.change(&opts)
			r := runWait(t, opts)
			check(t, "exit status", r.code, ExitUsage)
			if !strings.HasPrefix(r.stderr, "partnercenter_exporter wait: ") || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tt.stderr)
			}
			check(t, "stdout", r.stdout, "")
		})
	}
	check(t, "requests to Partner Center", len(srv.Requests()), 0)
}

// TestBatchArguments: every form a batch-file line takes names the batch.
func TestBatchArguments(t *testing.T) {
	for _, args := range [][]string{
		{"/customers/" + customer + "/batchJobStatus/" + batchID},
		{"/v1/customers/" + strings.ToUpper(customer) + "/batchJobStatus/" + batchID},
		{"https://api.partnercenter.microsoft.com/v1/customers/" + customer + "/batchJobStatus/" + batchID},
		{customer, batchID},
		{customer + "," + batchID},
		{customer + " " + batchID},
	} {
		b, err := parseBatchArgs(args)
		if err != nil || b.CustomerID != customer || b.TrackingID != batchID {
			t.Errorf("%q: %+v, %v", args, b, err)
		}
	}
}

// TestProgressLine: the live line is redrawn in place, cut to the
// terminal's width and blanks over a longer line before it; text from
// Partner Center loses its control characters.
func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, terminal: true, width: 30}
	p.update("processing, 12 devices: 12 processing", 5*time.Second)
	p.update("finished", 65*time.Second)
	p.redraw(66 * time.Second)
	p.finish()
	check(t, "output", buf.String(), ""+
		"\r[5s] processing, 12 devices: "+
		"\r[1m5s] finished"+strings.Repeat(" ", 14)+"\r[1m5s] finished"+
		"\r[1m6s] finished"+
		"\n")
	check(t, "clean", clean("a\x1b[31mb\r\nc\u0085"), "a?[31mb??c?")
}
