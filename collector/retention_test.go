package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
)

// finishedWithErrors completed at t0-90m; processing never completes.
func retentionHarness(retention time.Duration) *harness {
	cfg := testConfig(time.Minute, config.Customer{ID: custA, Batches: []string{batch1, batch2}})
	cfg.Retention = retention
	h := newHarness(cfg)
	h.src.SetBatch(custA, batch1, finishedWithErrors())
	h.src.SetBatch(custA, batch2, processing())
	return h
}

func TestRetentionAtItsBoundary(t *testing.T) {
	// batch1 completed 90 minutes before t0. With a 2h retention it is
	// kept until exactly 2h after completion and retired just after.
	h := retentionHarness(2 * time.Hour)
	h.scrapeAll(t) // reads both
	h.clock.Advance(30 * time.Minute)
	if got := h.series(t, "partnercenter_batch_status"); got != 10 {
		t.Fatalf("at exactly the retention: %d status series, want 10 (both batches)", got)
	}
	h.clock.Advance(time.Nanosecond)
	if got := h.series(t, "partnercenter_batch_status"); got != 5 {
		t.Errorf("just past the retention: %d status series, want 5 (only the unfinished batch)", got)
	}
	expected := `# HELP partnercenter_batches_retired Number of configured batches retired: finished longer ago than the retention, no longer read or exported.
# TYPE partnercenter_batches_retired gauge
partnercenter_batches_retired 1
`
	if err := testutil.CollectAndCompare(h.scrape(context.Background()), strings.NewReader(expected), "partnercenter_batches_retired"); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"partnercenter_batch_scrape_success", "partnercenter_batch_devices", "partnercenter_batch_device_errors"} {
		if out := h.exposition(t, name); strings.Contains(out, batch1) {
			t.Errorf("retired batch still in %s:\n%s", name, out)
		}
	}
	// Logged once, read once, failed devices dropped.
	h.scrapeAll(t)
	h.scrapeAll(t)
	if got := strings.Count(h.logText(), "batch retired"); got != 1 {
		t.Errorf("retirement logged %d times, want 1:\n%s", got, h.logText())
	}
	if got := h.src.Count(custA, batch1); got != 1 {
		t.Errorf("retired batch requested %d times, want 1", got)
	}
	if s, _ := h.store.Get(batchstate.Target{CustomerID: custA, TrackingID: batch1}); !s.Retired || len(s.Batch.Errors) != 0 || s.Batch.Devices.Total() != 0 {
		t.Errorf("retired batch keeps %+v, want only its status and times", s.Batch)
	}
}

func TestUnfinishedBatchesAreNeverRetired(t *testing.T) {
	h := retentionHarness(time.Minute)
	h.scrapeAll(t)
	h.clock.Advance(1000 * time.Hour)
	if out := h.exposition(t, "partnercenter_batch_status"); !strings.Contains(out, batch2) {
		t.Errorf("an unfinished batch disappeared after 1000h:\n%s", out)
	}
}

func TestRaisedRetentionBringsABatchBack(t *testing.T) {
	h := retentionHarness(time.Hour)
	h.scrapeAll(t) // batch1 completed 90m ago: retired at once
	if got := h.src.Count(custA, batch1); got != 1 {
		t.Fatalf("batch read %d times, want 1", got)
	}
	h.cfg.Retention = 0
	if got := h.series(t, "partnercenter_batch_status"); got != 10 {
		t.Errorf("after the retention was removed: %d status series, want 10", got)
	}
	if got := h.src.Count(custA, batch1); got != 2 {
		t.Errorf("batch brought back was requested %d times in all, want 2", got)
	}
}

// scrapeAll runs one scrape to its end.
func (h *harness) scrapeAll(t *testing.T) {
	t.Helper()
	h.exposition(t, "partnercenter_up")
}

func (h *harness) series(t *testing.T, name string) int {
	t.Helper()
	return testutil.CollectAndCount(h.scrape(context.Background()), name)
}

// exposition is one scrape's text for the named metric.
func (h *harness) exposition(t *testing.T, name string) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.scrape(context.Background()))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if f.GetName() == name {
			if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.String()
}
