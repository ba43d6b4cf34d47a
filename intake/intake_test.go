package intake

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

const (
	custA   = "aaaaaaaa-0000-4000-8000-000000000001"
	batch1  = "11111111-1111-4111-8111-111111111111"
	batch2  = "22222222-2222-4222-8222-222222222222"
	batch3  = "33333333-3333-4333-8333-333333333333"
	token   = "intake-token-that-must-not-leak"
	rotated = "rotated-intake-token-that-must-not-leak"
)

var at = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// memPersister keeps registrations in memory and counts its writes.
type memPersister struct {
	mu     sync.Mutex
	regs   map[string]storage.Registration
	writes int
	fail   error
}

func (m *memPersister) PutRegistrations(rs []storage.Registration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.writes++
	for _, r := range rs {
		m.regs[key(r.CustomerID, r.TrackingID)] = r
	}
	return nil
}

func (m *memPersister) DeleteRegistration(c, b string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.writes++
	delete(m.regs, key(c, b))
	return nil
}

func (m *memPersister) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.regs)
}

type fixture struct {
	in      *Intake
	store   *memPersister
	reg     *prometheus.Registry
	logs    *bytes.Buffer
	tokenF  string
	changes int
}

func newFixture(t *testing.T, maxBatches int) *fixture {
	t.Helper()
	f := &fixture{store: &memPersister{regs: map[string]storage.Registration{}}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	f.tokenF = filepath.Join(t.TempDir(), "token")
	writeToken(t, f.tokenF, token+"\n")
	f.in = New(Options{
		Persist: f.store,
		Listed: func(c, b string) (string, bool) {
			if c == custA && b == batch3 {
				return "partnercenter.yml", true
			}
			return "", false
		},
		PageURL:    func(c, b string) string { return "/batches/" + c + "/" + b },
		OnChange:   func() { f.changes++ },
		Logger:     log.NewLogfmtLogger(f.logs),
		Registerer: f.reg,
		Now:        func() time.Time { return at },
	}, nil)
	f.in.Configure([]string{f.tokenF}, maxBatches)
	return f
}

func writeToken(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) do(t *testing.T, method, path, bearer, contentType, body string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	f.in.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func TestIntakeIsOffWithoutTokenFiles(t *testing.T) {
	f := newFixture(t, 10)
	f.in.Configure(nil, 10)
	code, body, _ := f.do(t, http.MethodPost, Path, token, "", custA+" "+batch1)
	if code != http.StatusNotFound || body != "the batch intake API is off: set intake.bearer_token_files to turn it on\n" {
		t.Errorf("off: %d %q", code, body)
	}
	if f.store.count() != 0 {
		t.Error("an intake that is off stored a batch")
	}
}

func TestIntakeRefusesMissingAndWrongTokens(t *testing.T) {
	f := newFixture(t, 10)
	for name, auth := range map[string]string{"none": "", "wrong": "not-the-token", "prefix": token[:10]} {
		code, body, hdr := f.do(t, http.MethodPost, Path, auth, "", custA+" "+batch1)
		if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != `Bearer realm="partnercenter_exporter"` ||
			body != "a valid bearer token is required (Authorization: Bearer <token>)\n" {
			t.Errorf("%s: %d %q %q", name, code, body, hdr.Get("WWW-Authenticate"))
		}
	}
	// Basic is not Bearer, even with the token as its value.
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(custA+" "+batch1))
	req.Header.Set("Authorization", "Basic "+token)
	rec := httptest.NewRecorder()
	f.in.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("Basic with the token: %d, want 401", rec.Code)
	}
	if f.store.count() != 0 {
		t.Error("an unauthorized request stored a batch")
	}
}

func TestIntakeRegistersEveryBodyForm(t *testing.T) {
	location := "/v1/customers/" + custA + "/batchJobStatus/" + batch1
	tests := []struct {
		name, contentType, body string
	}{
		{name: "customer and batch", body: custA + " " + batch1},
		{name: "comma form", body: custA + "," + batch1},
		{name: "location path", body: location},
		{name: "full URL", body: "https://api.partnercenter.microsoft.com" + location},
		{name: "CRLF, BOM, comments and blank lines", body: "\xEF\xBB\xBF# uploaded 2026-12-07\r\n\r\n" + strings.ToUpper(custA) + " " + batch1 + "  # first\r\n"},
		{name: "JSON object", contentType: "application/json", body: `{"customer_id":"` + custA + `","batch_tracking_id":"` + batch1 + `"}`},
		{name: "JSON array with location", contentType: "application/json", body: `[{"location":"` + location + `"}]`},
		{name: "JSON without content type", contentType: "application/x-www-form-urlencoded", body: ` {"location":"` + location + `"}`},
	}
	want := `{
  "batches": [
    {
      "customer_id": "` + custA + `",
      "batch_tracking_id": "` + batch1 + `",
      "registered": "2026-12-07T12:00:00Z",
      "already_registered": ALREADY,
      "url": "/batches/` + custA + `/` + batch1 + `"
    }
  ]
}
`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 10)
			code, body, hdr := f.do(t, http.MethodPost, Path, token, tt.contentType, tt.body)
			if code != http.StatusCreated || body != strings.Replace(want, "ALREADY", "false", 1) || hdr.Get("Content-Type") != "application/json" {
				t.Errorf("first registration: %d %s\n%s", code, hdr.Get("Content-Type"), body)
			}
			code, body, _ = f.do(t, http.MethodPost, Path+"/", token, tt.contentType, tt.body)
			if code != http.StatusOK || body != strings.Replace(want, "ALREADY", "true", 1) {
				t.Errorf("second registration: %d\n%s", code, body)
			}
			if f.store.count() != 1 || f.store.writes != 1 || f.changes != 1 {
				t.Errorf("stored %d batches in %d writes with %d changes, want 1, 1, 1", f.store.count(), f.store.writes, f.changes)
			}
		})
	}
}

func TestIntakeRegistersAllOrNothing(t *testing.T) {
	f := newFixture(t, 10)
	body := custA + " " + batch1 + "\n" + custA + " " + batch2 + "\nnot a batch line with a secret-looking AKIAXXXX\n" +
		custA + " 1234\n"
	code, answer, _ := f.do(t, http.MethodPost, Path, token, "text/plain", body)
	want := `{
  "errors": [
    "line 3: expected \"\u003ccustomer GUID\u003e \u003cbatch GUID\u003e\" or a batchJobStatus location",
    "line 4: batch tracking ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"
  ]
}
`
	if code != http.StatusBadRequest || answer != want {
		t.Errorf("%d\n%s\nwant\n%s", code, answer, want)
	}
	if f.store.count() != 0 || f.changes != 0 {
		t.Errorf("a request with a bad line stored %d batches", f.store.count())
	}
	code, answer, _ = f.do(t, http.MethodPost, Path, token, "application/json",
		`[{"customer_id":"`+custA+`","batch_tracking_id":"`+batch1+`"},{"customer_id":"`+custA+`"},{"location":"x","customer_id":"`+custA+`"},{"batch":1},7,{"customer_id":5}]`)
	want = `{
  "errors": [
    "element 2: customer_id and batch_tracking_id, or location, are required",
    "element 3: give customer_id and batch_tracking_id, or location, not both",
    "element 4: not a batch object: unknown field \"batch\"",
    "element 5: not a batch object: expected an object with customer_id and batch_tracking_id, or location",
    "element 6: not a batch object: field \"customer_id\" must be a string"
  ]
}
`
	if code != http.StatusBadRequest || answer != want {
		t.Errorf("%d\n%s\nwant\n%s", code, answer, want)
	}
	if code, answer, _ = f.do(t, http.MethodPost, Path, token, "application/json", `{"customer_id": `); code != http.StatusBadRequest ||
		!strings.Contains(answer, `"element 1: not a batch object: invalid JSON`) {
		t.Errorf("truncated JSON: %d %s", code, answer)
	}
	if code, answer, _ = f.do(t, http.MethodPost, Path, token, "", "# nothing\n"); code != http.StatusBadRequest ||
		answer != "{\n  \"errors\": [\n    \"the request names no batch\"\n  ]\n}\n" {
		t.Errorf("empty request: %d %s", code, answer)
	}
	if f.store.count() != 0 {
		t.Errorf("bad requests stored %d batches", f.store.count())
	}
}

func TestIntakeBounds(t *testing.T) {
	f := newFixture(t, 2)
	big := strings.Repeat("# padding padding padding padding\n", MaxBodyBytes/30)
	code, answer, _ := f.do(t, http.MethodPost, Path, token, "", big+custA+" "+batch1)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(answer, "request body larger than 1 MiB") {
		t.Errorf("oversized body: %d %s", code, answer)
	}
	if code, _, _ = f.do(t, http.MethodPost, Path, token, "", custA+" "+batch1); code != http.StatusCreated {
		t.Fatalf("first batch: %d", code)
	}
	code, answer, _ = f.do(t, http.MethodPost, Path, token, "", custA+" "+batch2+"\n"+custA+" "+batch3)
	want := "{\n  \"errors\": [\n    \"too many registered batches: 1 registered, 2 more would pass intake.max_batches (2); stop tracking finished batches with DELETE /api/v1/batches/{customer_id}/{batch_tracking_id}\"\n  ]\n}\n"
	if code != http.StatusInsufficientStorage || answer != want {
		t.Errorf("past max_batches: %d\n%s", code, answer)
	}
	if f.store.count() != 1 {
		t.Errorf("%d batches stored, want 1: a refused request stores nothing", f.store.count())
	}
}

func TestIntakeStopsTrackingRegisteredBatchesOnly(t *testing.T) {
	f := newFixture(t, 10)
	if code, _, _ := f.do(t, http.MethodPost, Path, token, "", custA+" "+batch1+"\n"+custA+" "+batch3); code != http.StatusCreated {
		t.Fatal(code)
	}
	code, body, _ := f.do(t, http.MethodDelete, Path+"/"+custA+"/"+batch3, token, "", "")
	if code != http.StatusConflict || body != "batch "+batch3+" of customer "+custA+" is listed in partnercenter.yml: remove it there\n" {
		t.Errorf("listed batch: %d %q", code, body)
	}
	if code, _, _ = f.do(t, http.MethodDelete, Path+"/"+strings.ToUpper(custA)+"/"+batch1, token, "", ""); code != http.StatusNoContent {
		t.Errorf("registered batch: %d, want 204", code)
	}
	code, body, _ = f.do(t, http.MethodDelete, Path+"/"+custA+"/"+batch1, token, "", "")
	if code != http.StatusNotFound || body != "batch "+batch1+" of customer "+custA+" is not registered through the intake\n" {
		t.Errorf("deleted twice: %d %q", code, body)
	}
	for _, path := range []string{Path + "/" + custA, Path + "/" + custA + "/nope", Path + "/" + custA + "/" + batch1 + "/x"} {
		if code, _, _ = f.do(t, http.MethodDelete, path, token, "", ""); code != http.StatusBadRequest {
			t.Errorf("DELETE %s: %d, want 400", path, code)
		}
	}
	if code, _, hdr := f.do(t, http.MethodGet, Path, token, "", ""); code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow %q", code, hdr.Get("Allow"))
	}
	got := f.in.Registrations()
	if len(got) != 1 || got[0].TrackingID != batch3 {
		t.Errorf("registrations %v, want only the listed batch3 (registered too)", got)
	}
	expected := `# HELP partnercenter_intake_requests_total Requests to the batch intake API (/api/v1/batches), by HTTP status code.
# TYPE partnercenter_intake_requests_total counter
partnercenter_intake_requests_total{code="201"} 1
partnercenter_intake_requests_total{code="204"} 1
partnercenter_intake_requests_total{code="400"} 3
partnercenter_intake_requests_total{code="404"} 1
partnercenter_intake_requests_total{code="405"} 1
partnercenter_intake_requests_total{code="409"} 1
`
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(expected)); err != nil {
		t.Error(err)
	}
}

func TestIntakeFollowsARotatedToken(t *testing.T) {
	f := newFixture(t, 10)
	if code, _, _ := f.do(t, http.MethodPost, Path, token, "", custA+" "+batch1); code != http.StatusCreated {
		t.Fatal(code)
	}
	// A Kubernetes Secret update swaps the file; the size changes too here,
	// but a same-size token is caught by its modification time.
	writeToken(t, f.tokenF, rotated+"\n")
	if code, _, _ := f.do(t, http.MethodPost, Path, token, "", custA+" "+batch2); code != http.StatusUnauthorized {
		t.Errorf("the old token after rotation: %d, want 401", code)
	}
	if code, _, _ := f.do(t, http.MethodPost, Path, rotated, "", custA+" "+batch2); code != http.StatusCreated {
		t.Errorf("the new token: %d, want 201", code)
	}
	if err := os.Remove(f.tokenF); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := f.do(t, http.MethodPost, Path, rotated, "", custA+" "+batch3); code != http.StatusUnauthorized {
		t.Errorf("with the token file gone: %d, want 401", code)
	}
	logs := f.logs.String()
	for _, secret := range []string{token, rotated} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows a token:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "msg=\"intake token file gives no token\" err=\"token file "+f.tokenF+": no such file or directory\"") {
		t.Errorf("the missing token file is not logged:\n%s", logs)
	}
}

func TestIntakeStoresNothingWhenTheStoreFails(t *testing.T) {
	f := newFixture(t, 10)
	f.store.fail = errors.New("storage: disk full")
	code, body, _ := f.do(t, http.MethodPost, Path, token, "", custA+" "+batch1)
	if code != http.StatusInternalServerError || !strings.Contains(body, "storing the batches failed; none was registered: storage: disk full") {
		t.Errorf("%d %s", code, body)
	}
	if len(f.in.Registrations()) != 0 || f.changes != 0 {
		t.Error("a registration the store refused is tracked all the same")
	}
}

func TestIntakeRestoresRegistrations(t *testing.T) {
	restored := []storage.Registration{{CustomerID: strings.ToUpper(custA), TrackingID: batch2, Registered: at.Add(-time.Hour)}}
	in := New(Options{Persist: &memPersister{regs: map[string]storage.Registration{}}}, restored)
	in.Configure([]string{"unused"}, 10)
	got := in.Registrations()
	if len(got) != 1 || got[0].CustomerID != custA || !got[0].Registered.Equal(at.Add(-time.Hour)) {
		t.Errorf("restored %v", got)
	}
}
