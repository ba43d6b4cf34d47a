package partnercentertest_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// getRaw sends an authorized batch request and returns the response with
// its body unread, for tests that look at how the body breaks; the caller
// closes it.
func getRaw(t *testing.T, s *partnercentertest.Server, client *http.Client, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, batchURL(s, trackingID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestFaults(t *testing.T) {
	body := []byte(strings.Repeat("0123456789", 100))
	tests := []struct {
		fault   partnercentertest.Fault
		wantErr func(error) bool
	}{
		{partnercentertest.FaultReset, func(err error) bool { return errors.Is(err, syscall.ECONNRESET) }},
		{partnercentertest.FaultTruncate, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{partnercentertest.FaultStall, isTimeout},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault), func(t *testing.T) {
			s, _ := newServer(t)
			token := accessToken(t, s)
			s.SetResponses(customerID, trackingID, smallBatch,
				partnercentertest.Response{Status: http.StatusOK, Body: body, Fault: tt.fault})
			client := &http.Client{Timeout: 300 * time.Millisecond}
			resp := getRaw(t, s, client, token)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(body)) {
				t.Errorf("status %d Content-Length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, len(body))
			}
			got, err := io.ReadAll(resp.Body)
			if !bytes.Equal(got, body[:len(body)/2]) {
				t.Errorf("read %d bytes before the fault, want the first half (%d)", len(got), len(body)/2)
			}
			if !tt.wantErr(err) {
				t.Errorf("read error %v, not the one %s brings", err, tt.fault)
			}
		})
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// TestStallEndsWithClose: a stalled answer keeps the handler until Close,
// which must still return promptly.
func TestStallEndsWithClose(t *testing.T) {
	s := partnercentertest.NewServer()
	token := accessToken(t, s)
	s.SetResponses(customerID, trackingID, smallBatch,
		partnercentertest.Response{Body: []byte("{}{}"), Fault: partnercentertest.FaultStall})
	resp := getRaw(t, s, http.DefaultClient, token)
	defer resp.Body.Close()
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a stalled answer")
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a stalled body ended without an error")
	}
}

func TestStream(t *testing.T) {
	tests := []struct {
		name       string
		stream     partnercentertest.Stream
		wantLength int64
		wantBody   string
	}{
		{name: "declared", stream: partnercentertest.Stream{Head: []byte("["), Repeat: []byte("1,2,"), Size: 10}, wantLength: 10, wantBody: "[1,2,1,2,1"},
		{name: "chunked", stream: partnercentertest.Stream{Head: []byte("<a>"), Repeat: []byte("x"), Size: 5, Chunked: true}, wantLength: -1, wantBody: "<a>xx"},
		{name: "head only", stream: partnercentertest.Stream{Head: []byte("{}"), Size: 2}, wantLength: 2, wantBody: "{}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t)
			token := accessToken(t, s)
			s.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Stream: &tt.stream})
			resp := getRaw(t, s, http.DefaultClient, token)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != tt.wantBody || resp.ContentLength != tt.wantLength {
				t.Errorf("body %q (err %v), Content-Length %d; want %q, %d", got, err, resp.ContentLength, tt.wantBody, tt.wantLength)
			}
			if got := s.AbortedRequests(); got != 0 {
				t.Errorf("AbortedRequests = %d after a whole stream, want 0", got)
			}
		})
	}
}

// TestHugeStreamStopsWhenClientLeaves sends "2 GiB" of which the client
// reads 1 MiB: the Server must stop at once, not push the rest.
func TestHugeStreamStopsWhenClientLeaves(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		s, _ := newServer(t)
		token := accessToken(t, s)
		s.SetResponses(customerID, trackingID, smallBatch, partnercentertest.Response{Stream: &partnercentertest.Stream{
			Head: []byte(`{"devicesStatus":[`), Repeat: []byte(`{"status":"finished"},`), Size: 2 << 30, Chunked: chunked,
		}})
		began := time.Now()
		resp := getRaw(t, s, http.DefaultClient, token)
		if n, err := io.CopyN(io.Discard, resp.Body, 1<<20); n != 1<<20 || err != nil {
			t.Fatalf("chunked=%v: read %d bytes, %v", chunked, n, err)
		}
		resp.Body.Close()
		testkit.WaitUntil(t, "the stream to stop", func() bool { return s.AbortedRequests() == 1 })
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("chunked=%v: stopping took %s", chunked, took)
		}
	}
}

func TestMisconfiguredFaults(t *testing.T) {
	tests := []struct {
		name     string
		response partnercentertest.Response
		wantDesc string
	}{
		{
			name: "unknown fault", response: partnercentertest.Response{Fault: "explode"},
			wantDesc: `partnercentertest: unknown Response.Fault \"explode\" (want reset, truncate or stall)`,
		},
		{
			name: "fault on a stream", response: partnercentertest.Response{Fault: partnercentertest.FaultReset, Stream: &partnercentertest.Stream{}},
			wantDesc: `partnercentertest: Response.Fault \"reset\" cannot break a Stream`,
		},
		{
			name: "stream shorter than its head", response: partnercentertest.Response{Stream: &partnercentertest.Stream{Head: []byte("abc"), Size: 1}},
			wantDesc: `partnercentertest: Stream.Size 1 is smaller than its Head (3 bytes)`,
		},
		{
			name: "stream without repeat", response: partnercentertest.Response{Stream: &partnercentertest.Stream{Size: 1}},
			wantDesc: `partnercentertest: Stream.Size 1 needs a Repeat after its Head`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t)
			s.SetResponses(customerID, trackingID, smallBatch, tt.response)
			r := getBatch(t, s, trackingID, accessToken(t, s))
			if r.Status != http.StatusInternalServerError || !strings.Contains(r.Body, `"description":"`+tt.wantDesc+`"`) {
				t.Errorf("status %d body %s; want 500 with %s", r.Status, r.Body, tt.wantDesc)
			}
		})
	}
}

func TestSetTokenResponses(t *testing.T) {
	s, _ := newServer(t)
	s.SetTokenResponses(
		partnercentertest.Response{Status: http.StatusBadRequest},
		partnercentertest.Response{Body: []byte(`{"access_token":`)},
		partnercentertest.Response{Status: http.StatusTemporaryRedirect, Header: http.Header{"Location": {"http://127.0.0.1:1/elsewhere"}}},
		partnercentertest.Response{Header: http.Header{"X-Scripted": {"yes"}}},
	)
	tests := []struct {
		wantStatus int
		wantBody   string
		wantHeader string
	}{
		{400, `{"error":"scripted_failure","error_description":"partnercentertest: scripted 400"}`, ""},
		{200, `{"access_token":`, ""},
		{307, `{"error":"scripted_failure","error_description":"partnercentertest: scripted 307"}`, ""},
		{200, "", "yes"}, // the endpoint's own answer, a token
		{200, "", "yes"}, // the last one repeats
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, tt := range tests {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.TokenURL(), strings.NewReader(clientCredentials().Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r := testkit.SendRequest(t, client, req)
		if r.Status != tt.wantStatus || r.Header.Get("X-Scripted") != tt.wantHeader {
			t.Errorf("request %d: status %d X-Scripted %q, want %d %q", i, r.Status, r.Header.Get("X-Scripted"), tt.wantStatus, tt.wantHeader)
		}
		if tt.wantBody != "" && r.Body != tt.wantBody {
			t.Errorf("request %d: body %s, want %s", i, r.Body, tt.wantBody)
		}
		if tt.wantBody == "" && !strings.Contains(r.Body, `"access_token":"`+partnercentertest.AccessTokenPrefix) {
			t.Errorf("request %d: body %s, want an issued token", i, r.Body)
		}
	}
	if got := s.TokenRequests(); got != len(tests) {
		t.Errorf("TokenRequests = %d, want %d", got, len(tests))
	}
	s.SetTokenResponses()
	if token := accessToken(t, s); token != s.LastAccessToken() {
		t.Errorf("after SetTokenResponses() the endpoint issued %q, LastAccessToken %q", token, s.LastAccessToken())
	}
}

func TestSlowTokenEndpoint(t *testing.T) {
	s, _ := newServer(t)
	s.SetTokenResponses(partnercentertest.Response{Latency: time.Hour})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.TokenURL(), strings.NewReader(clientCredentials().Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a token request with an hour of latency beat a 100ms client timeout")
	}
	testkit.WaitUntil(t, "the token handler to give up", func() bool { return s.AbortedRequests() == 1 })
	if got := s.LastAccessToken(); got != "" {
		t.Errorf("an abandoned token request issued %q", got)
	}
}
