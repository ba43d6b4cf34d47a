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

// tokenTestClock is a clock that moves only when told to.
type tokenTestClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTokenTestClock() *tokenTestClock {
	return &tokenTestClock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *tokenTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *tokenTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
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
		finished.Add(1)
		go func() {
			defer finished.Done()
			started.Done()
			tokens[i], errs[i] = src.Token(context.Background())
		}()
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

func tokenCheckDirEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s holds %q, want %q (no temporary files left)", dir, got, want)
	}
}

// tokenRotatingAnswer answers request n with access token "at-n" and
// refresh token "rt-(n+1)".
func tokenRotatingAnswer(_ *http.Request, n int) (int, string) {
	return http.StatusOK, tokenTestBody(`"3599"`, fmt.Sprintf("at-%d", n), fmt.Sprintf("rt-%d", n+1))
}

func TestRefreshTokenSourceRotatesRefreshToken(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "refresh_token")
	tokenWriteFile(t, rtFile, "rt-1\n", 0o640)
	srv := newTokenTestServer(t, tokenRotatingAnswer)
	clock := newTokenTestClock()
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{
		TokenURL:         srv.tokenURL(),
		ClientID:         tokenTestClientID,
		Resource:         tokenTestResource,
		ClientSecret:     func() string { return tokenTestSecret },
		RefreshTokenFile: rtFile,
	}
	src := newRefreshTokenSource(cfg, srv.Client(), obs, clock.Now)

	tokenMustGet(t, src, "at-1")
	tokenCheckFile(t, rtFile, "rt-2\n", 0o640)
	tokenCheckDirEntries(t, dir, "refresh_token")

	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-2")
	tokenCheckFile(t, rtFile, "rt-3\n", 0o640)
	tokenCheckDirEntries(t, dir, "refresh_token")

	var sent []url.Values
	for _, r := range srv.requests() {
		sent = append(sent, r.form)
	}
	want := []url.Values{
		{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "client_id": {tokenTestClientID}, "client_secret": {tokenTestSecret}, "resource": {tokenTestResource}},
		{"grant_type": {"refresh_token"}, "refresh_token": {"rt-2"}, "client_id": {tokenTestClientID}, "client_secret": {tokenTestSecret}, "resource": {tokenTestResource}},
	}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("forms sent = %v,\nwant %v", sent, want)
	}
	obs.check(t, map[string]int{"success": 2})
}

// tokenBreakFile turns path into a directory, so that a rotated refresh
// token cannot be renamed over it, whoever runs the test (root ignores
// a read-only mode).
func tokenBreakFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Error(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Error(err)
	}
}

// tokenRepairFile turns path back into a file holding content.
func tokenRepairFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	tokenWriteFile(t, path, content, 0o600)
}

// tokenSentRefreshTokens lists the refresh tokens the endpoint received.
func tokenSentRefreshTokens(srv *tokenTestServer) []string {
	var sent []string
	for _, r := range srv.requests() {
		sent = append(sent, r.form.Get("refresh_token"))
	}
	return sent
}

// TestRefreshTokenSourceKeepsUnsavedRefreshToken: when the rotated refresh
// token cannot be written back, the access token is still handed out, the
// new refresh token is redeemed next (never the spent one in the file),
// and each token request tries the write again until it works.
func TestRefreshTokenSourceKeepsUnsavedRefreshToken(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "refresh_token")
	tokenWriteFile(t, rtFile, "rt-1\n", 0o600)
	srv := newTokenTestServer(t, func(r *http.Request, n int) (int, string) {
		if n == 1 {
			tokenBreakFile(t, rtFile) // while the first request runs
		}
		return tokenRotatingAnswer(r, n)
	})
	clock := newTokenTestClock()
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: rtFile}
	src := newRefreshTokenSource(cfg, srv.Client(), obs, clock.Now)

	tokenMustGet(t, src, "at-1")
	obs.checkWrites(t, "failure")

	// The file cannot even be read now: rt-2 from memory is redeemed, after
	// one more try to save it, and its successor cannot be saved either.
	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-2")
	obs.checkWrites(t, "failure", "failure", "failure")

	// The file is back with the spent token: rt-3 is written before it is
	// redeemed, and rt-4 after.
	tokenRepairFile(t, rtFile, "rt-1\n")
	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-3")
	obs.checkWrites(t, "failure", "failure", "failure", "", "")
	tokenCheckFile(t, rtFile, "rt-4\n", 0o600)

	if got, want := tokenSentRefreshTokens(srv), []string{"rt-1", "rt-2", "rt-3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("refresh tokens sent %q, want %q", got, want)
	}
	obs.check(t, map[string]int{"success": 3})
}

// TestRefreshTokenSourcePrefersAReplacedFile: a refresh token put into the
// file from outside wins over the unsaved one in memory.
func TestRefreshTokenSourcePrefersAReplacedFile(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "refresh_token")
	tokenWriteFile(t, rtFile, "rt-1\n", 0o600)
	srv := newTokenTestServer(t, func(r *http.Request, n int) (int, string) {
		if n == 1 {
			tokenBreakFile(t, rtFile)
		}
		return tokenRotatingAnswer(r, n)
	})
	clock := newTokenTestClock()
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: rtFile}
	src := newRefreshTokenSource(cfg, srv.Client(), obs, clock.Now)

	tokenMustGet(t, src, "at-1")
	tokenRepairFile(t, rtFile, "rt-from-the-operator\n")
	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-2")
	obs.checkWrites(t, "failure", "")
	tokenCheckFile(t, rtFile, "rt-3\n", 0o600)
	if got, want := tokenSentRefreshTokens(srv), []string{"rt-1", "rt-from-the-operator"}; !reflect.DeepEqual(got, want) {
		t.Errorf("refresh tokens sent %q, want %q", got, want)
	}
}

func TestRefreshTokenSourcePublicClientWithoutRotation(t *testing.T) {
	tests := []struct {
		name   string
		secret func() string
	}{
		{name: "no secret function", secret: nil},
		{name: "empty secret", secret: func() string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rtFile := filepath.Join(t.TempDir(), "rt")
			const content = "  rt-1\n\n"
			tokenWriteFile(t, rtFile, content, 0o600)
			srv := newTokenTestServer(t, tokenAnswerNumbered(`3599`))
			obs := &tokenTestObserver{}
			cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, ClientSecret: tt.secret, RefreshTokenFile: rtFile}
			src := NewRefreshTokenSource(cfg, srv.Client(), obs)

			tokenMustGet(t, src, "at-1")
			tokenCheckFile(t, rtFile, content, 0o600)
			want := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "client_id": {tokenTestClientID}, "resource": {tokenTestResource}}
			if got := srv.requests()[0].form; !reflect.DeepEqual(got, want) {
				t.Errorf("form sent = %v, want %v", got, want)
			}
			obs.check(t, map[string]int{"success": 1})
		})
	}
}

func TestRefreshTokenSourceWritesThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real_token")
	link := filepath.Join(dir, "link_token")
	tokenWriteFile(t, target, "rt-1", 0o600)
	if err := os.Symlink("real_token", link); err != nil {
		t.Fatal(err)
	}
	srv := newTokenTestServer(t, tokenRotatingAnswer)
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: link}
	src := NewRefreshTokenSource(cfg, srv.Client(), nil)

	tokenMustGet(t, src, "at-1")
	tokenCheckFile(t, target, "rt-2\n", 0o600)
	info, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a symlink: mode %v", link, info.Mode())
	}
	tokenCheckDirEntries(t, dir, "link_token", "real_token")
}

func TestRefreshTokenSourceFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	tokenWriteFile(t, empty, " \n\t\n", 0o600)
	tooLarge := filepath.Join(dir, "large")
	tokenWriteFile(t, tooLarge, strings.Repeat("r", 64<<10+1), 0o600)
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name, path, wantErr string
	}{
		{name: "empty", path: empty, wantErr: "reading refresh token: " + empty + " is empty"},
		{name: "too large", path: tooLarge, wantErr: "reading refresh token: " + tooLarge + " is larger than 65536 bytes"},
		{name: "missing", path: missing, wantErr: "reading refresh token: open " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTokenTestServer(t, tokenRotatingAnswer)
			obs := &tokenTestObserver{}
			cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: tt.path}
			src := NewRefreshTokenSource(cfg, srv.Client(), obs)

			_, err := src.Token(context.Background())
			tokenCheckError(t, err, tt.wantErr)
			srv.checkRequestCount(t, 0)
			obs.check(t, map[string]int{"failure": 1})
		})
	}
}

func TestRefreshTokenSourceRefusedRefreshToken(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "rt")
	tokenWriteFile(t, rtFile, "rt-1", 0o600)
	srv := newTokenTestServer(t, func(*http.Request, int) (int, string) {
		return http.StatusBadRequest, `{"error":"invalid_grant","error_description":"AADSTS70008: The refresh token has expired. Token rt-1 is gone."}`
	})
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: rtFile}
	src := NewRefreshTokenSource(cfg, srv.Client(), obs)

	_, err := src.Token(context.Background())
	tokenCheckError(t, err, "token endpoint answered 400 invalid_grant: AADSTS70008: The refresh token has expired. Token <redacted> is gone.")
	tokenCheckFile(t, rtFile, "rt-1", 0o600)
	obs.check(t, map[string]int{"failure": 1})
}

func TestAccessTokenFileSourceRereadsOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access_token")
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	write := func(content string, modTime time.Time) {
		t.Helper()
		tokenWriteFile(t, path, content, 0o600)
		if err := os.Chtimes(path, modTime, modTime); err != nil {
			t.Fatal(err)
		}
	}
	obs := &tokenTestObserver{}
	src := NewAccessTokenFileSource(path, obs)

	write("  at-1\n", mtime)
	tokenMustGet(t, src, "at-1")
	obs.check(t, map[string]int{"success": 1})

	// Same size and time: the cached copy is served, the file is not read.
	write("  at-X\n", mtime)
	tokenMustGet(t, src, "at-1")
	obs.check(t, map[string]int{"success": 1})

	// A new modification time makes it read again.
	write("  at-X\n", mtime.Add(time.Second))
	tokenMustGet(t, src, "at-X")
	obs.check(t, map[string]int{"success": 2})

	// So does a new size.
	write("at-22", mtime.Add(time.Second))
	tokenMustGet(t, src, "at-22")
	obs.check(t, map[string]int{"success": 3})

	src.Invalidate("at-1")
	src.Invalidate("")
	tokenMustGet(t, src, "at-22")
	obs.check(t, map[string]int{"success": 3})

	src.Invalidate("at-22")
	tokenMustGet(t, src, "at-22")
	tokenMustGet(t, src, "at-22")
	obs.check(t, map[string]int{"success": 4})
}

func TestAccessTokenFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	tokenWriteFile(t, empty, "\n  \n", 0o600)
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name, path, wantErr string
	}{
		{name: "empty", path: empty, wantErr: "reading access token: " + empty + " is empty"},
		{name: "missing", path: missing, wantErr: "reading access token: open " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &tokenTestObserver{}
			src := NewAccessTokenFileSource(tt.path, obs)

			_, err := src.Token(context.Background())
			tokenCheckError(t, err, tt.wantErr)
			_, err = src.Token(context.Background())
			tokenCheckError(t, err, tt.wantErr)
			obs.check(t, map[string]int{"failure": 2})
		})
	}
}

func TestAccessTokenFileSourceRecoversAfterEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access_token")
	tokenWriteFile(t, path, "", 0o600)
	obs := &tokenTestObserver{}
	src := NewAccessTokenFileSource(path, obs)

	_, err := src.Token(context.Background())
	tokenCheckError(t, err, "reading access token: "+path+" is empty")
	tokenWriteFile(t, path, "at-1\n", 0o600)
	tokenMustGet(t, src, "at-1")
	obs.check(t, map[string]int{"failure": 1, "success": 1})
}

func TestAccessTokenFileSourceCanceledContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access_token")
	tokenWriteFile(t, path, "at-1", 0o600)
	obs := &tokenTestObserver{}
	src := NewAccessTokenFileSource(path, obs)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := src.Token(ctx)
	tokenCheckError(t, err, "waiting for token: context canceled")
	obs.check(t, map[string]int{})
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
			"refresh token": NewRefreshTokenSource(RefreshTokenConfig{TokenURL: tokenURL, ClientID: tokenTestClientID,
				Resource: tokenTestResource, RefreshTokenFile: refreshFile}, hc, nil),
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
			"refresh token": NewRefreshTokenSource(RefreshTokenConfig{TokenURL: origin.URL + tokenTestPath, ClientID: tokenTestClientID,
				Resource: tokenTestResource, ClientSecret: func() string { return tokenTestSecret }, RefreshTokenFile: refreshFile}, hc, nil),
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
