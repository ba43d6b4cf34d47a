// Package e2e holds the process-level suites: they build the exporter
// binary and run it with Prometheus, promtool, Alertmanager's amtool and
// Chromium, and check the examples, the Dockerfile and the Compose stack.
// It is a module of its own, like deploy/, so that the exporter's go.mod
// does not require Prometheus and `go test ./...` at the root stays the
// fast loop; `make test` runs both.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// TestMain runs the suites from the repository root: they read its files
// (examples/, Dockerfile, .dockerignore, go.mod) and build its main
// package by the paths a contributor knows them by.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: to the repository root:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// demoProgram is the exporter binary run with --demo on a loopback port.
type demoProgram struct {
	base string
}

// startDemoProgram builds and starts the binary and waits until it
// serves; the test's cleanup stops it.
func startDemoProgram(t *testing.T) *demoProgram {
	t.Helper()
	dir := t.TempDir()
	bin := buildExporterBinary(t, dir)
	addr := testkit.FreeLoopbackAddr(t)
	proc := testkit.StartLogged(t, dir, "exporter", bin, "--demo", "--web.listen-address="+addr)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p := &demoProgram{base: "http://" + addr}
	e2eWait(ctx, t, "demo exporter ready", []*testkit.Process{proc}, func() (bool, error) {
		_, status, err := testkit.Fetch(p.base + "/-/ready")
		return err == nil && status == http.StatusOK, nil
	})
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

// listenDefault is the default of --web.listen-address in --help.
var listenDefault = regexp.MustCompile(`--web\.listen-address=(\S+)`)

// exporterDefaultPort is the binary's default listen address (":10046"),
// read from its --help: the examples and the image must publish the
// port the program listens on when told nothing.
func exporterDefaultPort(t *testing.T) string {
	t.Helper()
	bin := buildExporterBinary(t, t.TempDir())
	out, err := exec.CommandContext(t.Context(), bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	m := listenDefault.FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --help shows no default for --web.listen-address:\n%s", bin, out)
	}
	return string(m[1])
}
