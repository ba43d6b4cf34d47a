package batchpages_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchpages"
	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// This file is in the external test package so that it drives only the
// exported handler, as the server does, and shares no helpers with the
// in-package tests.

const (
	fuzzCustomer = "aaaaaaaa-0000-4000-8000-00000000000a"
	fuzzBatch    = "10000000-0000-4000-8000-0000000000ab"
	// fuzzHostile is what a compromised service could send; the HTML
	// pages must show it as text.
	fuzzHostile = `<script>alert(1)</script><SCRIPT src=x>`
)

// The Content-Type of each format, as the handler documents them to
// clients (exact strings: clients and tests rely on them).
var fuzzContentTypes = map[string]string{
	"html": "text/html; charset=utf-8",
	"json": "application/json; charset=utf-8",
	"csv":  "text/csv; charset=utf-8; header=present",
}

// fuzzMethods are the methods a request may use; the fuzzer picks one by
// index so that it need not invent method names.
var fuzzMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions}

// fuzzHandler serves one configured batch that has failed devices whose
// values are hostile, so that every format has something to escape.
func fuzzHandler() http.Handler {
	cfg := &config.Config{
		MaxFailedDevicesPerBatch: 1,
		Customers:                []config.Customer{{ID: fuzzCustomer, Name: fuzzHostile, Batches: []string{fuzzBatch}}},
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	state := batchstate.BatchState{
		Batch: &partnercenter.Batch{
			TrackingID: fuzzBatch, Status: partnercenter.StatusFinishedWithErrors, RawStatus: fuzzHostile,
			StartedTime: now.Add(-time.Hour), CompletedTime: now.Add(-time.Minute),
			Devices: partnercenter.DeviceCounts{partnercenter.StatusFinished: 3, partnercenter.StatusFinishedWithErrors: 2},
			Errors:  []partnercenter.ErrorCount{{Code: fuzzHostile, Description: fuzzHostile, Devices: 2}},
			FailedDevices: []partnercenter.Device{{
				SerialNumber: fuzzHostile, DeviceID: fuzzHostile, ProductKey: "=1+1",
				Status: partnercenter.StatusFinishedWithErrors, ErrorCode: "806", ErrorDescription: fuzzHostile,
			}},
			FailedDevicesOmitted: 1,
		},
		LastSuccess: now.Add(-time.Minute), LastAttempt: now.Add(-time.Minute),
	}
	return batchpages.NewHandler(batchpages.Options{
		Listing: func() (batchpages.Listing, bool) {
			var targets []batchstate.Target
			for _, c := range cfg.Customers {
				for _, b := range c.Batches {
					targets = append(targets, batchstate.Target{CustomerID: c.ID, CustomerName: c.Name, TrackingID: b})
				}
			}
			return batchpages.Listing{Targets: targets, MaxFailedDevicesPerBatch: cfg.MaxFailedDevicesPerBatch}, true
		},
		State: func(t batchstate.Target) (batchstate.BatchState, bool) {
			return state, t.TrackingID == fuzzBatch
		},
		Now: func() time.Time { return now },
	})
}

// FuzzBatchPath drives the real handler with arbitrary paths, ?format=
// values, Accept headers and methods. format "" sends no format parameter.
func FuzzBatchPath(f *testing.F) {
	f.Add("/batches", "", "", uint8(0))
	f.Add("/batches", "json", "", uint8(0))
	f.Add("/batches", "csv", "", uint8(1))
	f.Add("/batches/"+fuzzCustomer+"/"+fuzzBatch, "csv", "", uint8(0))
	f.Add("/batches/"+strings.ToUpper(fuzzCustomer+"/"+fuzzBatch), "", "application/json;q=0.9, text/html;q=0.1", uint8(0))
	f.Add("/batches/"+fuzzCustomer+"/<script>alert(1)</script>", "html", "", uint8(0))
	f.Add("/batches/<script>alert(1)</script>/"+fuzzBatch, "html", "", uint8(0))
	f.Add("/batches/"+fuzzCustomer+"/"+fuzzBatch, "html", "", uint8(2))
	f.Add("/batches/"+fuzzBatch, "csv", "", uint8(0)) // the old address: a redirect
	f.Add("/batches/"+strings.ToUpper(fuzzBatch), "", "", uint8(1))
	f.Add("/batches/<script>alert(1)</script>", "html", "", uint8(0))
	f.Add("/batches/", "json", "", uint8(0))
	f.Add("/batches/"+fuzzCustomer+"/", "json", "", uint8(0))
	h := fuzzHandler()
	f.Fuzz(func(t *testing.T, path, format, accept string, methodIndex uint8) {
		method := fuzzMethods[int(methodIndex)%len(fuzzMethods)]
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = method
		// Built by hand: httptest.NewRequest panics on targets that do not
		// parse, and the handler only reads URL.Path and the query.
		req.URL = &url.URL{Path: path}
		if format != "" {
			req.URL.RawQuery = "format=" + url.QueryEscape(format)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, rec, path, format, accept, method)
	})
}

func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, path, format, accept, method string) {
	t.Helper()
	body := rec.Body.String()
	contentType := rec.Header().Get("Content-Type")
	switch rec.Code {
	case http.StatusOK, http.StatusFound, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
	default:
		t.Fatalf("%s %q format=%q: status %d\n%s", method, path, format, rec.Code, body)
	}
	// Every answer, errors included, carries the security headers.
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") ||
		rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%s %q: security headers missing: %v", method, path, rec.Header())
	}
	// CSV carries the API's values verbatim by design (it is served as an
	// attachment with nosniff); every other answer must keep them inert.
	if contentType != fuzzContentTypes["csv"] && strings.Contains(strings.ToLower(body), "<script") {
		t.Fatalf("%s %q format=%q: %s answer contains <script:\n%s", method, path, format, contentType, body)
	}

	getOrHead := method == http.MethodGet || method == http.MethodHead
	isList := path == "/batches"
	isBatch := strings.EqualFold(path, "/batches/"+fuzzCustomer+"/"+fuzzBatch) && strings.HasPrefix(path, "/batches/")
	isOldBatch := strings.EqualFold(path, "/batches/"+fuzzBatch) && strings.HasPrefix(path, "/batches/")
	validFormat := format == "" || format == "html" || format == "json" || (format == "csv" && (isBatch || isOldBatch))
	wantOK := getOrHead && (isList || isBatch) && validFormat
	if (rec.Code == http.StatusOK) != wantOK {
		t.Fatalf("%s %q format=%q: status %d, want 200 to be %v\n%s", method, path, format, rec.Code, wantOK, body)
	}
	wantFound := getOrHead && isOldBatch && validFormat
	if (rec.Code == http.StatusFound) != wantFound {
		t.Fatalf("%s %q format=%q: status %d, want 302 to be %v\n%s", method, path, format, rec.Code, wantFound, body)
	}
	if wantFound {
		want := fuzzCustomer + "/" + fuzzBatch
		if format != "" {
			want += "?format=" + url.QueryEscape(format)
		}
		if got := rec.Header().Get("Location"); got != want {
			t.Fatalf("%q format=%q: Location %q, want %q", path, format, got, want)
		}
		return
	}
	if !strings.HasPrefix(path, "/batches") && rec.Code != http.StatusNotFound {
		t.Fatalf("%s %q: status %d for a path outside /batches, want 404", method, path, rec.Code)
	}
	if rec.Code == http.StatusMethodNotAllowed && (getOrHead || rec.Header().Get("Allow") != "GET, HEAD") {
		t.Fatalf("%s %q: 405 with Allow %q", method, path, rec.Header().Get("Allow"))
	}
	if rec.Code != http.StatusOK {
		return
	}

	want := fuzzContentTypes[format]
	if format == "" {
		// Without ?format=, JSON only when Accept asks for it.
		want = fuzzContentTypes["html"]
		if contentType == fuzzContentTypes["json"] && strings.Contains(strings.ToLower(accept), "application/json") {
			want = contentType
		}
	}
	if contentType != want {
		t.Fatalf("%s %q format=%q Accept %q: Content-Type %q, want %q", method, path, format, accept, contentType, want)
	}
	if rec.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("Content-Length %q for a %d-byte body", rec.Header().Get("Content-Length"), len(body))
	}
	if contentType == fuzzContentTypes["json"] && !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%q: invalid JSON:\n%s", path, body)
	}
}
