package waitcmd

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
)

const intakeToken = "intake-token-that-must-not-leak"

// fakeIntake implements the contract of the exporter's intake that the
// command relies on: POST /api/v1/batches with a bearer token and a body
// of batch-file lines answers 201 with JSON for a new batch and 200 for
// one already tracked; 401 without the token.
type fakeIntake struct {
	mu       sync.Mutex
	requests []string // "METHOD PATH|Content-Type|body"
	tracked  map[batchfiles.Batch]bool
	// fail answers the first len(fail) requests with these statuses.
	fail []int
	// contentType of the 200 and 201 answers; JSON unless set.
	contentType string
}

func startIntake(t *testing.T, f *fakeIntake) string {
	t.Helper()
	f.tracked = map[batchfiles.Batch]bool{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (f *fakeIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path+"|"+r.Header.Get("Content-Type")+"|"+string(body))
	if len(f.fail) > 0 {
		status := f.fail[0]
		f.fail = f.fail[1:]
		http.Error(w, "scripted failure", status)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/batches" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+intakeToken {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	var created []batchfiles.Batch
	for n, line := range strings.Split(string(body), "\n") {
		b, ok, err := batchfiles.ParseLine(line)
		if err != nil {
			http.Error(w, "line "+strconv.Itoa(n+1)+": "+err.Error(), http.StatusBadRequest)
			return
		}
		if ok && !f.tracked[b] {
			f.tracked[b] = true
			created = append(created, b)
		}
	}
	ct := f.contentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	if len(created) == 0 {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"batches":[]}`)
		return
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, `{"batches":[{"customer_id":"`+created[0].CustomerID+`","batch_tracking_id":"`+created[0].TrackingID+`"}]}`)
}

func (f *fakeIntake) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// TestRegister: --register hands the batch to the intake, once, before
// the first read; a second run finds it tracked already.
func TestRegister(t *testing.T) {
	srv := fake(t)
	script(srv, batch("finished", devices("finished", 1)))
	intake := &fakeIntake{}
	base := startIntake(t, intake)
	opts := testOptions(writeConfig(t, srv, ""))
	opts.Register, opts.RegisterTokenFile = base+"/", writeToken(t, intakeToken+"\n")

	r := runWait(t, opts)
	check(t, "exit status", r.code, ExitFinished)
	host := strings.TrimPrefix(base, "http://")
	check(t, "stderr", r.stderr, "partnercenter_exporter wait: registered the batch with the exporter at "+host+"\n"+
		"[0s] finished, 1 device: 1 finished\n")
	want := "POST /api/v1/batches|text/plain; charset=utf-8|" + customer + " " + batchID + "\n"
	check(t, "intake requests", strings.Join(intake.seen(), "\n"), want)

	r = runWait(t, opts)
	check(t, "exit status again", r.code, ExitFinished)
	check(t, "stderr again", strings.SplitAfter(r.stderr, "\n")[0], "partnercenter_exporter wait: the exporter at "+host+" already tracks the batch\n")
	check(t, "intake requests again", len(intake.seen()), 2)
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, intakeToken) {
			t.Errorf("the output contains the intake token:\n%s", out)
		}
	}
}

// TestRegisterFails: a refusal is a configuration error (3) and nothing
// is read; an intake that keeps failing is tried three times (2); one
// failure is tried again.
func TestRegisterFails(t *testing.T) {
	tests := []struct {
		name        string
		token       string
		path        string
		fail        []int
		contentType string
		code        int
		requests    int
		stderr      string
	}{
		{"wrong token", "wrong", "", nil, "", ExitUsage, 1, `refused with HTTP 401: {"error":"unauthorized"}`},
		{"wrong path", intakeToken, "/prefix", nil, "", ExitUsage, 1, "refused with HTTP 404: 404 page not found"},
		{"not JSON", intakeToken, "", nil, "text/html", ExitUsage, 1, "HTTP 201 without a JSON answer: is this an exporter's intake?"},
		{"unavailable", intakeToken, "", []int{503, 503, 503}, "", ExitIncomplete, 3, "HTTP 503: scripted failure"},
		{"unavailable once", intakeToken, "", []int{502}, "", ExitFinished, 2, "registered the batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t)
			script(srv, batch("finished", devices("finished", 1)))
			intake := &fakeIntake{fail: tt.fail, contentType: tt.contentType}
			base := startIntake(t, intake)
			opts := testOptions(writeConfig(t, srv, ""))
			opts.Register, opts.RegisterTokenFile = base+tt.path, writeToken(t, tt.token)
			r := runWait(t, opts)
			check(t, "exit status", r.code, tt.code)
			check(t, "intake requests", len(intake.seen()), tt.requests)
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tt.stderr)
			}
			reads := 0
			if tt.code == ExitFinished {
				reads = 1
			}
			check(t, "reads", srv.BatchRequests(customer, batchID), reads)
			if strings.Contains(r.stderr, intakeToken) {
				t.Errorf("stderr contains the token: %s", r.stderr)
			}
		})
	}
}
