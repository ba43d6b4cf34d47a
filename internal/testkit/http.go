// Package testkit holds the helpers the tests share (package main, daemon,
// batchpages, partnercenter and its auth and partnercentertest, storage,
// batchfiles, internal/waitcmd and the e2e module): a simulated Partner
// Center with one batch of each kind, the configuration pointing at it,
// HTTP requests and polling, a clock that moves when told to, a
// goroutine-safe buffer, exposition parsing, heap sampling, and the
// processes a test starts and stops. It is imported by tests only.
//
// It imports partnercentertest, so partnercentertest's own in-package
// tests cannot use it; its external tests (package partnercentertest_test)
// can.
package testkit

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// SyncBuffer collects the log of a program running in other goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreeLoopbackAddr returns a loopback address nothing listens on right now.
func FreeLoopbackAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Fetch GETs url with a bounded wait, for polling a server that may not be
// up yet: it returns errors rather than failing the test.
func Fetch(url string) (body string, status int, err error) {
	return send(http.MethodGet, url)
}

// Post POSTs to url like Fetch GETs.
func Post(url string) (body string, status int, err error) {
	return send(http.MethodPost, url)
}

func send(method, url string) (body string, status int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return string(data), resp.StatusCode, err
}

// Get GETs url and fails the test unless the answer has wantStatus.
func Get(t *testing.T, url string, wantStatus int) string {
	t.Helper()
	return Do(t, http.MethodGet, url, wantStatus)
}

// Do sends an empty method request to url and fails the test unless the
// answer has wantStatus.
func Do(t *testing.T, method, url string, wantStatus int) string {
	t.Helper()
	a := Send(t, method, url, nil, nil)
	if a.Status != wantStatus {
		t.Fatalf("%s %s: %d, want %d\n%s", method, url, a.Status, wantStatus, a.Body)
	}
	return a.Body
}

// Answer is a whole HTTP answer.
type Answer struct {
	Status int
	Header http.Header
	Body   string
}

// Send sends a method request to url with body (nil: none) and header,
// and returns the whole answer. It fails the
// test when no answer arrives or its body cannot be read.
func Send(t *testing.T, method, url string, body io.Reader, header http.Header) Answer {
	t.Helper()
	// Not t.Context(): cleanups, which run after it ends, send requests too.
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	return SendRequest(t, http.DefaultClient, req)
}

// SendRequest sends req with client and returns the whole answer, for a
// request Send cannot make (Basic authentication, a client of its own,
// the test's context). It fails the test when no answer arrives or its
// body cannot be read.
func SendRequest(t *testing.T, client *http.Client, req *http.Request) Answer {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL, err)
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: string(data)}
}

// WaitFor polls cond until it holds, and fails the test after 15s.
func WaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !Poll(cond) {
		t.Fatal("condition not met within 15s")
	}
}

// WaitUntil is WaitFor naming what it waits for when it fails.
func WaitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !Poll(cond) {
		t.Fatalf("timed out after 15s waiting for %s", what)
	}
}

// Poll calls cond every 20ms until it holds (true) or 15s have passed
// (false): long enough for a loaded 2-core machine, short enough to bound
// a test that waits for something that never happens. It is for a wait
// whose failure says more than WaitUntil can, such as the last value
// seen.
func Poll(cond func() bool) bool {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
