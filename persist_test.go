package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// runningExporter is run() in a goroutine, stopped by SIGTERM.
type runningExporter struct {
	base   string
	sigs   chan os.Signal
	done   chan int
	stderr *syncBuffer
}

func runExporter(t *testing.T, args ...string) *runningExporter {
	t.Helper()
	addr := freeLoopbackAddr(t)
	e := &runningExporter{base: "http://" + addr, sigs: make(chan os.Signal, 1), done: make(chan int, 1), stderr: &syncBuffer{}}
	go func() {
		e.done <- run(append(args, "--web.listen-address", addr), io.Discard, e.stderr, e.sigs)
	}()
	waitFor(t, func() bool {
		select {
		case code := <-e.done:
			t.Fatalf("exporter exited with %d:\n%s", code, e.stderr.String())
		default:
		}
		_, status, _ := fetch(e.base + "/-/ready")
		return status == http.StatusOK
	})
	return e
}

func (e *runningExporter) stop(t *testing.T) {
	t.Helper()
	e.sigs <- syscall.SIGTERM
	select {
	case code := <-e.done:
		if code != 0 {
			t.Errorf("exit code %d, want 0:\n%s", code, e.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("exporter did not stop after SIGTERM")
	}
}

func failedDevicesShown(t *testing.T, base, batch string) int {
	t.Helper()
	var page struct {
		FailedDevices []json.RawMessage `json:"failed_devices"`
	}
	if err := json.Unmarshal([]byte(get(t, base+"/batches/"+batch+"?format=json", http.StatusOK)), &page); err != nil {
		t.Fatal(err)
	}
	return len(page.FailedDevices)
}

func TestRestartWithStorageSendsNoRequestForFinishedBatches(t *testing.T) {
	srv := fakeWithBatches(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID, runningID}})
	storeDir := filepath.Join(dir, "state")
	args := []string{"--config.file", path, "--storage.path", storeDir}

	first := runExporter(t, args...)
	get(t, first.base+"/metrics", http.StatusOK)
	if n := failedDevicesShown(t, first.base, finishedID); n != 5 {
		t.Fatalf("first run shows %d failed devices, want 5", n)
	}
	first.stop(t)

	second := runExporter(t, args...)
	// Before any scrape the pages are complete, from the store alone.
	if n := failedDevicesShown(t, second.base, finishedID); n != 5 {
		t.Errorf("after the restart the page shows %d failed devices, want 5", n)
	}
	m := parseMetrics(t, get(t, second.base+"/metrics", http.StatusOK))
	if got := srv.BatchRequests(customer1, finishedID); got != 1 {
		t.Errorf("finished batch requested %d times over two runs, want 1", got)
	}
	if got := srv.BatchRequests(customer1, runningID); got != 2 {
		t.Errorf("unfinished batch requested %d times over two runs, want 2 (read again after the restart)", got)
	}
	if v := value(t, m, "partnercenter_batch_scrape_success", batchLabels(customer1, finishedID)); v != 1 {
		t.Errorf("restored finished batch scrape_success = %v, want 1", v)
	}

	// A second exporter on the same directory refuses to start.
	var stderr syncBuffer
	code := run(append(args, "--web.listen-address", freeLoopbackAddr(t)), io.Discard, &stderr, make(chan os.Signal, 1))
	if code != 1 || !strings.Contains(stderr.String(), "is locked by another process (is another exporter using --storage.path="+storeDir+"?)") {
		t.Errorf("second exporter on the same store: exit %d, log:\n%s", code, stderr.String())
	}
	second.stop(t)
}

func TestCorruptStorageIsMovedAside(t *testing.T) {
	srv := fakeWithBatches(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID}})
	storeDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(storeDir, storage.FileName), []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := runExporter(t, "--config.file", path, "--storage.path", storeDir)
	m := parseMetrics(t, get(t, e.base+"/metrics", http.StatusOK))
	if v := value(t, m, "partnercenter_batch_scrape_success", batchLabels(customer1, finishedID)); v != 1 {
		t.Errorf("scrape_success = %v, want 1: the exporter reads from the API after starting empty", v)
	}
	e.stop(t)
	moved, _ := filepath.Glob(filepath.Join(storeDir, storage.FileName+".corrupt-*"))
	if len(moved) != 1 || !strings.Contains(e.stderr.String(), `msg="storage unusable, moved aside and started empty"`) {
		t.Errorf("moved aside: %v; log:\n%s", moved, e.stderr.String())
	}
}

func TestStorageWriteFailureIsCountedAndServedFromMemory(t *testing.T) {
	srv := fakeWithBatches(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, srv, map[string][]string{customer1: {finishedID}})
	logs := &syncBuffer{}
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
	if v := value(t, m, "partnercenter_batch_scrape_success", batchLabels(customer1, finishedID)); v != 1 {
		t.Errorf("scrape_success = %v, want 1", v)
	}
	if v := value(t, m, "partnercenter_storage_write_errors_total", ""); v != 1 {
		t.Errorf("storage_write_errors_total = %v, want 1", v)
	}
	if !strings.Contains(logs.String(), `msg="storage write failed; serving from memory"`) {
		t.Errorf("write failure not logged:\n%s", logs.String())
	}
}

func TestReloadChangingReadSettingsReadsBatchesAgain(t *testing.T) {
	srv := fakeWithBatches(t)
	path := writeConfig(t, t.TempDir(), srv, map[string][]string{customer1: {finishedID}})
	exp := startExporter(t, path)
	exp.scrape(t, "")
	if n := failedDevicesShown(t, exp.url, finishedID); n != 5 {
		t.Fatalf("%d failed devices shown, want 5", n)
	}
	// Lowering the cap changes what a read keeps: the finished batch is
	// read again and shows the new cap at once.
	setConfig(t, path, "customers:", "max_failed_devices_per_batch: 2\ncustomers:")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	exp.scrape(t, "")
	if got := srv.BatchRequests(customer1, finishedID); got != 2 {
		t.Errorf("finished batch requested %d times across the reload, want 2", got)
	}
	if n := failedDevicesShown(t, exp.url, finishedID); n != 2 {
		t.Errorf("%d failed devices shown after lowering the cap to 2, want 2", n)
	}
	// A reload that changes nothing the reads depend on reads nothing again.
	setConfig(t, path, "refresh_interval: 0s", "refresh_interval: 5m")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	exp.scrape(t, "")
	if got := srv.BatchRequests(customer1, finishedID); got != 2 {
		t.Errorf("finished batch requested %d times after a reload of refresh_interval, want still 2", got)
	}
}
