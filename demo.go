package main

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

const demoDescription = "DEMO MODE: the data shown comes from a simulated Partner Center running inside this process, not from Microsoft."

// demoBatch scripts one simulated batch: how long it waits in the queue,
// how long it processes, how many devices it has and which fail.
type demoBatch struct {
	customer   int
	trackingID string
	queued     time.Duration
	processing time.Duration
	devices    int
	failures   map[string]int
	// startedAgo moves the start into the past, for a batch that has been
	// stuck for hours when the demo starts.
	startedAgo time.Duration
	// never finishes when true.
	stuck bool
	// throttled answers every third request with 429.
	throttled bool
	// missing answers 404, like a mistyped tracking ID.
	missing bool
}

var demoCustomers = []struct{ id, name string }{
	{"6f1c2a8e-3b4d-4e5f-9a01-23456789abcd", "Contoso Ltd"},
	{"0b7e5d3c-1a2f-4c6d-8e9f-0a1b2c3d4e5f", "Fabrikam Inc"},
	{"d4c3b2a1-9f8e-4d7c-b6a5-4f3e2d1c0b9a", "Northwind Traders"},
}

var demoBatches = []demoBatch{
	{customer: 0, trackingID: "2f5a9c4e-7b1d-4a3f-8e6c-1d2b3a4c5e6f", devices: 480},
	{customer: 0, trackingID: "8a1e4b7c-2d5f-4e8a-9b3c-6d7e8f9a0b1c", queued: 30 * time.Second, processing: 2 * time.Minute,
		devices: 1200, failures: map[string]int{"806": 12, "808": 37}},
	{customer: 0, trackingID: "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f", queued: 90 * time.Second, processing: 4 * time.Minute, devices: 650},
	{customer: 1, trackingID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", devices: 250, failures: map[string]int{"808": 41, "807": 3}},
	{customer: 1, trackingID: "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", queued: 20 * time.Second, processing: 3 * time.Minute,
		devices: 300, failures: map[string]int{"806": 5}, throttled: true},
	{customer: 1, trackingID: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", missing: true},
	{customer: 2, trackingID: "7c6b5a4d-3e2f-4b1a-9c8d-7e6f5a4b3c2d", startedAgo: 3 * time.Hour, devices: 900, stuck: true},
}

// demo is a running simulation: the fake Partner Center and the
// configuration that points the exporter at it.
type demo struct {
	server *partnercentertest.Server
	yaml   string
}

// startDemo starts the simulated Partner Center on a loopback port.
func startDemo(logger log.Logger) (*demo, error) {
	srv := partnercentertest.NewServer()
	start := time.Now()
	for i, b := range demoBatches {
		if b.missing {
			continue // The fake answers 404 for batches it does not know.
		}
		b := b
		devices := partnercentertest.GenerateDevices(b.devices, int64(i+1), b.failures)
		srv.SetHandler(demoCustomers[b.customer].id, b.trackingID, func(call int, now time.Time) (partnercentertest.Batch, partnercentertest.Response) {
			return b.at(now.Sub(start), now, devices), b.response(call)
		})
	}
	d := &demo{server: srv, yaml: demoConfigYAML(srv)}
	level.Warn(logger).Log("msg", demoDescription, "simulated_partner_center", srv.URL)
	return d, nil
}

func (d *demo) Close() { d.server.Close() }

// config is the demo's configuration loader; reloading it gives the same
// configuration, so reload behaves as in production.
func (d *demo) config() (*config.Config, error) {
	return config.Parse([]byte(d.yaml), "demo.yml", "")
}

func demoConfigYAML(srv *partnercentertest.Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, "partner_center:\n  base_url: %s\n  refresh_interval: 15s\n", srv.URL)
	fmt.Fprintf(&b, "auth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: %s\n  client_secret: %s\n  token_url: %s\n",
		partnercentertest.DefaultClientID, partnercentertest.DefaultClientSecret, srv.TokenURL())
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

// at is the batch as the service reports it elapsed after the demo began.
func (b demoBatch) at(elapsed time.Duration, now time.Time, devices []partnercentertest.Device) partnercentertest.Batch {
	out := partnercentertest.Batch{TrackingID: b.trackingID, Status: "queued"}
	started := now.Add(-elapsed).Add(b.queued).Add(-b.startedAgo)
	if now.Before(started) {
		out.Devices = withStatus(devices, 0, "queued")
		return out
	}
	out.StartedTime = started.UTC().Format("2006-01-02T15:04:05.9999999")
	running := now.Sub(started)
	if b.stuck || running < b.processing {
		progress := 0.6
		if !b.stuck {
			progress = float64(running) / float64(b.processing)
		}
		out.Status = "processing"
		out.Devices = withStatus(devices, int(progress*float64(len(devices))), "processing")
		return out
	}
	out.CompletedTime = started.Add(b.processing).UTC().Format("2006-01-02T15:04:05.9999999")
	out.Status = "finished"
	if len(b.failures) > 0 {
		out.Status = "finished_with_errors"
	}
	out.Devices = devices
	return out
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

func (b demoBatch) response(call int) partnercentertest.Response {
	if b.throttled && call%3 == 2 {
		return partnercentertest.Response{
			Status: http.StatusTooManyRequests,
			Header: http.Header{"Retry-After": []string{"2"}},
			Body:   []byte(`{"code":429,"description":"Rate limit is exceeded. Try again in 2 seconds."}`),
		}
	}
	return partnercentertest.Response{}
}
