package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/daemon"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/waitcmd"
)

// TestDaemonCommandLineUnchanged: with the wait command added, the
// daemon's command line parses as before: no command means the daemon.
func TestDaemonCommandLineUnchanged(t *testing.T) {
	tests := []struct {
		args  []string
		check func(*flags) bool
	}{
		{nil, func(f *flags) bool { return f.configFile == "partnercenter.yml" && !f.demo && !f.configCheck }},
		{[]string{"--config.file=x.yml"}, func(f *flags) bool { return f.configFile == "x.yml" }},
		{[]string{"--config.file", "x.yml", "--config.check"}, func(f *flags) bool { return f.configFile == "x.yml" && f.configCheck }},
		{[]string{"--demo", "--web.listen-address=127.0.0.1:0"}, func(f *flags) bool { return f.demo && (*f.web.WebListenAddresses)[0] == "127.0.0.1:0" }},
		{[]string{"--storage.path=/var/lib/pc", "--log.level=debug", "--scrape.timeout=3s"}, func(f *flags) bool {
			return f.storagePath == "/var/lib/pc" && f.logLevel == "debug" && f.scrapeTimeout.String() == "3s"
		}},
	}
	for _, tt := range tests {
		f, err := parseFlags(tt.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if f.command != "serve" || !tt.check(f) {
			t.Errorf("%q: command %q, flags %+v", tt.args, f.command, f)
		}
	}
}

// TestHelpVersionAndMistakes: --help and --version exit 0 as before; a
// mistake on the daemon's command line exits 2 as before, one on the wait
// command's 3.
func TestHelpVersionAndMistakes(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{[]string{"--help"}, 0, []string{
			"usage: partnercenter_exporter [<flags>] <command> [<args> ...]\n",
			"      --config.file=\"partnercenter.yml\"",
			"      --[no-]config.check",
			"      --[no-]demo",
			"      --web.listen-address=:10046 ...",
			"\nwait [<flags>] [<batch>...]\n",
		}, ""},
		{[]string{"-h"}, 0, []string{"usage: partnercenter_exporter [<flags>]"}, ""},
		{[]string{"wait", "--help"}, 0, []string{"usage: partnercenter_exporter wait [<flags>] [<batch>...]", "--ignore-error-codes", "--register=URL"}, ""},
		{[]string{"--version"}, 0, []string{"partnercenter_exporter, version"}, ""},
		{[]string{"--bogus"}, 2, nil, "partnercenter_exporter: unknown long flag '--bogus'\n"},
		{[]string{"extra"}, 2, nil, "partnercenter_exporter: unexpected extra\n"},
		{[]string{"wait", "--bogus"}, waitcmd.ExitUsage, nil, "partnercenter_exporter: unknown long flag '--bogus'\n"},
		{[]string{"wait", "--interval=soon", testkit.Customer1, testkit.FinishedID}, waitcmd.ExitUsage, nil, "partnercenter_exporter: "},
		{[]string{"wait"}, waitcmd.ExitUsage, nil, "partnercenter_exporter wait: no batch given"},
		{[]string{"wait", "--config.file=/nonexistent/partnercenter.yml", testkit.Customer1, testkit.FinishedID}, waitcmd.ExitUsage, nil, "partnercenter_exporter wait: reading config file: open /nonexistent/partnercenter.yml"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr, make(chan os.Signal, 1))
		if code != tt.code {
			t.Errorf("%q: exit status %d, want %d; stderr %q", tt.args, code, tt.code, stderr.String())
		}
		for _, part := range tt.stdout {
			if !strings.Contains(stdout.String(), part) {
				t.Errorf("%q: stdout lacks %q:\n%s", tt.args, part, stdout.String())
			}
		}
		if !strings.HasPrefix(stderr.String(), tt.stderr) {
			t.Errorf("%q: stderr %q, want it to start with %q", tt.args, stderr.String(), tt.stderr)
		}
	}
}

// TestWaitCommand runs the wait command through the program's command
// line against the fake Partner Center: a batch that finished with 808
// and 806 errors exits 1 even with 806 ignored.
func TestWaitCommand(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, nil)
	var stdout, stderr testkit.SyncBuffer
	code := run([]string{
		"wait", "--config.file=" + path, "--interval=10ms", "--timeout=1m", "--output=json",
		"--ignore-error-codes=806", "/v1/customers/" + testkit.Customer1 + "/batchJobStatus/" + testkit.FinishedID,
	}, &stdout, &stderr, make(chan os.Signal, 1))
	if code != waitcmd.ExitFinishedWithErrors {
		t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr.String())
	}
	for _, part := range []string{`"result": "finished_with_errors"`, `"failed_device_count": 4`, `"ignored_device_count": 1`} {
		if !strings.Contains(stdout.String(), part) {
			t.Errorf("stdout lacks %s:\n%s", part, stdout.String())
		}
	}
	if n := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); n != 1 {
		t.Errorf("%d reads, want 1", n)
	}
	if strings.Contains(stdout.String()+stderr.String(), testkit.ClientSecret) {
		t.Error("the output contains the client secret")
	}
}

// TestWaitRegistersWithTheDaemonsIntake runs the wait command with
// --register against a real exporter's intake API: the batch is
// registered there (the exporter then tracks it) before the wait reads it.
func TestWaitRegistersWithTheDaemonsIntake(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer2: {testkit.MissingID}})
	tokenFile := filepath.Join(dir, "intake-token")
	if err := os.WriteFile(tokenFile, []byte("pipeline-token-that-must-not-leak\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.SetConfig(t, path, "customers:\n", "intake:\n  bearer_token_files: [intake-token]\ncustomers:\n")
	d, err := daemon.New(daemon.Options{ConfigFile: path, StoragePath: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(d.Handler())
	t.Cleanup(func() {
		web.Close()
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})

	var stdout, stderr testkit.SyncBuffer
	code := run([]string{
		"wait", "--config.file=" + path, "--interval=10ms", "--timeout=1m",
		"--register=" + web.URL, "--register.token-file=" + tokenFile,
		testkit.Customer1, testkit.FinishedID,
	}, &stdout, &stderr, make(chan os.Signal, 1))
	if code != waitcmd.ExitFinishedWithErrors {
		t.Errorf("exit status %d, want %d; stderr:\n%s", code, waitcmd.ExitFinishedWithErrors, stderr.String())
	}
	m := testkit.ParseMetrics(t, testkit.Get(t, web.URL+"/metrics", http.StatusOK))
	if v := testkit.Value(t, m, "partnercenter_batches_listed", "source=api"); v != 1 {
		t.Errorf("the exporter tracks %v batches registered through its intake, want 1; wait said:\n%s", v, stderr.String())
	}
	if v := testkit.Value(t, m, "partnercenter_intake_requests_total", "code=201"); v != 1 {
		t.Errorf("partnercenter_intake_requests_total{code=201} = %v, want 1", v)
	}
	if strings.Contains(stdout.String()+stderr.String(), "pipeline-token-that-must-not-leak") {
		t.Error("the wait command's output shows the intake token")
	}
}
