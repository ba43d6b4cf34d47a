package partnercenter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// noTokens is a TokenSource for tests that send nothing; the real ones
// live in package auth, which imports this one.
type noTokens struct{}

func (noTokens) Token(context.Context) (string, error) {
	return "", errors.New("no token in this test")
}
func (noTokens) Invalidate(string) {}

func TestHoldErrorText(t *testing.T) {
	until := time.Date(2026, 11, 25, 10, 5, 0, 750_000_000, time.FixedZone("CET", 3600))
	err := &HoldError{Until: until}
	want := "held by the exporter until 2026-11-25T09:05:00Z after an HTTP 429 from Partner Center; no request sent"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// TestThrottledUntil drives the hold with a clock that moves only when
// told to.
func TestThrottledUntil(t *testing.T) {
	clock := testkit.NewClock(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
	hold := &Hold{now: clock.Now}
	c, err := NewClient(ClientConfig{BaseURL: "https://api.example", Tokens: noTokens{}, Hold: hold})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ThrottledUntil(); !got.IsZero() {
		t.Fatalf("ThrottledUntil = %v before any 429, want zero", got)
	}
	hold.extend(30 * time.Second)
	want := clock.Now().Add(30 * time.Second)
	if got := c.ThrottledUntil(); !got.Equal(want) {
		t.Fatalf("ThrottledUntil = %v, want %v", got, want)
	}

	// A shorter hold does not shorten the one in force.
	hold.extend(time.Second)
	if got := c.ThrottledUntil(); !got.Equal(want) {
		t.Errorf("ThrottledUntil = %v after a shorter hold, want %v", got, want)
	}

	// The hold outlasts this deadline: refused without waiting.
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(10*time.Second))
	defer cancel()
	var holdErr *HoldError
	if err := hold.wait(ctx); !errors.As(err, &holdErr) || !holdErr.Until.Equal(want) {
		t.Errorf("wait = %v, want a *HoldError until %v", err, want)
	}

	clock.Advance(30 * time.Second)
	if got := c.ThrottledUntil(); !got.IsZero() {
		t.Errorf("ThrottledUntil = %v once the hold has passed, want zero", got)
	}
	if err := hold.wait(ctx); err != nil {
		t.Errorf("wait = %v once the hold has passed, want nil", err)
	}
}

// TestClientWithoutHoldHasItsOwn: clients given no Hold do not share one.
func TestClientWithoutHoldHasItsOwn(t *testing.T) {
	tokens := noTokens{}
	a, errA := NewClient(ClientConfig{BaseURL: "https://api.example", Tokens: tokens})
	b, errB := NewClient(ClientConfig{BaseURL: "https://api.example", Tokens: tokens})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	a.hold.extend(time.Minute)
	if a.ThrottledUntil().IsZero() || !b.ThrottledUntil().IsZero() {
		t.Errorf("ThrottledUntil = %v and %v, want only the first client held", a.ThrottledUntil(), b.ThrottledUntil())
	}
}

func TestParseErrorBodyCutsTheCode(t *testing.T) {
	code, description := parseErrorBody(strings.NewReader(`{"code":"` + strings.Repeat("c", 1000) + `","description":"not found"}`))
	if want := strings.Repeat("c", 253) + "..."; code != want || description != "not found" {
		t.Errorf("parseErrorBody = %q (%d bytes), %q; want the code cut to 256 bytes", code, len(code), description)
	}
}
