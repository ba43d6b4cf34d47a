package batchpages

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the fixed "now" of every test.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const (
	custA = "aaaaaaaa-0000-4000-8000-00000000000a"
	custB = "bbbbbbbb-0000-4000-8000-00000000000b"

	batchOK         = "10000000-0000-4000-8000-000000000001"
	batchErrors     = "20000000-0000-4000-8000-000000000002"
	batchProcessing = "30000000-0000-4000-8000-000000000003"
	batchFailing    = "40000000-0000-4000-8000-000000000004"
	batchStale      = "50000000-0000-4000-8000-000000000005"
	batchNeverRead  = "60000000-0000-4000-8000-000000000006"

	correlationID = "c0ffee00-0000-4000-8000-0000000000c1"
	requestID     = "0e0e0e0e-0000-4000-8000-0000000000e1"

	// hostile is what a compromised or buggy service could send; it must
	// show as text in HTML and arrive intact in JSON and CSV.
	hostile     = `<script>alert(1)</script> "quoted" & 'single'`
	hostileHTML = `&lt;script&gt;alert(1)&lt;/script&gt; &#34;quoted&#34; &amp; &#39;single&#39;`

	secret = "s3cr3t-client-secret-value"
)

func testConfig() *config.Config {
	return &config.Config{
		Auth:                     config.Auth{ClientID: "client", ClientSecret: config.Secret(secret)},
		MaxFailedDevicesPerBatch: 2,
		Customers: []config.Customer{
			{ID: custA, Name: "Contoso Ltd", Batches: []string{batchOK, batchErrors, batchProcessing}},
			{ID: custB, Name: `Fabrikam <b>"Inc"</b>`, Batches: []string{batchFailing, batchStale, batchNeverRead}},
		},
	}
}

// page is the address of a batch of testConfig: /batches/{customer}/{batch}.
func page(trackingID string) string {
	for _, c := range testConfig().Customers {
		for _, b := range c.Batches {
			if b == trackingID {
				return "/batches/" + c.ID + "/" + b
			}
		}
	}
	panic("batch not in testConfig: " + trackingID)
}

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

// fakeStates is what the collector's store would hold for testConfig.
func fakeStates() map[string]batchstate.BatchState {
	return map[string]batchstate.BatchState{
		batchOK: {
			Batch: &partnercenter.Batch{
				TrackingID: batchOK, Status: partnercenter.StatusFinished, RawStatus: "finished",
				StartedTime: at(-125), CompletedTime: at(-100).Add(500 * time.Millisecond),
				Devices: partnercenter.DeviceCounts{partnercenter.StatusFinished: 480},
			},
			LastSuccess: at(-3), LastAttempt: at(-3),
		},
		batchErrors: {
			Batch: &partnercenter.Batch{
				TrackingID: batchErrors, Status: partnercenter.StatusFinishedWithErrors, RawStatus: "finished_with_errors",
				StartedTime: at(-90), CompletedTime: at(-60),
				Devices: partnercenter.DeviceCounts{partnercenter.StatusFinished: 7, partnercenter.StatusFinishedWithErrors: 5},
				Errors: []partnercenter.ErrorCount{
					{Code: "806", Description: hostile, Devices: 2},
					{Code: "808", Description: "ZtdDeviceAssignedToOtherTenant", Devices: 3},
				},
				FailedDevices: []partnercenter.Device{
					{
						SerialNumber: "5CG1234ABC", DeviceID: "d0000000-0000-4000-8000-000000000001", ProductKey: "3312345678901",
						Status: partnercenter.StatusFinishedWithErrors, ErrorCode: "806", ErrorDescription: hostile,
					},
					{
						SerialNumber: "=HYPERLINK(\"x\")", DeviceID: "d0000000-0000-4000-8000-000000000002", ProductKey: "",
						Status: partnercenter.StatusFinishedWithErrors, ErrorCode: "808", ErrorDescription: "ZtdDeviceAssignedToOtherTenant",
					},
				},
				FailedDevicesOmitted: 3,
			},
			LastSuccess: at(-2), LastAttempt: at(-2),
		},
		batchProcessing: {
			Batch: &partnercenter.Batch{
				TrackingID: batchProcessing, Status: partnercenter.StatusProcessing, RawStatus: "processing",
				StartedTime: at(-30),
				Devices:     partnercenter.DeviceCounts{partnercenter.StatusProcessing: 40, partnercenter.StatusFinished: 60},
			},
			LastSuccess: at(-1), LastAttempt: at(-1),
		},
		batchFailing: {
			LastAttempt: at(-1),
			LastError: &partnercenter.Error{
				StatusCode: http.StatusNotFound, Code: "600", Description: "The resource was not found.",
				CorrelationID: correlationID, RequestID: requestID,
			},
		},
		batchStale: {
			Batch: &partnercenter.Batch{
				TrackingID: batchStale, Status: partnercenter.StatusQueued, RawStatus: "queued",
				Devices: partnercenter.DeviceCounts{partnercenter.StatusQueued: 10},
			},
			LastSuccess: at(-20), LastAttempt: at(-1),
			LastError: &partnercenter.Error{
				StatusCode: http.StatusInternalServerError, Code: "500", Description: hostile,
				CorrelationID: correlationID, RequestID: requestID,
			},
		},
		// batchNeverRead has no entry.
	}
}

type fixture struct {
	cfg    *config.Config
	states map[string]batchstate.BatchState
}

func newFixture() *fixture {
	return &fixture{cfg: testConfig(), states: fakeStates()}
}

func (f *fixture) handler() http.Handler {
	return NewHandler(Options{
		Listing: listingOf(func() *config.Config { return f.cfg }, nil),
		State: func(t batchstate.Target) (batchstate.BatchState, bool) {
			s, ok := f.states[t.TrackingID]
			return s, ok
		},
		Now: func() time.Time { return t0 },
	})
}

// get answers one request with header key-value pairs.
func get(t *testing.T, h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func mustOK(t *testing.T, rec *httptest.ResponseRecorder, contentType string) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body:\n%s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Content-Type"); got != contentType {
		t.Fatalf("Content-Type %q, want %q", got, contentType)
	}
}

func decodeJSON[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, body)
	}
	return v
}

func expectSame[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("got:\n%s\nwant:\n%s", g, w)
	}
}

// expectedSummaries are the rows of the list for fakeStates, in the
// expected order: failing, never read, unfinished, errored, fine.
func expectedSummaries() []batchSummary {
	apiErr := func(status int, code, description string) *readError {
		return &readError{
			Source:        sourcePartnerCenter,
			Message:       (&partnercenter.Error{StatusCode: status, Code: code, Description: description}).Error(),
			HTTPStatus:    status,
			ErrorCode:     code,
			Description:   description,
			CorrelationID: correlationID,
			RequestID:     requestID,
		}
	}
	fabrikam := `Fabrikam <b>"Inc"</b>`
	return []batchSummary{
		{
			CustomerID: custB, CustomerName: fabrikam, TrackingID: batchFailing, Source: "configuration", Attention: attentionFailing,
			Errors: []errorCount{}, LastAttemptTime: new(at(-1)),
			LastError: apiErr(404, "600", "The resource was not found."),
		},
		{
			CustomerID: custB, CustomerName: fabrikam, TrackingID: batchStale, Source: "configuration", Attention: attentionFailing,
			Status:  new("queued"),
			Devices: &deviceCounts{Queued: 10, Total: 10},
			Errors:  []errorCount{}, LastSuccessTime: new(at(-20)), LastAttemptTime: new(at(-1)),
			LastError: apiErr(500, "500", hostile),
		},
		{
			CustomerID: custB, CustomerName: fabrikam, TrackingID: batchNeverRead, Source: "configuration", Attention: attentionNotRead,
			Errors: []errorCount{},
		},
		{
			CustomerID: custA, CustomerName: "Contoso Ltd", TrackingID: batchProcessing, Source: "configuration", Attention: attentionUnfinished,
			Status:      new("processing"),
			Devices:     &deviceCounts{Processing: 40, Finished: 60, Total: 100},
			StartedTime: new(at(-30)), DurationSeconds: new(1800.0), Running: true,
			Errors: []errorCount{}, LastSuccessTime: new(at(-1)), LastAttemptTime: new(at(-1)),
		},
		{
			CustomerID: custA, CustomerName: "Contoso Ltd", TrackingID: batchErrors, Source: "configuration", Attention: attentionErrored,
			Status:      new("finished_with_errors"),
			Devices:     &deviceCounts{Finished: 7, FinishedWithErrors: 5, Total: 12},
			StartedTime: new(at(-90)), CompletedTime: new(at(-60)), DurationSeconds: new(1800.0),
			Errors: []errorCount{
				{Code: "808", Description: "ZtdDeviceAssignedToOtherTenant", Devices: 3},
				{Code: "806", Description: hostile, Devices: 2},
			},
			FailedDevicesKept: 2, FailedDevicesOmitted: 3,
			LastSuccessTime: new(at(-2)), LastAttemptTime: new(at(-2)),
		},
		{
			CustomerID: custA, CustomerName: "Contoso Ltd", TrackingID: batchOK, Source: "configuration", Attention: attentionOK,
			Status:      new("finished"),
			Devices:     &deviceCounts{Finished: 480, Total: 480},
			StartedTime: new(at(-125)), CompletedTime: new(at(-100).Add(500 * time.Millisecond)), DurationSeconds: new(1500.5),
			Errors: []errorCount{}, LastSuccessTime: new(at(-3)), LastAttemptTime: new(at(-3)),
		},
	}
}

func TestListJSON(t *testing.T) {
	h := newFixture().handler()
	for _, tc := range []struct {
		name   string
		target string
		header []string
	}{
		{"format parameter", "/batches?format=json", nil},
		{"Accept header", "/batches", []string{"Accept", "application/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, tc.target, tc.header...)
			mustOK(t, rec, contentTypeJSON)
			got := decodeJSON[listPage](t, rec.Body.Bytes())
			expectSame(t, got, listPage{GeneratedTime: t0, MaxFailedDevicesPerBatch: 2, Batches: expectedSummaries()})
		})
	}
}

func TestBatchJSON(t *testing.T) {
	h := newFixture().handler()
	rec := get(t, h, http.MethodGet, page(batchErrors)+"?format=json")
	mustOK(t, rec, contentTypeJSON)
	got := decodeJSON[batchPage](t, rec.Body.Bytes())
	want := batchPage{
		GeneratedTime:            t0,
		MaxFailedDevicesPerBatch: 2,
		Batch:                    expectedSummaries()[4],
		FailedDevices: []failedDevice{
			{
				SerialNumber: "5CG1234ABC", DeviceID: "d0000000-0000-4000-8000-000000000001", ProductKey: "3312345678901",
				Status: "finished_with_errors", ErrorCode: "806", ErrorDescription: hostile,
			},
			{
				SerialNumber: `=HYPERLINK("x")`, DeviceID: "d0000000-0000-4000-8000-000000000002", ProductKey: "",
				Status: "finished_with_errors", ErrorCode: "808", ErrorDescription: "ZtdDeviceAssignedToOtherTenant",
			},
		},
	}
	expectSame(t, got, want)
}

// TestBatchPagesOfEveryKind checks the summary of each batch's own page
// equals its list row, and that pages without devices list none.
func TestBatchPagesOfEveryKind(t *testing.T) {
	h := newFixture().handler()
	for _, want := range expectedSummaries() {
		t.Run(want.TrackingID, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, page(want.TrackingID), "Accept", "application/json")
			mustOK(t, rec, contentTypeJSON)
			got := decodeJSON[batchPage](t, rec.Body.Bytes())
			expectSame(t, got.Batch, want)
			if want.TrackingID != batchErrors && len(got.FailedDevices) != 0 {
				t.Errorf("failed_devices = %v, want []", got.FailedDevices)
			}
			if !strings.Contains(rec.Body.String(), `"failed_devices": []`) && want.TrackingID != batchErrors {
				t.Errorf("failed_devices must be an empty array, not null:\n%s", rec.Body)
			}
		})
	}
}

func TestBatchCSV(t *testing.T) {
	h := newFixture().handler()
	rec := get(t, h, http.MethodGet, page(batchErrors)+"?format=csv")
	mustOK(t, rec, contentTypeCSV)
	wantDisposition := `attachment; filename="` + batchErrors + `-failed-devices.csv"`
	if got := rec.Header().Get("Content-Disposition"); got != wantDisposition {
		t.Errorf("Content-Disposition %q, want %q", got, wantDisposition)
	}
	want := [][]string{
		{"serial_number", "device_id", "product_key", "status", "error_code", "error_description"},
		{"5CG1234ABC", "d0000000-0000-4000-8000-000000000001", "3312345678901", "finished_with_errors", "806", hostile},
		// A value a spreadsheet would run as a formula is defused.
		{`'=HYPERLINK("x")`, "d0000000-0000-4000-8000-000000000002", "", "finished_with_errors", "808", "ZtdDeviceAssignedToOtherTenant"},
		{"# 3 more failed devices were left out: the exporter kept the first 2 (max_failed_devices_per_batch)", "", "", "", "", ""},
	}
	records, err := csv.NewReader(bytes.NewReader(rec.Body.Bytes())).ReadAll()
	if err != nil {
		t.Fatalf("parsing CSV: %v\n%s", err, rec.Body)
	}
	expectSame(t, records, want)

	// A reader that honours comments sees only the header and devices.
	r := csv.NewReader(bytes.NewReader(rec.Body.Bytes()))
	r.Comment = '#'
	records, err = r.ReadAll()
	if err != nil {
		t.Fatalf("parsing CSV with comments: %v", err)
	}
	expectSame(t, records, want[:3])
}

func TestBatchCSVWithoutFailures(t *testing.T) {
	h := newFixture().handler()
	for _, id := range []string{batchOK, batchNeverRead, batchFailing} {
		t.Run(id, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, page(id)+"?format=csv")
			mustOK(t, rec, contentTypeCSV)
			if got, want := rec.Body.String(), "serial_number,device_id,product_key,status,error_code,error_description\n"; got != want {
				t.Errorf("body %q, want %q", got, want)
			}
		})
	}
}

func TestHostileValuesAreEscapedInHTML(t *testing.T) {
	h := newFixture().handler()
	for _, tc := range []struct {
		name   string
		target string
		want   []string
	}{
		{"device and error code description", page(batchErrors), []string{
			`<td><code>806</code></td><td>` + hostileHTML + `</td><td class="num">2</td></tr>`,
			`<td>finished_with_errors</td><td><code>806</code></td><td>` + hostileHTML + `</td></tr>`,
			`<td><code>=HYPERLINK(&#34;x&#34;)</code></td>`,
		}},
		{"API error description", page(batchStale), []string{
			`<p><strong>The last read failed:</strong> HTTP 500, error code 500: ` + hostileHTML + `</p>`,
			`<dt>Description</dt><dd>` + hostileHTML + `</dd>`,
			`<dt>MS-CorrelationId</dt><dd><code>` + correlationID + `</code></dd>`,
			`<dt>MS-RequestId</dt><dd><code>` + requestID + `</code></dd>`,
		}},
		{"list", "/batches", []string{
			`<div class="problem">Last read failed: HTTP 500, error code 500: ` + hostileHTML +
				`<br><small>MS-CorrelationId <code>` + correlationID + `</code></small></div>`,
			`</a><br>Fabrikam &lt;b&gt;&#34;Inc&#34;&lt;/b&gt;<br>`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, tc.target)
			mustOK(t, rec, contentTypeHTML)
			body := rec.Body.String()
			for _, want := range tc.want {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			for _, bad := range []string{"<script", "<b>", `"quoted"`} {
				if strings.Contains(body, bad) {
					t.Errorf("page contains unescaped %s", bad)
				}
			}
		})
	}
}

func TestLeftOutCountShown(t *testing.T) {
	h := newFixture().handler()
	page := get(t, h, http.MethodGet, page(batchErrors)).Body.String()
	want := `<p class="note">3 more failed devices were left out: the exporter kept the first 2 (max_failed_devices_per_batch).</p>`
	if !strings.Contains(page, want) {
		t.Errorf("batch page lacks %s", want)
	}
	list := get(t, h, http.MethodGet, "/batches").Body.String()
	want = `<a class="nowrap" href="batches/` + custA + "/" + batchErrors + `">2 failed devices</a> <small>(+3 left out)</small>`
	if !strings.Contains(list, want) {
		t.Errorf("list lacks %s", want)
	}
}

// TestPagesGolden pins the exact markup and JSON field names; run with
// -update to rewrite testdata/ after an intended change.
func TestPagesGolden(t *testing.T) {
	h := newFixture().handler()
	for _, tc := range []struct{ file, target string }{
		{"list.html", "/batches"},
		{"list.json", "/batches?format=json"},
		{"batch-errors.html", page(batchErrors)},
		{"batch-errors.json", page(batchErrors) + "?format=json"},
		{"batch-stale.html", page(batchStale)},
		{"batch-never-read.html", page(batchNeverRead)},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, tc.target)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			compareGolden(t, filepath.Join("testdata", tc.file), rec.Body.Bytes())
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the answer (run go test -update after an intended change); got:\n%s", path, got)
	}
}

func TestErrorAnswers(t *testing.T) {
	h := newFixture().handler()
	for _, tc := range []struct {
		name, method, target string
		wantCode             int
		wantBody             string
		wantAllow            string
	}{
		{
			"unconfigured batch", http.MethodGet, "/batches/99999999-0000-4000-8000-000000000009", 404,
			"no configured batch has tracking ID 99999999-0000-4000-8000-000000000009 (a configuration reload may have removed it)", "",
		},
		{
			"unconfigured batch, upper case", http.MethodGet, "/batches/ABCDEF00-0000-4000-8000-000000000009", 404,
			"no configured batch has tracking ID abcdef00-0000-4000-8000-000000000009 (a configuration reload may have removed it)", "",
		},
		{"malformed ID", http.MethodGet, "/batches/not-a-guid", 400, msgMalformedID, ""},
		{"malformed ID with markup", http.MethodGet, "/batches/%3Cscript%3E", 400, msgMalformedID, ""},
		{"GUID with braces", http.MethodGet, "/batches/{" + batchOK + "}", 400, msgMalformedID, ""},
		{"no ID", http.MethodGet, "/batches/", 404, msgNoTrackingID, ""},
		{"no ID after the customer", http.MethodGet, "/batches/" + custA + "/", 404, msgNoTrackingID, ""},
		{"malformed customer", http.MethodGet, "/batches/contoso/" + batchOK, 400, msgMalformedCustomer, ""},
		{"malformed ID under a customer", http.MethodGet, "/batches/" + custA + "/not-a-guid", 400, msgMalformedID, ""},
		{
			"unconfigured batch under a customer", http.MethodGet, "/batches/" + custA + "/99999999-0000-4000-8000-000000000009", 404,
			"customer " + custA + " has no configured batch with tracking ID 99999999-0000-4000-8000-000000000009 (a configuration reload may have removed it)", "",
		},
		{
			"batch under another customer", http.MethodGet, "/batches/" + custB + "/" + batchOK, 404,
			"customer " + custB + " has no configured batch with tracking ID " + batchOK + " (a configuration reload may have removed it); it is listed under customer " + custA + " (Contoso Ltd) at /batches/" + custA + "/" + batchOK, "",
		},
		{"deeper path", http.MethodGet, page(batchOK) + "/devices", 404, "404 page not found", ""},
		{"other path", http.MethodGet, "/batchesx", 404, "404 page not found", ""},
		{"POST on the list", http.MethodPost, "/batches", 405, msgMethod, "GET, HEAD"},
		{"DELETE on a batch", http.MethodDelete, page(batchOK), 405, msgMethod, "GET, HEAD"},
		{"CSV of the list", http.MethodGet, "/batches?format=csv", 400, msgListFormat, ""},
		{"unknown list format", http.MethodGet, "/batches?format=xml", 400, msgListFormat, ""},
		{"unknown batch format", http.MethodGet, page(batchOK) + "?format=xml", 400, msgBatchFormat, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, h, tc.method, tc.target)
			if rec.Code != tc.wantCode {
				t.Errorf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != tc.wantBody {
				t.Errorf("body %q, want %q", got, tc.wantBody)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q, want text/plain", got)
			}
			if got := rec.Header().Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow %q, want %q", got, tc.wantAllow)
			}
		})
	}
}

func TestUpperCaseIDFindsBatch(t *testing.T) {
	h := newFixture().handler()
	rec := get(t, h, http.MethodGet, "/batches/"+strings.ToUpper(custA+"/"+batchErrors)+"?format=json")
	mustOK(t, rec, contentTypeJSON)
	if got := decodeJSON[batchPage](t, rec.Body.Bytes()).Batch.TrackingID; got != batchErrors {
		t.Errorf("batch_tracking_id %q, want %q", got, batchErrors)
	}
}

// TestOldAddressRedirects: /batches/{batch_tracking_id}, the address
// before pages named the customer, leads to the batch's page when one
// customer lists the ID. The Location is relative, so that it also holds
// behind a proxy that strips a path prefix.
func TestOldAddressRedirects(t *testing.T) {
	h := newFixture().handler()
	for _, tc := range []struct {
		target   string // as the handler sees it
		browser  string // the address the browser asked for
		location string
		resolved string
	}{
		{
			"/batches/" + batchErrors, "/batches/" + batchErrors,
			custA + "/" + batchErrors, "/batches/" + custA + "/" + batchErrors,
		},
		{
			"/batches/" + batchErrors + "?format=csv", "/batches/" + batchErrors + "?format=csv",
			custA + "/" + batchErrors + "?format=csv", "/batches/" + custA + "/" + batchErrors,
		},
		{
			"/batches/" + strings.ToUpper(batchFailing), "/batches/" + strings.ToUpper(batchFailing),
			custB + "/" + batchFailing, "/batches/" + custB + "/" + batchFailing,
		},
		{
			"/batches/" + batchOK + "?format=json&x=1", "/exporter/batches/" + batchOK + "?format=json&x=1",
			custA + "/" + batchOK + "?format=json&x=1", "/exporter/batches/" + custA + "/" + batchOK,
		},
	} {
		rec := get(t, h, http.MethodGet, tc.target)
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != tc.location {
			t.Errorf("%s: %d, Location %q; want 302 to %q", tc.target, rec.Code, rec.Header().Get("Location"), tc.location)
			continue
		}
		base, _ := url.Parse("http://exporter.example" + tc.browser)
		loc, _ := url.Parse(tc.location)
		if got := base.ResolveReference(loc).Path; got != tc.resolved {
			t.Errorf("%s: the redirect leads to %s, want %s", tc.browser, got, tc.resolved)
		}
	}
	if rec := get(t, h, http.MethodGet, "/batches/"+batchErrors+"?format=xml"); rec.Code != http.StatusBadRequest {
		t.Errorf("old address with a bad format: %d, want 400", rec.Code)
	}
}

// sharedID is listed under both customers: by the configuration under
// custA, by a batch file under custB.
const sharedID = "77777777-0000-4000-8000-000000000007"

func sharedFixture() http.Handler {
	cfg := testConfig()
	cfg.Customers[0].Batches = append(cfg.Customers[0].Batches, sharedID)
	targets := append(targetsOf(cfg), batchstate.Target{
		CustomerID: custB, CustomerName: cfg.Customers[1].Name, TrackingID: sharedID, Origin: "uploads.txt:3",
	})
	states := map[string]batchstate.BatchState{
		custA + "/" + sharedID: {Batch: &partnercenter.Batch{
			TrackingID: sharedID, Status: partnercenter.StatusFinished,
			Devices: partnercenter.DeviceCounts{partnercenter.StatusFinished: 5},
		}, LastSuccess: at(-1), LastAttempt: at(-1)},
		custB + "/" + sharedID: {Batch: &partnercenter.Batch{
			TrackingID: sharedID, Status: partnercenter.StatusQueued,
			Devices: partnercenter.DeviceCounts{partnercenter.StatusQueued: 9},
		}, LastSuccess: at(-1), LastAttempt: at(-1)},
	}
	return NewHandler(Options{
		Listing: listingOf(func() *config.Config { return cfg }, func() []batchstate.Target { return targets }),
		State: func(t batchstate.Target) (batchstate.BatchState, bool) {
			s, ok := states[t.CustomerID+"/"+t.TrackingID]
			return s, ok
		},
		Now: func() time.Time { return t0 },
	})
}

func TestTrackingIDUnderTwoCustomers(t *testing.T) {
	h := sharedFixture()
	for _, tc := range []struct {
		customer, source, status string
		total                    int
	}{
		{custA, "configuration", "finished", 5},
		{custB, "uploads.txt:3", "queued", 9},
	} {
		rec := get(t, h, http.MethodGet, "/batches/"+tc.customer+"/"+sharedID+"?format=json")
		mustOK(t, rec, contentTypeJSON)
		b := decodeJSON[batchPage](t, rec.Body.Bytes()).Batch
		if b.CustomerID != tc.customer || b.Source != tc.source || b.Status == nil || *b.Status != tc.status || b.Devices.Total != tc.total {
			t.Errorf("customer %s: got customer %s, source %q, status %v, devices %+v; want %s, %q, %s, %d",
				tc.customer, b.CustomerID, b.Source, b.Status, b.Devices, tc.customer, tc.source, tc.status, tc.total)
		}
	}

	// The list links each to its own page.
	list := get(t, h, http.MethodGet, "/batches").Body.String()
	for _, c := range []string{custA, custB} {
		if want := `<a href="batches/` + c + "/" + sharedID + `">`; !strings.Contains(list, want) {
			t.Errorf("list lacks %s", want)
		}
	}

	// The old address cannot choose: it says which customers list the ID.
	rec := get(t, h, http.MethodGet, "/batches/"+sharedID)
	want := "batch tracking ID " + sharedID + " is listed under 2 customers: " +
		"customer " + custA + " (Contoso Ltd) at /batches/" + custA + "/" + sharedID + ", " +
		"customer " + custB + ` (Fabrikam <b>"Inc"</b>) at /batches/` + custB + "/" + sharedID + "\n"
	if rec.Code != http.StatusMultipleChoices || rec.Body.String() != want {
		t.Errorf("old address: %d %q; want 300 %q", rec.Code, rec.Body.String(), want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("old address: Content-Type %q, want text/plain (the names are not escaped)", ct)
	}
}

func TestNoConfigurationYet(t *testing.T) {
	f := newFixture()
	f.cfg = nil
	for _, target := range []string{"/batches", page(batchOK)} {
		rec := get(t, f.handler(), http.MethodGet, target)
		if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != msgNoConfig+"\n" {
			t.Errorf("%s: %d %q, want 503 %q", target, rec.Code, rec.Body, msgNoConfig)
		}
	}
}

// TestReloadDropsBatch: a batch removed from the configuration leaves the
// pages at once, the others keep their data.
func TestReloadDropsBatch(t *testing.T) {
	f := newFixture()
	h := f.handler()
	f.cfg = testConfig()
	f.cfg.Customers[0].Batches = []string{batchOK, batchProcessing}

	rec := get(t, h, http.MethodGet, page(batchErrors))
	if rec.Code != http.StatusNotFound {
		t.Errorf("dropped batch: status %d, want 404", rec.Code)
	}
	list := decodeJSON[listPage](t, get(t, h, http.MethodGet, "/batches?format=json").Body.Bytes())
	var want []batchSummary
	for _, s := range expectedSummaries() {
		if s.TrackingID != batchErrors {
			want = append(want, s)
		}
	}
	expectSame(t, list.Batches, want)
}

func TestEmptyConfiguration(t *testing.T) {
	f := newFixture()
	f.cfg = &config.Config{}
	rec := get(t, f.handler(), http.MethodGet, "/batches")
	mustOK(t, rec, contentTypeHTML)
	if want := `<tr><td colspan="6">No batches are configured.</td></tr>`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("page lacks %s", want)
	}
	rec = get(t, f.handler(), http.MethodGet, "/batches?format=json")
	if want := `"batches": []`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("JSON lacks %s:\n%s", want, rec.Body)
	}
}

func TestSecurityHeadersAndNoSecret(t *testing.T) {
	h := newFixture().handler()
	targets := []string{
		"/batches", "/batches?format=json",
		page(batchErrors), page(batchErrors) + "?format=json", page(batchErrors) + "?format=csv",
		page(batchStale), "/batches/not-a-guid",
	}
	wantHeaders := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"Vary":                    "Accept",
	}
	for _, target := range targets {
		rec := get(t, h, http.MethodGet, target)
		for name, want := range wantHeaders {
			if got := rec.Header().Get(name); got != want {
				t.Errorf("%s: %s %q, want %q", target, name, got, want)
			}
		}
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("%s shows the client secret", target)
		}
	}
}

func TestPrefersJSON(t *testing.T) {
	for _, tc := range []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false},
		{"*/*", false},
		{"application/json, text/html", false},
		{"text/html;q=0.5, application/json", true},
		{"application/json;q=0", false},
		{"application/json;q=bogus", false},
		{"garbage;;;, application/json", true},
	} {
		if got := prefersJSON(tc.accept); got != tc.want {
			t.Errorf("prefersJSON(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{1500 * time.Millisecond, "2s"},
		{45 * time.Second, "45s"},
		{4*time.Minute + 12*time.Second, "4m 12s"},
		{time.Hour, "1h"},
		{time.Hour + 59*time.Second, "1h"},
		{3*time.Hour + 5*time.Minute, "3h 5m"},
		{50*time.Hour + 30*time.Minute, "2d 2h"},
		{48 * time.Hour, "2d"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestSpreadsheetSafe(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"5CG1234ABC":      "5CG1234ABC",
		"=1+1":            "'=1+1",
		"+1":              "'+1",
		"-1":              "'-1",
		"@SUM(A1)":        "'@SUM(A1)",
		"\tx":             "'\tx",
		"a=b":             "a=b",
		hostile:           hostile,
		"'already quoted": "'already quoted",
	} {
		if got := spreadsheetSafe(in); got != want {
			t.Errorf("spreadsheetSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRetiredBatchIsNotShown(t *testing.T) {
	f := newFixture()
	s := f.states[batchOK]
	s.Retired = true
	f.states[batchOK] = s
	h := f.handler()
	list := decodeJSON[listPage](t, get(t, h, http.MethodGet, "/batches?format=json").Body.Bytes())
	for _, b := range list.Batches {
		if b.TrackingID == batchOK {
			t.Errorf("retired batch listed: %+v", b)
		}
	}
	if len(list.Batches) != len(targetsOf(f.cfg))-1 {
		t.Errorf("%d batches listed, want every configured one but the retired", len(list.Batches))
	}
	for _, target := range []string{page(batchOK), "/batches/" + batchOK} {
		rec := get(t, h, http.MethodGet, target)
		if want := retired(batchOK) + "\n"; rec.Code != http.StatusNotFound || rec.Body.String() != want {
			t.Errorf("retired batch page %s: %d %q, want 404 %q", target, rec.Code, rec.Body.String(), want)
		}
	}
}

// targetsOf lists the batches of cfg in file order, as the daemon does.
func targetsOf(cfg *config.Config) []batchstate.Target {
	var targets []batchstate.Target
	for _, c := range cfg.Customers {
		for _, b := range c.Batches {
			targets = append(targets, batchstate.Target{CustomerID: c.ID, CustomerName: c.Name, TrackingID: b})
		}
	}
	return targets
}

// listingOf is the Listing of the configuration cfg returns when it is
// called, as the daemon builds it: not ok while cfg returns nil, the
// batches of targets or, when targets is nil, those of the configuration.
func listingOf(cfg func() *config.Config, targets func() []batchstate.Target) func() (Listing, bool) {
	return func() (Listing, bool) {
		c := cfg()
		if c == nil {
			return Listing{}, false
		}
		l := Listing{MaxFailedDevicesPerBatch: c.MaxFailedDevicesPerBatch}
		if targets != nil {
			l.Targets = targets()
		} else {
			l.Targets = targetsOf(c)
		}
		return l, true
	}
}
