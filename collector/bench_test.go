package collector

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
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

// cachedHarness returns a harness whose store holds batchCount finished
// batches of one customer, already read.
func cachedHarness(b *testing.B, batchCount int) *harness {
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
