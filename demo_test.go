package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/daemon"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// TestDemoRun starts the real program with --demo: the landing page and
// the log say it is a simulation, metrics flow, and SIGTERM ends it with
// exit code 0.
func TestDemoRun(t *testing.T) {
	p := startDemoProgram(t)
	if landing := p.get(t, "/"); !strings.Contains(landing, daemon.DemoDescription) {
		t.Errorf("landing page does not say it is a demo:\n%s", landing)
	}
	metrics := p.get(t, "/metrics")
	for _, want := range []string{"partnercenter_up 1\n", "partnercenter_batches_configured 8\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; log:\n%s", code, p.logs)
	}
	out := p.logs.String()
	for _, want := range []string{`level=warn`, `msg="` + daemon.DemoDescription + `"`, `simulated_partner_center=http://127.0.0.1:`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// demoProgram is the whole program, run() with --demo, serving on a
// loopback port inside the test process.
type demoProgram struct {
	base    string
	logs    *testkit.SyncBuffer
	sigs    chan os.Signal
	exited  chan int
	stopped bool
}

// startDemoProgram starts the program and waits until it serves; it is
// stopped at the end of the test if the test does not stop it.
func startDemoProgram(t *testing.T) *demoProgram {
	t.Helper()
	addr := testkit.FreeLoopbackAddr(t)
	p := &demoProgram{base: "http://" + addr, logs: &testkit.SyncBuffer{}, sigs: make(chan os.Signal, 1), exited: make(chan int, 1)}
	go func() {
		p.exited <- run([]string{"--demo", "--web.listen-address=" + addr}, io.Discard, p.logs, p.sigs)
	}()
	t.Cleanup(func() {
		if !p.stopped {
			p.stop(t)
		}
	})
	demoWaitForGet(t, p.base+"/-/ready", p.exited, p.logs)
	return p
}

// get returns the body of a 200 answer to GET path.
func (p *demoProgram) get(t *testing.T, path string) string {
	t.Helper()
	body, status, err := testkit.Fetch(p.base + path)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s: status %d, error %v\n%s", path, status, err, body)
	}
	return body
}

// stop sends SIGTERM and returns the exit code.
func (p *demoProgram) stop(t *testing.T) int {
	t.Helper()
	p.stopped = true
	p.sigs <- syscall.SIGTERM
	select {
	case code := <-p.exited:
		return code
	case <-time.After(15 * time.Second):
		t.Fatal("exporter did not stop within 15s of SIGTERM")
		return -1
	}
}

// demoWaitForGet polls url until it answers 200 and returns the body; it
// fails at once when the program exits.
func demoWaitForGet(t *testing.T, url string, exited <-chan int, logs *testkit.SyncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case code := <-exited:
			t.Fatalf("exporter exited with %d before serving %s; log:\n%s", code, url, logs)
		default:
		}
		body, status, err := testkit.Fetch(url)
		if err == nil && status == http.StatusOK {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: status %d, error %v after 20s; log:\n%s", url, status, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
