package auth

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAccessTokenFileSourceRereadsOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access_token")
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	write := func(content string, modTime time.Time) {
		t.Helper()
		tokenWriteFile(t, path, content, 0o600)
		if err := os.Chtimes(path, modTime, modTime); err != nil {
			t.Fatal(err)
		}
	}
	obs := &tokenTestObserver{}
	src := NewAccessTokenFileSource(path, obs)

	write("  at-1\n", mtime)
	tokenMustGet(t, src, "at-1")
	obs.check(t, map[string]int{"success": 1})

	// Same size and time: the cached copy is served, the file is not read.
	write("  at-X\n", mtime)
	tokenMustGet(t, src, "at-1")
	obs.check(t, map[string]int{"success": 1})

	// A new modification time makes it read again.
	write("  at-X\n", mtime.Add(time.Second))
	tokenMustGet(t, src, "at-X")
	obs.check(t, map[string]int{"success": 2})

	// So does a new size.
	write("at-22", mtime.Add(time.Second))
	tokenMustGet(t, src, "at-22")
	obs.check(t, map[string]int{"success": 3})

	src.Invalidate("at-1")
	src.Invalidate("")
	tokenMustGet(t, src, "at-22")
	obs.check(t, map[string]int{"success": 3})

	src.Invalidate("at-22")
	tokenMustGet(t, src, "at-22")
	tokenMustGet(t, src, "at-22")
	obs.check(t, map[string]int{"success": 4})
}

func TestAccessTokenFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	tokenWriteFile(t, empty, "\n  \n", 0o600)
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name, path, wantErr string
	}{
		{name: "empty", path: empty, wantErr: "reading access token: " + empty + " is empty"},
		{name: "missing", path: missing, wantErr: "reading access token: open " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &tokenTestObserver{}
			src := NewAccessTokenFileSource(tt.path, obs)

			_, err := src.Token(context.Background())
			tokenCheckError(t, err, tt.wantErr)
			_, err = src.Token(context.Background())
			tokenCheckError(t, err, tt.wantErr)
			obs.check(t, map[string]int{"failure": 2})
		})
	}
}

func TestAccessTokenFileSourceRecoversAfterEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access_token")
	tokenWriteFile(t, path, "", 0o600)
	obs := &tokenTestObserver{}
	src := NewAccessTokenFileSource(path, obs)

	_, err := src.Token(context.Background())
	tokenCheckError(t, err, "reading access token: "+path+" is empty")
	tokenWriteFile(t, path, "at-1\n", 0o600)
	tokenMustGet(t, src, "at-1")
	obs.check(t, map[string]int{"failure": 1, "success": 1})
}

func TestAccessTokenFileSourceCanceledContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access_token")
	tokenWriteFile(t, path, "at-1", 0o600)
	obs := &tokenTestObserver{}
	src := NewAccessTokenFileSource(path, obs)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := src.Token(ctx)
	tokenCheckError(t, err, "waiting for token: context canceled")
	obs.check(t, map[string]int{})
}
