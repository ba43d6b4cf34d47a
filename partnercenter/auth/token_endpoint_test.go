package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

func TestTokenErrorMapping(t *testing.T) {
	aadstsDescription := "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\n" +
		"Trace ID: 0a1b2c3d-0000-0000-0000-000000000000\r\nCorrelation ID: 9f8e7d6c-0000-0000-0000-000000000000"
	tests := []struct {
		name      string
		status    int
		body      string
		wantErr   string
		wantToken *partnercenter.TokenError // nil when the error is not a partnercenter.TokenError
	}{
		{
			name:      "invalid client",
			status:    http.StatusUnauthorized,
			body:      `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`,
			wantErr:   "token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided.",
			wantToken: &partnercenter.TokenError{StatusCode: 401, Code: "invalid_client", Description: "AADSTS7000215: Invalid client secret provided."},
		},
		{
			name:    "description on several lines",
			status:  http.StatusUnauthorized,
			body:    fmt.Sprintf(`{"error":"invalid_client","error_description":%q}`, aadstsDescription),
			wantErr: "token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value. Trace ID: 0a1b2c3d-0000-0000-0000-000000000000 Correlation ID: 9f8e7d6c-0000-0000-0000-000000000000",
		},
		{
			name:      "code only",
			status:    http.StatusBadRequest,
			body:      `{"error":"invalid_resource"}`,
			wantErr:   "token endpoint answered 400 invalid_resource",
			wantToken: &partnercenter.TokenError{StatusCode: 400, Code: "invalid_resource"},
		},
		{
			name:      "BOM before JSON",
			status:    http.StatusBadRequest,
			body:      "\uFEFF" + `{"error":"unauthorized_client","error_description":"AADSTS700016: Application not found."}`,
			wantErr:   "token endpoint answered 400 unauthorized_client: AADSTS700016: Application not found.",
			wantToken: &partnercenter.TokenError{StatusCode: 400, Code: "unauthorized_client", Description: "AADSTS700016: Application not found."},
		},
		{
			name:      "body not JSON",
			status:    http.StatusBadGateway,
			body:      "<html><body>upstream connect error</body></html>",
			wantErr:   "token endpoint answered 502 Bad Gateway",
			wantToken: &partnercenter.TokenError{StatusCode: 502},
		},
		{
			name:      "unassigned status",
			status:    599,
			body:      "",
			wantErr:   "token endpoint answered 599",
			wantToken: &partnercenter.TokenError{StatusCode: 599},
		},
		{
			name:    "long description is cut",
			status:  http.StatusBadRequest,
			body:    `{"error":"invalid_request","error_description":"` + strings.Repeat("x", 298) + `ééé"}`,
			wantErr: "token endpoint answered 400 invalid_request: " + strings.Repeat("x", 297) + "...",
		},
		{
			name:    "cut on a rune boundary",
			status:  http.StatusBadRequest,
			body:    `{"error":"invalid_request","error_description":"` + strings.Repeat("x", 296) + `ééé"}`,
			wantErr: "token endpoint answered 400 invalid_request: " + strings.Repeat("x", 296) + "...",
		},
		{
			name:    "echoed secret is redacted",
			status:  http.StatusUnauthorized,
			body:    `{"error":"invalid_client","error_description":"secret ` + tokenTestSecret + ` is wrong"}`,
			wantErr: "token endpoint answered 401 invalid_client: secret <redacted> is wrong",
		},
		{
			name:    "200 not JSON",
			status:  http.StatusOK,
			body:    "not json",
			wantErr: "decoding token response: invalid character 'o' in literal null (expecting 'u')",
		},
		{
			name:    "200 without access token",
			status:  http.StatusOK,
			body:    `{"token_type":"Bearer","expires_in":"3599"}`,
			wantErr: "token response has no access_token",
		},
		{
			name:    "200 with another token type",
			status:  http.StatusOK,
			body:    `{"token_type":"mac","expires_in":"3599","access_token":"at-1"}`,
			wantErr: `token endpoint issued a "mac" token, want Bearer`,
		},
		{
			name:    "answer too large",
			status:  http.StatusOK,
			body:    `{"access_token":"` + strings.Repeat("a", 1<<20) + `"}`,
			wantErr: "token response is larger than 1048576 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTokenTestServer(t, func(*http.Request, int) (int, string) { return tt.status, tt.body })
			obs := &tokenTestObserver{}
			src := NewClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs)

			_, err := src.Token(context.Background())
			tokenCheckError(t, err, tt.wantErr)
			if strings.Contains(err.Error(), tokenTestSecret) {
				t.Errorf("error %q contains the client secret", err)
			}
			var tokenErr *partnercenter.TokenError
			isTokenErr := errors.As(err, &tokenErr)
			if isTokenErr != (tt.status != http.StatusOK) {
				t.Errorf("errors.As(%v, *partnercenter.TokenError) = %v", err, isTokenErr)
			}
			if tt.wantToken != nil && !reflect.DeepEqual(tokenErr, tt.wantToken) {
				t.Errorf("TokenError = %+v, want %+v", tokenErr, tt.wantToken)
			}
			obs.check(t, map[string]int{"failure": 1})
		})
	}
}

func TestTokenSourceUnreachableEndpoint(t *testing.T) {
	srv := newTokenTestServer(t, tokenAnswerNumbered(`"3599"`))
	tokenURL := srv.tokenURL()
	srv.Close()
	obs := &tokenTestObserver{}
	src := NewClientCredentialsSource(tokenTestCredentials(tokenURL), srv.Client(), obs)

	_, err := src.Token(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), `token request: Post "`+tokenURL+`": `) {
		t.Errorf("error = %v, want one starting with the request that failed", err)
	}
	obs.check(t, map[string]int{"failure": 1})
}

// tokenCountingTransport counts the requests that reach the network and
// answers none of them.
type tokenCountingTransport struct {
	mu sync.Mutex
	n  int
}

func (c *tokenCountingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return nil, errors.New("tokenCountingTransport sends nothing")
}

func (c *tokenCountingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestTokenSourceRefusesPlainHTTPOffLoopback(t *testing.T) {
	dir := t.TempDir()
	refreshFile := filepath.Join(dir, "refresh")
	tokenWriteFile(t, refreshFile, "rt-1\n", 0o600)
	for _, tokenURL := range []string{"http://login.example.com/t/oauth2/token", "http://[::1"} {
		transport := &tokenCountingTransport{}
		hc := &http.Client{Transport: transport}
		sources := map[string]partnercenter.TokenSource{
			"client credentials": NewClientCredentialsSource(tokenTestCredentials(tokenURL), hc, nil),
			"refresh token": NewRefreshTokenSource(RefreshTokenConfig{
				TokenURL: tokenURL, ClientID: tokenTestClientID,
				Resource: tokenTestResource, RefreshTokenFile: refreshFile,
			}, hc, nil),
		}
		for name, src := range sources {
			_, err := src.Token(context.Background())
			tokenCheckError(t, err, "token URL must be https (plain http only on a loopback address)")
			if got := transport.count(); got != 0 {
				t.Errorf("%s, %s: %d requests sent, want 0", name, tokenURL, got)
			}
		}
	}
}

func TestTokenRedirectIsNotFollowed(t *testing.T) {
	refreshFile := filepath.Join(t.TempDir(), "refresh")
	tokenWriteFile(t, refreshFile, "rt-1\n", 0o600)
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		target := newTokenTestServer(t, tokenAnswerNumbered(`"3599"`))
		origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.tokenURL()+"?sig=hunter2", status)
		}))
		t.Cleanup(origin.Close)
		hc := &http.Client{Timeout: 10 * time.Second}
		sources := map[string]partnercenter.TokenSource{
			"client credentials": NewClientCredentialsSource(tokenTestCredentials(origin.URL+tokenTestPath), hc, nil),
			"refresh token": NewRefreshTokenSource(RefreshTokenConfig{
				TokenURL: origin.URL + tokenTestPath, ClientID: tokenTestClientID,
				Resource: tokenTestResource, ClientSecret: func() string { return tokenTestSecret }, RefreshTokenFile: refreshFile,
			}, hc, nil),
		}
		for name, src := range sources {
			_, err := src.Token(context.Background())
			want := fmt.Sprintf("token endpoint answered %d %s: redirect to %s not followed",
				status, http.StatusText(status), target.Listener.Addr())
			tokenCheckError(t, err, want)
			var tokenErr *partnercenter.TokenError
			if !errors.As(err, &tokenErr) || tokenErr.StatusCode != status {
				t.Errorf("%s: error = %#v, want a *partnercenter.TokenError with status %d", name, err, status)
			}
		}
		target.checkRequestCount(t, 0)
		if hc.CheckRedirect != nil {
			t.Error("a token source changed the caller's http.Client")
		}
	}
}
