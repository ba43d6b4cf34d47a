package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/internal/httpguard"
)

// Limits and defaults of the token sources.
const (
	// maxTokenResponseBytes bounds how much of a token endpoint answer is
	// read; real answers are a few kilobytes.
	maxTokenResponseBytes = 1 << 20
	// maxTokenFileBytes bounds a refresh or access token file.
	maxTokenFileBytes = 64 << 10
	// maxTokenErrorDescriptionLen and maxTokenErrorCodeLen cut what the
	// endpoint says about a refusal, so that errors stay one readable line.
	maxTokenErrorDescriptionLen = 300
	maxTokenErrorCodeLen        = 100
	// defaultTokenLifetime is assumed when the answer has no usable
	// expires_in. It is short on purpose: a guess that is too long costs
	// failed API calls until a 401 invalidates the token.
	defaultTokenLifetime = 5 * time.Minute
	// maxTokenLifetime caps absurd expires_in values.
	maxTokenLifetime = 24 * time.Hour
	// maxTokenRefreshMargin is how long before expiry a normal token is
	// replaced.
	maxTokenRefreshMargin = 5 * time.Minute
	// defaultTokenRequestTimeout bounds a token request when the
	// http.Client has no timeout of its own.
	defaultTokenRequestTimeout = 30 * time.Second
	// minTokenBackoff and maxTokenBackoff bound how long a failed token
	// request is remembered: the first failure for minTokenBackoff, each
	// further one in a row twice as long, up to maxTokenBackoff. A refused
	// secret stays refused until someone changes it, and without a backoff
	// every read would send its own doomed request.
	minTokenBackoff = 10 * time.Second
	maxTokenBackoff = 5 * time.Minute

	tokenRequestSucceeded = "success"
	tokenRequestFailed    = "failure"
)

// ClientCredentials are the settings of the OAuth 2.0 client credentials
// grant against the Microsoft identity platform v1 token endpoint
// (https://login.microsoftonline.com/{tenant}/oauth2/token).
type ClientCredentials struct {
	TokenURL string
	ClientID string
	// Resource is the API the token is for, e.g.
	// https://api.partnercenter.microsoft.com.
	Resource string
	// ClientSecret returns the raw secret. It is a function so that the
	// configuration can keep the secret in a redacting type.
	ClientSecret func() string
	// ClientSecretFile, when set, replaces ClientSecret: the file is read
	// at each token request, so that a rotated secret works without a
	// reload.
	ClientSecretFile string
}

// NewClientCredentialsSource returns a TokenSource that obtains app-only
// tokens with the client credentials grant. hc should have a timeout; nil
// means a client with a 30 second timeout. Requests go through a copy of hc
// that follows no redirects. obs may be nil.
func NewClientCredentialsSource(c ClientCredentials, hc *http.Client, obs partnercenter.Observer) partnercenter.TokenSource {
	return newClientCredentialsSource(c, hc, obs, time.Now)
}

func newClientCredentialsSource(c ClientCredentials, hc *http.Client, obs partnercenter.Observer, now func() time.Time) *cachingTokenSource {
	hc = tokenHTTPClient(hc)
	grant := clientCredentialsGrant{creds: c, endpoint: tokenEndpoint{url: c.TokenURL, hc: hc}}
	return newCachingTokenSource(grant.fetch, []string{c.ClientSecretFile}, hc, obs, now)
}

// RefreshTokenConfig are the settings of the OAuth 2.0 refresh token grant
// against the Microsoft identity platform v1 token endpoint, for app+user
// tokens.
type RefreshTokenConfig struct {
	TokenURL string
	ClientID string
	Resource string
	// ClientSecret returns the raw secret; nil (or an empty secret) means a
	// public client, which sends none.
	ClientSecret func() string
	// ClientSecretFile, when set, replaces ClientSecret and is read at each
	// token request, as in ClientCredentials.
	ClientSecretFile string
	// RefreshTokenFile holds the refresh token. It is read at each refresh,
	// so that it can be replaced from outside, and a new refresh token in
	// the answer is written back to it atomically.
	RefreshTokenFile string
}

// NewRefreshTokenSource returns a TokenSource that redeems the refresh token
// kept in c.RefreshTokenFile. When the endpoint rotates the refresh token,
// the new one replaces the file's content (the file keeps its mode). If
// that fails, the access token is still handed out and the new refresh
// token is kept in memory: later requests redeem it rather than the spent
// one in the file, and each of them first tries again to write it. Each
// attempt is reported to obs.RefreshTokenWrite, so that the operator
// learns of it before a restart would fall back on the file. A file
// changed from outside meanwhile wins over the token in memory. hc should
// have a timeout; nil means a client with a 30 second timeout. Requests go
// through a copy of hc that follows no redirects. obs may be nil.
func NewRefreshTokenSource(c RefreshTokenConfig, hc *http.Client, obs partnercenter.Observer) partnercenter.TokenSource {
	return newRefreshTokenSource(c, hc, obs, time.Now)
}

func newRefreshTokenSource(c RefreshTokenConfig, hc *http.Client, obs partnercenter.Observer, now func() time.Time) *cachingTokenSource {
	hc = tokenHTTPClient(hc)
	if obs == nil {
		obs = partnercenter.NopObserver{}
	}
	grant := &refreshTokenGrant{cfg: c, endpoint: tokenEndpoint{url: c.TokenURL, hc: hc}, obs: obs, write: writeTokenFileAtomically}
	return newCachingTokenSource(grant.fetch, []string{c.ClientSecretFile, c.RefreshTokenFile}, hc, obs, now)
}

// issuedToken is what one successful token request yields.
type issuedToken struct {
	accessToken string
	lifetime    time.Duration
}

// cachingTokenSource keeps the last token until shortly before it expires
// and lets concurrent callers share one token request. A failed request is
// remembered for a backoff (see minTokenBackoff), during which callers get
// its error at once and nothing is sent, unless one of the credential
// files the request reads changed since it started: a rotated secret is
// tried at once. A renewal that fails before the token expires leaves the
// old token in use until then.
type cachingTokenSource struct {
	fetch func(ctx context.Context) (issuedToken, error)
	// inputs are the files fetch reads its credentials from.
	inputs []string
	obs    partnercenter.Observer
	now    func() time.Time
	// timeout bounds a token request when the http.Client does not.
	timeout time.Duration

	mu        sync.Mutex
	token     string // empty when there is none or it was invalidated
	refreshAt time.Time
	// expiresAt is when the token stops being valid. Between refreshAt and
	// expiresAt a failed renewal still leaves a token to hand out.
	expiresAt time.Time
	inflight  *tokenFetch // the token request under way, if any
	// failed is the last token request's failure while its backoff runs,
	// nil after a success; failures counts the failures in a row.
	failed   *tokenFailure
	failures int
}

// tokenFailure is a remembered failed token request.
type tokenFailure struct {
	err   error     // what callers get during the backoff
	until time.Time // when the backoff ends
	// inputs are the credential files as they were when the request
	// started.
	inputs []fileStamp
}

// tokenBackoff is how long the failures-th failure in a row is remembered.
func tokenBackoff(failures int) time.Duration {
	d := minTokenBackoff
	for i := 1; i < failures && d < maxTokenBackoff; i++ {
		d *= 2
	}
	return min(d, maxTokenBackoff)
}

// fileStamp identifies a file's content cheaply: which file it is, its
// size and modification time, or that it could not be found. A secret
// rotated by replacing the file (as Kubernetes does) or by rewriting it
// changes one of them, unless a rewrite keeps the size within the file
// system's timestamp granularity; such a miss only means waiting out the
// backoff.
type fileStamp struct {
	info os.FileInfo // nil when the file could not be stat'ed
}

func stampFiles(paths []string) []fileStamp {
	stamps := make([]fileStamp, len(paths))
	for i, p := range paths {
		if info, err := os.Stat(p); err == nil {
			stamps[i].info = info
		}
	}
	return stamps
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}

// inputsChanged reports whether any credential file differs from what the
// failed request read.
func (f *tokenFailure) inputsChanged(paths []string) bool {
	for i, now := range stampFiles(paths) {
		if !f.inputs[i].same(now) {
			return true
		}
	}
	return false
}

// tokenFetch is one token request shared by every caller that needs a token
// while it runs. token and err are set before done is closed.
type tokenFetch struct {
	done  chan struct{}
	token string
	err   error
}

// newCachingTokenSource returns a source whose requests are made by fetch,
// which reads its credentials from the files inputs names ("" for none).
func newCachingTokenSource(fetch func(context.Context) (issuedToken, error), inputs []string, hc *http.Client, obs partnercenter.Observer, now func() time.Time) *cachingTokenSource {
	if obs == nil {
		obs = partnercenter.NopObserver{}
	}
	var timeout time.Duration
	if hc.Timeout <= 0 {
		timeout = defaultTokenRequestTimeout
	}
	var files []string
	for _, f := range inputs {
		if f != "" {
			files = append(files, f)
		}
	}
	return &cachingTokenSource{fetch: fetch, inputs: files, obs: obs, now: now, timeout: timeout}
}

// Token returns the cached token, or waits for a token request that it
// starts or joins. A caller whose ctx ends stops waiting, but the request
// goes on for the others. While the backoff of a failed request runs, it
// returns that request's error, which wraps the original (a *partnercenter.TokenError
// stays one for errors.As), and sends nothing.
func (s *cachingTokenSource) Token(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("waiting for token: %w", err)
	}
	token, fetch, err := s.cachedOrFetch(ctx)
	if fetch == nil {
		return token, err
	}
	select {
	case <-fetch.done:
		return fetch.token, fetch.err
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for token: %w", ctx.Err())
	}
}

// cachedOrFetch returns the cached token if it is still fresh, else the
// token request to wait for, starting one if none is under way, or the
// remembered error of a failed request while its backoff runs.
func (s *cachingTokenSource) cachedOrFetch(ctx context.Context) (string, *tokenFetch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.token != "" && s.now().Before(s.refreshAt) {
			return s.token, nil, nil
		}
		if s.inflight != nil {
			return "", s.inflight, nil
		}
		failed := s.failed
		if failed == nil || !s.now().Before(failed.until) {
			break
		}
		if s.stillValidLocked() {
			return s.token, nil, nil // A renewal failed, but it can wait.
		}
		// The files are stat'ed without the lock, so that a slow file
		// system cannot hold up callers that only want the cached token.
		s.mu.Unlock()
		changed := failed.inputsChanged(s.inputs)
		s.mu.Lock()
		if s.failed != failed {
			continue // Another request ended meanwhile: judge by its outcome.
		}
		if !changed {
			return "", nil, failed.err
		}
		break
	}
	s.inflight = &tokenFetch{done: make(chan struct{})}
	// The request serves every waiting caller, so the first caller's
	// cancellation must not end it; the client's timeout (or s.timeout)
	// bounds it instead.
	go s.run(context.WithoutCancel(ctx), s.inflight)
	return "", s.inflight, nil
}

// run performs one token request and hands its result to the waiting
// callers. A failure is remembered for a backoff; a success ends it.
func (s *cachingTokenSource) run(ctx context.Context, fetch *tokenFetch) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	// Stamped before fetch reads them: a file replaced while the request
	// runs ends its backoff.
	inputs := stampFiles(s.inputs)
	// The lifetime counts from before the request, which errs on the safe side.
	requested := s.now()
	issued, err := s.fetch(ctx)
	s.obs.TokenRequest(tokenRequestResult(err))

	s.mu.Lock()
	if err == nil {
		s.token = issued.accessToken
		s.refreshAt = requested.Add(tokenRefreshDelay(issued.lifetime))
		s.expiresAt = requested.Add(issued.lifetime)
		s.failed, s.failures = nil, 0
		fetch.token = issued.accessToken
	} else {
		s.failures++
		until := s.now().Add(tokenBackoff(s.failures))
		s.failed = &tokenFailure{
			err:    fmt.Errorf("%w (remembered: no new token request before %s)", err, until.UTC().Format(time.RFC3339)),
			until:  until,
			inputs: inputs,
		}
		if s.stillValidLocked() {
			// A renewal before expiry failed: until the token expires,
			// callers get it rather than the failure.
			fetch.token, err = s.token, nil
		}
	}
	fetch.err = err
	s.inflight = nil
	s.mu.Unlock()
	close(fetch.done)
}

// stillValidLocked reports whether the cached token has not expired, nor
// been invalidated.
func (s *cachingTokenSource) stillValidLocked() bool {
	return s.token != "" && s.now().Before(s.expiresAt)
}

// Invalidate drops token if it is still the cached one, so that many
// callers that got a 401 with the same token cause one new token request.
func (s *cachingTokenSource) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token != "" && token == s.token {
		s.token = ""
	}
}

// tokenRefreshDelay is how long a token with the given lifetime is used.
// Replacing it early leaves room for clock skew and for API calls already
// under way: 5 minutes before expiry, or at 90% of the lifetime if that is
// earlier, but not before half of a short lifetime has passed.
func tokenRefreshDelay(lifetime time.Duration) time.Duration {
	margin := max(min(maxTokenRefreshMargin, lifetime/2), lifetime/10)
	return lifetime - margin
}

func tokenRequestResult(err error) string {
	if err != nil {
		return tokenRequestFailed
	}
	return tokenRequestSucceeded
}

// tokenHTTPClient returns the client token requests use: a copy of hc
// that follows no redirects, as one would re-post the secret elsewhere.
func tokenHTTPClient(hc *http.Client) *http.Client {
	if hc == nil {
		hc = &http.Client{Timeout: defaultTokenRequestTimeout}
	}
	return httpguard.WithoutRedirects(hc)
}

// clientCredentialsGrant requests app-only tokens.
type clientCredentialsGrant struct {
	creds    ClientCredentials
	endpoint tokenEndpoint
}

func (g clientCredentialsGrant) fetch(ctx context.Context) (issuedToken, error) {
	secret, err := clientSecret(g.creds.ClientSecretFile, g.creds.ClientSecret)
	if err != nil {
		return issuedToken{}, err
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {g.creds.ClientID},
		"client_secret": {secret},
		"resource":      {g.creds.Resource},
	}
	answer, err := g.endpoint.request(ctx, form, secret)
	if err != nil {
		return issuedToken{}, err
	}
	return answer.issuedToken, nil
}

// refreshTokenGrant redeems the refresh token kept in a file. Its fetch
// calls never overlap (cachingTokenSource runs one request at a time, and
// the next starts under the lock the last one ended under), so its fields
// need no lock of their own.
type refreshTokenGrant struct {
	cfg      RefreshTokenConfig
	endpoint tokenEndpoint
	obs      partnercenter.Observer
	write    func(path string, data []byte) error

	// unsaved is a rotated refresh token that could not be written back,
	// "" when there is none; spent is what the file held then, a refresh
	// token already redeemed. While the file holds spent, unsaved is
	// redeemed in its place.
	unsaved, spent string
}

func (g *refreshTokenGrant) fetch(ctx context.Context) (issuedToken, error) {
	refreshToken, inFile, err := g.current()
	if err != nil {
		return issuedToken{}, fmt.Errorf("reading refresh token: %w", err)
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_id":     {g.cfg.ClientID},
		"resource":      {g.cfg.Resource},
	}
	secret, err := clientSecret(g.cfg.ClientSecretFile, g.cfg.ClientSecret)
	if err != nil {
		return issuedToken{}, err
	}
	if secret != "" {
		form.Set("client_secret", secret)
	}
	answer, err := g.endpoint.request(ctx, form, secret, refreshToken)
	if err != nil {
		return issuedToken{}, err
	}
	if answer.refreshToken != "" && answer.refreshToken != refreshToken {
		g.save(answer.refreshToken, inFile)
	}
	return answer.issuedToken, nil
}

// current returns the refresh token to redeem and what the file holds:
// the file's token, unless the file still holds the spent one whose
// successor could not be saved. Then it tries again to save the successor
// first, and redeems it whether that works or not.
func (g *refreshTokenGrant) current() (token, inFile string, err error) {
	inFile, _, err = readTokenFile(g.cfg.RefreshTokenFile)
	if g.unsaved == "" {
		return inFile, inFile, err
	}
	if err == nil && inFile != g.spent {
		// Replaced from outside: the operator's token wins.
		g.unsaved, g.spent = "", ""
		return inFile, inFile, nil
	}
	token = g.unsaved
	g.save(token, g.spent)
	if g.unsaved == "" {
		return token, token, nil // Written: the file holds it now.
	}
	return token, g.spent, nil
}

// save writes a new refresh token back to the file, which holds inFile,
// or keeps it in memory if that fails. The error reported names the file,
// never a token.
func (g *refreshTokenGrant) save(token, inFile string) {
	err := g.write(g.cfg.RefreshTokenFile, []byte(token+"\n"))
	if err != nil {
		err = fmt.Errorf("saving rotated refresh token: %w", err)
		g.unsaved, g.spent = token, inFile
	} else {
		g.unsaved, g.spent = "", ""
	}
	g.obs.RefreshTokenWrite(err)
}

// clientSecret returns the secret to send: the content of file when it is
// set, read now so that a secret rotated on disk is used at once, else what
// inline returns. An error names the file, never its content.
func clientSecret(file string, inline func() string) (string, error) {
	if file == "" {
		return callTokenSecret(inline), nil
	}
	secret, _, err := readTokenFile(file)
	if err != nil {
		return "", fmt.Errorf("reading client secret: %w", err)
	}
	return secret, nil
}

func callTokenSecret(secret func() string) string {
	if secret == nil {
		return ""
	}
	return secret()
}

// tokenEndpoint posts token requests.
type tokenEndpoint struct {
	url string
	hc  *http.Client
}

// tokenAnswer is a decoded 200 answer.
type tokenAnswer struct {
	issuedToken
	refreshToken string // empty unless the endpoint rotated it
}

// request posts form and decodes the answer. sent lists the secrets in the
// form, which are scrubbed from error descriptions should the endpoint
// ever echo them. No error contains the form or the body.
func (e tokenEndpoint) request(ctx context.Context, form url.Values, sent ...string) (tokenAnswer, error) {
	// The form carries a secret: never send it in the clear off loopback,
	// whatever URL the caller configured. The URL is not repeated, as it
	// may carry a query.
	if u, err := url.Parse(e.url); err != nil || !partnercenter.PlainHTTPAllowed(u) {
		return tokenAnswer{}, errors.New("token URL must be https (plain http only on a loopback address)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenAnswer{}, fmt.Errorf("building token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		return tokenAnswer{}, fmt.Errorf("token request: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := readTokenResponse(resp.Body)
	if err != nil {
		return tokenAnswer{}, err
	}
	switch {
	case httpguard.IsRedirect(resp.StatusCode):
		return tokenAnswer{}, &partnercenter.TokenError{StatusCode: resp.StatusCode, Description: httpguard.RedirectNotFollowed(resp)}
	case resp.StatusCode != http.StatusOK:
		return tokenAnswer{}, newTokenError(resp.StatusCode, body, sent)
	}
	return decodeTokenAnswer(body)
}

func readTokenResponse(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxTokenResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading token response: %w", err)
	}
	if len(body) > maxTokenResponseBytes {
		return nil, fmt.Errorf("token response is larger than %d bytes", maxTokenResponseBytes)
	}
	return bytes.TrimPrefix(body, []byte("\uFEFF")), nil
}

// tokenAnswerJSON is the 200 answer of the v1 endpoint. Fields such as
// expires_on, not_before and resource are ignored.
type tokenAnswerJSON struct {
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
}

func decodeTokenAnswer(body []byte) (tokenAnswer, error) {
	var raw tokenAnswerJSON
	if err := json.Unmarshal(body, &raw); err != nil {
		return tokenAnswer{}, fmt.Errorf("decoding token response: %w", err)
	}
	if raw.AccessToken == "" {
		return tokenAnswer{}, errors.New("token response has no access_token")
	}
	if raw.TokenType != "" && !strings.EqualFold(raw.TokenType, "Bearer") {
		return tokenAnswer{}, fmt.Errorf("token endpoint issued a %q token, want Bearer", httpguard.OneLine(raw.TokenType, maxTokenErrorCodeLen))
	}
	return tokenAnswer{
		issuedToken:  issuedToken{accessToken: raw.AccessToken, lifetime: tokenLifetime(raw.ExpiresIn)},
		refreshToken: raw.RefreshToken,
	}, nil
}

// tokenLifetime reads expires_in, which the v1 endpoint sends as a string of
// digits and others as a number. A missing, unreadable or non-positive value
// means defaultTokenLifetime.
func tokenLifetime(expiresIn json.RawMessage) time.Duration {
	var n json.Number // accepts both 3599 and "3599"
	if err := json.Unmarshal(expiresIn, &n); err != nil {
		return defaultTokenLifetime
	}
	seconds, err := n.Float64()
	if err != nil || math.IsNaN(seconds) || seconds <= 0 {
		return defaultTokenLifetime
	}
	if seconds >= maxTokenLifetime.Seconds() {
		return maxTokenLifetime
	}
	return time.Duration(seconds * float64(time.Second))
}

// newTokenError maps a refusal to a partnercenter.TokenError, taking error and
// error_description from an OAuth error body when there is one.
func newTokenError(status int, body []byte, sent []string) *partnercenter.TokenError {
	var doc struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return &partnercenter.TokenError{StatusCode: status}
	}
	return &partnercenter.TokenError{
		StatusCode:  status,
		Code:        httpguard.OneLine(scrubSecrets(doc.Error, sent), maxTokenErrorCodeLen),
		Description: httpguard.OneLine(scrubSecrets(doc.ErrorDescription, sent), maxTokenErrorDescriptionLen),
	}
}

// scrubSecrets replaces every occurrence of the given secrets in s.
func scrubSecrets(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "<redacted>")
		}
	}
	return s
}

// readTokenFile returns the trimmed content of a token file together with
// the file's metadata as it was read.
func readTokenFile(path string) (string, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	content, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", nil, err
	}
	if len(content) > maxTokenFileBytes {
		return "", nil, fmt.Errorf("%s is larger than %d bytes", path, maxTokenFileBytes)
	}
	token := strings.TrimSpace(string(content))
	if token == "" {
		return "", nil, fmt.Errorf("%s is empty", path)
	}
	return token, info, nil
}

// writeTokenFileAtomically replaces the file at path (or at the end of its
// symlinks) with data, keeping its permission bits, so that a crash leaves
// either the old or the new content, never a mix.
func writeTokenFileAtomically(path string, data []byte) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o600)
	if info, err := os.Stat(target); err == nil {
		mode = info.Mode().Perm()
	}
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmp.Name())
		}
	}()
	err = fillTokenFile(tmp, mode, data)
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	renamed = true
	syncTokenDir(dir)
	return nil
}

func fillTokenFile(f *os.File, mode os.FileMode, data []byte) error {
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// syncTokenDir makes a rename durable. It is best effort: the new file is
// already in place, and some file systems refuse to sync directories.
func syncTokenDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// accessTokenFileSource serves a token that something else keeps fresh in
// a file.
type accessTokenFileSource struct {
	path string
	obs  partnercenter.Observer

	mu      sync.Mutex
	token   string // empty until read, or after Invalidate
	modTime time.Time
	size    int64
}

// NewAccessTokenFileSource returns a TokenSource that reads an access token
// managed elsewhere from path, trimmed of white space. The file is read
// again when its modification time or size changes, or after Invalidate;
// each read is reported to obs (which may be nil) as a token request.
func NewAccessTokenFileSource(path string, obs partnercenter.Observer) partnercenter.TokenSource {
	if obs == nil {
		obs = partnercenter.NopObserver{}
	}
	return &accessTokenFileSource{path: path, obs: obs}
}

func (s *accessTokenFileSource) Token(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("waiting for token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cachedIsCurrent() {
		return s.token, nil
	}
	err := s.reload()
	s.obs.TokenRequest(tokenRequestResult(err))
	if err != nil {
		return "", fmt.Errorf("reading access token: %w", err)
	}
	return s.token, nil
}

// cachedIsCurrent reports whether the cached token came from the file as
// it is now.
func (s *accessTokenFileSource) cachedIsCurrent() bool {
	if s.token == "" {
		return false
	}
	info, err := os.Stat(s.path)
	return err == nil && info.Size() == s.size && info.ModTime().Equal(s.modTime)
}

func (s *accessTokenFileSource) reload() error {
	token, info, err := readTokenFile(s.path)
	if err != nil {
		return err
	}
	s.token, s.modTime, s.size = token, info.ModTime(), info.Size()
	return nil
}

// Invalidate forgets token if it is the cached one, so that the file is
// read again even if it looks unchanged.
func (s *accessTokenFileSource) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token != "" && token == s.token {
		s.token = ""
	}
}
