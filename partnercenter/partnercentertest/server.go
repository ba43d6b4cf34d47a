// Package partnercentertest is a fake Partner Center for tests and for the
// exporter's demo mode: Azure AD v1 and v2 token endpoints and the
// batchJobStatus resource, served on loopback.
//
// The fake is part of the production binary (demo mode), so it never
// imports "testing", is safe for concurrent use, and answers any request,
// however odd, without panicking.
//
// Endpoints:
//
//	POST /{tenant}/oauth2/token
//	POST /{tenant}/oauth2/v2.0/token
//	GET  /{apiVersion}/customers/{customerID}/batchJobStatus/{trackingID}
//
// Every other path answers a plain 404.
package partnercentertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a new Server.
const (
	DefaultClientID      = "00000000-0000-0000-0000-0000000000c1"
	DefaultClientSecret  = "fake-client-secret"
	DefaultTenantID      = "contoso.onmicrosoft.com"
	DefaultTokenLifetime = time.Hour
	// APIVersion is the only version segment the batch endpoint answers.
	APIVersion = "v1"
)

const (
	// maxLoggedRequests bounds the request log: Requests keeps the newest.
	maxLoggedRequests = 10000
	// maxCountedBatches bounds the per-batch counters, so that a client
	// asking for endless random IDs cannot grow the map without limit.
	maxCountedBatches = 10000
	// maxHeaderBytes keeps each logged request small.
	maxHeaderBytes = 32 << 10
)

// Request is one request the Server received, as Requests reports it.
type Request struct {
	// Time is when the request arrived, by the Server's clock.
	Time   time.Time
	Method string
	Path   string
	// Header is a copy of the request headers, Authorization included.
	Header http.Header
	// Status is the HTTP status answered, or 0 when the client went away
	// during the response latency and got no answer.
	Status int
	// Grant, ClientID and Resource are set for token requests only (the
	// client secret and the refresh token are never recorded).
	Grant    string
	ClientID string
	Resource string
}

// Server is a fake Partner Center listening on 127.0.0.1.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT, without a trailing slash.
	URL string

	httpServer *http.Server
	serveDone  chan struct{}
	// closing is closed by Close, which ends every pending latency wait.
	closing  chan struct{}
	handlers sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	now     func() time.Time
	auth    authState
	batches map[batchKey]*batchEntry
	stats   stats
}

// stats holds what the Server was asked.
type stats struct {
	tokenRequests int
	batchRequests map[batchKey]int
	totalBatch    int
	inFlight      int
	maxInFlight   int
	aborted       int
	log           requestLog
}

// NewServer starts a Server on 127.0.0.1 with the default credentials.
// Like httptest.NewServer, it panics when it cannot listen on loopback;
// use Start to get an error instead.
func NewServer() *Server {
	s, err := Start()
	if err != nil {
		panic(fmt.Sprintf("partnercentertest: %v", err))
	}
	return s
}

// Start starts a Server on an ephemeral port of 127.0.0.1 with the default
// credentials. The caller must Close it.
func Start() (*Server, error) {
	return start(nil)
}

// StartTLS is Start serving HTTPS with cert, so that a client's CA, server
// name and proxy settings can be tested; URL then starts with https://.
func StartTLS(cert tls.Certificate) (*Server, error) {
	return start(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
}

func start(tlsConfig *tls.Config) (*Server, error) {
	// Listening on loopback does not block, so there is nothing for a
	// caller's context to cancel.
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	scheme := "http://"
	if tlsConfig != nil {
		ln, scheme = tls.NewListener(ln, tlsConfig), "https://"
	}
	s := &Server{
		URL:       scheme + ln.Addr().String(),
		serveDone: make(chan struct{}),
		closing:   make(chan struct{}),
		now:       time.Now,
		auth:      newAuthState(),
		batches:   make(map[batchKey]*batchEntry),
		stats:     stats{batchRequests: make(map[batchKey]int)},
	}
	s.httpServer = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		// The fake must not write to the process's log: demo mode
		// owns that.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.serveDone)
		// Serve returns http.ErrServerClosed after Close; a fake has
		// nobody to report any other accept error to.
		_ = s.httpServer.Serve(ln)
	}()
	return s, nil
}

// Close stops the Server: pending latencies end at once, open connections
// are closed, and Close returns when every handler has returned. Calling
// it again does nothing.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()

	// Stop listening before ending the latencies: a client whose kept-alive
	// connection drops retries its GET on a new connection, and that
	// retry must fail rather than reach a closing server. Close only
	// fails with the listener's close error, which leaves nothing to do.
	_ = s.httpServer.Close()
	close(s.closing)
	<-s.serveDone
	s.handlers.Wait()
}

// SetClock replaces the clock used for token expiry, request times and
// the now argument of SetHandler functions; nil restores time.Now.
func (s *Server) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// clock reads the Server's clock. It must be called without s.mu held.
func (s *Server) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// TokenRequests counts every request to the token endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.tokenRequests
}

// BatchRequests counts the requests that reached the path of one batch,
// whatever the outcome (401 and 404 included). IDs match case-insensitively.
func (s *Server) BatchRequests(customerID, trackingID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.batchRequests[newBatchKey(customerID, trackingID)]
}

// TotalBatchRequests counts the requests that reached any batch path.
func (s *Server) TotalBatchRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.totalBatch
}

// MaxConcurrentBatchRequests is the peak number of batch requests that
// were being served at the same time.
func (s *Server) MaxConcurrentBatchRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.maxInFlight
}

// AbortedRequests counts the requests whose client went away (or whose
// Server was closed) while the Server waited out a Response.Latency or
// sent a Response.Stream. By the time one is counted its wait or its
// stream has ended and it is in Requests.
func (s *Server) AbortedRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.aborted
}

// Requests returns a copy of the request log, oldest first: the newest
// 10000 requests, each entered before its answer was sent.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.log.snapshot()
}

// answer is a complete response, decided before any of it is written so
// that the request is logged before the client can see the answer.
type answer struct {
	status int
	header http.Header
	body   []byte
	// aborted means the client went away: nothing is written.
	aborted bool
	// fault breaks the answer after its headers; stream replaces body.
	fault  Fault
	stream *Stream
	// grant, clientID and resource describe a token request for the log.
	grant, clientID, resource string
}

// writeWhole sends a's status, headers and body as they are.
func (a answer) writeWhole(w http.ResponseWriter) {
	h := w.Header()
	maps.Copy(h, a.header)
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	// A write error means the client went away; nobody is left to tell.
	_, _ = w.Write(a.body)
}

// dropConnection closes the connection without an answer. Returning from
// the handler instead would let net/http send an empty 200, which a client
// still waiting (as when Close ends a latency) would take for a success.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not an HTTP/1 connection: the next best thing is an error.
		plainAnswer(http.StatusServiceUnavailable, "partnercentertest: request aborted").writeWhole(w)
		return
	}
	// The client is gone or about to be: a close error changes nothing.
	_ = conn.Close()
}

// plainAnswer is a text/plain answer, as for unknown paths.
func plainAnswer(status int, text string) answer {
	return answer{
		status: status,
		header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		body:   []byte(text + "\n"),
	}
}

// jsonAnswer is an application/json answer.
func jsonAnswer(status int, body []byte) answer {
	return answer{
		status: status,
		header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		body:   body,
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		s.write(w, r, plainAnswer(http.StatusServiceUnavailable, "partnercentertest: server closed"))
		return
	}
	defer s.handlers.Done()

	received := s.clock()
	a := s.route(r)
	if !a.aborted && !validStatus(a.status) {
		// Only a test's scripting (FailTokenRequests) can get here.
		fixed := misconfigured(fmt.Sprintf("status %d is not a final HTTP status", a.status))
		fixed.grant, fixed.clientID, fixed.resource = a.grant, a.clientID, a.resource
		a = fixed
	}
	s.record(r, received, a)
	if !s.write(w, r, a) && !a.aborted {
		// A Stream cut short: record counted the aborted waits already.
		s.mu.Lock()
		s.stats.aborted++
		s.mu.Unlock()
	}
}

// enter registers a running handler unless the Server is closed; the
// check and the Add happen under one lock so that Close's Wait never races
// with a late Add.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	return true
}

func (s *Server) route(r *http.Request) answer {
	segments := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(segments) == 3 &&
		strings.EqualFold(segments[1], "oauth2") &&
		strings.EqualFold(segments[2], "token"):
		return s.serveToken(r, segments[0], false)
	case len(segments) == 4 &&
		strings.EqualFold(segments[1], "oauth2") &&
		strings.EqualFold(segments[2], "v2.0") &&
		strings.EqualFold(segments[3], "token"):
		return s.serveToken(r, segments[0], true)
	case len(segments) == 5 &&
		strings.EqualFold(segments[0], APIVersion) &&
		strings.EqualFold(segments[1], "customers") &&
		strings.EqualFold(segments[3], "batchJobStatus"):
		return s.serveBatch(r, newBatchKey(segments[2], segments[4]))
	}
	return plainAnswer(http.StatusNotFound, "404 page not found")
}

func (s *Server) record(r *http.Request, received time.Time, a answer) {
	entry := Request{
		Time:     received,
		Method:   r.Method,
		Path:     r.URL.Path,
		Header:   r.Header.Clone(),
		Status:   a.status,
		Grant:    a.grant,
		ClientID: a.clientID,
		Resource: a.resource,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.aborted {
		entry.Status = 0
		// Counted with the log entry so that a test waiting for the
		// count also finds the entry.
		s.stats.aborted++
	}
	s.stats.log.add(entry)
}

// sleep waits d, or less when the client goes away or the Server closes;
// it reports whether the whole latency passed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

// requestLog is a ring buffer of the newest maxLoggedRequests requests.
type requestLog struct {
	entries []Request
	// next is where the next entry goes once the buffer is full; it is
	// also the index of the oldest entry then.
	next int
}

func (l *requestLog) add(r Request) {
	if len(l.entries) < maxLoggedRequests {
		l.entries = append(l.entries, r)
		return
	}
	l.entries[l.next] = r
	l.next = (l.next + 1) % len(l.entries)
}

func (l *requestLog) snapshot() []Request {
	out := make([]Request, 0, len(l.entries))
	out = append(out, l.entries[l.next:]...)
	return append(out, l.entries[:l.next]...)
}
