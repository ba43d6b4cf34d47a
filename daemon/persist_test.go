package daemon

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

func failedDevicesShown(t *testing.T, base, batch string) int {
	t.Helper()
	var page struct {
		FailedDevices []json.RawMessage `json:"failed_devices"`
	}
	if err := json.Unmarshal([]byte(testkit.Get(t, base+"/batches/"+batch+"?format=json", http.StatusOK)), &page); err != nil {
		t.Fatal(err)
	}
	return len(page.FailedDevices)
}

func TestRestartWithStorageSendsNoRequestForFinishedBatches(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	storeDir := filepath.Join(dir, "state")
	opts := testOptions()
	opts.StoragePath = storeDir

	first := startExporterWith(t, path, opts)
	testkit.Get(t, first.url+"/metrics", http.StatusOK)
	if n := failedDevicesShown(t, first.url, testkit.FinishedID); n != 5 {
		t.Fatalf("first run shows %d failed devices, want 5", n)
	}
	first.stop(t)

	second := startExporterWith(t, path, opts)
	// Before any scrape the pages are complete, from the store alone.
	if n := failedDevicesShown(t, second.url, testkit.FinishedID); n != 5 {
		t.Errorf("after the restart the page shows %d failed devices, want 5", n)
	}
	m := testkit.ParseMetrics(t, testkit.Get(t, second.url+"/metrics", http.StatusOK))
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished batch requested %d times over two runs, want 1", got)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 2 {
		t.Errorf("unfinished batch requested %d times over two runs, want 2 (read again after the restart)", got)
	}
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); v != 1 {
		t.Errorf("restored finished batch scrape_success = %v, want 1", v)
	}

	// A second exporter on the same directory refuses to start.
	opts.ConfigFile = path
	if d, err := New(opts); err == nil || !strings.Contains(err.Error(), "is locked by another process (is another exporter using --storage.path="+storeDir+"?)") {
		t.Errorf("second exporter on the same store: error %v", err)
		if err == nil {
			_ = d.Close()
		}
	}
	second.stop(t)
}

func TestCorruptStorageIsMovedAside(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	storeDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(storeDir, storage.FileName), []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.StoragePath = storeDir
	e := startExporterWith(t, path, opts)
	m := testkit.ParseMetrics(t, testkit.Get(t, e.url+"/metrics", http.StatusOK))
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); v != 1 {
		t.Errorf("scrape_success = %v, want 1: the exporter reads from the API after starting empty", v)
	}
	e.stop(t)
	moved, _ := filepath.Glob(filepath.Join(storeDir, storage.FileName+".corrupt-*"))
	if len(moved) != 1 || !strings.Contains(e.logs.String(), `msg="storage unusable, moved aside and started empty"`) {
		t.Errorf("moved aside: %v; log:\n%s", moved, e.logs.String())
	}
}

func TestStorageWriteFailureIsCountedAndServedFromMemory(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	logs := &testkit.SyncBuffer{}
	selfReg := prometheus.NewRegistry()
	state := newExporterState(log.NewLogfmtLogger(logs), func() (*config.Config, error) { return config.Load(path) },
		pcclient.DefaultHTTPClient(), collector.NewAPIMetrics(selfReg), selfReg)
	t.Cleanup(state.close)
	if err := state.reload(); err != nil {
		t.Fatal(err)
	}
	db, err := state.openStorage(filepath.Join(dir, "state"), selfReg)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close() // every write now fails
	mux, err := newMux(state, selfReg, serverOptions{metricsPath: "/metrics", scrapeTimeout: 10 * time.Second}, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	exp := &testExporter{url: startTestServer(t, mux), logs: logs, state: state}
	_, m := exp.scrape(t, "")
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); v != 1 {
		t.Errorf("scrape_success = %v, want 1", v)
	}
	if v := testkit.Value(t, m, "partnercenter_storage_write_errors_total", ""); v != 1 {
		t.Errorf("storage_write_errors_total = %v, want 1", v)
	}
	if !strings.Contains(logs.String(), `msg="storage write failed; serving from memory"`) {
		t.Errorf("write failure not logged:\n%s", logs.String())
	}
}

func TestReloadChangingReadSettingsReadsBatchesAgain(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	exp := startExporter(t, path)
	exp.scrape(t, "")
	if n := failedDevicesShown(t, exp.url, testkit.FinishedID); n != 5 {
		t.Fatalf("%d failed devices shown, want 5", n)
	}
	// Lowering the cap changes what a read keeps: the finished batch is
	// read again and shows the new cap at once.
	testkit.SetConfig(t, path, "customers:", "max_failed_devices_per_batch: 2\ncustomers:")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	exp.scrape(t, "")
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times across the reload, want 2", got)
	}
	if n := failedDevicesShown(t, exp.url, testkit.FinishedID); n != 2 {
		t.Errorf("%d failed devices shown after lowering the cap to 2, want 2", n)
	}
	// A reload that changes nothing the reads depend on reads nothing again.
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 5m")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	exp.scrape(t, "")
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times after a reload of refresh_interval, want still 2", got)
	}
}
