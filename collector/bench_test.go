package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

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
		h.src.SetBatch(custA, id, fb)
	}
	h.src.SetStamp("steady")
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
		h.src.SetBatch(custA, id, finishedWithErrors())
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
