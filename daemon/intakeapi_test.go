package daemon

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

const intakeToken = "intake-bearer-token-that-must-not-leak"

// startIntakeExporter starts an exporter with --storage.path in dir/state
// and the intake on, its token in dir/intake-token.
func startIntakeExporter(t *testing.T, path, dir string) *testExporter {
	t.Helper()
	opts := testOptions()
	opts.StoragePath = filepath.Join(dir, "state")
	return startExporterWith(t, path, opts)
}

func writeIntakeConfig(t *testing.T, path, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "intake-token"), []byte(intakeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "customers:\n", "intake:\n  bearer_token_files: [intake-token]\ncustomers:\n", 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// register POSTs body to the exporter's intake with the token.
func register(t *testing.T, base, contentType, body string) (int, string) {
	t.Helper()
	return intakeRequest(t, http.MethodPost, base+"/api/v1/batches", contentType, body)
}

func intakeRequest(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	header := http.Header{"Authorization": {"Bearer " + intakeToken}}
	if contentType != "" {
		header.Set("Content-Type", contentType)
	}
	a := testkit.Send(t, method, url, strings.NewReader(body), header)
	return a.Status, a.Body
}

// TestIntakeRegisteredBatchesSurviveARestart registers a finished and a
// running batch over the API, reads them, restarts the exporter on the
// same store, and finds both still tracked: the finished one costs no
// request, and the pages say where each came from.
func TestIntakeRegisteredBatchesSurviveARestart(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer2: {testkit.MissingID}})
	writeIntakeConfig(t, path, dir)

	first := startIntakeExporter(t, path, dir)
	location := "/v1/customers/" + testkit.Customer1 + "/batchJobStatus/" + testkit.FinishedID
	code, body := register(t, first.url, "text/plain", location+"\n"+testkit.Customer1+","+testkit.RunningID+"\n")
	if code != http.StatusCreated || !strings.Contains(body, `"url": "/batches/`+testkit.Customer1+`/`+testkit.FinishedID+`"`) {
		t.Fatalf("register: %d %s", code, body)
	}
	m := testkit.ParseMetrics(t, testkit.Get(t, first.url+"/metrics", http.StatusOK))
	for _, want := range []struct {
		labels string
		value  float64
	}{{"source=api", 2}, {"source=config", 1}, {"source=batch_file", 0}} {
		if v := testkit.Value(t, m, "partnercenter_batches_listed", want.labels); v != want.value {
			t.Errorf("partnercenter_batches_listed{%s} = %v, want %v", want.labels, v, want.value)
		}
	}
	if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, testkit.FinishedID)); v != 1 {
		t.Errorf("registered batch scrape_success = %v, want 1", v)
	}
	if v := testkit.Value(t, m, "partnercenter_intake_requests_total", "code=201"); v != 1 {
		t.Errorf("partnercenter_intake_requests_total{code=\"201\"} = %v, want 1", v)
	}
	first.stop(t)

	second := startIntakeExporter(t, path, dir)
	testkit.Get(t, second.url+"/metrics", http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished registered batch requested %d times over two runs, want 1", got)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 2 {
		t.Errorf("running registered batch requested %d times over two runs, want 2", got)
	}
	var page struct {
		Batch struct {
			Source     string    `json:"source"`
			Registered time.Time `json:"registered"`
		} `json:"batch"`
	}
	pageJSON := testkit.Get(t, second.url+"/batches/"+testkit.Customer1+"/"+testkit.FinishedID+"?format=json", http.StatusOK)
	if err := json.Unmarshal([]byte(pageJSON), &page); err != nil {
		t.Fatal(err)
	}
	if b := page.Batch; b.Source != "api" || b.Registered.IsZero() || time.Since(b.Registered) > time.Hour {
		t.Errorf("page source %q registered %v, want api and a registration time", b.Source, b.Registered)
	}
	if cfgPage := testkit.Get(t, second.url+"/config", http.StatusOK); !strings.Contains(cfgPage,
		"# intake: on at /api/v1/batches, tokens from "+filepath.Join(dir, "intake-token")+"; 2 batches registered (at most 50000)") {
		t.Errorf("/config does not describe the intake:\n%s", cfgPage)
	}

	// DELETE: a listed batch is refused, a registered one goes.
	code, body = intakeRequest(t, http.MethodDelete, second.url+"/api/v1/batches/"+testkit.Customer2+"/"+testkit.MissingID, "", "")
	if code != http.StatusConflict || body != "batch "+testkit.MissingID+" of customer "+testkit.Customer2+" is listed in the configuration file: remove it there\n" {
		t.Errorf("DELETE a configured batch: %d %q", code, body)
	}
	if code, _ = intakeRequest(t, http.MethodDelete, second.url+"/api/v1/batches/"+testkit.Customer1+"/"+testkit.RunningID, "", ""); code != http.StatusNoContent {
		t.Errorf("DELETE a registered batch: %d, want 204", code)
	}
	m = testkit.ParseMetrics(t, testkit.Get(t, second.url+"/metrics", http.StatusOK))
	if _, ok := (*m["partnercenter_batch_scrape_success"])[testkit.BatchLabels(testkit.Customer1, testkit.RunningID)]; ok {
		t.Error("a deleted registration is still exported")
	}
	second.stop(t)

	// The deletion is kept too.
	third := startIntakeExporter(t, path, dir)
	m = testkit.ParseMetrics(t, testkit.Get(t, third.url+"/metrics", http.StatusOK))
	if v := testkit.Value(t, m, "partnercenter_batches_listed", "source=api"); v != 1 {
		t.Errorf("after the deletion and a restart, %v registered batches, want 1", v)
	}
	// The token shows nowhere: not in a log, a page, the metrics or an
	// answer, a refusal's included.
	seen := map[string]string{}
	for _, page := range []string{"/metrics", "/config", "/batches", "/batches?format=json", "/sd"} {
		seen[page] = testkit.Get(t, third.url+page, http.StatusOK)
	}
	_, seen["a 400"] = register(t, third.url, "", "not a batch "+intakeToken)
	for i, e := range []*testExporter{first, second, third} {
		seen["log "+string(rune('1'+i))] = e.logs.String()
	}
	for where, text := range seen {
		if strings.Contains(text, intakeToken) {
			t.Errorf("%s shows the intake token:\n%s", where, text)
		}
	}
}

func TestIntakeNeedsStorage(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	writeIntakeConfig(t, path, dir)
	opts := testOptions()
	opts.ConfigFile = path
	d, err := New(opts)
	if err == nil {
		_ = d.Close()
		t.Fatal("an intake without --storage.path started")
	}
	if want := "intake.bearer_token_files is set, but the intake API needs --storage.path: batches registered through it are kept only there, and a restart would lose them"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestIntakeIsOffByDefault(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, t.TempDir(), srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	exp := startExporter(t, path)
	code, body := register(t, exp.url, "", testkit.Customer1+" "+testkit.RunningID)
	if code != http.StatusNotFound || body != "the batch intake API is off: set intake.bearer_token_files and --storage.path to turn it on\n" {
		t.Errorf("%d %q", code, body)
	}
	if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 0 {
		t.Errorf("an intake that is off caused %d reads", got)
	}
}

func TestIntakeAnswerNamesTheBatchFile(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, nil)
	if err := os.WriteFile(filepath.Join(dir, "uploads.txt"), []byte(testkit.Customer1+" "+testkit.FinishedID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, []byte("batch_files: [uploads.txt]\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	writeIntakeConfig(t, path, dir)
	exp := startIntakeExporter(t, path, dir)
	code, body := register(t, exp.url, "application/json", `{"customer_id":"`+testkit.Customer1+`","batch_tracking_id":"`+testkit.FinishedID+`"}`)
	// Not tracked through the API before, so 201, and the answer says the
	// batch file lists it too.
	if code != http.StatusCreated || !strings.Contains(body, `"listed_in": "the batch file `+filepath.Join(dir, "uploads.txt")+`:1"`) {
		t.Errorf("register a file batch: %d %s", code, body)
	}
	code, body = intakeRequest(t, http.MethodDelete, exp.url+"/api/v1/batches/"+testkit.Customer1+"/"+testkit.FinishedID, "", "")
	if code != http.StatusConflict || !strings.Contains(body, "is listed in the batch file "+filepath.Join(dir, "uploads.txt")+":1: remove it there") {
		t.Errorf("DELETE a file batch: %d %q", code, body)
	}
}
