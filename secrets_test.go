package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// exposure collects every text the exporter lets out (pages, metrics,
// logs, error answers) under a name, so that a test can check none of
// them carries a secret. Other suites add to it with add or visit.
type exposure struct {
	mu    sync.Mutex
	texts []exposedText
}

type exposedText struct{ where, text string }

func (e *exposure) add(where, text string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.texts = append(e.texts, exposedText{where, text})
}

// visit fetches every page of exp for the given batches, whatever its
// status, and adds each answer.
func (e *exposure) visit(t *testing.T, exp *testExporter, ids ...string) {
	t.Helper()
	pages := []string{"/metrics", "/config", "/", "/batches", "/batches?format=json", "/batches?format=csv"}
	for _, id := range ids {
		for _, format := range []string{"html", "json", "csv"} {
			pages = append(pages, "/batches/"+id+"?format="+format)
		}
	}
	for _, page := range pages {
		body, status, err := fetch(exp.url + page)
		if err != nil {
			t.Fatalf("GET %s: %v", page, err)
		}
		e.add(page+" ("+http.StatusText(status)+")", body)
	}
}

// check fails the test for every text that contains one of secrets.
func (e *exposure) check(t *testing.T, secrets ...string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, secret := range secrets {
		if secret == "" {
			t.Fatal("an empty secret would match everything")
		}
		for _, x := range e.texts {
			if i := strings.Index(x.text, secret); i >= 0 {
				t.Errorf("%s shows a secret: ...%s...", x.where, excerpt(x.text, i))
			}
		}
	}
}

// excerpt shows where a secret was found without printing it whole.
func excerpt(text string, at int) string {
	return text[max(at-40, 0):at] + "<secret>"
}

// issuedTokens lists the access tokens the fake handed out, as seen in the
// Authorization headers it received.
func issuedTokens(srv *partnercentertest.Server) []string {
	var tokens []string
	for _, r := range srv.Requests() {
		if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tokens = append(tokens, token)
		}
	}
	return tokens
}

// TestNoSecretAnywhere runs the exporter through token failures (one of
// which echoes the secret back), a successful run with failing batches and
// an expired token, and checks every page, every metric, every log line
// and every error text for the client secret and the access tokens.
func TestNoSecretAnywhere(t *testing.T) {
	srv := newFaultFake(t)
	ids := []string{faultA, faultB, faultC}
	srv.SetBatch(customer1, faultA, partnercentertest.Batch{TrackingID: faultA, Status: "finished_with_errors",
		Devices: partnercentertest.GenerateDevices(10, 3, map[string]int{"808": 2})})
	srv.SetBatch(customer1, faultB, processing(faultB))
	srv.SetResponses(customer1, faultC, processing(faultC), partnercentertest.Response{Status: http.StatusInternalServerError})
	exp, _ := faultExporter(t, srv, []string{"refresh_interval: 0s"}, ids...)
	var seen exposure

	phases := []struct {
		name  string
		setup func()
	}{
		{"invalid_client echoing the secret", func() {
			srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided: "+testSecret)
		}},
		{"400 echoing the secret", func() {
			srv.FailTokenRequests(http.StatusBadRequest, "invalid_request "+testSecret, "bad request for "+testSecret)
		}},
		{"malformed token answer", func() {
			srv.FailTokenRequests(0, "", "")
			srv.SetTokenResponses(partnercentertest.Response{Body: []byte(`{"access_token":"` + partnercentertest.AccessTokenPrefix + testSecret)})
		}},
		{"success", func() { srv.SetTokenResponses() }},
		{"expired token", srv.ExpireTokens},
	}
	for _, p := range phases {
		p.setup()
		body, _ := exp.scrape(t, faultScrapeTimeout)
		seen.add("/metrics after "+p.name, body)
		seen.visit(t, exp, ids...)
	}
	seen.add("log", exp.logs.String())

	tokens := issuedTokens(srv)
	if len(tokens) < 2 {
		t.Fatalf("the fake saw %d bearer tokens, want at least 2 (before and after expiry)", len(tokens))
	}
	seen.check(t, append(tokens, testSecret, partnercentertest.AccessTokenPrefix, srv.LastAccessToken())...)

	// The scan is only worth something if the texts hold what it passed.
	for _, want := range []string{"invalid_client", "token endpoint answered 400", "decoding token response", "HTTP 500", "reading batch failed", "<redacted>"} {
		if !strings.Contains(exp.logs.String(), want) {
			t.Errorf("the log lacks %q: the scan did not see that failure", want)
		}
	}
}
