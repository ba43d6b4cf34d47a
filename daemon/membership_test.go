package daemon

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// listed reports whether the live batch list names batch, without
// reading anything.
func listed(exp *testExporter, batch string) bool {
	return slices.ContainsFunc(exp.state.currentTargets(), func(t batchstate.Target) bool { return t.TrackingID == batch })
}

// fileBatchExporter runs an exporter whose configuration lists runningID
// and whose batch file uploads/batches.txt lists finishedID.
func fileBatchExporter(t *testing.T) (exp *testExporter, uploads string, srvRequests func(string) int) {
	t.Helper()
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.RunningID}})
	testkit.SetConfig(t, path, "customers:", "batch_files:\n  - uploads/*.txt\ncustomers:")
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o700); err != nil {
		t.Fatal(err)
	}
	uploads = filepath.Join(dir, "uploads", "batches.txt")
	appendFile(t, uploads, uploadsLine(testkit.Customer1, testkit.FinishedID))
	return startExporter(t, path), uploads, func(id string) int { return srv.BatchRequests(testkit.Customer1, id) }
}

// A batch file missing for a moment (a share mounted late, a git-sync
// swap, a truncate-and-rewrite caught by the re-scan) takes its batches
// out of the list, but not out of what is known: when they come back, a
// finished one is not read again.
func TestBatchFileMissingForAMomentReadsNothingAgain(t *testing.T) {
	tests := []struct {
		name       string
		away, back func(t *testing.T, uploads string)
	}{
		{
			"moved away and back",
			func(t *testing.T, uploads string) { mustRename(t, uploads, uploads+".moved") },
			func(t *testing.T, uploads string) { mustRename(t, uploads+".moved", uploads) },
		},
		{
			"truncated and rewritten",
			func(t *testing.T, uploads string) { mustWrite(t, uploads, "") },
			func(t *testing.T, uploads string) {
				mustWrite(t, uploads, uploadsLine(testkit.Customer1, testkit.FinishedID))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp, uploads, requests := fileBatchExporter(t)
			exp.scrape(t, "")
			if got := requests(testkit.FinishedID); got != 1 {
				t.Fatalf("file batch requested %d times, want 1", got)
			}
			tt.away(t, uploads)
			testkit.WaitFor(t, func() bool { return !listed(exp, testkit.FinishedID) })
			_, m := exp.scrape(t, "")
			for labels := range *m["partnercenter_batch_scrape_success"] {
				if labels == testkit.BatchLabels(testkit.Customer1, testkit.FinishedID) {
					t.Error("a batch no longer listed is exported")
				}
			}
			tt.back(t, uploads)
			testkit.WaitFor(t, func() bool { return listed(exp, testkit.FinishedID) })
			_, m = exp.scrape(t, "")
			if got := requests(testkit.FinishedID); got != 1 {
				t.Errorf("file batch requested %d times after coming back, want 1", got)
			}
			if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); v != 1 {
				t.Errorf("file batch back: scrape_success = %v, want 1", v)
			}
			if v := testkit.Value(t, m, "partnercenter_batch_devices", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)+",status=finished_with_errors"); v != 5 {
				t.Errorf("file batch back: %v failed devices, want 5", v)
			}
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A restart whose batch file appears only after the exporter started (a
// share mounted late) finds its batches known from the storage.
func TestRestartWithALateBatchFileReadsNothingAgain(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.RunningID}})
	testkit.SetConfig(t, path, "customers:", "batch_files:\n  - uploads/*.txt\ncustomers:")
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o700); err != nil {
		t.Fatal(err)
	}
	uploads := filepath.Join(dir, "uploads", "batches.txt")
	mustWrite(t, uploads, uploadsLine(testkit.Customer1, testkit.FinishedID))
	opts := testOptions()
	opts.StoragePath = filepath.Join(dir, "state")

	first := startExporterWith(t, path, opts)
	testkit.Get(t, first.url+"/metrics", http.StatusOK)
	first.stop(t)
	mustRename(t, uploads, filepath.Join(dir, "batches.txt"))

	second := startExporterWith(t, path, opts)
	if pageListsBatch(t, second.url, testkit.FinishedID) {
		t.Error("a batch no longer listed is shown after the restart")
	}
	testkit.Get(t, second.url+"/metrics", http.StatusOK)
	mustRename(t, filepath.Join(dir, "batches.txt"), uploads)
	testkit.WaitFor(t, func() bool { return pageListsBatch(t, second.url, testkit.FinishedID) })
	m := testkit.ParseMetrics(t, testkit.Get(t, second.url+"/metrics", http.StatusOK))
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished file batch requested %d times over two runs, want 1", got)
	}
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); v != 1 {
		t.Errorf("restored file batch scrape_success = %v, want 1", v)
	}
	if n := failedDevicesShown(t, second.url, testkit.FinishedID); n != 5 {
		t.Errorf("restored file batch shows %d failed devices, want 5", n)
	}
	second.stop(t)
}

// pageListsBatch reports whether /batches lists batch; the page reads
// nothing from the API.
func pageListsBatch(t *testing.T, base, batch string) bool {
	t.Helper()
	var list struct {
		Batches []struct {
			ID string `json:"batch_tracking_id"`
		} `json:"batches"`
	}
	if err := json.Unmarshal([]byte(testkit.Get(t, base+"/batches?format=json", http.StatusOK)), &list); err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(list.Batches, func(b struct {
		ID string `json:"batch_tracking_id"`
	},
	) bool {
		return b.ID == batch
	})
}

// storageExporter is startExporter with a storage beside the
// configuration, and that storage.
func storageExporter(t *testing.T, path string) (*testExporter, *storage.DB) {
	t.Helper()
	opts := testOptions()
	opts.StoragePath = filepath.Join(filepath.Dir(path), "state")
	exp := startExporterWith(t, path, opts)
	return exp, exp.daemon.db
}

func storedBatches(t *testing.T, db *storage.DB) []string {
	t.Helper()
	records, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range records {
		ids = append(ids, r.TrackingID)
	}
	return ids
}

// A reload that removes a batch and one that brings it back within
// forget_removed_batches_after read nothing again; with 0 the batch is
// forgotten at once, in memory and on disk.
func TestRemovedBatchIsForgottenAfterTheGrace(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	both := map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}}
	path := testkit.WriteConfig(t, dir, srv, both)
	exp, db := storageExporter(t, path)
	exp.scrape(t, "")

	reload := func(batches map[string][]string, extra string) {
		t.Helper()
		testkit.WriteConfig(t, dir, srv, batches)
		if extra != "" {
			testkit.SetConfig(t, path, "customers:", extra+"\ncustomers:")
		}
		if err := exp.state.reload(); err != nil {
			t.Fatal(err)
		}
	}
	reload(map[string][]string{testkit.Customer1: {testkit.RunningID}}, "")
	if got := storedBatches(t, db); !slices.Equal(got, []string{testkit.FinishedID, testkit.RunningID}) {
		t.Errorf("stored after the removal: %v, want both (kept for the grace)", got)
	}
	reload(both, "")
	exp.scrape(t, "")
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished batch requested %d times after a removal undone, want 1", got)
	}

	reload(map[string][]string{testkit.Customer1: {testkit.RunningID}}, "forget_removed_batches_after: 0s")
	if got := storedBatches(t, db); !slices.Equal(got, []string{testkit.RunningID}) {
		t.Errorf("stored after the removal with no grace: %v, want only %s", got, testkit.RunningID)
	}
	reload(both, "forget_removed_batches_after: 0s")
	exp.scrape(t, "")
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times after being forgotten, want 2", got)
	}
}

// openStorage runs after the first load has started the batch file
// watcher: the store's persister is set while the batch list changes.
func TestOpenStorageWhileTheBatchListChanges(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	selfReg := prometheus.NewRegistry()
	state := newExporterState(log.NewNopLogger(), func() (*config.Config, error) { return config.Load(path) },
		pcclient.DefaultHTTPClient(), collector.NewAPIMetrics(selfReg), selfReg)
	t.Cleanup(state.close)
	if err := state.reload(); err != nil {
		t.Fatal(err)
	}
	snaps := []batchfiles.Snapshot{{}, {Batches: []batchfiles.Entry{
		{Batch: batchfiles.Batch{CustomerID: testkit.Customer1, TrackingID: testkit.RunningID}, File: "batches.txt", Line: 1},
	}}}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				state.filesChanged(snaps[i%2])
			}
		}
	}()
	db, err := state.openStorage(filepath.Join(dir, "state"), selfReg)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
}

// The forgetting needs no reload or batch file change to run: a timer
// sweeps when the first removed batch has outlived the period, and
// stopping the exporter stops it.
func TestRemovedBatchIsForgottenOnItsOwn(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	testkit.SetConfig(t, path, "customers:", "forget_removed_batches_after: 200ms\ncustomers:")
	exp, db := storageExporter(t, path)
	exp.scrape(t, "")
	testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.RunningID}})
	testkit.SetConfig(t, path, "customers:", "forget_removed_batches_after: 200ms\ncustomers:")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	// The sweep writes the store, then logs: wait for both.
	want := `msg="forgot batches no longer listed for forget_removed_batches_after" batches=1`
	testkit.WaitFor(t, func() bool {
		return slices.Equal(storedBatches(t, db), []string{testkit.RunningID}) && strings.Contains(exp.logs.String(), want)
	})
	if got := strings.Count(exp.logs.String(), want); got != 1 {
		t.Errorf("log has %d times %s, want 1:\n%s", got, want, exp.logs.String())
	}
	if _, pending := exp.state.store.NextExpiry(); pending {
		t.Error("a batch still waits to be forgotten")
	}
	exp.state.close()
	exp.state.forget.mu.Lock()
	defer exp.state.forget.mu.Unlock()
	if exp.state.forget.timer != nil || !exp.state.forget.stopped {
		t.Error("the forgetting timer runs on after close")
	}
}
