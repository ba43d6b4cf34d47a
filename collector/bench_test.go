package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// BenchmarkCollectCached measures one scrape of finished batches served
// from the store, the steady state of a deployment, for several sizes:
// the time and allocations of gathering, and the bytes of the text
// exposition a Prometheus server would download (exposition-B).
func BenchmarkCollectCached(b *testing.B) {
	for _, n := range []int{1_000, 5_000, 50_000} {
		b.Run(fmt.Sprintf("batches=%d", n), func(b *testing.B) { benchmarkCollectCached(b, n) })
	}
}

func benchmarkCollectCached(b *testing.B, batchCount int) {
	h := cachedHarness(b, batchCount)
	b.ReportAllocs()
	var exposition countingWriter
	for b.Loop() {
		exposition = 0
		reg := prometheus.NewRegistry()
		reg.MustRegister(h.scrape(context.Background()))
		families, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, family := range families {
			if _, err := expfmt.MetricFamilyToText(&exposition, family); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(exposition), "exposition-B")
}

// BenchmarkScrape serves one scrape of finished batches over HTTP, as
// Prometheus asks for it (text, no compression, unless the name says
// gzip), the way the exporter did before Serve (registry: the collector
// on a registry of its own, through promhttp) and through Serve (cached),
// in one binary, so that the two are measured back to back. steady is 200
// batches of 1,000 devices, 12 error codes each. cpu-ms/op is the
// process's CPU time, garbage collection included.
func BenchmarkScrape(b *testing.B) {
	cases := []struct {
		name string
		h    func(testing.TB) *harness
	}{
		{"batches=5000", func(tb testing.TB) *harness { return cachedHarness(tb, 5_000) }},
		{"batches=50000", func(tb testing.TB) *harness { return cachedHarness(tb, 50_000) }},
		{"steady=200x1000", steadyHarness},
	}
	for _, c := range cases {
		h := c.h(b)
		for _, path := range []string{"registry", "cached"} {
			for _, ae := range []string{"", "gzip"} {
				name := c.name + "/" + path
				if ae != "" {
					name += "/" + ae
				}
				b.Run(name, func(b *testing.B) {
					handler := serveHandler(h, nil, ViewAll, false)
					if path == "registry" {
						handler = registryHandler(h, nil, ViewAll, false)
					}
					req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					req.Header.Set("Accept", "text/plain;version=0.0.4")
					if ae != "" {
						req.Header.Set("Accept-Encoding", ae)
					}
					w := &discardResponse{header: http.Header{}}
					handler.ServeHTTP(w, req) // the first scrape fills the cache
					b.ReportAllocs()
					cpuStart, cpuOK := processCPUTime()
					for b.Loop() {
						w.header, w.n = http.Header{}, 0
						handler.ServeHTTP(w, req)
					}
					if cpuEnd, ok := processCPUTime(); ok && cpuOK {
						b.ReportMetric(float64(cpuEnd-cpuStart)/float64(b.N)/1e6, "cpu-ms/op")
					}
					b.ReportMetric(float64(w.n), "response-B")
				})
			}
		}
	}
}

// steadyHarness holds 200 finished batches of 1,000 devices each, with 12
// error codes, already read.
func steadyHarness(tb testing.TB) *harness {
	tb.Helper()
	h := cachedHarness(tb, 200)
	for i, id := range h.cfg.Customers[0].Batches {
		fb := finishedWithErrors()
		fb.TrackingID = id
		fb.Errors = nil
		for c := range 12 {
			fb.Errors = append(fb.Errors, partnercenter.ErrorCount{Code: fmt.Sprint(800 + c), Description: fmt.Sprintf("ZtdError%d", c), Devices: c + i%7})
		}
		fb.Devices[partnercenter.StatusFinished] = 900
		fb.Devices[partnercenter.StatusFinishedWithErrors] = 100
		h.src.setBatch(custA, id, fb)
	}
	h.src.setStamp("steady")
	h.read(context.Background())
	return h
}

// cachedHarness returns a harness whose store holds batchCount finished
// batches of one customer, already read.
func cachedHarness(b testing.TB, batchCount int) *harness {
	b.Helper()
	batches := make([]string, batchCount)
	for i := range batches {
		batches[i] = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
	}
	h := newHarness(testConfig(0, config.Customer{ID: custA, Name: "Contoso", Batches: batches}))
	for _, id := range batches {
		h.src.setBatch(custA, id, finishedWithErrors())
	}
	h.read(context.Background())
	return h
}

// countingWriter counts the bytes written to it and keeps none.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// BenchmarkQueuedReads queues the first read of many batches behind a
// source that answers nothing until released, four reads at a time, as a
// cold start behind a slow Partner Center does. It reports what the
// waiting reads cost while they wait, after a garbage collection: the
// goroutines, the goroutine stacks (stack-B) and the live heap (heap-B)
// beyond what the process held before the scrape. The time is that of
// queueing them all and draining the queue once released.
func BenchmarkQueuedReads(b *testing.B) {
	for _, n := range []int{20_000, 50_000} {
		b.Run(fmt.Sprintf("batches=%d", n), func(b *testing.B) {
			var cost queuedCost
			for range b.N {
				b.StopTimer()
				q := newQueuedReads(b, n, 4)
				b.StartTimer()
				q.queue()
				b.StopTimer()
				cost = q.measure(b)
				b.StartTimer()
				q.drain(b)
			}
			b.ReportMetric(float64(cost.goroutines), "goroutines")
			b.ReportMetric(float64(cost.stackBytes), "stack-B")
			b.ReportMetric(float64(cost.heapBytes), "heap-B")
		})
	}
}

// queuedReads is a harness whose batches are all due and whose source
// blocks every read until released.
type queuedReads struct {
	h       *harness
	limit   int
	started atomic.Int32
	release chan struct{}
	before  runtimeCost
}

// queuedCost is what reads waiting in the queue cost beyond the process
// before the scrape.
type queuedCost struct {
	goroutines, stackBytes, heapBytes int64
}

type runtimeCost struct {
	goroutines, stackBytes, heapBytes uint64
}

func newQueuedReads(tb testing.TB, batchCount, limit int) *queuedReads {
	tb.Helper()
	ids := make([]string, batchCount)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
	}
	q := &queuedReads{
		h:       newHarness(testConfig(time.Minute, config.Customer{ID: custA, Name: "Contoso", Batches: ids})),
		limit:   limit,
		release: make(chan struct{}),
	}
	q.h.reader.SetMaxConcurrent(limit)
	answer := blockingBatch(&q.started, q.release, processing())
	for _, id := range ids {
		q.h.src.set(custA, id, answer)
	}
	q.before = readRuntimeCost()
	return q
}

// queue runs a scrape that gives up at once, leaving every read queued or
// running, and waits for limit reads to be running.
func (q *queuedReads) queue() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.h.read(ctx)
}

// measure waits for the running reads to block in the source, then
// returns what the waiting reads cost.
func (q *queuedReads) measure(tb testing.TB) queuedCost {
	tb.Helper()
	boundedWait(tb, "the first reads to start", func() bool { return int(q.started.Load()) == q.limit })
	now := readRuntimeCost()
	return queuedCost{
		goroutines: int64(now.goroutines) - int64(q.before.goroutines),
		stackBytes: int64(now.stackBytes) - int64(q.before.stackBytes),
		heapBytes:  int64(now.heapBytes) - int64(q.before.heapBytes),
	}
}

// drain releases the source and waits for every batch to have been read.
func (q *queuedReads) drain(tb testing.TB) {
	tb.Helper()
	close(q.release)
	n := len(q.h.cfg.Customers[0].Batches)
	boundedWait(tb, "every read to finish", func() bool {
		s, _ := q.h.store.Get(Target{CustomerID: custA, TrackingID: q.h.cfg.Customers[0].Batches[n-1]})
		return q.h.src.totalCalls() == n && !s.LastAttempt.IsZero()
	})
}

// readRuntimeCost collects the garbage, then reads the goroutine count,
// the goroutine stacks and the live heap objects.
func readRuntimeCost() runtimeCost {
	runtime.GC()
	samples := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(samples)
	return runtimeCost{goroutines: samples[0].Value.Uint64(), stackBytes: samples[1].Value.Uint64(), heapBytes: samples[2].Value.Uint64()}
}

// boundedWait polls cond for up to 60 s: long enough for 50,000 reads
// under the race detector on a loaded machine.
func boundedWait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
