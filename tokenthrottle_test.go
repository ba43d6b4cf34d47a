package main

import (
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// TestConnectionResetLoggedOnce: a batch whose connection is reset on
// every read is logged once, although each reset names another local port.
func TestConnectionResetLoggedOnce(t *testing.T) {
	srv := newFaultFake(t)
	srv.SetResponses(customer1, faultA, processing(faultA),
		partnercentertest.Response{Body: partnercentertest.RenderJSON(processing(faultA)), Fault: partnercentertest.FaultReset})
	exp, _ := faultExporter(t, srv, []string{"refresh_interval: 0s"}, faultA)
	for range 3 {
		exp.scrape(t, faultScrapeTimeout)
	}
	if got := srv.BatchRequests(customer1, faultA); got < 3 {
		t.Fatalf("%d reads of the batch, want at least 3", got)
	}
	if got := strings.Count(exp.logs.String(), `msg="reading batch failed"`); got != 1 {
		t.Errorf("the reset was logged %d times, want once:\n%s", got, exp.logs.String())
	}
}
