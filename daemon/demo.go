package daemon

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// DemoDescription is what the landing page and the log say in demo mode.
const DemoDescription = "DEMO MODE: the data shown comes from a simulated Partner Center running inside this process, not from Microsoft."

const (
	// demoRefreshInterval re-reads unfinished batches often enough that the
	// short demo timeline shows every step.
	demoRefreshInterval = 15 * time.Second
	// demoStuckProgress is the share of devices a stuck batch has done.
	demoStuckProgress = 0.6
	// demoRetryAfter is what the throttled batch's 429 answers ask for.
	demoRetryAfter = "1"
	// demoTimeLayout is how the service writes times: no zone, 7 digits
	// of fraction at most.
	demoTimeLayout = "2006-01-02T15:04:05.9999999"
)

// demoBatch scripts one simulated batch. All times are relative to the
// start of the demo, so a test can play the script at any instant.
type demoBatch struct {
	customer   int
	trackingID string
	// submitted is when the batch was uploaded; negative for a batch that
	// was uploaded before the demo started.
	submitted time.Duration
	// queuedFor is how long it waits before processing starts.
	queuedFor time.Duration
	// processingFor is how long processing takes; stuck batches never end.
	processingFor time.Duration
	stuck         bool
	devices       int
	// failures maps an error code to how many devices fail with it.
	failures map[string]int
	// throttled answers every third request with 429 Too Many Requests.
	throttled bool
	// missing is a tracking ID the service does not know (404), as after
	// a typo in the configuration.
	missing bool
}

var demoCustomers = []struct{ id, name string }{
	{"6f1c2a8e-3b4d-4e5f-9a01-23456789abcd", "Contoso Ltd"},
	{"0b7e5d3c-1a2f-4c6d-8e9f-0a1b2c3d4e5f", "Fabrikam Inc"},
	{"d4c3b2a1-9f8e-4d7c-b6a5-4f3e2d1c0b9a", "Northwind Traders"},
}

// demoBatches is the scenario. Within eight minutes of the start every
// batch that can finish does:
//
//	-25h48m  Fabrikam 5e6f… starts; done at -25h, 18% of devices failed (807, 808)
//	-3h      Contoso 2f5a… starts; done cleanly 21 minutes later
//	-3h      Northwind 7c6b… starts and never finishes (stuck at 60%)
//	+0:20    Fabrikam 9b8a… starts; every third request to it gets a 429
//	+0:30    Contoso 8a1e… and c3d4… start
//	+3:00    Contoso 8a1e… done with errors (806, 808)
//	+3:20    Fabrikam 9b8a… done with errors (806)
//	+4:30    Contoso c3d4… done cleanly
//	+5:00    Northwind e1f2… leaves the queue; done cleanly at +8:00
//
// Fabrikam 1a2b… does not exist: it always answers 404.
var demoBatches = []demoBatch{
	{
		customer: 0, trackingID: "2f5a9c4e-7b1d-4a3f-8e6c-1d2b3a4c5e6f",
		submitted: -3*time.Hour - 4*time.Minute, queuedFor: 4 * time.Minute, processingFor: 21 * time.Minute, devices: 480,
	},
	{
		customer: 0, trackingID: "8a1e4b7c-2d5f-4e8a-9b3c-6d7e8f9a0b1c",
		queuedFor: 30 * time.Second, processingFor: 150 * time.Second, devices: 1200,
		failures: map[string]int{"806": 12, "808": 37},
	},
	{
		customer: 0, trackingID: "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
		submitted: -time.Minute, queuedFor: 90 * time.Second, processingFor: 4 * time.Minute, devices: 650,
	},
	{
		customer: 1, trackingID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
		submitted: -26 * time.Hour, queuedFor: 12 * time.Minute, processingFor: 48 * time.Minute, devices: 250,
		failures: map[string]int{"807": 3, "808": 41},
	},
	{
		customer: 1, trackingID: "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
		queuedFor: 20 * time.Second, processingFor: 3 * time.Minute, devices: 300,
		failures: map[string]int{"806": 5}, throttled: true,
	},
	{customer: 1, trackingID: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", missing: true},
	{
		customer: 2, trackingID: "7c6b5a4d-3e2f-4b1a-9c8d-7e6f5a4b3c2d",
		submitted: -3*time.Hour - 10*time.Minute, queuedFor: 10 * time.Minute, stuck: true, devices: 900,
	},
	{
		customer: 2, trackingID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
		queuedFor: 5 * time.Minute, processingFor: 3 * time.Minute, devices: 150,
	},
}

// demo is a running simulation: the fake Partner Center and the
// configuration that points the exporter at it.
type demo struct {
	server *partnercentertest.Server
	// start is the instant the scenario's times are relative to.
	start time.Time
	yaml  string
}

// newDemo starts the simulated Partner Center on a loopback port, on the
// given clock; tests pass a clock they move themselves to play the
// scenario at chosen instants.
func newDemo(logger log.Logger, clock func() time.Time) (*demo, error) {
	srv, err := partnercentertest.Start()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	srv.SetClock(clock)
	d := &demo{server: srv, start: clock(), yaml: demoConfigYAML(srv)}
	for i, b := range demoBatches {
		if b.missing {
			continue // The fake answers 404 for batches it does not know.
		}
		devices := partnercentertest.GenerateDevices(b.devices, int64(i+1), b.failures)
		srv.SetHandler(demoCustomers[b.customer].id, b.trackingID, d.batchHandler(b, devices))
	}
	level.Warn(logger).Log("msg", DemoDescription, "simulated_partner_center", srv.URL)
	level.Info(logger).Log("msg", "demo scenario: batches move from queued through processing to finished within 8 minutes; "+
		"one batch is throttled (429), one does not exist (404), one is stuck in processing",
		"customers", len(demoCustomers), "batches", len(demoBatches))
	return d, nil
}

// Close stops the simulated Partner Center.
func (d *demo) Close() { d.server.Close() }

// config is the demo's configuration loader; reloading it gives the same
// configuration, so reload behaves as in production.
func (d *demo) config() (*config.Config, error) {
	return config.Parse([]byte(d.yaml), "demo.yml", "")
}

func (d *demo) batchHandler(b demoBatch, devices []partnercentertest.Device) func(int, time.Time) (partnercentertest.Batch, partnercentertest.Response) {
	return func(call int, now time.Time) (partnercentertest.Batch, partnercentertest.Response) {
		return b.at(d.start, now, devices), b.response(call)
	}
}

// demoConfigYAML is the configuration a user would write for the
// simulated service: only its URLs and credentials are those of the fake.
func demoConfigYAML(srv *partnercentertest.Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, "partner_center:\n  base_url: %s\n  refresh_interval: %s\n", srv.URL, demoRefreshInterval)
	fmt.Fprintf(&b, "auth:\n  tenant_id: %s\n  client_id: %s\n  client_secret: %s\n  token_url: %s\n",
		partnercentertest.DefaultTenantID, partnercentertest.DefaultClientID,
		partnercentertest.DefaultClientSecret, srv.TokenURL())
	b.WriteString("customers:\n")
	for ci, c := range demoCustomers {
		fmt.Fprintf(&b, "  - id: %s\n    name: %s\n    batches:\n", c.id, c.name)
		for _, batch := range demoBatches {
			if batch.customer == ci {
				fmt.Fprintf(&b, "      - %s\n", batch.trackingID)
			}
		}
	}
	return b.String()
}

// startedAt is when processing starts.
func (b demoBatch) startedAt(start time.Time) time.Time {
	return start.Add(b.submitted + b.queuedFor)
}

// status is the batch status at now.
func (b demoBatch) status(start, now time.Time) string {
	started := b.startedAt(start)
	switch {
	case now.Before(started):
		return "queued"
	case b.stuck || now.Before(started.Add(b.processingFor)):
		return "processing"
	case len(b.failures) > 0:
		return "finished_with_errors"
	default:
		return "finished"
	}
}

// at is the batch as the service reports it at now. Devices not yet
// processed carry the batch's status; processed ones show their result.
func (b demoBatch) at(start, now time.Time, devices []partnercentertest.Device) partnercentertest.Batch {
	status := b.status(start, now)
	out := partnercentertest.Batch{TrackingID: b.trackingID, Status: status}
	started := b.startedAt(start)
	switch status {
	case "queued":
		out.Devices = withStatus(devices, 0, status)
	case "processing":
		out.StartedTime = serviceTime(started)
		out.Devices = withStatus(devices, int(b.progress(started, now)*float64(len(devices))), status)
	default:
		out.StartedTime = serviceTime(started)
		out.CompletedTime = serviceTime(started.Add(b.processingFor))
		out.Devices = devices
	}
	return out
}

// progress is the share of devices processed at now, for a batch that is
// processing.
func (b demoBatch) progress(started, now time.Time) float64 {
	if b.stuck {
		return demoStuckProgress
	}
	return float64(now.Sub(started)) / float64(b.processingFor)
}

// serviceTime formats t as the service does: UTC without a zone.
func serviceTime(t time.Time) string {
	return t.UTC().Format(demoTimeLayout)
}

// withStatus returns devices with the first done ones as generated (so
// their errors show) and the rest set to status without errors.
func withStatus(devices []partnercentertest.Device, done int, status string) []partnercentertest.Device {
	out := make([]partnercentertest.Device, len(devices))
	copy(out, devices)
	for i := done; i < len(out); i++ {
		out[i].Status, out[i].ErrorCode, out[i].ErrorDescription = status, "", ""
	}
	return out
}

// response is how the service answers the call-th request (counting from
// 0): a throttled batch gets a 429 with Retry-After on every third one, so
// the exporter's retry after the wait succeeds.
func (b demoBatch) response(call int) partnercentertest.Response {
	if b.throttled && call%3 == 2 {
		return partnercentertest.Response{
			Status: http.StatusTooManyRequests,
			Header: http.Header{"Retry-After": {demoRetryAfter}},
			Body: partnercentertest.ErrorBody(http.StatusTooManyRequests, "TooManyRequests",
				"Rate limit is exceeded. Try again in "+demoRetryAfter+" seconds.", true),
		}
	}
	return partnercentertest.Response{}
}
