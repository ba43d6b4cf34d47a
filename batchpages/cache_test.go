package batchpages

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/auth"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// These tests fill the real batchstate.Store through the real client from
// a partnercentertest server, as the exporter does on a scrape, and then
// open the pages.

// readTime replaces the wall-clock read times of the store, so that the
// expected rows can be exact.
var readTime = at(-5)

type liveFixture struct {
	srv   *partnercentertest.Server
	cfg   *config.Config
	store *batchstate.Store
	// devices are what the fake sends for batchErrors.
	devices []partnercentertest.Device
}

const maxKept = 3

func newLiveFixture(t *testing.T) *liveFixture {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	f := &liveFixture{srv: srv, cfg: testConfig(), store: batchstate.NewStore()}
	f.cfg.MaxFailedDevicesPerBatch = maxKept

	srv.SetBatch(custA, batchOK, partnercentertest.Batch{
		TrackingID: batchOK, Status: "finished",
		StartedTime: "2026-11-25T09:55:00", CompletedTime: "2026-11-25T10:20:00.5",
		Devices: partnercentertest.GenerateDevices(20, 1, nil),
	})
	f.devices = partnercentertest.GenerateDevices(12, 2, map[string]int{"806": 2, "808": 3})
	for i := range f.devices {
		if f.devices[i].ErrorCode != "" {
			f.devices[i].ErrorDescription = hostile // the first failed device
			break
		}
	}
	srv.SetBatch(custA, batchErrors, partnercentertest.Batch{
		TrackingID: batchErrors, Status: "finished_with_errors",
		StartedTime: "2026-11-25T10:30:00Z", CompletedTime: "2026-11-25T11:00:00Z",
		Devices: f.devices,
	})
	srv.SetBatch(custA, batchProcessing, partnercentertest.Batch{
		TrackingID: batchProcessing, Status: "processing", StartedTime: "2026-11-25T11:30:00",
		Devices: append(withStatus(partnercentertest.GenerateDevices(4, 3, nil), "processing"),
			partnercentertest.GenerateDevices(6, 4, nil)...),
	})
	// batchFailing is unknown to the fake: 404.
	srv.SetResponses(custB, batchStale, partnercentertest.Batch{}, partnercentertest.Response{
		Status: http.StatusInternalServerError,
		Body:   partnercentertest.ErrorBody(500, "InternalServerError", hostile, true),
	})
	// batchNeverRead is never asked for.
	return f
}

func withStatus(devices []partnercentertest.Device, status string) []partnercentertest.Device {
	for i := range devices {
		devices[i].Status = status
	}
	return devices
}

func (f *liveFixture) client(t *testing.T, srv *partnercentertest.Server) *partnercenter.Client {
	t.Helper()
	tokens := auth.NewClientCredentialsSource(auth.ClientCredentials{
		TokenURL:     srv.TokenURL(),
		ClientID:     partnercentertest.DefaultClientID,
		Resource:     config.DefaultResource,
		ClientSecret: func() string { return partnercentertest.DefaultClientSecret },
	}, nil, nil)
	c, err := partnercenter.NewClient(partnercenter.ClientConfig{
		BaseURL: srv.URL,
		Tokens:  tokens,
		Decode:  partnercenter.DecodeOptions{MaxFailedDevices: f.cfg.MaxFailedDevicesPerBatch},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// targetByID finds a batch of the test configuration, where tracking IDs
// are unique.
func targetByID(targets []batchstate.Target, trackingID string) (batchstate.Target, bool) {
	for _, t := range targets {
		if t.TrackingID == trackingID {
			return t, true
		}
	}
	return batchstate.Target{}, false
}

// refresh reads the batches as one scrape would, with a fixed
// MS-CorrelationId.
func (f *liveFixture) refresh(t *testing.T, c *partnercenter.Client, ids ...string) {
	t.Helper()
	var targets []batchstate.Target
	for _, id := range ids {
		tg, ok := targetByID(targetsOf(f.cfg), id)
		if !ok {
			t.Fatalf("batch %s is not in the test configuration", id)
		}
		targets = append(targets, tg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = partnercenter.WithCorrelationID(ctx, correlationID)
	f.store.SetMembers(targetsOf(f.cfg), time.Now())
	collector.NewReader(f.store, log.NewNopLogger(), 4).Read(ctx, c, targets, batchstate.ReadPolicy{})
}

// lastRequestID is the MS-RequestId of the last request for a batch.
func (f *liveFixture) lastRequestID(t *testing.T, srv *partnercentertest.Server, trackingID string) string {
	t.Helper()
	id := ""
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/"+trackingID) {
			id = r.Header.Get("MS-RequestId")
		}
	}
	if id == "" {
		t.Fatalf("no request for %s", trackingID)
	}
	return id
}

func (f *liveFixture) handler() http.Handler {
	return NewHandler(Options{
		Listing: listingOf(func() *config.Config { return f.cfg }, nil),
		State: func(tg batchstate.Target) (batchstate.BatchState, bool) {
			s, ok := f.store.Get(tg)
			if !s.LastSuccess.IsZero() {
				s.LastSuccess = readTime
			}
			if !s.LastAttempt.IsZero() {
				s.LastAttempt = readTime
			}
			return s, ok
		},
		Now: func() time.Time { return t0 },
	})
}

// failedOf returns what the pages should list of devices: the failed
// ones, in order, at most limit, and how many more failed.
func failedOf(devices []partnercentertest.Device, limit int) (kept []failedDevice, omitted int) {
	kept = []failedDevice{}
	for _, d := range devices {
		if d.ErrorCode == "" && d.Status != "finished_with_errors" {
			continue
		}
		if len(kept) == limit {
			omitted++
			continue
		}
		kept = append(kept, failedDevice{
			SerialNumber: d.SerialNumber, DeviceID: d.DeviceID, ProductKey: d.ProductKey,
			Status: d.Status, ErrorCode: d.ErrorCode, ErrorDescription: d.ErrorDescription,
		})
	}
	return kept, omitted
}

func TestPagesFromRealCache(t *testing.T) {
	f := newLiveFixture(t)
	c := f.client(t, f.srv)
	f.refresh(t, c, batchOK, batchErrors, batchProcessing, batchFailing, batchStale)

	// 429 gets a client of its own: the client holds back every request
	// while a Retry-After runs, and this one is an hour.
	throttled := partnercentertest.NewServer()
	t.Cleanup(throttled.Close)
	throttled.SetResponses(custB, batchFailing, partnercentertest.Batch{}, partnercentertest.Response{
		Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3600"}},
	})

	kept, omitted := failedOf(f.devices, maxKept)
	if len(kept) != maxKept || omitted != 2 {
		t.Fatalf("fixture: %d failed devices kept, %d left out; want %d and 2", len(kept), omitted, maxKept)
	}
	fabrikam := `Fabrikam <b>"Inc"</b>`
	apiErr := func(status int, code, description, requestID string) *readError {
		return &readError{
			Source:     sourcePartnerCenter,
			Message:    (&partnercenter.Error{StatusCode: status, Code: code, Description: description}).Error(),
			HTTPStatus: status, ErrorCode: code, Description: description,
			CorrelationID: correlationID, RequestID: requestID,
		}
	}
	want := []batchSummary{
		{
			CustomerID: custB, CustomerName: fabrikam, TrackingID: batchFailing, Source: "configuration", Attention: attentionFailing,
			Errors: []errorCount{}, LastAttemptTime: &readTime,
			LastError: apiErr(404, "600", "The resource was not found.", f.lastRequestID(t, f.srv, batchFailing)),
		},
		{
			CustomerID: custB, CustomerName: fabrikam, TrackingID: batchStale, Source: "configuration", Attention: attentionFailing,
			Errors: []errorCount{}, LastAttemptTime: &readTime,
			LastError: apiErr(500, "500", hostile, f.lastRequestID(t, f.srv, batchStale)),
		},
		{
			CustomerID: custB, CustomerName: fabrikam, TrackingID: batchNeverRead, Source: "configuration", Attention: attentionNotRead,
			Errors: []errorCount{},
		},
		{
			CustomerID: custA, CustomerName: "Contoso Ltd", TrackingID: batchProcessing, Source: "configuration", Attention: attentionUnfinished,
			Status: new("processing"), Devices: &deviceCounts{Processing: 4, Finished: 6, Total: 10},
			StartedTime: new(at(-30)), DurationSeconds: new(1800.0), Running: true,
			Errors: []errorCount{}, LastSuccessTime: &readTime, LastAttemptTime: &readTime,
		},
		{
			CustomerID: custA, CustomerName: "Contoso Ltd", TrackingID: batchErrors, Source: "configuration", Attention: attentionErrored,
			Status: new("finished_with_errors"), Devices: &deviceCounts{Finished: 7, FinishedWithErrors: 5, Total: 12},
			StartedTime: new(at(-90)), CompletedTime: new(at(-60)), DurationSeconds: new(1800.0),
			Errors:            expectedErrorCounts(f.devices),
			FailedDevicesKept: maxKept, FailedDevicesOmitted: 2,
			LastSuccessTime: &readTime, LastAttemptTime: &readTime,
		},
		{
			CustomerID: custA, CustomerName: "Contoso Ltd", TrackingID: batchOK, Source: "configuration", Attention: attentionOK,
			Status: new("finished"), Devices: &deviceCounts{Finished: 20, Total: 20},
			StartedTime: new(at(-125)), CompletedTime: new(at(-100).Add(500 * time.Millisecond)), DurationSeconds: new(1500.5),
			Errors: []errorCount{}, LastSuccessTime: &readTime, LastAttemptTime: &readTime,
		},
	}

	h := f.handler()
	t.Run("list", func(t *testing.T) {
		rec := get(t, h, http.MethodGet, "/batches?format=json")
		mustOK(t, rec, contentTypeJSON)
		expectSame(t, decodeJSON[listPage](t, rec.Body.Bytes()),
			listPage{GeneratedTime: t0, MaxFailedDevicesPerBatch: maxKept, Batches: want})
	})
	t.Run("batch", func(t *testing.T) {
		rec := get(t, h, http.MethodGet, page(batchErrors)+"?format=json")
		mustOK(t, rec, contentTypeJSON)
		expectSame(t, decodeJSON[batchPage](t, rec.Body.Bytes()),
			batchPage{GeneratedTime: t0, MaxFailedDevicesPerBatch: maxKept, Batch: want[4], FailedDevices: kept})
	})
	t.Run("CSV", func(t *testing.T) {
		rec := get(t, h, http.MethodGet, page(batchErrors)+"?format=csv")
		mustOK(t, rec, contentTypeCSV)
		wantRows := [][]string{csvHeader}
		for _, d := range kept {
			wantRows = append(wantRows, []string{d.SerialNumber, d.DeviceID, d.ProductKey, d.Status, d.ErrorCode, d.ErrorDescription})
		}
		wantRows = append(wantRows, []string{"# 2 more failed devices were left out: the exporter kept the first 3 (max_failed_devices_per_batch)", "", "", "", "", ""})
		expectSame(t, parseCSV(t, rec.Body.Bytes()), wantRows)
	})
	t.Run("HTML", func(t *testing.T) {
		body := get(t, h, http.MethodGet, page(batchErrors)).Body.String()
		for _, d := range kept {
			row := `<td><code>` + d.SerialNumber + `</code></td><td><code>` + d.DeviceID + `</code></td><td><code>` +
				d.ProductKey + `</code></td><td>` + d.Status + `</td><td><code>` + d.ErrorCode + `</code></td><td>`
			if !strings.Contains(body, row) {
				t.Errorf("batch page lacks the row of %s: %s", d.SerialNumber, row)
			}
		}
		if !strings.Contains(body, `<td>`+hostileHTML+`</td></tr>`) || strings.Contains(body, "<script") {
			t.Errorf("batch page does not show the hostile description escaped")
		}
	})

	t.Run("429", func(t *testing.T) {
		f.refresh(t, f.client(t, throttled), batchFailing)
		rec := get(t, h, http.MethodGet, page(batchFailing)+"?format=json")
		got := decodeJSON[batchPage](t, rec.Body.Bytes()).Batch
		wantRow := want[0]
		wantRow.LastError = apiErr(429, "429", "Too Many Requests.", f.lastRequestID(t, throttled, batchFailing))
		expectSame(t, got, wantRow)
	})
}

// expectedErrorCounts counts devices per error code with the first
// description seen, most devices first.
func expectedErrorCounts(devices []partnercentertest.Device) []errorCount {
	var counts []errorCount
	index := map[string]int{}
	for _, d := range devices {
		if d.ErrorCode == "" {
			continue
		}
		if i, ok := index[d.ErrorCode]; ok {
			counts[i].Devices++
			continue
		}
		index[d.ErrorCode] = len(counts)
		counts = append(counts, errorCount{Code: d.ErrorCode, Description: d.ErrorDescription, Devices: 1})
	}
	slices.SortStableFunc(counts, func(a, b errorCount) int { return b.Devices - a.Devices })
	return counts
}

func parseCSV(t *testing.T, body []byte) [][]string {
	t.Helper()
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("parsing CSV: %v\n%s", err, body)
	}
	return records
}

// TestPagesMakeNoUpstreamRequest opens every page in every format and
// checks the fake saw no request at all, token requests included.
func TestPagesMakeNoUpstreamRequest(t *testing.T) {
	f := newLiveFixture(t)
	f.refresh(t, f.client(t, f.srv), batchOK, batchErrors, batchProcessing, batchFailing, batchStale)
	batchesBefore, tokensBefore := f.srv.TotalBatchRequests(), f.srv.TokenRequests()
	if batchesBefore == 0 || tokensBefore == 0 {
		t.Fatalf("fixture: the refresh made %d batch and %d token requests", batchesBefore, tokensBefore)
	}

	h := f.handler()
	targets := []string{"/batches", "/batches?format=json"}
	for _, tg := range targetsOf(f.cfg) {
		for _, suffix := range []string{"", "?format=json", "?format=csv"} {
			targets = append(targets, "/batches/"+tg.CustomerID+"/"+tg.TrackingID+suffix)
		}
	}
	for _, target := range targets {
		if rec := get(t, h, http.MethodGet, target); rec.Code != http.StatusOK {
			t.Errorf("%s: status %d", target, rec.Code)
		}
	}
	if got := f.srv.TotalBatchRequests(); got != batchesBefore {
		t.Errorf("opening the pages made %d batch requests", got-batchesBefore)
	}
	if got := f.srv.TokenRequests(); got != tokensBefore {
		t.Errorf("opening the pages made %d token requests", got-tokensBefore)
	}
}

// TestReloadKeepsDataOfConfiguredBatches mirrors what the exporter does on
// reload: the new configuration is swapped in and the store forgets the
// batches it no longer lists.
func TestReloadKeepsDataOfConfiguredBatches(t *testing.T) {
	f := newLiveFixture(t)
	f.refresh(t, f.client(t, f.srv), batchOK, batchErrors)
	h := f.handler()

	reloaded := testConfig()
	reloaded.MaxFailedDevicesPerBatch = maxKept
	reloaded.Customers = reloaded.Customers[:1]
	reloaded.Customers[0].Batches = []string{batchErrors}
	f.cfg = reloaded
	f.store.SetMembers(targetsOf(reloaded), time.Now())

	list := decodeJSON[listPage](t, get(t, h, http.MethodGet, "/batches?format=json").Body.Bytes())
	if len(list.Batches) != 1 || list.Batches[0].TrackingID != batchErrors || list.Batches[0].FailedDevicesKept != maxKept {
		t.Errorf("after reload the list is %+v, want only %s with %d failed devices", list.Batches, batchErrors, maxKept)
	}
	rec := get(t, h, http.MethodGet, page(batchOK))
	if rec.Code != http.StatusNotFound {
		t.Errorf("dropped batch: status %d, want 404", rec.Code)
	}
}

// TestTokenFailureShown: a refused token is shown as the token endpoint's
// answer, and the client secret appears nowhere.
func TestTokenFailureShown(t *testing.T) {
	f := newLiveFixture(t)
	f.srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client",
		"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.")
	f.refresh(t, f.client(t, f.srv), batchOK)

	h := f.handler()
	rec := get(t, h, http.MethodGet, page(batchOK)+"?format=json")
	got := decodeJSON[batchPage](t, rec.Body.Bytes()).Batch.LastError
	description := "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value."
	want := &readError{
		Source:      sourceTokenEndpoint,
		Message:     "get token: token endpoint answered 401 invalid_client: " + description,
		HTTPStatus:  401,
		ErrorCode:   "invalid_client",
		Description: description,
	}
	expectSame(t, got, want)
	for _, target := range []string{"/batches", "/batches?format=json", page(batchOK), page(batchOK) + "?format=json"} {
		if body := get(t, h, http.MethodGet, target).Body.String(); strings.Contains(body, partnercentertest.DefaultClientSecret) {
			t.Errorf("%s shows the client secret", target)
		}
	}
}
