package waitcmd

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// TestClassify: which failed reads end the wait at once, which are waited
// out, and which count toward --max-read-failures.
func TestClassify(t *testing.T) {
	tests := []struct {
		name                string
		err                 error
		permanent, throttle bool
	}{
		{"403", &partnercenter.Error{StatusCode: 403}, true, false},
		{"401", &partnercenter.Error{StatusCode: 401}, true, false},
		{"400", &partnercenter.Error{StatusCode: 400}, true, false},
		{"404", &partnercenter.Error{StatusCode: 404}, false, false},
		{"503", &partnercenter.Error{StatusCode: 503}, false, false},
		{"no answer", &partnercenter.Error{StatusCode: 0, Err: errors.New("connection reset")}, false, false},
		{"bad body", &partnercenter.Error{StatusCode: 200, Err: errors.New("unexpected EOF")}, false, false},
		{"429", &partnercenter.Error{StatusCode: 429}, false, true},
		{"hold", &partnercenter.HoldError{Until: time.Now()}, false, true},
		{"token refused", &partnercenter.NoTokenError{Err: &partnercenter.TokenError{StatusCode: 401, Code: "invalid_client"}}, true, false},
		{"token throttled", &partnercenter.NoTokenError{Err: &partnercenter.TokenError{StatusCode: 429}}, false, false},
		{"token endpoint down", &partnercenter.NoTokenError{Err: &partnercenter.TokenError{StatusCode: 503}}, false, false},
		{"secret file gone", &partnercenter.NoTokenError{Err: fmt.Errorf("reading client secret: %w", &fs.PathError{Op: "open", Path: "s", Err: fs.ErrNotExist})}, true, false},
		{"token transport", &partnercenter.NoTokenError{Err: errors.New("dial tcp: connection refused")}, false, false},
	}
	for _, tt := range tests {
		if got := permanent(tt.err); got != tt.permanent {
			t.Errorf("%s: permanent %v, want %v", tt.name, got, tt.permanent)
		}
		if got := throttled(tt.err); got != tt.throttle {
			t.Errorf("%s: throttled %v, want %v", tt.name, got, tt.throttle)
		}
	}
	for n, want := range map[int]time.Duration{1: 15 * time.Second, 2: 30 * time.Second, 3: time.Minute, 5: 4 * time.Minute, 6: 5 * time.Minute, 50: 5 * time.Minute} {
		check(t, fmt.Sprintf("backoff after %d failures", n), backoff(15*time.Second, n), want)
	}
	check(t, "backoff of a long interval", backoff(10*time.Minute, 3), 10*time.Minute)
}
