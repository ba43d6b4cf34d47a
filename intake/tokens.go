package intake

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// maxTokenFileBytes bounds a bearer token file; a token is a line.
const maxTokenFileBytes = 4 << 10

// tokenFiles holds the accepted bearer tokens, each read from its file
// again whenever the file changes, so that a token can be rotated without
// a reload. Only the tokens' hashes are kept: a comparison then takes the
// same time whatever the presented token's length, and no token sits in
// memory longer than its file is read.
type tokenFiles struct {
	mu    sync.Mutex
	files []*tokenFile
}

type tokenFile struct {
	path string
	// seen is set once the file was looked at; exists, size and mod say
	// which version of it hash was read from.
	seen   bool
	exists bool
	size   int64
	mod    time.Time
	hash   [sha256.Size]byte
	ok     bool // the file held a token
	// err is why the file gives no token, for the log; never its content.
	err error
}

func newTokenFiles(paths []string) *tokenFiles {
	t := &tokenFiles{}
	for _, p := range paths {
		t.files = append(t.files, &tokenFile{path: p})
	}
	return t
}

// check reports whether presented is one of the tokens, reading again
// every file that changed since it was last read. changed lists the
// files whose state changed, with why they give no token (nil when they
// do), for the caller to log.
func (t *tokenFiles) check(presented string) (ok bool, changed []fileState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := sha256.Sum256([]byte(presented))
	for _, f := range t.files {
		if f.refresh() {
			changed = append(changed, fileState{path: f.path, err: f.err})
		}
		// Every file is compared, so that the time taken says nothing of
		// which one matched.
		if f.ok && subtle.ConstantTimeCompare(f.hash[:], want[:]) == 1 {
			ok = true
		}
	}
	return ok, changed
}

// fileState is a token file that changed: err says why it gives no token.
type fileState struct {
	path string
	err  error
}

// refresh reads the file again if it changed, and reports whether it did.
func (f *tokenFile) refresh() bool {
	info, err := os.Stat(f.path)
	if err != nil {
		if f.seen && !f.exists {
			return false // still missing
		}
		f.seen, f.exists, f.ok = true, false, false
		f.err = fmt.Errorf("token file %s: %w", f.path, unwrapPathError(err))
		return true
	}
	if f.seen && f.exists && info.Size() == f.size && info.ModTime().Equal(f.mod) {
		return false
	}
	f.seen, f.exists, f.size, f.mod = true, true, info.Size(), info.ModTime()
	token, err := readToken(f.path)
	f.ok, f.err = err == nil, err
	if f.ok {
		f.hash = sha256.Sum256(token)
	}
	clear(token)
	return true
}

var errEmptyToken = errors.New("holds no token")

// readToken reads a token file: its first line, without surrounding
// white space.
func readToken(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, unwrapPathError(err))
	}
	defer func() { _ = file.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(file, maxTokenFileBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("token file %s: %w", path, unwrapPathError(err))
	case len(data) > maxTokenFileBytes:
		return nil, fmt.Errorf("token file %s: larger than %d bytes", path, maxTokenFileBytes)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	token := bytes.TrimSpace(line)
	if len(token) == 0 {
		return nil, fmt.Errorf("token file %s: %w", path, errEmptyToken)
	}
	return bytes.Clone(token), nil
}

// unwrapPathError keeps what went wrong, not the path a second time.
func unwrapPathError(err error) error {
	if pathErr, ok := errors.AsType[*fs.PathError](err); ok {
		return pathErr.Err
	}
	return err
}
