package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func tokenCheckDirEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s holds %q, want %q (no temporary files left)", dir, got, want)
	}
}

// tokenRotatingAnswer answers request n with access token "at-n" and
// refresh token "rt-(n+1)".
func tokenRotatingAnswer(_ *http.Request, n int) (int, string) {
	return http.StatusOK, tokenTestBody(`"3599"`, fmt.Sprintf("at-%d", n), fmt.Sprintf("rt-%d", n+1))
}

func TestRefreshTokenSourceRotatesRefreshToken(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "refresh_token")
	tokenWriteFile(t, rtFile, "rt-1\n", 0o640)
	srv := newTokenTestServer(t, tokenRotatingAnswer)
	clock := newTokenTestClock()
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{
		TokenURL:         srv.tokenURL(),
		ClientID:         tokenTestClientID,
		Resource:         tokenTestResource,
		ClientSecret:     func() string { return tokenTestSecret },
		RefreshTokenFile: rtFile,
	}
	src := newRefreshTokenSource(cfg, srv.Client(), obs, clock.Now)

	tokenMustGet(t, src, "at-1")
	tokenCheckFile(t, rtFile, "rt-2\n", 0o640)
	tokenCheckDirEntries(t, dir, "refresh_token")

	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-2")
	tokenCheckFile(t, rtFile, "rt-3\n", 0o640)
	tokenCheckDirEntries(t, dir, "refresh_token")

	var sent []url.Values
	for _, r := range srv.requests() {
		sent = append(sent, r.form)
	}
	want := []url.Values{
		{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "client_id": {tokenTestClientID}, "client_secret": {tokenTestSecret}, "resource": {tokenTestResource}},
		{"grant_type": {"refresh_token"}, "refresh_token": {"rt-2"}, "client_id": {tokenTestClientID}, "client_secret": {tokenTestSecret}, "resource": {tokenTestResource}},
	}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("forms sent = %v,\nwant %v", sent, want)
	}
	obs.check(t, map[string]int{"success": 2})
}

// tokenBreakFile turns path into a directory, so that a rotated refresh
// token cannot be renamed over it, whoever runs the test (root ignores
// a read-only mode).
func tokenBreakFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Error(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Error(err)
	}
}

// tokenRepairFile turns path back into a file holding content.
func tokenRepairFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	tokenWriteFile(t, path, content, 0o600)
}

// tokenSentRefreshTokens lists the refresh tokens the endpoint received.
func tokenSentRefreshTokens(srv *tokenTestServer) []string {
	var sent []string
	for _, r := range srv.requests() {
		sent = append(sent, r.form.Get("refresh_token"))
	}
	return sent
}

// TestRefreshTokenSourceKeepsUnsavedRefreshToken: when the rotated refresh
// token cannot be written back, the access token is still handed out, the
// new refresh token is redeemed next (never the spent one in the file),
// and each token request tries the write again until it works.
func TestRefreshTokenSourceKeepsUnsavedRefreshToken(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "refresh_token")
	tokenWriteFile(t, rtFile, "rt-1\n", 0o600)
	srv := newTokenTestServer(t, func(r *http.Request, n int) (int, string) {
		if n == 1 {
			tokenBreakFile(t, rtFile) // while the first request runs
		}
		return tokenRotatingAnswer(r, n)
	})
	clock := newTokenTestClock()
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: rtFile}
	src := newRefreshTokenSource(cfg, srv.Client(), obs, clock.Now)

	tokenMustGet(t, src, "at-1")
	obs.checkWrites(t, "failure")

	// The file cannot even be read now: rt-2 from memory is redeemed, after
	// one more try to save it, and its successor cannot be saved either.
	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-2")
	obs.checkWrites(t, "failure", "failure", "failure")

	// The file is back with the spent token: rt-3 is written before it is
	// redeemed, and rt-4 after.
	tokenRepairFile(t, rtFile, "rt-1\n")
	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-3")
	obs.checkWrites(t, "failure", "failure", "failure", "", "")
	tokenCheckFile(t, rtFile, "rt-4\n", 0o600)

	if got, want := tokenSentRefreshTokens(srv), []string{"rt-1", "rt-2", "rt-3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("refresh tokens sent %q, want %q", got, want)
	}
	obs.check(t, map[string]int{"success": 3})
}

// TestRefreshTokenSourcePrefersAReplacedFile: a refresh token put into the
// file from outside wins over the unsaved one in memory.
func TestRefreshTokenSourcePrefersAReplacedFile(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "refresh_token")
	tokenWriteFile(t, rtFile, "rt-1\n", 0o600)
	srv := newTokenTestServer(t, func(r *http.Request, n int) (int, string) {
		if n == 1 {
			tokenBreakFile(t, rtFile)
		}
		return tokenRotatingAnswer(r, n)
	})
	clock := newTokenTestClock()
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: rtFile}
	src := newRefreshTokenSource(cfg, srv.Client(), obs, clock.Now)

	tokenMustGet(t, src, "at-1")
	tokenRepairFile(t, rtFile, "rt-from-the-operator\n")
	clock.Advance(time.Hour)
	tokenMustGet(t, src, "at-2")
	obs.checkWrites(t, "failure", "")
	tokenCheckFile(t, rtFile, "rt-3\n", 0o600)
	if got, want := tokenSentRefreshTokens(srv), []string{"rt-1", "rt-from-the-operator"}; !reflect.DeepEqual(got, want) {
		t.Errorf("refresh tokens sent %q, want %q", got, want)
	}
}

func TestRefreshTokenSourcePublicClientWithoutRotation(t *testing.T) {
	tests := []struct {
		name   string
		secret func() string
	}{
		{name: "no secret function", secret: nil},
		{name: "empty secret", secret: func() string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rtFile := filepath.Join(t.TempDir(), "rt")
			const content = "  rt-1\n\n"
			tokenWriteFile(t, rtFile, content, 0o600)
			srv := newTokenTestServer(t, tokenAnswerNumbered(`3599`))
			obs := &tokenTestObserver{}
			cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, ClientSecret: tt.secret, RefreshTokenFile: rtFile}
			src := NewRefreshTokenSource(cfg, srv.Client(), obs)

			tokenMustGet(t, src, "at-1")
			tokenCheckFile(t, rtFile, content, 0o600)
			want := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "client_id": {tokenTestClientID}, "resource": {tokenTestResource}}
			if got := srv.requests()[0].form; !reflect.DeepEqual(got, want) {
				t.Errorf("form sent = %v, want %v", got, want)
			}
			obs.check(t, map[string]int{"success": 1})
		})
	}
}

func TestRefreshTokenSourceWritesThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real_token")
	link := filepath.Join(dir, "link_token")
	tokenWriteFile(t, target, "rt-1", 0o600)
	if err := os.Symlink("real_token", link); err != nil {
		t.Fatal(err)
	}
	srv := newTokenTestServer(t, tokenRotatingAnswer)
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: link}
	src := NewRefreshTokenSource(cfg, srv.Client(), nil)

	tokenMustGet(t, src, "at-1")
	tokenCheckFile(t, target, "rt-2\n", 0o600)
	info, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a symlink: mode %v", link, info.Mode())
	}
	tokenCheckDirEntries(t, dir, "link_token", "real_token")
}

func TestRefreshTokenSourceFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	tokenWriteFile(t, empty, " \n\t\n", 0o600)
	tooLarge := filepath.Join(dir, "large")
	tokenWriteFile(t, tooLarge, strings.Repeat("r", 64<<10+1), 0o600)
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name, path, wantErr string
	}{
		{name: "empty", path: empty, wantErr: "reading refresh token: " + empty + " is empty"},
		{name: "too large", path: tooLarge, wantErr: "reading refresh token: " + tooLarge + " is larger than 65536 bytes"},
		{name: "missing", path: missing, wantErr: "reading refresh token: open " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTokenTestServer(t, tokenRotatingAnswer)
			obs := &tokenTestObserver{}
			cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: tt.path}
			src := NewRefreshTokenSource(cfg, srv.Client(), obs)

			_, err := src.Token(context.Background())
			tokenCheckError(t, err, tt.wantErr)
			srv.checkRequestCount(t, 0)
			obs.check(t, map[string]int{"failure": 1})
		})
	}
}

func TestRefreshTokenSourceRefusedRefreshToken(t *testing.T) {
	dir := t.TempDir()
	rtFile := filepath.Join(dir, "rt")
	tokenWriteFile(t, rtFile, "rt-1", 0o600)
	srv := newTokenTestServer(t, func(*http.Request, int) (int, string) {
		return http.StatusBadRequest, `{"error":"invalid_grant","error_description":"AADSTS70008: The refresh token has expired. Token rt-1 is gone."}`
	})
	obs := &tokenTestObserver{}
	cfg := RefreshTokenConfig{TokenURL: srv.tokenURL(), ClientID: tokenTestClientID, Resource: tokenTestResource, RefreshTokenFile: rtFile}
	src := NewRefreshTokenSource(cfg, srv.Client(), obs)

	_, err := src.Token(context.Background())
	tokenCheckError(t, err, "token endpoint answered 400 invalid_grant: AADSTS70008: The refresh token has expired. Token <redacted> is gone.")
	tokenCheckFile(t, rtFile, "rt-1", 0o600)
	obs.check(t, map[string]int{"failure": 1})
}
