package collector

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
)

// BenchmarkCollectCached measures one scrape of 1000 finished batches
// served from the store: the steady state of a large deployment.
func BenchmarkCollectCached(b *testing.B) {
	var batches []string
	for i := range 1000 {
		batches = append(batches, fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
	}
	h := newHarness(testConfig(0, config.Customer{ID: custA, Name: "Contoso", Batches: batches}))
	for _, id := range batches {
		h.src.setBatch(custA, id, finishedWithErrors())
	}
	h.read(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(h.scrape(context.Background()))
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
