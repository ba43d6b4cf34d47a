package partnercenter

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/internal/httpguard"
)

// ClientConfig holds everything a Client needs. Zero values get the
// defaults named below.
type ClientConfig struct {
	// BaseURL is the API root, e.g. https://api.partnercenter.microsoft.com.
	BaseURL string
	// APIVersion is the first path element, "v1" by default.
	APIVersion string
	// HTTPClient sends the requests; http.DefaultTransport with no client
	// timeout by default (RequestTimeout bounds each request instead).
	// The client uses a copy that follows no redirects.
	HTTPClient *http.Client
	// RequestTimeout bounds one HTTP request including reading its body,
	// 30s by default.
	RequestTimeout time.Duration
	// Tokens hands out bearer tokens. Required.
	Tokens TokenSource
	// UserAgent is sent on every request.
	UserAgent string
	// MaxResponseSize caps one response body in bytes, 256 MiB by default.
	MaxResponseSize int64
	// MaxRetryAfter caps the hold after a 429, whatever its Retry-After
	// asks for; DefaultMaxRetryAfter by default. It applies when a 429
	// sets or extends the hold: a hold already in force keeps its end.
	MaxRetryAfter time.Duration
	// Hold is the hold after a 429 that the client obeys and extends.
	// Partner Center throttles a partner tenant, not a Client value, so
	// the clients built for one tenant (a new one per reload that changes
	// their settings) should share one. nil gives the client its own.
	Hold *Hold
	// Decode tunes the decoder (how many failed devices are kept).
	Decode DecodeOptions
	// Observer is told about every request; NopObserver by default.
	Observer Observer
	// ReadStamp names the settings that shape what a read returns (which
	// API, which partner, how many failed devices kept), so that whoever
	// stores a read can tell later whether it is still what this client
	// would read. It is opaque to the client, and must not contain a secret.
	ReadStamp string
}

// Defaults for ClientConfig.
const (
	DefaultAPIVersion      = "v1"
	DefaultRequestTimeout  = 30 * time.Second
	DefaultMaxResponseSize = 256 << 20
	DefaultMaxRetryAfter   = 10 * time.Minute
	// maxThrottleWaits bounds how often one call waits out a 429.
	maxThrottleWaits = 3
	// defaultRetryAfter is assumed when a 429 carries no usable Retry-After.
	defaultRetryAfter = 5 * time.Second
	// minRetryAfter is the shortest hold after a 429: a Retry-After of 0
	// or in the past must not turn into a tight loop of requests.
	minRetryAfter = time.Second
	// maxErrorBody is how much of an error response is read for its code.
	maxErrorBody = 64 << 10
)

// Client reads batch statuses. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	version string
	http    *http.Client
	timeout time.Duration
	tokens  TokenSource
	agent   string
	maxBody int64
	// maxHold caps the hold after a 429.
	maxHold time.Duration
	decode  DecodeOptions
	obs     Observer
	now     func() time.Time
	stamp   string
	// hold is set by a 429: no request is sent before it ends.
	hold *Hold
}

// Hold is the hold after an HTTP 429: no request is sent before it ends.
// The zero value is a hold that is not in force. It is safe for
// concurrent use.
type Hold struct {
	now func() time.Time // time.Now when nil

	mu    sync.Mutex
	until time.Time
}

func (h *Hold) clock() time.Time {
	if h.now == nil {
		return time.Now()
	}
	return h.now()
}

// Until returns when the hold ends, or the zero time when none is in
// force.
func (h *Hold) Until() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.until.After(h.clock()) {
		return time.Time{}
	}
	return h.until
}

// extend makes the hold last at least d from now; a shorter hold does not
// shorten the one in force.
func (h *Hold) extend(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if until := h.clock().Add(d); until.After(h.until) {
		h.until = until
	}
}

// wait returns once the hold has ended, at once when none is in force, or
// fails at once with a *HoldError when the hold outlasts ctx.
func (h *Hold) wait(ctx context.Context) error {
	until := h.Until()
	if until.IsZero() {
		return nil
	}
	wait := until.Sub(h.clock())
	if deadline, ok := ctx.Deadline(); ok && !until.Before(deadline) {
		return &HoldError{Until: until}
	}
	return sleep(ctx, wait)
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if !PlainHTTPAllowed(base) {
		return nil, fmt.Errorf("base URL %q: must be https (plain http only on a loopback address)", base.Redacted())
	}
	if cfg.Tokens == nil {
		return nil, errors.New("no token source")
	}
	c := &Client{
		base:    base,
		version: cfg.APIVersion,
		http:    httpguard.WithoutRedirects(cfg.HTTPClient),
		timeout: cfg.RequestTimeout,
		tokens:  cfg.Tokens,
		agent:   cfg.UserAgent,
		maxBody: cfg.MaxResponseSize,
		maxHold: cfg.MaxRetryAfter,
		decode:  cfg.Decode,
		obs:     cfg.Observer,
		now:     time.Now,
		stamp:   cfg.ReadStamp,
		hold:    cfg.Hold,
	}
	if c.hold == nil {
		c.hold = &Hold{}
	}
	if c.version == "" {
		c.version = DefaultAPIVersion
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseSize
	}
	if c.maxHold <= 0 {
		c.maxHold = DefaultMaxRetryAfter
	}
	if c.obs == nil {
		c.obs = NopObserver{}
	}
	return c, nil
}

// ReadStamp is ClientConfig.ReadStamp: the settings this client reads
// under.
func (c *Client) ReadStamp() string { return c.stamp }

// BatchURL is the address of one batch's status resource.
func (c *Client) BatchURL(customerID, trackingID string) string {
	u := *c.base
	base := strings.TrimRight(u.Path, "/")
	u.Path = base + "/" + c.version + "/customers/" + customerID + "/batchJobStatus/" + trackingID
	// RawPath keeps an escaped '/' or '?' inside an ID from changing the
	// path's shape.
	u.RawPath = (&url.URL{Path: base}).EscapedPath() + "/" + url.PathEscape(c.version) +
		"/customers/" + url.PathEscape(customerID) + "/batchJobStatus/" + url.PathEscape(trackingID)
	return u.String()
}

type correlationKey struct{}

// WithCorrelationID returns a context whose requests all carry id as
// MS-CorrelationId, so that one scrape's requests can be found together.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

func correlationID(ctx context.Context) string {
	if id, ok := ctx.Value(correlationKey{}).(string); ok && id != "" {
		return id
	}
	return NewGUID()
}

// NewGUID returns a random (version 4) GUID.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// BatchStatus reads one batch. Failed requests are retried within ctx's
// deadline only: a 401 once with a fresh token, a 5xx or connection error
// once after a short jittered pause, and a 429 after its Retry-After. The
// returned error is an *Error carrying the request IDs, a *TokenError, or
// a *HoldError when an earlier 429's hold outlasts ctx and nothing was
// sent.
func (c *Client) BatchStatus(ctx context.Context, customerID, trackingID string) (*Batch, error) {
	if !ValidGUID(customerID) {
		return nil, fmt.Errorf("customer ID %q is not a GUID", customerID)
	}
	if !ValidGUID(trackingID) {
		return nil, fmt.Errorf("batch tracking ID %q is not a GUID", trackingID)
	}
	target := c.BatchURL(customerID, trackingID)
	corrID := correlationID(ctx)
	var retried401, retried5xx bool
	throttleWaits := 0
	for {
		if err := c.hold.wait(ctx); err != nil {
			return nil, err
		}
		token, err := c.tokens.Token(ctx)
		if err != nil {
			return nil, &NoTokenError{Err: err}
		}
		batch, err := c.get(ctx, target, token, corrID)
		if err == nil {
			return batch, nil
		}
		var apiErr *Error
		if !errors.As(err, &apiErr) || ctx.Err() != nil {
			return nil, err
		}
		switch {
		case apiErr.StatusCode == http.StatusUnauthorized && !retried401:
			retried401 = true
			c.tokens.Invalidate(token)
			continue
		case apiErr.StatusCode == http.StatusTooManyRequests:
			c.obs.Throttled()
			c.hold.extend(apiErr.RetryAfter)
			if throttleWaits < maxThrottleWaits && c.fits(ctx, apiErr.RetryAfter) {
				throttleWaits++
				continue // hold.wait sleeps until Retry-After has passed.
			}
			return nil, err
		case apiErr.Temporary() && !retried5xx:
			retried5xx = true
			pause := jitter(250 * time.Millisecond)
			if !c.fits(ctx, pause) {
				return nil, err
			}
			if sleepErr := sleep(ctx, pause); sleepErr != nil {
				return nil, err
			}
			continue
		}
		return nil, err
	}
}

// get sends one request and decodes a 200 answer; any other outcome is an
// *Error.
func (c *Client) get(ctx context.Context, target, token, corrID string) (*Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	reqID := NewGUID()
	fail := func(status int, err error) *Error {
		return &Error{StatusCode: status, RequestID: reqID, CorrelationID: corrID, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fail(0, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("MS-RequestId", reqID)
	req.Header.Set("MS-CorrelationId", corrID)
	if c.agent != "" {
		req.Header.Set("User-Agent", c.agent)
	}
	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.obs.APIRequest(0, c.now().Sub(start))
		return nil, fail(0, redactURLError(err))
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		c.obs.APIRequest(resp.StatusCode, c.now().Sub(start))
		apiErr := fail(resp.StatusCode, nil)
		if httpguard.IsRedirect(resp.StatusCode) {
			// Not a Partner Center error document: say where it pointed.
			apiErr.Err = errors.New(httpguard.RedirectNotFollowed(resp))
			return nil, apiErr
		}
		apiErr.Code, apiErr.Description = parseErrorBody(io.LimitReader(resp.Body, maxErrorBody))
		if resp.StatusCode == http.StatusTooManyRequests {
			apiErr.RetryAfter = retryAfterHold(resp.Header.Get("Retry-After"), c.now(), c.maxHold)
		}
		return nil, apiErr
	}
	body := &transportReader{r: resp.Body}
	batch, err := c.decodeBody(resp, body)
	// The request's duration includes reading the body: that is where a
	// large batch spends its time.
	c.obs.APIRequest(resp.StatusCode, c.now().Sub(start))
	switch {
	case err != nil && body.err != nil:
		// The connection failed (reset, timeout) while the body was read:
		// no complete response, like a failure before the headers.
		return nil, fail(0, err)
	case err != nil:
		return nil, fail(resp.StatusCode, err)
	}
	return batch, nil
}

func (c *Client) decodeBody(resp *http.Response, body io.Reader) (*Batch, error) {
	if resp.ContentLength > c.maxBody {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes",
			ErrResponseTooLarge, resp.ContentLength, c.maxBody)
	}
	capped := &cappedReader{r: body, left: c.maxBody, max: c.maxBody}
	return Decode(capped, resp.Header.Get("Content-Type"), c.decode)
}

// transportReader remembers the first error other than io.EOF that
// reading the body gave, so that a failed connection is told apart from a
// body that arrived whole but could not be decoded.
type transportReader struct {
	r   io.Reader
	err error
}

func (t *transportReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && t.err == nil {
		t.err = err
	}
	return n, err
}

// ErrResponseTooLarge is returned when a body exceeds MaxResponseSize.
// The error says the numbers; naming the setting that raises the cap is
// for the caller, which knows what it is called.
var ErrResponseTooLarge = errors.New("response body too large")

// cappedReader fails with ErrResponseTooLarge instead of silently cutting
// the body short, so a capped body is an error, not a smaller batch.
type cappedReader struct {
	r    io.Reader
	left int64
	max  int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.tooLarge()
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, c.tooLarge()
	}
	return n, err
}

func (c *cappedReader) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, c.max)
}

// ThrottledUntil returns when the hold after the last 429 ends, or the
// zero time when no hold is in force.
func (c *Client) ThrottledUntil() time.Time {
	return c.hold.Until()
}

// fits reports whether waiting d still leaves time before ctx's deadline.
func (c *Client) fits(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || c.now().Add(d).Before(deadline)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// jitter returns a duration in [d/2, 3d/2).
func jitter(d time.Duration) time.Duration {
	return d/2 + mathrand.N(d)
}

// redactURLError drops the URL from a *url.Error: it is long, and the
// caller already knows which batch failed.
func redactURLError(err error) error {
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		return fmt.Errorf("%s: %w", strings.ToLower(uerr.Op), uerr.Err)
	}
	return err
}
