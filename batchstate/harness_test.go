package batchstate

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/fakesource"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

const (
	custA  = "aaaaaaaa-0000-4000-8000-000000000001"
	custB  = "bbbbbbbb-0000-4000-8000-000000000002"
	batch1 = "11111111-1111-4111-8111-111111111111"
	batch2 = "22222222-2222-4222-8222-222222222222"
	batch3 = "33333333-3333-4333-8333-333333333333"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testConfig(refresh time.Duration, customers ...config.Customer) *config.Config {
	cfg := &config.Config{Customers: customers}
	cfg.PartnerCenter.RefreshInterval = refresh
	return cfg
}

type harness struct {
	cfg    *config.Config
	src    *fakesource.Source
	store  *Store
	reader *Reader
	clock  *testkit.Clock
	logs   *bytes.Buffer
	logsMu *sync.Mutex
}

func newHarness(cfg *config.Config) *harness {
	h := &harness{cfg: cfg, src: fakesource.New(), clock: testkit.NewClock(t0), logs: &bytes.Buffer{}, logsMu: &sync.Mutex{}}
	h.store = NewStore()
	h.store.SetMembers(targetsOf(cfg), t0)
	logger := level.NewFilter(log.NewLogfmtLogger(log.NewSyncWriter(lockedWriter{h.logs, h.logsMu})), level.AllowInfo())
	h.reader = NewReader(h.store, logger, 4)
	h.reader.now = h.clock.Now
	return h
}

// read runs one round of reads as a scrape would, with the configured
// refresh interval.
func (h *harness) read(ctx context.Context) []Result {
	return h.reader.Read(ctx, h.src, targetsOf(h.cfg), h.policy())
}

func (h *harness) policy() ReadPolicy {
	return ReadPolicy{Refresh: h.cfg.PartnerCenter.RefreshInterval, Timeout: 5 * time.Second}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (h *harness) logText() string {
	h.logsMu.Lock()
	defer h.logsMu.Unlock()
	return h.logs.String()
}

func finishedWithErrors() *partnercenter.Batch {
	b := &partnercenter.Batch{
		TrackingID:    batch1,
		Status:        partnercenter.StatusFinishedWithErrors,
		RawStatus:     "finished_with_errors",
		StartedTime:   t0.Add(-2 * time.Hour),
		CompletedTime: t0.Add(-90 * time.Minute),
		Errors: []partnercenter.ErrorCount{
			{Code: "806", Description: "ZtdDeviceAlreadyAssigned", Devices: 2},
			{Code: "808", Description: "ZtdDeviceAssignedToOtherTenant", Devices: 5},
		},
	}
	b.Devices[partnercenter.StatusFinished] = 93
	b.Devices[partnercenter.StatusFinishedWithErrors] = 7
	return b
}

func processing() *partnercenter.Batch {
	b := &partnercenter.Batch{
		TrackingID:  batch2,
		Status:      partnercenter.StatusProcessing,
		RawStatus:   "processing",
		StartedTime: t0.Add(-10 * time.Minute),
	}
	b.Devices[partnercenter.StatusProcessing] = 40
	b.Devices[partnercenter.StatusQueued] = 10
	return b
}

// targetsOf lists the batches of cfg in file order, as the daemon does.
func targetsOf(cfg *config.Config) []Target {
	var targets []Target
	for _, c := range cfg.Customers {
		for _, b := range c.Batches {
			targets = append(targets, Target{CustomerID: c.ID, CustomerName: c.Name, TrackingID: b})
		}
	}
	return targets
}
