package batchfiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File is what one batch file holds.
type File struct {
	Path    string
	Entries []Entry
	Invalid []InvalidLine
	// Unterminated is the number of the last line when it has no newline
	// and was not read, else 0. A writer may be half-way through it, so it
	// is read once it has stayed unchanged from one periodic re-scan of the
	// Watcher to the next, or once its newline arrives.
	Unterminated int
	// Err is why the file could not be read this time; Entries, Invalid
	// and Unterminated are then those of its last successful read (none if
	// it never was), so that a file briefly unreadable, or grown past
	// MaxFileBytes, does not stop its batches being monitored.
	Err error
	// tail identifies the unterminated last line, whether it was read or
	// not, so that the next scan can tell whether it changed.
	tail tailKey
}

// Snapshot is the state of every batch file at one scan. A Snapshot handed
// out is never modified: treat it as read-only.
type Snapshot struct {
	// Files are sorted by path.
	Files []File
	// Batches merges the files' entries: each batch once, at its first
	// file (in path order) and line.
	Batches []Entry
}

// Equal reports whether two snapshots hold the same files, entries,
// invalid lines and errors (errors compared by message).
func (s Snapshot) Equal(o Snapshot) bool {
	return slices.EqualFunc(s.Files, o.Files, File.equal)
}

func (f File) equal(o File) bool {
	return f.Path == o.Path && errorText(f.Err) == errorText(o.Err) &&
		f.Unterminated == o.Unterminated && slices.Equal(f.Entries, o.Entries) &&
		slices.EqualFunc(f.Invalid, o.Invalid, InvalidLine.equal)
}

func (l InvalidLine) equal(o InvalidLine) bool {
	return l.File == o.File && l.Line == o.Line && errorText(l.Err) == errorText(o.Err)
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// file returns the file at path, if the snapshot has it.
func (s Snapshot) file(path string) (File, bool) {
	i, found := slices.BinarySearchFunc(s.Files, path, func(f File, p string) int { return strings.Compare(f.Path, p) })
	if !found {
		return File{}, false
	}
	return s.Files[i], true
}

// Expand returns the paths that globs match, sorted and each once.
// A relative glob is resolved against baseDir (the configuration file's
// directory). Globs use filepath.Glob syntax, except that, as in a shell, a
// wildcard does not match a leading dot. A glob that matches nothing adds
// nothing; the only error is a malformed or empty glob.
func Expand(baseDir string, globs []string) ([]string, error) {
	var paths []string
	for _, glob := range globs {
		if glob == "" {
			return nil, errors.New("batch file glob is empty")
		}
		pattern := resolve(baseDir, glob)
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("batch file glob %q: %w", glob, err)
		}
		for _, m := range matches {
			if !hiddenMatch(pattern, m) {
				paths = append(paths, m)
			}
		}
	}
	slices.Sort(paths)
	return slices.Compact(paths), nil
}

func resolve(baseDir, glob string) string {
	if filepath.IsAbs(glob) {
		return filepath.Clean(glob)
	}
	return filepath.Join(baseDir, glob)
}

// hiddenMatch reports whether a wildcard in pattern matched a name that
// starts with a dot: editor swap files, or the ..data directory and
// symlinks of a Kubernetes ConfigMap volume, which would otherwise be
// read twice or as directories. filepath.Glob returns matches with as many
// elements as the pattern, so elements line up.
func hiddenMatch(pattern, match string) bool {
	sep := string(filepath.Separator)
	patternElems, matchElems := strings.Split(pattern, sep), strings.Split(match, sep)
	if len(patternElems) != len(matchElems) {
		return false
	}
	for i, m := range matchElems {
		if strings.HasPrefix(m, ".") && !strings.HasPrefix(patternElems[i], ".") {
			return true
		}
	}
	return false
}

// Scan reads every file the globs match (see Expand) and returns their
// snapshot. prev is the snapshot of the previous scan: a file that cannot
// be read now keeps its batches from there. A last line without a newline
// is not read (the Watcher decides when it is). ctx is checked between
// files, since a file on a network share may be slow to read.
func Scan(ctx context.Context, baseDir string, globs []string, prev Snapshot) (Snapshot, error) {
	return scan(ctx, baseDir, globs, prev, func(string, tailKey) bool { return false })
}

// ScanOnce reads every file the globs match once, for a check that has no
// later scan to wait for: a last line without a newline is read as a line,
// so that a bad one is reported too.
func ScanOnce(ctx context.Context, baseDir string, globs []string) (Snapshot, error) {
	return scan(ctx, baseDir, globs, Snapshot{}, func(string, tailKey) bool { return true })
}

// scan is Scan; readTail says whether the unterminated last line of the
// file at path, as key identifies it, is read.
func scan(ctx context.Context, baseDir string, globs []string, prev Snapshot, readTail func(path string, key tailKey) bool) (Snapshot, error) {
	paths, err := Expand(baseDir, globs)
	if err != nil {
		return Snapshot{}, err
	}
	var snap Snapshot
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return Snapshot{}, fmt.Errorf("scanning batch files: %w", err)
		}
		f, exists := readFile(path, MaxFileBytes, readTail)
		if !exists {
			continue
		}
		if f.Err != nil {
			f = keepPrevious(prev, f)
		}
		snap.Files = append(snap.Files, f)
	}
	snap.Batches = merge(snap.Files)
	return snap, nil
}

func keepPrevious(prev Snapshot, failed File) File {
	if old, ok := prev.file(failed.Path); ok {
		old.Err = failed.Err
		return old
	}
	return failed
}

// readFile reads the file at path, of at most limit bytes. exists is false
// when the file was removed since it was matched; a dangling symlink
// exists, and is an error, because a link left pointing nowhere is a
// mistake to report.
func readFile(path string, limit int64, readTail func(string, tailKey) bool) (f File, exists bool) {
	f.Path = path
	file, err := os.Open(path)
	if err != nil {
		if _, statErr := os.Lstat(path); errors.Is(statErr, fs.ErrNotExist) {
			return f, false
		}
		f.Err = fmt.Errorf("batch file %s: %w", path, withoutPath(err))
		return f, true
	}
	defer file.Close()
	// A file known to be too large is not read at all: that is the cost
	// the limit saves at every re-scan.
	if info, err := file.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > limit {
		f.Err = fmt.Errorf("batch file %s: %w", path, errTooLarge)
		return f, true
	}
	p, err := parse(&capReader{r: file, left: limit}, path)
	if err != nil {
		// parse's error names the file already.
		f.Err = err
		return f, true
	}
	if p.tail != nil {
		f.tail = p.tail.key
		if readTail(path, p.tail.key) {
			p.readTail()
		} else {
			f.Unterminated = p.tail.line
		}
	}
	f.Entries, f.Invalid = p.entries, p.invalid
	return f, true
}

func merge(files []File) []Entry {
	var batches []Entry
	seen := make(map[Batch]struct{})
	for _, f := range files {
		for _, e := range f.Entries {
			if _, dup := seen[e.Batch]; !dup {
				seen[e.Batch] = struct{}{}
				batches = append(batches, e)
			}
		}
	}
	return batches
}
