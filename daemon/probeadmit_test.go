package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// allowUnlisted turns the opt-in on in a configuration written by
// writeConfig, with the given extra probe settings.
func allowUnlisted(t *testing.T, path string, extra ...string) {
	t.Helper()
	block := "probe:\n  allow_unlisted_batches: true\n"
	for _, e := range extra {
		block += "  " + e + "\n"
	}
	testkit.SetConfig(t, path, "customers:", block+"customers:")
}

// probeAnswer GETs a probe URL and returns its status, Retry-After and body.
func probeAnswer(t *testing.T, url string) (status int, retryAfter, body string) {
	t.Helper()
	a := testkit.Send(t, http.MethodGet, url, nil, nil)
	return a.Status, a.Header.Get("Retry-After"), a.Body
}

// setAdmissionClock makes the registry's clock now, under its lock.
func setAdmissionClock(a *probeAdmissions, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.now = func() time.Time { return now }
}

func TestProbeUnlistedBatchWhenAllowed(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}, testkit.Customer2: {testkit.MissingID}})
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 1m")
	allowUnlisted(t, path)
	exp := startExporter(t, path)

	body := testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)
	if v := testkit.Value(t, testkit.ParseMetrics(t, body), "partnercenter_batch_status", testkit.BatchLabels(testkit.Customer1, testkit.RunningID)+",status=processing"); v != 1 {
		t.Errorf("admitted batch status processing = %v, want 1", v)
	}
	// Its read is recorded: a second probe within refresh_interval sends
	// nothing.
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 1 {
		t.Errorf("admitted batch requested %d times over two probes, want 1", got)
	}
	// /metrics reads and exports the listed batches only.
	_, m := exp.scrape(t, "")
	if _, ok := (*m["partnercenter_batch_scrape_success"])[testkit.BatchLabels(testkit.Customer1, testkit.RunningID)]; ok {
		t.Error("/metrics exports an admitted unlisted batch")
	}
	if v := testkit.Value(t, m, "partnercenter_batches_configured", ""); v != 2 {
		t.Errorf("partnercenter_batches_configured = %v, want 2 (the listed ones)", v)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 1 {
		t.Errorf("admitted batch requested %d times after /metrics, want 1", got)
	}
}

func TestProbeAdmissionsAreRateLimited(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	allowUnlisted(t, path, "max_admissions_per_minute: 2")
	exp := startExporter(t, path)
	// A fixed clock: no token comes back during the test.
	setAdmissionClock(exp.state.probes, time.Now())

	// Three new batches, tokens for two: the two are admitted, the probe
	// is refused and nothing is read.
	status, retryAfter, body := probeAnswer(t, probeURL(exp, testkit.Customer1, testkit.RunningID, testkit.MissingID, testkit.BrokenID))
	wantBody := "more than 2 unlisted batches admitted per minute (probe.max_admissions_per_minute)\n"
	if status != http.StatusTooManyRequests || retryAfter != "30" || body != wantBody {
		t.Errorf("probe beyond the rate: %d, Retry-After %q, %q; want 429, 30, %q", status, retryAfter, body, wantBody)
	}
	if got := srv.TotalBatchRequests(); got != 0 {
		t.Errorf("a refused probe sent %d batch requests, want 0", got)
	}
	// A listed batch needs no admission, and an admitted one no new one.
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.FinishedID), http.StatusOK)
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID, testkit.MissingID), http.StatusOK)
	if got := srv.TotalBatchRequests(); got != 3 {
		t.Errorf("%d batch requests, want 3 (the listed batch and the two admitted)", got)
	}
	if status, _, _ := probeAnswer(t, probeURL(exp, testkit.Customer1, testkit.BrokenID)); status != http.StatusTooManyRequests {
		t.Errorf("a third admission within the minute: %d, want 429", status)
	}
}

func TestProbeForgetsUnprobedBatches(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 1h")
	allowUnlisted(t, path, "forget_unprobed_after: 10m")
	exp := startExporter(t, path)
	probes := exp.state.probes
	running := batchstate.Target{CustomerID: testkit.Customer1, TrackingID: testkit.RunningID}
	finished := batchstate.Target{CustomerID: testkit.Customer1, TrackingID: testkit.FinishedID}

	t0 := time.Now()
	setAdmissionClock(probes, t0)
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID, testkit.FinishedID), http.StatusOK)
	if st, ok := exp.state.store.Get(running); !ok || st.Batch == nil {
		t.Fatalf("admitted batch not stored: %+v %v", st, ok)
	}
	// Probed again at 6 minutes: not forgotten at 12.
	setAdmissionClock(probes, t0.Add(6*time.Minute))
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)
	setAdmissionClock(probes, t0.Add(12*time.Minute))
	probes.forgetDue()
	if _, ok := exp.state.store.Get(running); !ok {
		t.Fatal("a batch probed 6 minutes ago was forgotten (forget_unprobed_after 10m)")
	}
	// 16 minutes: forgotten, by the registry and the store; the listed
	// batch stays.
	setAdmissionClock(probes, t0.Add(16*time.Minute))
	probes.forgetDue()
	if _, ok := exp.state.store.Get(running); ok {
		t.Error("the store still knows a batch not probed for 10 minutes")
	}
	if got := len(probes.targets()); got != 0 {
		t.Errorf("%d batches still admitted, want 0", got)
	}
	if _, ok := exp.state.store.Get(finished); !ok {
		t.Error("forgetting dropped a listed batch")
	}
	// Probed again, it is admitted again. Membership decides what is read,
	// not what is forgotten: within forget_removed_batches_after it comes
	// back with what was known, and is read when its refresh interval (1h)
	// says so, not at once.
	m := testkit.ParseMetrics(t, testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK))
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.RunningID)); v != 1 {
		t.Errorf("re-admitted batch scrape_success = %v, want 1 (what was known)", v)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 1 {
		t.Errorf("batch requested %d times, want 1: its knowledge outlived its admission", got)
	}
}

func TestProbeRemovedBatchWaitsForServiceDiscovery(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	allowUnlisted(t, path)
	exp := startExporter(t, path)
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)

	// A reload takes runningID off the list. Prometheus, whose discovery
	// still lists it, probes it: refused, nothing read.
	testkit.SetConfig(t, path, "      - "+testkit.RunningID+"\n", "")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	status, _, body := probeAnswer(t, probeURL(exp, testkit.Customer1, testkit.RunningID))
	want := "batch " + testkit.RunningID + " of customer " + testkit.Customer1 + " was removed from the configuration or batch files; " +
		"it can be probed again once /sd has been served without it\n"
	if status != http.StatusNotFound || body != want {
		t.Errorf("probe of a removed batch: %d %q, want 404 %q", status, body, want)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 1 {
		t.Errorf("removed batch requested %d times, want 1 (before its removal)", got)
	}
	if _, ok := exp.state.store.Get(batchstate.Target{CustomerID: testkit.Customer1, TrackingID: testkit.RunningID}); ok {
		t.Error("a refused probe brought the removed batch back into the store")
	}
	// Once /sd has answered without it, a probe of it comes from
	// elsewhere and is admitted like any unlisted batch.
	if sd := testkit.Get(t, exp.url+"/sd", http.StatusOK); strings.Contains(sd, testkit.RunningID) {
		t.Fatalf("/sd still lists the removed batch: %s", sd)
	}
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 2 {
		t.Errorf("batch requested %d times, want 2", got)
	}
}

// testAdmissions is a registry on a fake clock with the given settings, as
// a publish of listed would leave it.
func testAdmissions(t *testing.T, p config.Probe, listed []batchstate.Target) (*probeAdmissions, *time.Time, *int) {
	t.Helper()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	changes := 0
	a := newProbeAdmissions(func() time.Time { return now }, func() { changes++ })
	t.Cleanup(a.stop)
	a.published(p, nil, listed)
	return a, &now, &changes
}

func unlistedTarget(i int) batchstate.Target {
	return batchstate.Target{CustomerID: testkit.Customer2, TrackingID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)}
}

func TestProbeAdmissionsAreCapped(t *testing.T) {
	a, _, changes := testAdmissions(t, config.Probe{
		AllowUnlistedBatches: true, ForgetUnprobedAfter: time.Hour,
		MaxAdmissionsPerMinute: 2 * maxAdmittedBatches,
	}, nil)
	for i := 0; i < maxAdmittedBatches; i += maxProbeBatches {
		var batch []batchstate.Target
		for j := range maxProbeBatches {
			batch = append(batch, unlistedTarget(i+j))
		}
		if err := a.admit(batch); err != nil {
			t.Fatalf("admission %d: %v", i, err)
		}
	}
	err := a.admit([]batchstate.Target{unlistedTarget(maxAdmittedBatches)})
	var reqErr *probeRequestError
	want := "10000 unlisted batches are admitted already, the most there may be; list the batches instead " +
		"(unprobed ones are forgotten after probe.forget_unprobed_after)"
	if !errors.As(err, &reqErr) || reqErr.status != http.StatusServiceUnavailable || reqErr.msg != want {
		t.Errorf("admission beyond the cap: %v, want 503 %q", err, want)
	}
	// Probing an admitted batch again needs no room.
	if err := a.admit([]batchstate.Target{unlistedTarget(0)}); err != nil {
		t.Errorf("probing an admitted batch at the cap: %v", err)
	}
	if want := maxAdmittedBatches / maxProbeBatches; *changes != want {
		t.Errorf("%d re-publishes, want %d (one per probe that admitted something)", *changes, want)
	}
}

func TestProbeAdmissionsFollowPublishes(t *testing.T) {
	x, y := unlistedTarget(1), unlistedTarget(2)
	p := config.Probe{AllowUnlistedBatches: true, ForgetUnprobedAfter: time.Hour, MaxAdmissionsPerMinute: 60}
	a, now, _ := testAdmissions(t, p, []batchstate.Target{x})
	if err := a.admit([]batchstate.Target{y}); err != nil {
		t.Fatal(err)
	}
	// y becomes listed: no longer an admission. x is removed.
	a.published(p, []batchstate.Target{x}, []batchstate.Target{y})
	if got := a.targets(); len(got) != 0 {
		t.Errorf("admitted %v after y was listed, want none", got)
	}
	// An /sd answer that still lists x (taken before the removal) keeps
	// x refused; one without it lets x in.
	a.sdServed([]batchstate.Target{x, y})
	if err := a.admit([]batchstate.Target{x}); err == nil {
		t.Error("x admitted after an /sd answer that still listed it")
	}
	a.sdServed([]batchstate.Target{y})
	if err := a.admit([]batchstate.Target{x}); err != nil {
		t.Errorf("x refused after /sd was served without it: %v", err)
	}

	// Without /sd, a removal is honoured for forget_unprobed_after.
	a.published(p, []batchstate.Target{y}, nil)
	*now = now.Add(59 * time.Minute)
	if err := a.admit([]batchstate.Target{y}); err == nil {
		t.Error("y admitted 59 minutes after its removal, with no /sd served")
	}
	*now = now.Add(time.Minute)
	if err := a.admit([]batchstate.Target{y}); err != nil {
		t.Errorf("y refused an hour after its removal: %v", err)
	}

	// Turning the opt-in off forgets everything.
	p.AllowUnlistedBatches = false
	a.published(p, nil, nil)
	if got := a.targets(); len(got) != 0 {
		t.Errorf("admitted %v with the opt-in off, want none", got)
	}
}

// TestProbeAdmissionForUnconfiguredCustomers: allow_unconfigured_customers
// implies allow_unlisted_batches, so its batches go through admission.
func TestProbeAdmissionForUnconfiguredCustomers(t *testing.T) {
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetCredentials(testkit.ClientID, testkit.ClientSecret)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "probe:\n  allow_unconfigured_customers: true\n  max_admissions_per_minute: 1\ncustomers:")
	exp := startExporter(t, path)
	setAdmissionClock(exp.state.probes, time.Now())
	testkit.Get(t, probeURL(exp, unconfiguredCustomer, testkit.MissingID), http.StatusOK)
	if status, retryAfter, _ := probeAnswer(t, probeURL(exp, unconfiguredCustomer, testkit.BrokenID)); status != http.StatusTooManyRequests || retryAfter != "60" {
		t.Errorf("second admission within the minute: %d, Retry-After %q; want 429, 60", status, retryAfter)
	}
	if got := srv.TotalBatchRequests(); got != 1 {
		t.Errorf("%d batch requests, want 1", got)
	}
}

// TestProbeAdmissionArmsTheSweepWhenRefused: the batches a refused probe
// admitted before its refusal are forgotten like any other.
func TestProbeAdmissionArmsTheSweepWhenRefused(t *testing.T) {
	removed, fresh := unlistedTarget(1), unlistedTarget(2)
	p := config.Probe{AllowUnlistedBatches: true, ForgetUnprobedAfter: time.Hour, MaxAdmissionsPerMinute: 60}
	a, now, _ := testAdmissions(t, p, []batchstate.Target{removed})
	a.published(p, []batchstate.Target{removed}, nil)
	if err := a.admit([]batchstate.Target{fresh, removed}); err == nil {
		t.Fatal("a probe naming a removed batch was not refused")
	}
	a.mu.Lock()
	armed := a.sweep != nil
	a.mu.Unlock()
	if !armed {
		t.Fatal("no sweep armed for the batch the refused probe admitted")
	}
	*now = now.Add(time.Hour)
	a.forgetDue()
	if got := a.targets(); len(got) != 0 {
		t.Errorf("admitted %v an hour later, want none", got)
	}
}

// TestProbeBatchRemovedFromABatchFileWaitsForServiceDiscovery: a batch
// file change that drops a batch is a removal like a reload's.
func TestProbeBatchRemovedFromABatchFileWaitsForServiceDiscovery(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "batch_files:\n  - uploads/*.txt\ncustomers:")
	allowUnlisted(t, path)
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o700); err != nil {
		t.Fatal(err)
	}
	uploads := filepath.Join(dir, "uploads", "contoso.txt")
	appendFile(t, uploads, uploadsLine(testkit.Customer1, testkit.RunningID))
	exp := startExporter(t, path)
	listed := func() bool {
		for _, tg := range exp.state.currentTargets() {
			if tg.TrackingID == testkit.RunningID {
				return true
			}
		}
		return false
	}
	testkit.WaitFor(t, listed)
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)

	if err := os.WriteFile(uploads, []byte("# emptied\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { return !listed() })
	if status, _, _ := probeAnswer(t, probeURL(exp, testkit.Customer1, testkit.RunningID)); status != http.StatusNotFound {
		t.Errorf("probe of a batch its file dropped: %d, want 404 until /sd is served", status)
	}
	testkit.Get(t, exp.url+"/sd", http.StatusOK)
	testkit.Get(t, probeURL(exp, testkit.Customer1, testkit.RunningID), http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 2 {
		t.Errorf("batch requested %d times, want 2 (before and after its removal)", got)
	}
}
