package batchpages

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// decodingSource answers every batch by decoding the same body, as the
// client does with a response.
type decodingSource struct {
	body []byte
	opts partnercenter.DecodeOptions
}

func (decodingSource) ThrottledUntil() time.Time { return time.Time{} }

func (decodingSource) ReadStamp() string { return "" }

func (s decodingSource) BatchStatus(_ context.Context, _, _ string) (*partnercenter.Batch, error) {
	batch, err := partnercenter.Decode(bytes.NewReader(s.body), "application/json; charset=utf-8", s.opts)
	if err != nil {
		return nil, fmt.Errorf("decoding the benchmark body: %w", err)
	}
	return batch, nil
}

// bigBatchBody is a 100k-device batch in which 10% of the devices failed.
func bigBatchBody() []byte {
	devices := partnercentertest.GenerateDevices(100_000, 1, map[string]int{"806": 5_000, "808": 5_000})
	return partnercentertest.RenderJSON(partnercentertest.Batch{
		TrackingID: batchErrors, Status: "finished_with_errors",
		StartedTime: "2026-11-25T10:00:00", CompletedTime: "2026-11-25T11:00:00",
		Devices: devices,
	})
}

// BenchmarkFailedDevicesMemory decodes a 100k-device batch with 10%
// failures and stores it in the collector's store, keeping the default
// 10000 failed devices. Besides -benchmem's per-read allocations it
// reports retained-B/batch: the heap a stored batch keeps alive after
// garbage collection, which is what the pages cost per configured batch.
func BenchmarkFailedDevicesMemory(b *testing.B) {
	src := decodingSource{body: bigBatchBody(), opts: partnercenter.DecodeOptions{MaxFailedDevices: config.DefaultMaxFailedDevicesPerBatch}}
	target := batchstate.Target{CustomerID: custA, TrackingID: batchErrors}
	ctx := context.Background()
	b.SetBytes(int64(len(src.body)))
	for b.Loop() {
		// A new store each time: a finished batch is read only once.
		store := readInto(ctx, src, target)
		if s, _ := store.Get(target); s.Batch == nil || len(s.Batch.FailedDevices) != 10_000 {
			b.Fatalf("the stored batch is %+v, want 10000 failed devices (err %v)", s.Batch, s.LastError)
		}
	}
	b.ReportMetric(float64(retainedPerBatch(b, src, 8)), "retained-B/batch")
}

// BenchmarkStoredBatchMemory reports the heap one stored batch of 100
// devices (10 of them failed) keeps alive, with none and with all 10
// failed devices kept: the memory per configured batch for capacity
// planning.
func BenchmarkStoredBatchMemory(b *testing.B) {
	devices := partnercentertest.GenerateDevices(100, 1, map[string]int{"806": 5, "808": 5})
	body := partnercentertest.RenderJSON(partnercentertest.Batch{
		TrackingID: batchErrors, Status: "finished_with_errors",
		StartedTime: "2026-11-25T10:00:00", CompletedTime: "2026-11-25T11:00:00",
		Devices: devices,
	})
	for _, kept := range []int{0, 10} {
		b.Run(fmt.Sprintf("failed-kept=%d", kept), func(b *testing.B) {
			opts := partnercenter.DecodeOptions{MaxFailedDevices: kept}
			if kept == 0 {
				opts.MaxFailedDevices = -1 // 0 would mean the default cap
			}
			src := decodingSource{body: body, opts: opts}
			b.ReportAllocs()
			for b.Loop() {
				readInto(context.Background(), src, batchstate.Target{CustomerID: custA, TrackingID: batchErrors})
			}
			b.ReportMetric(float64(retainedPerBatch(b, src, 1000)), "retained-B/batch")
		})
	}
}

// readInto reads targets from src into a new store, as a scrape does.
func readInto(ctx context.Context, src batchstate.Source, targets ...batchstate.Target) *batchstate.Store {
	store := batchstate.NewStore()
	store.SetMembers(targets, time.Now())
	collector.NewReader(store, log.NewNopLogger(), 1).Read(ctx, src, targets, batchstate.ReadPolicy{})
	return store
}

// retainedPerBatch stores copies of the batch under different IDs (more
// for a small batch, so that the measurement rises above the noise) and
// measures the live heap they add.
func retainedPerBatch(b *testing.B, src decodingSource, batches int) uint64 {
	targets := make([]batchstate.Target, batches)
	for i := range targets {
		targets[i] = batchstate.Target{CustomerID: custA, TrackingID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)}
	}
	before := testkit.LiveHeap()
	store := readInto(context.Background(), src, targets...)
	after := testkit.LiveHeap()
	for _, tg := range targets {
		if s, _ := store.Get(tg); s.Batch == nil {
			b.Fatalf("batch %s was not stored: %v", tg.TrackingID, s.LastError)
		}
	}
	// The body must stay live too, or its collection would hide the
	// batches' cost.
	runtime.KeepAlive(src.body)
	runtime.KeepAlive(store)
	if after < before {
		return 0
	}
	return (after - before) / uint64(batches)
}

// BenchmarkBatchPage renders the page of a batch with 10000 kept failed
// devices in each format.
func BenchmarkBatchPage(b *testing.B) {
	src := decodingSource{body: bigBatchBody(), opts: partnercenter.DecodeOptions{MaxFailedDevices: config.DefaultMaxFailedDevicesPerBatch}}
	batch, err := src.BatchStatus(context.Background(), custA, batchErrors)
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	h := NewHandler(Options{
		Listing: listingOf(func() *config.Config { return cfg }, nil),
		State: func(batchstate.Target) (batchstate.BatchState, bool) {
			return batchstate.BatchState{Batch: batch, LastSuccess: t0, LastAttempt: t0}, true
		},
	})
	for _, format := range []string{"html", "json", "csv"} {
		b.Run(format, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, page(batchErrors)+"?format="+format, nil)
			if err != nil {
				b.Fatal(err)
			}
			var size int
			for b.Loop() {
				w := &countingWriter{header: http.Header{}}
				h.ServeHTTP(w, req)
				if w.status != 0 && w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
				size = w.n
			}
			b.ReportMetric(float64(size), "page-B")
		})
	}
}

// countingWriter is a ResponseWriter that only counts, so that the
// benchmark measures the page and not a recorder's buffer.
type countingWriter struct {
	header http.Header
	status int
	n      int
}

func (w *countingWriter) Header() http.Header { return w.header }
func (w *countingWriter) WriteHeader(status int) {
	w.status = status
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}
