package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/daemon"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// The tests of the program as a whole: flags, signals and exit codes. The
// daemon's own tests are in package daemon.

func TestConfigCheck(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	good := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("customers:\n  - id: 12ab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path       string
		code       int
		stdout     string
		stderrPart string
	}{
		{good, 0, good + ": OK: 1 customer, 1 batch, auth client_credentials, base_url " + srv.URL + "\n", ""},
		{bad, 1, "", bad + `:2: customers[0].id: "12ab" is not a GUID`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run([]string{"--config.check", "--config.file", tt.path}, &stdout, &stderr, make(chan os.Signal, 1))
		if code != tt.code || stdout.String() != tt.stdout || !strings.Contains(stderr.String(), tt.stderrPart) {
			t.Errorf("--config.check %s: code %d stdout %q stderr %q; want %d, %q, containing %q",
				filepath.Base(tt.path), code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderrPart)
		}
	}
}

// TestRunServesReloadsAndStops runs the whole program: it serves, reloads
// on SIGHUP, and exits 0 on SIGTERM.
func TestRunServesReloadsAndStops(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	addr := testkit.FreeLoopbackAddr(t)
	sigs := make(chan os.Signal, 1)
	stderr := &testkit.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--config.file", path, "--web.listen-address", addr, "--log.format", "json"}, io.Discard, stderr, sigs)
	}()
	base := "http://" + addr
	testkit.WaitFor(t, func() bool { _, status, _ := testkit.Fetch(base + "/-/ready"); return status == http.StatusOK })
	if body := testkit.Get(t, base+"/", http.StatusOK); !strings.Contains(body, "Partner Center Exporter") {
		t.Errorf("landing page lacks the exporter name:\n%s", body)
	}
	if body := testkit.Get(t, base+"/metrics", http.StatusOK); !strings.Contains(body, "partnercenter_exporter_build_info{") {
		t.Error("build_info missing from /metrics")
	}

	testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
	sigs <- syscall.SIGHUP
	testkit.WaitFor(t, func() bool { return strings.Contains(testkit.Get(t, base+"/config", http.StatusOK), testkit.RunningID) })

	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, want 0; log:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("exporter did not stop after SIGTERM")
	}
	if strings.Contains(stderr.String(), testkit.ClientSecret) {
		t.Error("the log contains the client secret")
	}
}

// TestSIGTERMDuringASlowScrape: a scrape waits on a read that takes a
// minute, with a scrape timeout longer than the shutdown bound. SIGTERM
// ends that scrape, and the exporter exits 0 well within 10 s.
func TestSIGTERMDuringASlowScrape(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.SlowID}})
	addr := testkit.FreeLoopbackAddr(t)
	sigs := make(chan os.Signal, 1)
	stderr := &testkit.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--config.file", path, "--web.listen-address", addr, "--scrape.timeout", "2m"}, io.Discard, stderr, sigs)
	}()
	base := "http://" + addr
	testkit.WaitFor(t, func() bool { _, status, _ := testkit.Fetch(base + "/-/ready"); return status == http.StatusOK })
	scraped := make(chan error, 1)
	go func() { _, _, err := testkit.Fetch(base + "/metrics"); scraped <- err }()
	testkit.WaitFor(t, func() bool { return srv.BatchRequests(testkit.Customer1, testkit.SlowID) == 1 })

	sigs <- syscall.SIGTERM
	start := time.Now()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d, want 0; log:\n%s", code, stderr.String())
		}
		if waited := time.Since(start); waited >= shutdownTimeout {
			t.Errorf("exit took %s, want less than %s", waited, shutdownTimeout)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("exporter did not stop after SIGTERM")
	}
	if err := <-scraped; err == nil {
		t.Log("the slow scrape was answered before the server closed")
	}
}

// TestStartFailureExitsOne: when the daemon cannot start, here because
// another exporter holds the store, run logs why and exits 1.
func TestStartFailureExitsOne(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	storeDir := filepath.Join(dir, "state")
	first, err := daemon.New(daemon.Options{ConfigFile: path, StoragePath: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })

	var stderr testkit.SyncBuffer
	code := run([]string{"--config.file", path, "--storage.path", storeDir, "--web.listen-address", testkit.FreeLoopbackAddr(t)},
		io.Discard, &stderr, make(chan os.Signal, 1))
	if code != 1 || !strings.Contains(stderr.String(), "is locked by another process (is another exporter using --storage.path="+storeDir+"?)") {
		t.Errorf("second exporter on the same store: exit %d, log:\n%s", code, stderr.String())
	}
}
