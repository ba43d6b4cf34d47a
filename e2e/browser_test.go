package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// The real-browser tests open the failed-device pages in headless
// Chromium (Debian's chromium package, which `make deps` installs) and
// check the DOM Chromium built: the failed devices are there and no value
// from the API ran as script. TestBrowserDemoPages also takes the batch
// page screenshot the README shows; run it with UPDATE_SCREENSHOT=1 to
// copy that screenshot to docs/batch-page.png.

const (
	// browserTestBudget bounds each browser test as a whole.
	browserTestBudget = 50 * time.Second
	// browserRunTimeout bounds one Chromium run.
	browserRunTimeout = 20 * time.Second
	// browserStopGrace is how long a process gets between SIGTERM and SIGKILL.
	browserStopGrace = 5 * time.Second

	screenshotWidth, screenshotHeight = 1280, 900
	screenshotPath                    = "docs/batch-page.png"

	// demoErrorsBatch is the demo batch that is finished_with_errors from
	// the start (807 × 3, 808 × 41), and demoMissingBatch the one that
	// answers 404.
	demoErrorsBatch  = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
	demoMissingBatch = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	// demoFabrikam is the demo customer both batches belong to.
	demoFabrikam     = "0b7e5d3c-1a2f-4c6d-8e9f-0a1b2c3d4e5f"
	demoErrorsFailed = 44
)

// chromiumOrSkip finds Chromium or skips loudly: the test must never pass
// silently without a browser.
func chromiumOrSkip(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		msg := "SKIPPING THE REAL-BROWSER TEST: no chromium in PATH. Install Debian's chromium package (make deps does) to run it."
		fmt.Fprintln(os.Stderr, "!!!!! "+msg)
		t.Skip(msg)
	}
	return path
}

// runChromium runs one headless Chromium with its own profile and returns
// its standard output. On timeout the whole process group is killed.
func runChromium(t *testing.T, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), browserRunTimeout)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-extensions", "--disable-background-networking", "--user-data-dir=" + t.TempDir(),
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = browserStopGrace
	p := testkit.StartProcess(t, "chromium", cmd)
	<-p.Exited() // Bounded by ctx and WaitDelay.
	p.Stop()     // Helpers the finished browser may have left behind.
	if ctx.Err() != nil {
		t.Fatalf("chromium %v did not finish within %s; stderr:\n%s", args, browserRunTimeout, stderr.String())
	}
	if p.Err() != nil {
		t.Fatalf("chromium %v: %v; stderr:\n%s", args, p.Err(), stderr.String())
	}
	return stdout.String()
}

func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	dom := runChromium(t, chromium, "--dump-dom", url)
	if !strings.Contains(dom, "</html>") {
		t.Fatalf("chromium returned no document for %s:\n%s", url, dom)
	}
	return dom
}

// browserBatchJSON is the part of a batch page's JSON the tests use.
type browserBatchJSON struct {
	Batch struct {
		Status string `json:"status"`
	} `json:"batch"`
	FailedDevices []struct {
		SerialNumber     string `json:"serial_number"`
		DeviceID         string `json:"device_id"`
		ProductKey       string `json:"product_key"`
		Status           string `json:"status"`
		ErrorCode        string `json:"error_code"`
		ErrorDescription string `json:"error_description"`
	} `json:"failed_devices"`
}

// waitForFailedDevices scrapes /metrics (the pages only show what scrapes
// read) until the batch page lists want failed devices.
func waitForFailedDevices(t *testing.T, base, trackingID string, want int, deadline time.Time) browserBatchJSON {
	t.Helper()
	var last string
	for time.Now().Before(deadline) {
		if _, status, err := testkit.Fetch(base + "/metrics"); err != nil || status != http.StatusOK {
			last = fmt.Sprintf("/metrics: %d %v", status, err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		body, status, err := testkit.Fetch(base + "/batches/" + trackingID + "?format=json")
		last = fmt.Sprintf("status %d, err %v: %s", status, err, body)
		var page browserBatchJSON
		if err == nil && status == http.StatusOK && json.Unmarshal([]byte(body), &page) == nil && len(page.FailedDevices) == want {
			return page
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("batch %s did not show %d failed devices in time; last answer: %s", trackingID, want, last)
	return browserBatchJSON{}
}

func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %s", what, want)
		}
	}
}

// TestBrowserDemoPages runs the exporter binary in demo mode and opens the
// list and a finished_with_errors batch in Chromium.
func TestBrowserDemoPages(t *testing.T) {
	chromium := chromiumOrSkip(t)
	dir := t.TempDir()
	// A cold build can take most of a minute; the budget starts after it.
	bin := buildExporterBinary(t, dir)
	deadline := time.Now().Add(browserTestBudget)
	addr := testkit.FreeLoopbackAddr(t)
	logs, err := os.Create(filepath.Join(dir, "exporter.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logs.Close() })
	exporter := exec.Command(bin, "--demo", "--web.listen-address="+addr)
	exporter.Stdout, exporter.Stderr = logs, logs
	testkit.StartProcess(t, "exporter", exporter)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("exporter log:\n%s", out)
		}
	})

	base := "http://" + addr
	page := waitForFailedDevices(t, base, demoErrorsBatch, demoErrorsFailed, deadline)
	if page.Batch.Status != "finished_with_errors" {
		t.Fatalf("demo batch status %q, want finished_with_errors", page.Batch.Status)
	}

	t.Run("list", func(t *testing.T) {
		fabrikam := demoFabrikam
		dom := dumpDOM(t, chromium, base+"/batches")
		mustContain(t, "/batches", dom,
			"<title>Batches — Partner Center Exporter</title>",
			`<a href="batches/`+fabrikam+"/"+demoErrorsBatch+`"><code>`+demoErrorsBatch+`</code></a>`,
			`<span class="badge st-finished_with_errors">finished_with_errors</span>`,
			`<code>808</code> × 41`, `<code>807</code> × 3`,
			`<a class="nowrap" href="batches/`+fabrikam+"/"+demoErrorsBatch+`">44 failed devices</a>`,
			"Last read failed: HTTP 404, error code 600",
		)
		if !strings.Contains(dom, `<a href="batches/`+fabrikam+"/"+demoMissingBatch+`">`) {
			t.Errorf("/batches lacks the 404 batch %s", demoMissingBatch)
		}
	})

	t.Run("batch", func(t *testing.T) {
		dom := dumpDOM(t, chromium, base+"/batches/"+demoErrorsBatch)
		mustContain(t, "batch page", dom, "<title>Batch "+demoErrorsBatch+" — Partner Center Exporter</title>",
			`<tr><td><code>808</code></td><td>ZtdDeviceAssignedToOtherTenant</td><td class="num">41</td></tr>`,
			`<tr><td><code>807</code></td><td>ZtdDeviceIsNotRegistered</td><td class="num">3</td></tr>`)
		for _, d := range page.FailedDevices {
			row := fmt.Sprintf(`<td><code>%s</code></td><td><code>%s</code></td><td><code>%s</code></td><td>%s</td><td><code>%s</code></td><td>%s</td></tr>`,
				d.SerialNumber, d.DeviceID, d.ProductKey, d.Status, d.ErrorCode, d.ErrorDescription)
			if !strings.Contains(dom, row) {
				t.Errorf("batch page lacks the row of failed device %s: %s", d.SerialNumber, row)
			}
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "batch-page.png")
		runChromium(t, chromium, "--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", screenshotWidth, screenshotHeight),
			"--hide-scrollbars", base+"/batches/"+demoErrorsBatch)
		data, err := os.ReadFile(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != screenshotWidth || b.Dy() != screenshotHeight {
			t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), screenshotWidth, screenshotHeight)
		}
		if os.Getenv("UPDATE_SCREENSHOT") != "1" {
			return
		}
		if err := os.MkdirAll(filepath.Dir(screenshotPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(screenshotPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", screenshotPath)
	})
}

// Values a hostile or broken service could send. Each would change the
// page title if the browser ran it.
const (
	hostileScript      = `<script>document.title='pwned'</script>`
	hostileImage       = `"quoted" & 'single' <img src=x onerror="document.title='pwned2'">`
	hostileCustomer    = "c0000000-0000-4000-8000-00000000000c"
	hostileBatch       = "b0000000-0000-4000-8000-00000000000b"
	hostileFailedBatch = "f0000000-0000-4000-8000-00000000000f"
)

// TestBrowserEscapesHostileValues runs the exporter binary against a
// fake whose devices and errors carry markup, and checks in Chromium that
// the markup shows as text and nothing ran.
func TestBrowserEscapesHostileValues(t *testing.T) {
	chromium := chromiumOrSkip(t)
	dir := t.TempDir()
	// A cold build can take most of a minute; the budget starts after it.
	bin := buildExporterBinary(t, dir)
	deadline := time.Now().Add(browserTestBudget)

	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	devices := partnercentertest.GenerateDevices(10, 1, map[string]int{"806": 1, "808": 1})
	descriptions := []string{hostileScript, hostileImage}
	for i := range devices {
		if devices[i].ErrorCode != "" {
			devices[i].ErrorDescription, descriptions = descriptions[0], descriptions[1:]
		}
	}
	srv.SetBatch(hostileCustomer, hostileBatch, partnercentertest.Batch{
		TrackingID: hostileBatch, Status: "finished_with_errors",
		StartedTime: "2026-11-25T10:00:00Z", CompletedTime: "2026-11-25T10:10:00Z", Devices: devices,
	})
	srv.SetResponses(hostileCustomer, hostileFailedBatch, partnercentertest.Batch{}, partnercentertest.Response{
		Status: http.StatusBadRequest, Body: partnercentertest.ErrorBody(400, "BadRequest", hostileScript, false),
	})

	cfg := fmt.Sprintf(`partner_center:
  base_url: %s
auth:
  tenant_id: %s
  client_id: %s
  client_secret: %s
  token_url: %s
customers:
  - id: %s
    name: Hostile Ltd
    batches:
      - %s
      - %s
`, srv.URL, partnercentertest.DefaultTenantID, partnercentertest.DefaultClientID, partnercentertest.DefaultClientSecret,
		srv.TokenURL(), hostileCustomer, hostileBatch, hostileFailedBatch)
	cfgPath := filepath.Join(dir, "partnercenter.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	addr := testkit.FreeLoopbackAddr(t)
	exporter := testkit.StartProcess(t, "exporter", exec.Command(bin, "--config.file", cfgPath, "--web.listen-address", addr))
	// Registered after StartProcess, so it runs before its Stop: the
	// exporter must end on SIGTERM alone.
	t.Cleanup(func() {
		_ = exporter.Cmd.Process.Signal(syscall.SIGTERM)
		if !exporter.Wait(15 * time.Second) {
			t.Error("the exporter did not stop after SIGTERM")
		}
	})

	base := "http://" + addr
	waitForFailedDevices(t, base, hostileBatch, 2, deadline)

	// Chromium serialises text nodes with <, > and & escaped, quotes as is.
	scriptAsText := `&lt;script&gt;document.title='pwned'&lt;/script&gt;`
	imageAsText := `"quoted" &amp; 'single' &lt;img src=x onerror="document.title='pwned2'"&gt;`
	for _, tc := range []struct {
		name, path, title string
		wants             []string
	}{
		{
			"batch", "/batches/" + hostileBatch, "Batch " + hostileBatch + " — Partner Center Exporter",
			[]string{`<td>` + scriptAsText + `</td></tr>`, `<td>` + imageAsText + `</td></tr>`},
		},
		{
			"failed batch", "/batches/" + hostileFailedBatch, "Batch " + hostileFailedBatch + " — Partner Center Exporter",
			[]string{`<dt>Description</dt><dd>` + scriptAsText + `</dd>`},
		},
		{
			"list", "/batches", "Batches — Partner Center Exporter",
			[]string{"Last read failed: HTTP 400, error code 400: " + scriptAsText},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dom := dumpDOM(t, chromium, base+tc.path)
			mustContain(t, tc.path, dom, append(tc.wants, "<title>"+tc.title+"</title>")...)
			for _, bad := range []string{"pwned</title>", "pwned2</title>", "<script", "<img"} {
				if strings.Contains(dom, bad) {
					t.Errorf("%s: the DOM contains %s: an injected value ran or became markup", tc.path, bad)
				}
			}
		})
	}
}
