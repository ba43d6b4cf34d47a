package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// uploadsLine is what an upload script appends: the Location header.
func uploadsLine(customer, batch string) string {
	return "/customers/" + customer + "/batchJobStatus/" + batch + "\n"
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// batchFileExporter runs an exporter whose configuration lists finishedID
// and reads batches from uploads/*.txt beside it.
func batchFileExporter(t *testing.T) (*testExporter, string) {
	t.Helper()
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "batch_files:\n  - uploads/*.txt\ncustomers:")
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o700); err != nil {
		t.Fatal(err)
	}
	uploads := filepath.Join(dir, "uploads", "contoso.txt")
	appendFile(t, uploads, "\xEF\xBB\xBF# written by upload.ps1\r\n"+testkit.Customer1+" "+testkit.FinishedID+"\r\n"+uploadsLine(testkit.Customer1, testkit.RunningID)+"not a batch\n")
	return startExporter(t, path), uploads
}

func configured(t *testing.T, exp *testExporter, batch string) bool {
	t.Helper()
	_, m := exp.scrape(t, "")
	for labels := range *m["partnercenter_batch_scrape_success"] {
		if strings.Contains(labels, batch) {
			return true
		}
	}
	return false
}

func TestBatchFilesAreReadAndWatched(t *testing.T) {
	exp, uploads := batchFileExporter(t)
	_, m := exp.scrape(t, "")
	if v := testkit.Value(t, m, "partnercenter_batches_configured", ""); v != 2 {
		t.Errorf("batches_configured = %v, want 2 (the configured one also listed in the file counts once)", v)
	}
	if v := testkit.Value(t, m, "partnercenter_batch_file_invalid_lines", "file="+uploads); v != 1 {
		t.Errorf("invalid lines = %v, want 1", v)
	}
	if !strings.Contains(exp.logs.String(), `msg="invalid line in batch file" file=`+uploads+` line=4 err="expected \"<customer GUID> <batch GUID>\" or a batchJobStatus location"`) {
		t.Errorf("bad line not logged with file and line:\n%s", exp.logs.String())
	}

	// An upload script appends a line: picked up with no reload. A
	// half-written line is not read until its newline arrives.
	appendFile(t, uploads, uploadsLine(testkit.Customer2, testkit.MissingID)+testkit.Customer2+" "+testkit.BrokenID)
	testkit.WaitFor(t, func() bool { return configured(t, exp, testkit.MissingID) })
	if configured(t, exp, testkit.BrokenID) {
		t.Error("a line without its newline was read")
	}
	if page, want := testkit.Get(t, exp.url+"/config", http.StatusOK), "#   "+uploads+": 3 batches, 1 invalid line, line 6 not read yet (no newline: read once unchanged through a re-scan)\n"; !strings.Contains(page, want) {
		t.Errorf("/config lacks %q:\n%s", want, page)
	}
	appendFile(t, uploads, "\n")
	testkit.WaitFor(t, func() bool { return configured(t, exp, testkit.BrokenID) })

	// /batches says where each batch came from; /config what each file gave.
	var list struct {
		Batches []struct {
			ID     string `json:"batch_tracking_id"`
			Source string `json:"source"`
		} `json:"batches"`
	}
	if err := json.Unmarshal([]byte(testkit.Get(t, exp.url+"/batches?format=json", http.StatusOK)), &list); err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, b := range list.Batches {
		sources[b.ID] = b.Source
	}
	want := map[string]string{testkit.FinishedID: "configuration", testkit.RunningID: uploads + ":3", testkit.MissingID: uploads + ":5", testkit.BrokenID: uploads + ":6"}
	for id, src := range want {
		if sources[id] != src {
			t.Errorf("batch %s source %q, want %q", id, sources[id], src)
		}
	}
	cfgPage := testkit.Get(t, exp.url+"/config", http.StatusOK)
	if wantLine := "#   " + uploads + ": 4 batches, 1 invalid line\n"; !strings.Contains(cfgPage, wantLine) {
		t.Errorf("/config lacks %q:\n%s", wantLine, cfgPage)
	}

	// Deleting the file drops its batches; the configured one stays.
	if err := os.Remove(uploads); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { return !configured(t, exp, testkit.RunningID) })
	if !configured(t, exp, testkit.FinishedID) {
		t.Error("the batch listed in the configuration went with the file")
	}
}

func TestBatchFileShrinkRemovesBatches(t *testing.T) {
	exp, uploads := batchFileExporter(t)
	if !configured(t, exp, testkit.RunningID) {
		t.Fatal("file batch not configured")
	}
	if err := os.WriteFile(uploads, []byte("# emptied\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { return !configured(t, exp, testkit.RunningID) })
}

func TestConfigCheckReportsBadBatchFileLines(t *testing.T) {
	dir := t.TempDir()
	srv := testkit.FakeWithBatches(t)
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "batch_files:\n  - uploads.txt\ncustomers:")
	uploads := filepath.Join(dir, "uploads.txt")
	appendFile(t, uploads, uploadsLine(testkit.Customer1, testkit.RunningID)+"12ab "+testkit.RunningID+"\n")
	var stdout, stderr strings.Builder
	code := CheckConfig(path, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if want := fmt.Sprintf("%s:2: customer ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)\n", uploads); stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	if want := "batch files: 1 file, 1 batch\n"; !strings.HasSuffix(stdout.String(), want) {
		t.Errorf("stdout %q, want it to end with %q", stdout.String(), want)
	}
}

// keyFile is a private key that a broad batch file glob matched by
// mistake. Its lines take every path of the line parser: PEM armour, base64
// with and without a slash, an https URL, a comma pair and a GUID pair.
var keyFile = []string{
	"-----BEGIN PRIVATE KEY-----",
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7/secretpart+x",
	"Zk9vYmFyL3NlY3JldC9rZXkvbWF0ZXJpYWw=/more/secret/segments/here",
	"https://vault.example.net/v1/secret/data/token?key=hunter2hunter2",
	"hunter2secret,anothersecretvalue",
	testkit.Customer1 + " s3cr3t-tail-value",
	"-----END PRIVATE KEY-----",
}

// leakedFragment returns the first 12-byte run of a key file line (PEM
// armour and GUIDs aside) that out contains: long enough not to match the
// file's path or a URL scheme by chance.
func leakedFragment(out string) string {
	for _, line := range keyFile {
		if strings.HasPrefix(line, "-----") {
			continue
		}
		for _, field := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ',' }) {
			if field == testkit.Customer1 {
				continue
			}
			for i := 0; i+12 <= len(field); i++ {
				if strings.Contains(out, field[i:i+12]) {
					return field[i : i+12]
				}
			}
		}
	}
	return ""
}

func TestBatchFileLineContentIsNeverShown(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "batch_files:\n  - keys/*\ncustomers:")
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "keys", "tls.key")
	appendFile(t, key, strings.Join(keyFile, "\n")+"\n")

	exp := startExporter(t, path)
	body, _ := exp.scrape(t, "")
	outputs := map[string]string{
		"log":      exp.logs.String(),
		"/config":  testkit.Get(t, exp.url+"/config", http.StatusOK),
		"/metrics": body,
		"/batches": testkit.Get(t, exp.url+"/batches?format=json", http.StatusOK),
	}
	var stdout, stderr strings.Builder
	if code := CheckConfig(path, &stdout, &stderr); code != 1 {
		t.Errorf("--config.check exit code %d, want 1", code)
	}
	outputs["--config.check stdout"], outputs["--config.check stderr"] = stdout.String(), stderr.String()
	for name, out := range outputs {
		if f := leakedFragment(out); f != "" {
			t.Errorf("%s shows %q of the key file:\n%s", name, f, out)
		}
	}

	// The lines are still reported, by file, line number and reason.
	for i := range keyFile {
		if want := fmt.Sprintf("%s:%d: ", key, i+1); !strings.Contains(stderr.String(), want) {
			t.Errorf("--config.check does not report line %d:\n%s", i+1, stderr.String())
		}
	}
	if want := `msg="invalid line in batch file" file=` + key + ` line=6 err="batch tracking ID is not a GUID`; !strings.Contains(outputs["log"], want) {
		t.Errorf("log lacks %q:\n%s", want, outputs["log"])
	}
	if want := "#   " + key + ": 0 batches, 7 invalid lines\n"; !strings.Contains(outputs["/config"], want) {
		t.Errorf("/config lacks %q:\n%s", want, outputs["/config"])
	}
}

func TestBatchFileGrownPastTheSizeLimitKeepsItsBatches(t *testing.T) {
	exp, uploads := batchFileExporter(t)
	if !configured(t, exp, testkit.RunningID) {
		t.Fatal("file batch not configured")
	}
	// A glob that matches a log: sparse, so the test writes no 16 MiB.
	if err := os.Truncate(uploads, batchfiles.MaxFileBytes+1); err != nil {
		t.Fatal(err)
	}
	reason := "batch file " + uploads + ": larger than the limit of 16 MiB for a batch file, not read"
	wantConfig := "#   " + uploads + ": 2 batches, 1 invalid line (last read failed, its batches kept: " + reason + ")\n"
	var page string
	deadline := time.Now().Add(15 * time.Second)
	for page = testkit.Get(t, exp.url+"/config", http.StatusOK); !strings.Contains(page, wantConfig); page = testkit.Get(t, exp.url+"/config", http.StatusOK) {
		if time.Now().After(deadline) {
			t.Fatalf("/config lacks %q:\n%s", wantConfig, page)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !configured(t, exp, testkit.RunningID) {
		t.Error("the batches of the file's last read were dropped")
	}
	if want := `level=warn component=batchfiles msg="cannot read batch file, keeping the batches of its last read" file=` + uploads + ` batches=2 err="` + reason + `"`; !strings.Contains(exp.logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, exp.logs.String())
	}
	var stdout, stderr strings.Builder
	if code := CheckConfig(filepath.Join(filepath.Dir(filepath.Dir(uploads)), "partnercenter.yml"), &stdout, &stderr); code != 1 {
		t.Errorf("--config.check exit code %d, want 1", code)
	}
	if stderr.String() != reason+"\n" {
		t.Errorf("--config.check stderr %q, want %q", stderr.String(), reason+"\n")
	}
}

func TestInvalidLinesGaugeIsUpdatedInPlace(t *testing.T) {
	reg := prometheus.NewRegistry()
	in := newBatchIntake(log.NewNopLogger(), reg)
	file := func(path string, invalid int) batchfiles.File {
		f := batchfiles.File{Path: path}
		for i := range invalid {
			f.Invalid = append(f.Invalid, batchfiles.InvalidLine{File: path, Line: i + 1, Err: errors.New("bad")})
		}
		return f
	}
	in.setInvalidLines(batchfiles.Snapshot{Files: []batchfiles.File{file("a.txt", 2), file("b.txt", 1)}})
	seriesA := in.invalid.WithLabelValues("a.txt")

	in.setInvalidLines(batchfiles.Snapshot{Files: []batchfiles.File{file("a.txt", 3), file("c.txt", 0)}})
	// The series of a file still there is the same one, set to its new
	// value: it was never deleted, so no scrape could find it missing.
	if in.invalid.WithLabelValues("a.txt") != seriesA {
		t.Error("the series of a.txt was deleted and made again during the update")
	}
	want := `# HELP partnercenter_batch_file_invalid_lines Lines of a batch file that are not a batch and were skipped.
# TYPE partnercenter_batch_file_invalid_lines gauge
partnercenter_batch_file_invalid_lines{file="a.txt"} 3
partnercenter_batch_file_invalid_lines{file="c.txt"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	in.setInvalidLines(batchfiles.Snapshot{})
	if n := testutil.CollectAndCount(in.invalid); n != 0 {
		t.Errorf("%d series left after every file went away", n)
	}
}

func TestBatchPagesReachATrackingIDUnderTwoCustomers(t *testing.T) {
	// A batch file lists under customer2 a tracking ID that the
	// configuration lists under customer1: two batches, two pages.
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "batch_files:\n  - uploads.txt\ncustomers:")
	uploads := filepath.Join(dir, "uploads.txt")
	appendFile(t, uploads, uploadsLine(testkit.Customer2, testkit.FinishedID))
	exp := startExporter(t, path)
	exp.scrape(t, "")

	type page struct {
		Batch struct {
			CustomerID string  `json:"customer_id"`
			Source     string  `json:"source"`
			Status     *string `json:"status"`
		} `json:"batch"`
	}
	for _, tc := range []struct{ customer, source, status string }{
		{testkit.Customer1, "configuration", "finished_with_errors"},
		{testkit.Customer2, uploads + ":1", ""}, // the fake does not know it: never read
	} {
		var p page
		body := testkit.Get(t, exp.url+"/batches/"+tc.customer+"/"+testkit.FinishedID+"?format=json", http.StatusOK)
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		status := ""
		if p.Batch.Status != nil {
			status = *p.Batch.Status
		}
		if p.Batch.CustomerID != tc.customer || p.Batch.Source != tc.source || status != tc.status {
			t.Errorf("page of %s: customer %s, source %q, status %q; want %s, %q, %q",
				tc.customer, p.Batch.CustomerID, p.Batch.Source, status, tc.customer, tc.source, tc.status)
		}
	}
	list := testkit.Get(t, exp.url+"/batches", http.StatusOK)
	for _, c := range []string{testkit.Customer1, testkit.Customer2} {
		if want := `<a href="batches/` + c + "/" + testkit.FinishedID + `">`; !strings.Contains(list, want) {
			t.Errorf("/batches lacks %s", want)
		}
	}
	old := testkit.Get(t, exp.url+"/batches/"+testkit.FinishedID, http.StatusMultipleChoices)
	want := "batch tracking ID " + testkit.FinishedID + " is listed under 2 customers: customer " + testkit.Customer1 + " (Customer 6f1c) at /batches/" +
		testkit.Customer1 + "/" + testkit.FinishedID + ", customer " + testkit.Customer2 + " at /batches/" + testkit.Customer2 + "/" + testkit.FinishedID + "\n"
	if old != want {
		t.Errorf("old address answered %q, want %q", old, want)
	}
}
