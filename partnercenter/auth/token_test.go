package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Names in this file start with "token" or "Token" so that they cannot
// clash with the other test files of the package.

const (
	tokenTestClientID = "11111111-2222-3333-4444-555555555555"
	tokenTestSecret   = "s3cr3t-Value~42"
	tokenTestResource = "https://api.partnercenter.microsoft.com"
	tokenTestPath     = "/tenant.example/oauth2/token"
)

// newTokenTestClock is a clock that moves only when told to.
func newTokenTestClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
}

// tokenTestObserver counts TokenRequest results and keeps the
// RefreshTokenWrite errors ("" for a success).
type tokenTestObserver struct {
	partnercenter.NopObserver
	mu      sync.Mutex
	results map[string]int
	writes  []string
}

func (o *tokenTestObserver) RefreshTokenWrite(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	o.writes = append(o.writes, msg)
}

// checkWrites compares the RefreshTokenWrite calls: "" for a success,
// "failure" for an error, which must name no refresh token.
func (o *tokenTestObserver) checkWrites(t *testing.T, want ...string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	var got []string
	for _, msg := range o.writes {
		if msg == "" {
			got = append(got, "")
			continue
		}
		got = append(got, "failure")
		if !strings.HasPrefix(msg, "saving rotated refresh token: ") {
			t.Errorf("write error %q, want a \"saving rotated refresh token: \" prefix", msg)
		}
		for i := range 10 {
			if strings.Contains(msg, fmt.Sprintf("rt-%d", i)) {
				t.Errorf("write error %q shows a refresh token", msg)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("refresh token writes %q, want %q", got, want)
	}
}

func (o *tokenTestObserver) TokenRequest(result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.results == nil {
		o.results = map[string]int{}
	}
	o.results[result]++
}

func (o *tokenTestObserver) check(t *testing.T, want map[string]int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	got := o.results
	if got == nil {
		got = map[string]int{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("observed token requests %v, want %v", got, want)
	}
}

// tokenTestRequest is what the fake token endpoint saw.
type tokenTestRequest struct {
	method, path, accept, contentType string
	form                              url.Values
}

// tokenTestServer is a fake token endpoint on loopback. answer gets the
// 1-based number of the request.
//
// It is not partnercentertest's token endpoint, which the cred tests use,
// because it checks the other side: the exact form the source sends,
// client secret and refresh token included, which partnercentertest must
// never record (its request log is part of demo mode, and its tests
// assert that no secret reaches it); any bytes as the answer, however
// malformed, numbered per request at a fixed clock; and a handler that
// acts while a request is in flight (holding it for the single-flight
// test, breaking the refresh token file). partnercentertest's endpoint
// plays Azure AD's rules instead, for the certificate and federated
// flows.
type tokenTestServer struct {
	*httptest.Server
	answer func(r *http.Request, n int) (status int, body string)

	mu       sync.Mutex
	received []tokenTestRequest
}

func newTokenTestServer(t *testing.T, answer func(r *http.Request, n int) (int, string)) *tokenTestServer {
	t.Helper()
	s := &tokenTestServer{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *tokenTestServer) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.received = append(s.received, tokenTestRequest{
		method:      r.Method,
		path:        r.URL.Path,
		accept:      r.Header.Get("Accept"),
		contentType: r.Header.Get("Content-Type"),
		form:        r.PostForm,
	})
	n := len(s.received)
	s.mu.Unlock()
	status, body := s.answer(r, n)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (s *tokenTestServer) requests() []tokenTestRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tokenTestRequest(nil), s.received...)
}

func (s *tokenTestServer) checkRequestCount(t *testing.T, want int) {
	t.Helper()
	if got := len(s.requests()); got != want {
		t.Errorf("token endpoint got %d requests, want %d", got, want)
	}
}

func (s *tokenTestServer) tokenURL() string {
	return s.URL + tokenTestPath
}

// tokenAnswerNumbered answers request n with access token "at-n" and the
// given raw expires_in JSON value ("" leaves it out).
func tokenAnswerNumbered(expiresIn string) func(*http.Request, int) (int, string) {
	return func(_ *http.Request, n int) (int, string) {
		return http.StatusOK, tokenTestBody(expiresIn, fmt.Sprintf("at-%d", n), "")
	}
}

func tokenTestBody(expiresIn, accessToken, refreshToken string) string {
	fields := []string{`"token_type":"Bearer"`, `"expires_on":"1741068367"`, `"resource":"` + tokenTestResource + `"`}
	if expiresIn != "" {
		fields = append(fields, `"expires_in":`+expiresIn)
	}
	fields = append(fields, `"access_token":"`+accessToken+`"`)
	if refreshToken != "" {
		fields = append(fields, `"refresh_token":"`+refreshToken+`"`)
	}
	return "{" + strings.Join(fields, ",") + "}"
}

func tokenTestCredentials(tokenURL string) ClientCredentials {
	return ClientCredentials{
		TokenURL:     tokenURL,
		ClientID:     tokenTestClientID,
		Resource:     tokenTestResource,
		ClientSecret: func() string { return tokenTestSecret },
	}
}

func tokenMustGet(t *testing.T, src partnercenter.TokenSource, want string) {
	t.Helper()
	got, err := src.Token(context.Background())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if got != want {
		t.Fatalf("Token = %q, want %q", got, want)
	}
}

func tokenCheckError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", want)
	}
	if err.Error() != want {
		t.Errorf("error = %q,\nwant    %q", err.Error(), want)
	}
}

func TestClientCredentialsSourceSendsForm(t *testing.T) {
	srv := newTokenTestServer(t, tokenAnswerNumbered(`"3599"`))
	obs := &tokenTestObserver{}
	src := NewClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs)

	tokenMustGet(t, src, "at-1")

	want := []tokenTestRequest{{
		method:      http.MethodPost,
		path:        tokenTestPath,
		accept:      "application/json",
		contentType: "application/x-www-form-urlencoded",
		form: url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {tokenTestClientID},
			"client_secret": {tokenTestSecret},
			"resource":      {tokenTestResource},
		},
	}}
	if got := srv.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %+v,\nwant %+v", got, want)
	}
	obs.check(t, map[string]int{"success": 1})
}

func TestTokenSourceOneRequestPerLifetime(t *testing.T) {
	tests := []struct {
		name      string
		expiresIn string // raw JSON, "" for none
		useFor    time.Duration
	}{
		{name: "number", expiresIn: `3599`, useFor: 3239100 * time.Millisecond},
		{name: "string of digits", expiresIn: `"3599"`, useFor: 3239100 * time.Millisecond},
		{name: "two seconds", expiresIn: `2`, useFor: time.Second},
		{name: "missing", expiresIn: "", useFor: 150 * time.Second},
		{name: "null", expiresIn: `null`, useFor: 150 * time.Second},
		{name: "not a number", expiresIn: `"soon"`, useFor: 150 * time.Second},
		{name: "zero", expiresIn: `0`, useFor: 150 * time.Second},
		{name: "negative", expiresIn: `"-5"`, useFor: 150 * time.Second},
		{name: "absurdly long", expiresIn: `99999999999999`, useFor: 24*time.Hour - 144*time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTokenTestServer(t, tokenAnswerNumbered(tt.expiresIn))
			clock := newTokenTestClock()
			obs := &tokenTestObserver{}
			src := newClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs, clock.Now)

			tokenMustGet(t, src, "at-1")
			tokenMustGet(t, src, "at-1")
			clock.Advance(tt.useFor - time.Nanosecond)
			tokenMustGet(t, src, "at-1")
			srv.checkRequestCount(t, 1)

			clock.Advance(time.Nanosecond)
			tokenMustGet(t, src, "at-2")
			tokenMustGet(t, src, "at-2")
			srv.checkRequestCount(t, 2)
			obs.check(t, map[string]int{"success": 2})
		})
	}
}

func TestTokenRefreshDelay(t *testing.T) {
	tests := []struct {
		lifetime, want time.Duration
	}{
		{lifetime: 2 * time.Second, want: time.Second},
		{lifetime: 5 * time.Minute, want: 150 * time.Second},
		{lifetime: 9 * time.Minute, want: 270 * time.Second},
		{lifetime: 10 * time.Minute, want: 5 * time.Minute},
		{lifetime: 30 * time.Minute, want: 25 * time.Minute},
		{lifetime: 50 * time.Minute, want: 45 * time.Minute},
		{lifetime: 60 * time.Minute, want: 54 * time.Minute},
		{lifetime: 3599 * time.Second, want: 3239100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.lifetime.String(), func(t *testing.T) {
			if got := tokenRefreshDelay(tt.lifetime); got != tt.want {
				t.Errorf("tokenRefreshDelay(%v) = %v, want %v", tt.lifetime, got, tt.want)
			}
		})
	}
}

func TestTokenSourceConcurrentCallersShareOneRequest(t *testing.T) {
	const callers = 50
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := newTokenTestServer(t, func(r *http.Request, n int) (int, string) {
		if n == 1 {
			close(arrived)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusOK, tokenTestBody(`"3599"`, fmt.Sprintf("at-%d", n), "")
	})
	obs := &tokenTestObserver{}
	src := NewClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs)

	var started, finished sync.WaitGroup
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		started.Add(1)
		finished.Go(func() {
			started.Done()
			tokens[i], errs[i] = src.Token(context.Background())
		})
	}
	<-arrived
	started.Wait()
	close(release)
	finished.Wait()

	for i := range callers {
		if tokens[i] != "at-1" || errs[i] != nil {
			t.Errorf("caller %d got (%q, %v), want (\"at-1\", nil)", i, tokens[i], errs[i])
		}
	}
	srv.checkRequestCount(t, 1)
	obs.check(t, map[string]int{"success": 1})
}

func tokenTestResponse(status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

// tokenBlockingTransport answers token requests in memory for the synctest
// tests (a goroutine blocked on a loopback socket is not "durably blocked"
// for synctest; one blocked on a channel is). It holds every request until
// release is closed, or the request's context ends, then answers with
// status and body.
type tokenBlockingTransport struct {
	release      chan struct{}
	status       int
	body         string
	mu           sync.Mutex
	requests     int
	canceledByUs int
}

func (b *tokenBlockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.requests++
	b.mu.Unlock()
	select {
	case <-b.release:
		return tokenTestResponse(b.status, b.body), nil
	case <-r.Context().Done():
		b.mu.Lock()
		b.canceledByUs++
		b.mu.Unlock()
		return nil, r.Context().Err()
	}
}

func (b *tokenBlockingTransport) counts() (requests, canceled int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests, b.canceledByUs
}

func TestTokenSourceWaitingCallersShareAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const callers = 50
		transport := &tokenBlockingTransport{
			release: make(chan struct{}),
			status:  http.StatusUnauthorized,
			body:    `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`,
		}
		obs := &tokenTestObserver{}
		src := NewClientCredentialsSource(tokenTestCredentials("https://login.example"+tokenTestPath), &http.Client{Transport: transport}, obs)

		var wg sync.WaitGroup
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() { _, errs[i] = src.Token(context.Background()) })
		}
		synctest.Wait() // every caller now waits for the one request
		if requests, _ := transport.counts(); requests != 1 {
			t.Fatalf("%d token requests under way, want 1", requests)
		}
		close(transport.release)
		wg.Wait()

		const want = "token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided."
		for i, err := range errs {
			if err == nil || err.Error() != want {
				t.Errorf("caller %d got error %v, want %q", i, err, want)
			}
		}
		obs.check(t, map[string]int{"failure": 1})

		// The failure is remembered: the next call gets it at once.
		_, err := src.Token(context.Background())
		tokenCheckError(t, err, want+" (remembered: no new token request before 2000-01-01T00:00:10Z)")
		if requests, _ := transport.counts(); requests != 1 {
			t.Errorf("%d token requests, want 1", requests)
		}
		obs.check(t, map[string]int{"failure": 1})
	})
}

func TestTokenSourceCallerCancelDoesNotCancelSharedRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		transport := &tokenBlockingTransport{
			release: make(chan struct{}),
			status:  http.StatusOK,
			body:    tokenTestBody(`"3599"`, "at-1", ""),
		}
		obs := &tokenTestObserver{}
		src := NewClientCredentialsSource(tokenTestCredentials("https://login.example"+tokenTestPath), &http.Client{Transport: transport}, obs)

		ctx, cancel := context.WithCancel(context.Background())
		var errFirst error
		var tokenSecond string
		var errSecond error
		var wg sync.WaitGroup
		wg.Go(func() { _, errFirst = src.Token(ctx) })
		synctest.Wait() // the request runs on behalf of the first caller
		wg.Go(func() { tokenSecond, errSecond = src.Token(context.Background()) })
		synctest.Wait()

		cancel()
		synctest.Wait() // the first caller gives up, the request goes on
		tokenCheckError(t, errFirst, "waiting for token: context canceled")
		if !errors.Is(errFirst, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false", errFirst)
		}
		if requests, canceled := transport.counts(); requests != 1 || canceled != 0 {
			t.Errorf("transport saw %d requests, %d canceled; want 1, 0", requests, canceled)
		}

		close(transport.release)
		wg.Wait()
		if tokenSecond != "at-1" || errSecond != nil {
			t.Errorf("second caller got (%q, %v), want (\"at-1\", nil)", tokenSecond, errSecond)
		}
		obs.check(t, map[string]int{"success": 1})
	})
}

func TestTokenSourceSharedRequestIsBounded(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		wantErr string
	}{
		{
			name:    "client without timeout",
			timeout: 0,
			wantErr: `token request: Post "https://login.example/tenant.example/oauth2/token": context deadline exceeded`,
		},
		{
			name:    "client timeout",
			timeout: 7 * time.Second,
			// net/http decides by a race of its own whether to add
			// " (Client.Timeout exceeded while awaiting headers)", so this
			// case checks errors.Is and the time instead of the text.
			wantErr: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				transport := &tokenBlockingTransport{release: make(chan struct{})}
				obs := &tokenTestObserver{}
				hc := &http.Client{Transport: transport, Timeout: tt.timeout}
				src := NewClientCredentialsSource(tokenTestCredentials("https://login.example"+tokenTestPath), hc, obs)

				start := time.Now()
				_, err := src.Token(context.Background())
				waited := time.Since(start) // synctest's fake clock, exact

				if tt.wantErr != "" {
					tokenCheckError(t, err, tt.wantErr)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
				}
				wantWait := tt.timeout
				if wantWait == 0 {
					wantWait = 30 * time.Second
				}
				if waited != wantWait {
					t.Errorf("Token returned after %v, want %v", waited, wantWait)
				}
				obs.check(t, map[string]int{"failure": 1})
			})
		})
	}
}

func TestTokenSourceInvalidate(t *testing.T) {
	srv := newTokenTestServer(t, tokenAnswerNumbered(`"3599"`))
	obs := &tokenTestObserver{}
	src := NewClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs)

	tokenMustGet(t, src, "at-1")

	src.Invalidate("some-older-token")
	src.Invalidate("")
	tokenMustGet(t, src, "at-1")
	srv.checkRequestCount(t, 1)

	src.Invalidate("at-1")
	tokenMustGet(t, src, "at-2")
	srv.checkRequestCount(t, 2)

	// Ten API calls refused the same token: one new token request.
	var wg sync.WaitGroup
	tokens := make([]string, 10)
	errs := make([]error, 10)
	for i := range tokens {
		wg.Go(func() {
			src.Invalidate("at-2")
			tokens[i], errs[i] = src.Token(context.Background())
		})
	}
	wg.Wait()
	for i := range tokens {
		if tokens[i] != "at-3" || errs[i] != nil {
			t.Errorf("caller %d got (%q, %v), want (\"at-3\", nil)", i, tokens[i], errs[i])
		}
	}
	srv.checkRequestCount(t, 3)
	obs.check(t, map[string]int{"success": 3})
}

func TestTokenSourceRetriesAfterFailure(t *testing.T) {
	srv := newTokenTestServer(t, func(_ *http.Request, n int) (int, string) {
		if n == 1 {
			return http.StatusInternalServerError, "<html>oops</html>"
		}
		return http.StatusOK, tokenTestBody(`"3599"`, fmt.Sprintf("at-%d", n), "")
	})
	obs := &tokenTestObserver{}
	clock := newTokenTestClock()
	src := newClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs, clock.Now)

	_, err := src.Token(context.Background())
	tokenCheckError(t, err, "token endpoint answered 500 Internal Server Error")
	clock.Advance(10 * time.Second)
	tokenMustGet(t, src, "at-2")
	srv.checkRequestCount(t, 2)
	obs.check(t, map[string]int{"failure": 1, "success": 1})
}

// TestTokenSourceBackoff: a failed token request is remembered for 10s,
// doubling with each failure in a row up to 5 minutes; during it Token
// fails at once with the remembered error and sends nothing. A success
// starts over.
func TestTokenSourceBackoff(t *testing.T) {
	const refusal = `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`
	var refuse sync.Mutex // held while the endpoint refuses
	refusing := true
	srv := newTokenTestServer(t, func(_ *http.Request, n int) (int, string) {
		refuse.Lock()
		defer refuse.Unlock()
		if refusing {
			return http.StatusUnauthorized, refusal
		}
		return http.StatusOK, tokenTestBody(`"3599"`, fmt.Sprintf("at-%d", n), "")
	})
	setRefusing := func(v bool) {
		refuse.Lock()
		defer refuse.Unlock()
		refusing = v
	}
	obs := &tokenTestObserver{}
	clock := newTokenTestClock()
	src := newClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs, clock.Now)
	const original = "token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided."

	requests := 0
	// fail expects one token request that is refused, then the backoff
	// wait: refused at once until its last nanosecond.
	fail := func(wait time.Duration) {
		t.Helper()
		_, err := src.Token(context.Background())
		requests++
		tokenCheckError(t, err, original)
		until := clock.Now().Add(wait)
		for _, step := range []time.Duration{0, wait - time.Nanosecond} {
			clock.Advance(step)
			_, err := src.Token(context.Background())
			tokenCheckError(t, err, original+" (remembered: no new token request before "+until.Format(time.RFC3339)+")")
			var tokenErr *partnercenter.TokenError
			if !errors.As(err, &tokenErr) || tokenErr.Code != "invalid_client" {
				t.Errorf("errors.As(%v, *partnercenter.TokenError) = %v, want the endpoint's invalid_client", err, tokenErr)
			}
			srv.checkRequestCount(t, requests)
		}
		clock.Advance(time.Nanosecond)
	}
	for _, wait := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute} {
		fail(wait)
	}
	obs.check(t, map[string]int{"failure": 7})

	setRefusing(false)
	tokenMustGet(t, src, "at-8")
	requests++
	srv.checkRequestCount(t, requests)

	// A success ends the series: the next failure waits 10s again.
	setRefusing(true)
	src.Invalidate("at-8")
	fail(10 * time.Second)
	obs.check(t, map[string]int{"failure": 8, "success": 1})
}

// TestTokenSourceBackoffEndsWhenCredentialFileChanges: a rotated client
// secret is tried at once, without waiting for the backoff to end; an
// unchanged file is not.
func TestTokenSourceBackoffEndsWhenCredentialFileChanges(t *testing.T) {
	const rotated = "rotated-Secret~43"
	srv := newTokenTestServer(t, func(r *http.Request, n int) (int, string) {
		if r.PostForm.Get("client_secret") != rotated {
			return http.StatusUnauthorized, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`
		}
		return http.StatusOK, tokenTestBody(`"3599"`, fmt.Sprintf("at-%d", n), "")
	})
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client_secret")
	tokenWriteFile(t, secretFile, tokenTestSecret, 0o600)
	creds := tokenTestCredentials(srv.tokenURL())
	creds.ClientSecret, creds.ClientSecretFile = nil, secretFile
	clock := newTokenTestClock()
	src := newClientCredentialsSource(creds, srv.Client(), nil, clock.Now)

	for range 3 {
		if _, err := src.Token(context.Background()); err == nil {
			t.Fatal("Token with the old secret succeeded")
		}
	}
	srv.checkRequestCount(t, 1)

	// Replaced the way Kubernetes does it: a new file renamed over the old.
	next := filepath.Join(dir, "client_secret.new")
	tokenWriteFile(t, next, rotated, 0o600)
	if err := os.Rename(next, secretFile); err != nil {
		t.Fatal(err)
	}
	tokenMustGet(t, src, "at-2")
	srv.checkRequestCount(t, 2)
}

// TestTokenSourceWatchesItsCredentialFiles: every source that reads a
// credential file ends its backoff when that file changes.
func TestTokenSourceWatchesItsCredentialFiles(t *testing.T) {
	access := ClientAssertionConfig{TokenURL: "https://login.example" + tokenTestPath, ClientID: tokenTestClientID, Resource: tokenTestResource}
	tests := []struct {
		name string
		src  *cachingTokenSource
		want []string
	}{
		{"inline secret", newClientCredentialsSource(tokenTestCredentials(access.TokenURL), nil, nil, time.Now), nil},
		{"secret file", newClientCredentialsSource(ClientCredentials{ClientSecretFile: "/s"}, nil, nil, time.Now), []string{"/s"}},
		{"refresh token", newRefreshTokenSource(RefreshTokenConfig{RefreshTokenFile: "/rt"}, nil, nil, time.Now), []string{"/rt"}},
		{"refresh token and secret file", newRefreshTokenSource(RefreshTokenConfig{ClientSecretFile: "/s", RefreshTokenFile: "/rt"}, nil, nil, time.Now), []string{"/s", "/rt"}},
		{"certificate", newCertificateSource(CertificateConfig{ClientAssertionConfig: access, CertificateFile: "/c"}, nil, nil, time.Now), []string{"/c"}},
		{"certificate and password", newCertificateSource(CertificateConfig{ClientAssertionConfig: access, CertificateFile: "/c", PasswordFile: "/p"}, nil, nil, time.Now), []string{"/c", "/p"}},
		{"federated token", newFederatedTokenSource(FederatedTokenConfig{ClientAssertionConfig: access, TokenFile: "/f"}, nil, nil, time.Now), []string{"/f"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.src.inputs, tt.want) {
			t.Errorf("%s: watches %q, want %q", tt.name, tt.src.inputs, tt.want)
		}
	}
}

func TestTokenSourceCanceledContext(t *testing.T) {
	srv := newTokenTestServer(t, tokenAnswerNumbered(`"3599"`))
	obs := &tokenTestObserver{}
	src := NewClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := src.Token(ctx)
	tokenCheckError(t, err, "waiting for token: context canceled")
	srv.checkRequestCount(t, 0)
	obs.check(t, map[string]int{})
}

// tokenWriteFile writes content to a new file in dir with the given mode.
func tokenWriteFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile honours the umask
		t.Fatal(err)
	}
}

func tokenCheckFile(t *testing.T, path, wantContent string, wantMode os.FileMode) {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(content) != wantContent {
		t.Errorf("%s contains %q, want %q", path, content, wantContent)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != wantMode {
		t.Errorf("%s has mode %v, want %v", path, info.Mode(), wantMode)
	}
}

// TestTokenSourceFailedRenewalKeepsTheValidToken: a renewal before expiry
// that fails leaves the old token in use until it expires, without a
// request per call; then the remembered failure shows.
func TestTokenSourceFailedRenewalKeepsTheValidToken(t *testing.T) {
	srv := newTokenTestServer(t, func(_ *http.Request, n int) (int, string) {
		if n == 1 {
			return http.StatusOK, tokenTestBody(`"3600"`, "at-1", "")
		}
		return http.StatusServiceUnavailable, ""
	})
	obs := &tokenTestObserver{}
	clock := newTokenTestClock()
	src := newClientCredentialsSource(tokenTestCredentials(srv.tokenURL()), srv.Client(), obs, clock.Now)
	tokenMustGet(t, src, "at-1")

	clock.Advance(55 * time.Minute) // renewed 5 minutes before expiry
	tokenMustGet(t, src, "at-1")
	srv.checkRequestCount(t, 2)
	tokenMustGet(t, src, "at-1") // within the backoff: nothing sent
	srv.checkRequestCount(t, 2)

	clock.Advance(10 * time.Second) // the backoff ended: asked again, still the old token
	tokenMustGet(t, src, "at-1")
	srv.checkRequestCount(t, 3)

	clock.Advance(5*time.Minute - 10*time.Second) // expired: the failure shows
	_, err := src.Token(context.Background())
	tokenCheckError(t, err, "token endpoint answered 503 Service Unavailable")
	srv.checkRequestCount(t, 4)
	_, err = src.Token(context.Background()) // third failure in a row: 40s
	tokenCheckError(t, err, "token endpoint answered 503 Service Unavailable (remembered: no new token request before 2025-03-04T06:06:47Z)")
	srv.checkRequestCount(t, 4)
	obs.check(t, map[string]int{"success": 1, "failure": 3})
}
