package partnercentertest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Device is one entry of a batch's devicesStatus, as raw strings.
type Device struct {
	DeviceID         string
	SerialNumber     string
	ProductKey       string
	Status           string
	ErrorCode        string
	ErrorDescription string
}

// Batch is a BatchUploadDetails resource, as raw strings so that tests can
// send any spelling. An empty string is sent as null.
type Batch struct {
	TrackingID    string
	Status        string
	StartedTime   string
	CompletedTime string
	Devices       []Device
}

// Response scripts one answer of the batch endpoint.
type Response struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// Body is sent as is. When it is nil, a 200 answer renders the batch
	// in Format and any other status renders a Partner Center error body
	// for that status (see ErrorBody); []byte{} sends an empty body.
	Body []byte
	// ContentType overrides the Content-Type derived from Format.
	ContentType string
	// Header is added to the answer (e.g. Retry-After) and may override
	// any header but Content-Length.
	Header http.Header
	// Latency is waited before answering; the wait ends, and nothing is
	// answered, when the client goes away or the Server closes.
	Latency time.Duration
	// Format is how the batch is rendered: "json" (default), "xml" or
	// "json-bom" (JSON after a UTF-8 byte order mark).
	Format string
	// Fault, when set, breaks the answer after its headers (see Fault).
	Fault Fault
	// Stream, when set, is sent instead of Body; it cannot be combined
	// with a Fault.
	Stream *Stream
}

// Content types of the rendered formats.
const (
	contentTypeJSON = "application/json; charset=utf-8"
	contentTypeXML  = "application/xml; charset=utf-8"
)

// batchKey identifies a batch; both IDs are lower-cased because the
// service matches them case-insensitively.
type batchKey struct {
	customerID string
	trackingID string
}

func newBatchKey(customerID, trackingID string) batchKey {
	return batchKey{customerID: strings.ToLower(customerID), trackingID: strings.ToLower(trackingID)}
}

// batchEntry is how one batch answers: a fixed batch with an optional
// script of responses, or a handler.
type batchEntry struct {
	batch     Batch
	responses []Response
	handler   func(call int, now time.Time) (Batch, Response)
	// calls counts the authorized requests answered from this entry.
	calls int
}

// next returns the batch and response for the next call. A handler is
// returned instead, to be called without the Server's lock.
func (e *batchEntry) next() (call int, b Batch, r Response, handler func(int, time.Time) (Batch, Response)) {
	call = e.calls
	e.calls++
	if e.handler != nil {
		return call, Batch{}, Response{}, e.handler
	}
	if len(e.responses) > 0 {
		r = e.responses[min(call, len(e.responses)-1)]
	}
	return call, e.batch, r, nil
}

// SetBatch makes the batch always answer 200 with b rendered as JSON.
func (s *Server) SetBatch(customerID, trackingID string, b Batch) {
	s.SetResponses(customerID, trackingID, b)
}

// SetResponses scripts the batch's answers: the n-th authorized request
// (counting from 0) gets rs[n], and the last one repeats. A Response with
// a nil Body and Status 0 or 200 renders b. Requests refused with 401 do
// not use up the script.
func (s *Server) SetResponses(customerID, trackingID string, b Batch, rs ...Response) {
	entry := &batchEntry{batch: cloneBatch(b), responses: slices.Clone(rs)}
	s.setEntry(newBatchKey(customerID, trackingID), entry)
}

// SetHandler makes h answer the batch: for the n-th authorized request
// (counting from 0) the Server renders what h(n, now) returns, exactly as
// for SetResponses. h runs without the Server's lock held, possibly
// concurrently with itself. A nil h removes the batch.
func (s *Server) SetHandler(customerID, trackingID string, h func(call int, now time.Time) (Batch, Response)) {
	key := newBatchKey(customerID, trackingID)
	if h == nil {
		s.removeEntry(key)
		return
	}
	s.setEntry(key, &batchEntry{handler: h})
}

// RemoveBatch makes the batch answer 404 again. Its request counter is
// kept.
func (s *Server) RemoveBatch(customerID, trackingID string) {
	s.removeEntry(newBatchKey(customerID, trackingID))
}

func (s *Server) setEntry(key batchKey, entry *batchEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches[key] = entry
}

func (s *Server) removeEntry(key batchKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.batches, key)
}

func cloneBatch(b Batch) Batch {
	b.Devices = slices.Clone(b.Devices)
	return b
}

func (s *Server) serveBatch(r *http.Request, key batchKey) answer {
	s.beginBatchRequest(key)
	defer s.endBatchRequest()

	if r.Method != http.MethodGet {
		a := plainAnswer(http.StatusMethodNotAllowed, "405 method not allowed")
		a.header.Set("Allow", http.MethodGet)
		return a
	}
	if !s.authorized(r.Header.Get("Authorization")) {
		a := errorAnswer(http.StatusUnauthorized, ErrorBody(http.StatusUnauthorized, "Unauthorized",
			"Authorization failed: the access token is missing, invalid or expired.", false))
		a.header.Set("WWW-Authenticate", "Bearer")
		return a
	}
	b, resp, found := s.nextResponse(key)
	if !found {
		return errorAnswer(http.StatusNotFound, ErrorBody(600, "NotFound", "The resource was not found.", false))
	}
	if !s.sleep(r.Context(), resp.Latency) {
		return answer{aborted: true}
	}
	a := renderResponse(b, resp)
	echoTracingHeaders(r.Header, a.header)
	return a
}

// nextResponse picks the answer for the next authorized request to key.
func (s *Server) nextResponse(key batchKey) (Batch, Response, bool) {
	s.mu.Lock()
	entry, found := s.batches[key]
	if !found {
		s.mu.Unlock()
		return Batch{}, Response{}, false
	}
	call, b, resp, handler := entry.next()
	now := s.now
	s.mu.Unlock()

	if handler != nil {
		b, resp = handler(call, now())
	}
	return b, resp, true
}

func (s *Server) beginBatchRequest(key batchKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.totalBatch++
	if _, counted := s.stats.batchRequests[key]; counted || len(s.stats.batchRequests) < maxCountedBatches {
		s.stats.batchRequests[key]++
	}
	s.stats.inFlight++
	s.stats.maxInFlight = max(s.stats.maxInFlight, s.stats.inFlight)
}

func (s *Server) endBatchRequest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.inFlight--
}

// echoTracingHeaders returns the client's tracing ids, as the service
// does, so that tests can match answers to requests.
func echoTracingHeaders(request, answer http.Header) {
	for _, name := range []string{"MS-CorrelationId", "MS-RequestId"} {
		if value := request.Get(name); value != "" && answer.Get(name) == "" {
			answer.Set(name, value)
		}
	}
}

// errorAnswer is a Partner Center error answer.
func errorAnswer(status int, body []byte) answer {
	return jsonAnswer(status, body)
}

// renderResponse turns a scripted Response into an answer.
func renderResponse(b Batch, resp Response) answer {
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	if !validStatus(status) {
		return misconfigured(fmt.Sprintf("Response.Status %d is not a final HTTP status", resp.Status))
	}
	contentType, err := formatContentType(resp.Format)
	if err == nil {
		err = checkScript(resp)
	}
	if err != nil {
		return misconfigured(err.Error())
	}
	body := resp.Body
	if body == nil {
		if status == http.StatusOK {
			body = renderBatch(b, resp.Format)
		} else {
			body = defaultErrorBody(status)
			contentType = contentTypeJSON
		}
	}

	a := answer{status: status, header: make(http.Header), body: body, fault: resp.Fault, stream: resp.Stream}
	a.header.Set("Content-Type", contentType)
	for name, values := range resp.Header {
		a.header[http.CanonicalHeaderKey(name)] = slices.Clone(values)
	}
	if resp.ContentType != "" {
		a.header.Set("Content-Type", resp.ContentType)
	}
	return a
}

// validStatus reports whether status can be written as a final answer
// (http.ResponseWriter.WriteHeader panics outside 100-999, and a 1xx is
// not final).
func validStatus(status int) bool {
	return status >= 200 && status <= 999
}

// misconfigured answers a test's mistake in a way the test will notice.
func misconfigured(reason string) answer {
	return errorAnswer(http.StatusInternalServerError,
		ErrorBody(http.StatusInternalServerError, "PartnerCenterTestMisconfigured", "partnercentertest: "+reason, false))
}

func formatContentType(format string) (string, error) {
	switch format {
	case "", "json", "json-bom":
		return contentTypeJSON, nil
	case "xml":
		return contentTypeXML, nil
	}
	return "", fmt.Errorf("unknown Response.Format %q (want json, xml or json-bom)", format)
}

// renderBatch renders b in a format formatContentType accepted.
func renderBatch(b Batch, format string) []byte {
	switch format {
	case "xml":
		return RenderXML(b)
	case "json-bom":
		return append([]byte(utf8BOM), RenderJSON(b)...)
	}
	return RenderJSON(b)
}

const utf8BOM = "\xEF\xBB\xBF"
