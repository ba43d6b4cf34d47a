package partnercentertest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

func TestClientCredentialsGrant(t *testing.T) {
	s, _ := newServer(t)
	r := postToken(t, s.TokenURL(), clientCredentials())
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.Status, r.Body)
	}
	got := decodeObject(t, r.Body)
	token, _ := got["access_token"].(string)
	if !strings.HasPrefix(token, "fake-at-") || token != s.LastAccessToken() {
		t.Errorf("access_token %q, want a fake-at- token equal to LastAccessToken %q", token, s.LastAccessToken())
	}
	delete(got, "access_token")
	want := map[string]any{
		"token_type":     "Bearer",
		"expires_in":     "3599",
		"ext_expires_in": "3599",
		"expires_on":     "1714568399",
		"not_before":     "1714564800",
		"resource":       resource,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answer %v, want %v", got, want)
	}
	if got := r.Header.Get("Cache-Control"); got != "no-store, no-cache" {
		t.Errorf("Cache-Control %q, want no-store, no-cache", got)
	}
	if got := s.TokenURL(); got != s.URL+"/contoso.onmicrosoft.com/oauth2/token" {
		t.Errorf("TokenURL %q", got)
	}
}

func TestExpiresInAsNumber(t *testing.T) {
	s, _ := newServer(t)
	s.SetExpiresInAsString(false)
	s.SetTokenLifetime(10 * time.Minute)
	r := postToken(t, s.TokenURL(), clientCredentials())
	got := decodeObject(t, r.Body)
	for name, want := range map[string]float64{"expires_in": 599, "ext_expires_in": 599, "expires_on": 1714565399, "not_before": 1714564800} {
		if got[name] != want {
			t.Errorf("%s = %#v, want number %v", name, got[name], want)
		}
	}
}

func TestClientCredentialsBasicAuth(t *testing.T) {
	s, _ := newServer(t)
	s.SetCredentials("app id", "s&cret")
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 2.3.1: both are form-encoded before Basic authentication.
	req.SetBasicAuth(url.QueryEscape("app id"), url.QueryEscape("s&cret"))
	if r := testkit.SendRequest(t, http.DefaultClient, req); r.Status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.Status, r.Body)
	}
}

func TestTokenErrors(t *testing.T) {
	with := func(name, value string) url.Values {
		form := clientCredentials()
		if value == "" {
			form.Del(name)
		} else {
			form.Set(name, value)
		}
		return form
	}
	tests := []struct {
		name       string
		tenant     string
		form       url.Values
		wantStatus int
		wantError  string
		wantCode   float64
		wantPrefix string
	}{
		{
			"wrong secret", "", with("client_secret", "wrong-secret"), 401, "invalid_client", 7000215,
			"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-0000-0000-0000000000c1'.\r\n",
		},
		{
			"missing secret", "", with("client_secret", ""), 401, "invalid_client", 7000218,
			"AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.\r\n",
		},
		{
			"unknown client", "", with("client_id", "11111111-1111-1111-1111-111111111111"), 400, "unauthorized_client", 700016,
			"AADSTS700016: Application with identifier '11111111-1111-1111-1111-111111111111' was not found in the directory 'contoso.onmicrosoft.com'.\r\n",
		},
		{
			"missing client id", "", with("client_id", ""), 400, "invalid_request", 900144,
			"AADSTS900144: The request body must contain the following parameter: 'client_id'.\r\n",
		},
		{
			"missing resource", "", with("resource", ""), 400, "invalid_request", 50001,
			"AADSTS50001: Resource identifier is not provided.\r\n",
		},
		{
			"missing grant type", "", with("grant_type", ""), 400, "invalid_request", 900144,
			"AADSTS900144: The request body must contain the following parameter: 'grant_type'.\r\n",
		},
		{
			"unsupported grant type", "", with("grant_type", "password"), 400, "unsupported_grant_type", 70003,
			"AADSTS70003: The app requested an unsupported grant type 'password'.\r\n",
		},
		{
			"unknown tenant", "fabrikam.onmicrosoft.com", clientCredentials(), 400, "invalid_request", 90002,
			"AADSTS90002: Tenant 'fabrikam.onmicrosoft.com' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t)
			tokenURL := s.TokenURL()
			if tt.tenant != "" {
				tokenURL = s.URL + "/" + tt.tenant + "/oauth2/token"
			}
			r := postToken(t, tokenURL, tt.form)
			if r.Status != tt.wantStatus {
				t.Errorf("status %d, want %d", r.Status, tt.wantStatus)
			}
			got := decodeObject(t, r.Body)
			if got["error"] != tt.wantError {
				t.Errorf("error %v, want %s", got["error"], tt.wantError)
			}
			if codes, _ := got["error_codes"].([]any); len(codes) != 1 || codes[0] != tt.wantCode {
				t.Errorf("error_codes %v, want [%v]", got["error_codes"], tt.wantCode)
			}
			description, _ := got["error_description"].(string)
			if !strings.HasPrefix(description, tt.wantPrefix) {
				t.Errorf("error_description %q, want prefix %q", description, tt.wantPrefix)
			}
			if secret := tt.form.Get("client_secret"); secret != "" && strings.Contains(r.Body, secret) {
				t.Errorf("answer echoes the client secret: %s", r.Body)
			}
			if n := s.TokenRequests(); n != 1 {
				t.Errorf("TokenRequests = %d, want 1", n)
			}
		})
	}
}

func TestTokenErrorBodyIsDeterministic(t *testing.T) {
	s, _ := newServer(t)
	r := postToken(t, s.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {partnercentertest.DefaultClientID}, "client_secret": {"nope"}, "resource": {resource}})
	want := `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-0000-0000-0000000000c1'.\r\n` +
		`Trace ID: 00000000-0000-0000-0000-000000000001\r\nCorrelation ID: 00000000-0000-0000-0001-000000000001\r\nTimestamp: 2024-05-01 12:00:00Z",` +
		`"error_codes":[7000215],"timestamp":"2024-05-01 12:00:00Z","trace_id":"00000000-0000-0000-0000-000000000001","correlation_id":"00000000-0000-0000-0001-000000000001"}`
	if r.Body != want {
		t.Errorf("body\n%s\nwant\n%s", r.Body, want)
	}
}

func TestRefreshTokenGrant(t *testing.T) {
	refresh := func(token, secret string) url.Values {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {partnercentertest.DefaultClientID}, "resource": {resource}}
		if token != "" {
			form.Set("refresh_token", token)
		}
		if secret != "" {
			form.Set("client_secret", secret)
		}
		return form
	}
	type step struct {
		form             url.Values
		wantStatus       int
		wantError        string
		wantRefreshToken string
	}
	tests := []struct {
		name          string
		refreshToken  string
		rotate        bool
		steps         []step
		wantLastGrant string
	}{
		{"rotating", "rt-1", true, []step{
			{refresh("rt-1", ""), 200, "", "rt-2"},
			{refresh("rt-1", ""), 400, "invalid_grant", ""},
			{refresh("rt-2", partnercentertest.DefaultClientSecret), 200, "", "rt-3"},
			{refresh("rt-3", "wrong"), 401, "invalid_client", ""},
			{refresh("rt-3", ""), 200, "", "rt-4"},
		}, "refresh_token"},
		{"static", "static-rt", false, []step{
			{refresh("static-rt", ""), 200, "", "static-rt"},
			{refresh("static-rt", ""), 200, "", "static-rt"},
		}, "refresh_token"},
		{"none set", "", false, []step{
			{refresh("anything", ""), 400, "invalid_grant", ""},
			{refresh("", ""), 400, "invalid_request", ""},
		}, "refresh_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t)
			s.SetRefreshToken(tt.refreshToken, tt.rotate)
			for i, st := range tt.steps {
				r := postToken(t, s.TokenURL(), st.form)
				if r.Status != st.wantStatus {
					t.Fatalf("step %d: status %d, want %d; body %s", i, r.Status, st.wantStatus, r.Body)
				}
				got := decodeObject(t, r.Body)
				if st.wantError != "" && got["error"] != st.wantError {
					t.Errorf("step %d: error %v, want %s", i, got["error"], st.wantError)
				}
				if st.wantRefreshToken != "" && got["refresh_token"] != st.wantRefreshToken {
					t.Errorf("step %d: refresh_token %v, want %s", i, got["refresh_token"], st.wantRefreshToken)
				}
			}
			log := s.Requests()
			if got := log[len(log)-1].Grant; got != tt.wantLastGrant {
				t.Errorf("logged grant %q, want %q", got, tt.wantLastGrant)
			}
		})
	}
}

func TestFailTokenRequests(t *testing.T) {
	s, _ := newServer(t)
	s.FailTokenRequests(http.StatusServiceUnavailable, "temporarily_unavailable", "AADSTS50196: The server terminated an operation.")
	r := postToken(t, s.TokenURL(), clientCredentials())
	if r.Status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", r.Status)
	}
	if want := `{"error":"temporarily_unavailable","error_description":"AADSTS50196: The server terminated an operation."}`; r.Body != want {
		t.Errorf("body %s, want %s", r.Body, want)
	}

	s.FailTokenRequests(42, "bad", "not a status")
	if r := postToken(t, s.TokenURL(), clientCredentials()); r.Status != http.StatusInternalServerError {
		t.Errorf("status %d for an invalid scripted status, want 500", r.Status)
	}

	s.FailTokenRequests(0, "", "")
	if r := postToken(t, s.TokenURL(), clientCredentials()); r.Status != http.StatusOK {
		t.Errorf("status %d after clearing the failure, want 200", r.Status)
	}
	if n := s.TokenRequests(); n != 3 {
		t.Errorf("TokenRequests = %d, want 3", n)
	}
}

func TestTokenEndpointOddRequests(t *testing.T) {
	s, _ := newServer(t)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.TokenURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := testkit.SendRequest(t, http.DefaultClient, req); r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET: status %d, Allow %q; want 405, POST", r.Status, r.Header.Get("Allow"))
	}

	// Over the 64 KiB the endpoint reads, under the 256 KiB net/http
	// drains after the handler, so the client reliably reads the answer.
	huge := clientCredentials()
	huge.Set("padding", strings.Repeat("x", 128<<10))
	r := postToken(t, s.TokenURL(), huge)
	if got := decodeObject(t, r.Body); r.Status != http.StatusBadRequest || got["error"] != "invalid_request" {
		t.Errorf("128 KiB body: status %d, body %.200s; want 400 invalid_request", r.Status, r.Body)
	}
	if r := postToken(t, s.TokenURL(), clientCredentials()); r.Status != http.StatusOK {
		t.Errorf("status %d after an oversized request, want 200", r.Status)
	}
}
