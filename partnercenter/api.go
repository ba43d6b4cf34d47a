package partnercenter

import (
	"context"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/guid"
)

// Observer receives the client's own traffic so that a caller can count it
// (the exporter turns these calls into self-metrics). Implementations must
// be safe for concurrent use.
type Observer interface {
	// APIRequest is called once per HTTP request to the API, with the HTTP
	// status code, or 0 when no response was received.
	APIRequest(code int, d time.Duration)
	// Throttled is called once per 429 answer.
	Throttled()
	// TokenRequest is called once per request to the token endpoint (or per
	// read of an access token file) with result "success" or "failure".
	TokenRequest(result string)
	// RefreshTokenWrite is called after each attempt to write a rotated
	// refresh token back to its file, with nil when it was written. An
	// error names the file, never a token; until a write succeeds, the
	// file holds a refresh token that was already redeemed.
	RefreshTokenWrite(err error)
}

// NopObserver ignores everything.
type NopObserver struct{}

// APIRequest does nothing.
func (NopObserver) APIRequest(int, time.Duration) {}

// Throttled does nothing.
func (NopObserver) Throttled() {}

// TokenRequest does nothing.
func (NopObserver) TokenRequest(string) {}

// RefreshTokenWrite does nothing.
func (NopObserver) RefreshTokenWrite(error) {}

// TokenSource hands out bearer tokens for the Partner Center API.
// Implementations cache the token for its lifetime, share one token request
// between concurrent callers and are safe for concurrent use.
type TokenSource interface {
	// Token returns a valid access token.
	Token(ctx context.Context) (string, error)
	// Invalidate drops token from the cache after the API refused it (401),
	// so that the next Token call fetches a new one. A token that is no
	// longer the cached one is ignored.
	Invalidate(token string)
}

// ValidGUID reports whether s is a GUID in its canonical 8-4-4-4-12 form,
// as customer IDs and batch tracking IDs are. It is the exporter's one
// definition, which the batch files use too.
func ValidGUID(s string) bool {
	return guid.Valid(s)
}
