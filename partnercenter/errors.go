package partnercenter

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Error is a failed request to the API: either no response (StatusCode 0,
// Err says why), a non-200 answer (Code and Description come from the
// Partner Center error body), or a 200 whose body could not be decoded.
type Error struct {
	StatusCode    int
	Code          string
	Description   string
	RequestID     string
	CorrelationID string
	// RetryAfter is how long the client holds every request back after
	// this 429: its Retry-After, at least 1s and at most
	// ClientConfig.MaxRetryAfter, or 5s when it had no usable one.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	switch e.StatusCode {
	case 0:
		b.WriteString("request failed")
	case http.StatusOK:
		b.WriteString("bad response")
	default:
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ", error code %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// HoldError means the client sent no request: an earlier HTTP 429 holds
// every request back until Until, which is past the caller's deadline. It
// is not an *Error because Partner Center did not answer this call.
type HoldError struct {
	Until time.Time
}

// Error reads like "held by the exporter until 2026-11-25T10:05:00Z after
// an HTTP 429 from Partner Center; no request sent".
func (e *HoldError) Error() string {
	return "held by the exporter until " + e.Until.UTC().Format(time.RFC3339) +
		" after an HTTP 429 from Partner Center; no request sent"
}

// TokenError is an answer other than 200 from the token endpoint. The
// token sources of package auth return it; it is declared here because
// the client's errors and their callers tell a refused credential by it.
type TokenError struct {
	StatusCode int
	// Code is the OAuth error code such as "invalid_client"; empty when the
	// body was not an OAuth error document.
	Code string
	// Description is error_description on one line, cut to 300 bytes; for
	// a 3xx, which is never followed, it names the host it pointed to.
	Description string
}

// Error reads like
// "token endpoint answered 401 invalid_client: AADSTS7000215: Invalid client secret provided.".
func (e *TokenError) Error() string {
	msg := fmt.Sprintf("token endpoint answered %d", e.StatusCode)
	what := e.Code
	if what == "" {
		what = http.StatusText(e.StatusCode)
	}
	if what != "" {
		msg += " " + what
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// NoTokenError is a read that sent nothing because no access token could
// be had: the token endpoint refused or could not be reached, or a
// credential file could not be read. It concerns every read alike.
type NoTokenError struct {
	// Err is why, often a *TokenError.
	Err error
}

// Error reads like "get token: token endpoint answered 401 invalid_client: …".
func (e *NoTokenError) Error() string { return "get token: " + e.Err.Error() }

func (e *NoTokenError) Unwrap() error { return e.Err }

// Temporary reports whether a retry may succeed: no response at all, or a
// server-side (5xx) failure.
func (e *Error) Temporary() bool {
	return e.StatusCode == 0 || e.StatusCode >= 500
}

// Unavailable reports whether err means the API could not be used at all:
// no token (a *TokenError, or any error that is not an *Error, such as a
// token transport failure or an expired context), no complete response
// (StatusCode 0: connection failure, timeout, reset mid-body), a 401 (the
// exporter's own credentials) or a 5xx.
//
// Everything else proves the service is there and answering, and concerns
// one batch rather than the exporter: a 403 (one customer's permission),
// 404, 429, 3xx or other 4xx, a 200 that could not be decoded, and a
// *HoldError (nothing was sent).
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := errors.AsType[*HoldError](err); ok {
		return false
	}
	if _, ok := errors.AsType[*TokenError](err); ok {
		return true
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		return true
	}
	code := apiErr.StatusCode
	return code == 0 || code == http.StatusUnauthorized || code >= 500
}

// The classes of TransportFailure.
const (
	FailureDNS               = "dns"
	FailureTLS               = "tls"
	FailureConnectionRefused = "connection refused"
	FailureConnectionReset   = "connection reset"
	FailureTimeout           = "timeout"
	FailureCanceled          = "canceled"
	FailureEOF               = "eof"
	FailureOther             = "other"
)

// TransportFailure names the class of a failure to get a complete answer,
// such as the Err of an *Error with StatusCode 0 or a failed token
// request: one of the Failure constants. Unlike the error's text, which
// names addresses and the local port, it stays the same while the same
// thing keeps going wrong, so that a caller can tell a new kind of failure
// from a repeat of the last one.
func TransportFailure(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr):
		return FailureDNS
	case isTLSFailure(err), errors.As(err, &opErr) && opErr.Op == "remote error":
		// crypto/tls reports an alert from the server as a "remote error".
		return FailureTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailureConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return FailureConnectionReset
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return FailureTimeout
	case errors.Is(err, context.Canceled):
		return FailureCanceled
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return FailureEOF
	}
	return FailureOther
}

func isTLSFailure(err error) bool {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	var authority x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &alert) ||
		errors.As(err, &authority) || errors.As(err, &host) || errors.As(err, &invalid)
}

// maxDescriptionLen bounds a service-provided description kept in errors.
const maxDescriptionLen = 300

// parseErrorBody extracts the Partner Center error code and description
// from a JSON error body ({"code":600,"description":"..."}). Anything else
// yields a short excerpt of the body as the description.
func parseErrorBody(r io.Reader) (code, description string) {
	raw, _ := io.ReadAll(r)
	raw = bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF"))
	var body struct {
		Code        json.RawMessage `json:"code"`
		Description string          `json:"description"`
	}
	if json.Unmarshal(raw, &body) == nil {
		return oneLine(strings.Trim(string(body.Code), `"`), maxFieldLen), oneLine(body.Description, maxDescriptionLen)
	}
	return "", oneLine(string(raw), maxDescriptionLen)
}

// retryAfterHold turns a 429's Retry-After into the hold the client
// applies: defaultRetryAfter when it is missing or unreadable, otherwise
// its delay raised to minRetryAfter and cut to maxHold.
func retryAfterHold(v string, now time.Time, maxHold time.Duration) time.Duration {
	wait, ok := parseRetryAfter(v, now)
	if !ok {
		wait = defaultRetryAfter
	}
	return min(max(wait, minRetryAfter), maxHold)
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date. A
// negative delay or a date in the past gives a delay <= 0; a delay too
// large for a time.Duration gives the largest one.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	secs, err := strconv.ParseInt(v, 10, 64)
	if err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case secs > int64(math.MaxInt64/time.Second):
			return math.MaxInt64, true
		case secs < 0:
			return 0, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return at.Sub(now), true
	}
	return 0, false
}
