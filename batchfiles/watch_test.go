package batchfiles

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// waitLimit bounds the wait for the watcher to stop: far more than a scan
// takes, far less than the test timeout.
const waitLimit = 10 * time.Second

// eventsOnly has no useful re-scan, so a change seen proves an event.
var eventsOnly = Options{RescanInterval: time.Hour, Debounce: 10 * time.Millisecond}

// rescanOnly has no events, so a change seen proves the re-scan.
var rescanOnly = Options{RescanInterval: 20 * time.Millisecond, NoEvents: true}

type recorder struct {
	mu    sync.Mutex
	snaps []Snapshot
}

func (r *recorder) onChange(s Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

func (r *recorder) last() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snaps[len(r.snaps)-1]
}

// waitFor polls the latest snapshot until cond holds and returns it,
// failing the test, with the last snapshot seen, when it never does.
func (r *recorder) waitFor(t *testing.T, what string, cond func(Snapshot) bool) Snapshot {
	t.Helper()
	var s Snapshot
	if !testkit.Poll(func() bool { s = r.last(); return cond(s) }) {
		t.Fatalf("timed out waiting for %s; last snapshot: %+v", what, s)
	}
	return s
}

// logBuffer is a log destination safe for the watcher's goroutine.
type logBuffer struct{ testkit.SyncBuffer }

func (b *logBuffer) count(substr string) int {
	return strings.Count(b.String(), substr)
}

func startWatcher(t *testing.T, opts Options, dir string, globs ...string) (*Watcher, *recorder, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts.BaseDir, opts.Globs, opts.Logger = dir, globs, log.NewLogfmtLogger(logs)
	rec := &recorder{}
	w, err := Start(t.Context(), opts, rec.onChange)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w, rec, logs
}

func appendText(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func hasBatches(want ...string) func(Snapshot) bool {
	return func(s Snapshot) bool {
		var got []string
		for _, e := range s.Batches {
			got = append(got, e.TrackingID)
		}
		return slices.Equal(got, want)
	}
}

func TestWatcherPicksUpAppendedLine(t *testing.T) {
	for name, opts := range map[string]Options{"events": eventsOnly, "rescan": rescanOnly} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "uploads.txt")
			writeFile(t, path, pair(custA, batch1))
			_, rec, _ := startWatcher(t, opts, dir, "*.txt")
			if !hasBatches(batch1)(rec.last()) || rec.calls() != 1 {
				t.Fatalf("Start: %d calls, last %+v", rec.calls(), rec.last())
			}
			appendText(t, path, "/customers/"+custA+"/batchJobStatus/"+batch2+"\n")
			s := rec.waitFor(t, "the appended batch", hasBatches(batch1, batch2))
			if e := s.Batches[1]; e != entry(custA, batch2, path, 2) {
				t.Errorf("appended entry: %+v", e)
			}
			writeFile(t, filepath.Join(dir, "more.txt"), pair(custB, batch3))
			rec.waitFor(t, "a new file", hasBatches(batch3, batch1, batch2))
		})
	}
}

func TestWatcherDropsDeletedAndShrunkBatches(t *testing.T) {
	for name, opts := range map[string]Options{"events": eventsOnly, "rescan": rescanOnly} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
			writeFile(t, a, pair(custA, batch1))
			writeFile(t, b, pair(custA, batch2)+pair(custA, batch3))
			_, rec, logs := startWatcher(t, opts, dir, "*.txt")
			rec.waitFor(t, "both files", hasBatches(batch1, batch2, batch3))

			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, "the deleted file's batch to go", hasBatches(batch2, batch3))
			if !strings.Contains(logs.String(), `msg="batch file gone, its batches dropped" file=`+a+" batches=1") {
				t.Errorf("log:\n%s", logs)
			}
			writeFile(t, b, pair(custA, batch3))
			rec.waitFor(t, "the shrunk file's batch to go", hasBatches(batch3))
		})
	}
}

func TestWatcherWaitsForNewlineBetweenRescans(t *testing.T) {
	// Events but no periodic re-scan: scans after events never read a
	// half-written line, however many there are.
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	writeFile(t, path, pair(custA, batch1))
	_, rec, _ := startWatcher(t, eventsOnly, dir, "*.txt")

	appendText(t, path, custA+" "+batch2)
	// b.txt is written after the half line: a scan that sees it saw the
	// half line too.
	writeFile(t, filepath.Join(dir, "b.txt"), pair(custB, batch3))
	s := rec.waitFor(t, "the later file", hasBatches(batch1, batch3))
	if s.Files[0].Unterminated != 2 {
		t.Errorf("a.txt: Unterminated = %d, want 2", s.Files[0].Unterminated)
	}

	appendText(t, path, "\n")
	rec.waitFor(t, "the finished line", hasBatches(batch1, batch2, batch3))
}

// tickedWatcher is a watcher whose periodic re-scans happen when the test
// says. tick runs one and waits until it is done; scan runs a scan such as
// an event starts (it reloads the same globs) and waits for it too.
func tickedWatcher(t *testing.T, dir string) (w *Watcher, tick, scan func(), logs *logBuffer) {
	t.Helper()
	ticks := make(chan time.Time)
	w, _, logs = startWatcher(t, Options{NoEvents: true, ticks: ticks}, dir, "*.txt")
	scan = func() {
		t.Helper()
		if err := w.Reload(t.Context(), []string{"*.txt"}); err != nil {
			t.Fatal(err)
		}
	}
	tick = func() {
		t.Helper()
		ticks <- time.Time{}
		scan() // the loop serves one request at a time: the tick's scan is done
	}
	return w, tick, scan, logs
}

func TestWatcherReadsUnterminatedLineOnceUnchangedThroughARescan(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	// Notepad, or Set-Content -NoNewline: the last line never gets one.
	writeFile(t, path, pair(custA, batch1)+custA+" "+batch2)
	w, tick, scan, logs := tickedWatcher(t, dir)
	check := func(when string, unterminated int, batches ...string) {
		t.Helper()
		s := w.Snapshot()
		if !hasBatches(batches...)(s) || len(s.Files) != 1 || s.Files[0].Unterminated != unterminated {
			t.Fatalf("%s: batches %v, files %+v; want batches %v, Unterminated %d", when, s.Batches, s.Files, batches, unterminated)
		}
	}

	check("start", 2, batch1)
	if n := logs.count(`level=info msg="last line of batch file has no newline yet, read once it stays unchanged through a re-scan" file=` + path + ` line=2`); n != 1 {
		t.Errorf("unterminated line logged %d times, want once:\n%s", n, logs)
	}
	scan()
	check("a scan after an event", 2, batch1)
	tick()
	check("the first re-scan", 0, batch1, batch2)
	if e := w.Snapshot().Batches[1]; e != entry(custA, batch2, path, 2) {
		t.Errorf("entry of the unterminated line: %+v", e)
	}
	scan()
	tick()
	check("later scans", 0, batch1, batch2)

	// The line changes: it waits for a re-scan that finds it unchanged
	// again, a full interval later.
	appendText(t, path, " # more")
	scan()
	check("after the line changed", 2, batch1)
	tick()
	check("the re-scan that saw it change", 2, batch1)
	tick()
	check("the re-scan after", 0, batch1, batch2)

	// Its newline counts at once.
	appendText(t, path, "\n"+custB+" "+batch3)
	scan()
	check("the newline and a new unterminated line", 3, batch1, batch2)
}

func TestWatcherUnreadableFileKeepsBatches(t *testing.T) {
	// The file is a symlink swapped atomically (as a ConfigMap volume
	// does): to a directory, which cannot be read, and back to the same
	// content. A plain remove-and-write would let a scan see the file gone
	// or empty in between, which is a real change.
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	content := filepath.Join(dir, "store", "content")
	writeFile(t, content, "12ab "+batch1+"\n"+pair(custA, batch1))
	mustMkdir(t, filepath.Join(dir, "store", "unreadable"))
	swap := func(target string) {
		t.Helper()
		tmp := path + ".new"
		mustSymlink(t, target, tmp)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	swap(content)
	_, rec, logs := startWatcher(t, Options{RescanInterval: 10 * time.Millisecond, Debounce: 10 * time.Millisecond}, dir, "*.txt")

	swap(filepath.Join(dir, "store", "unreadable"))
	s := rec.waitFor(t, "the read error", func(s Snapshot) bool { return len(s.Files) == 1 && s.Files[0].Err != nil })
	if want := "batch file " + path + ": read: is a directory"; s.Files[0].Err.Error() != want {
		t.Errorf("error %q, want %q", s.Files[0].Err, want)
	}
	if !hasBatches(batch1)(s) {
		t.Errorf("batches of the last read lost: %+v", s.Batches)
	}
	waitForRescans(t, rec, logs)
	if n := logs.count(`level=warn msg="cannot read batch file, keeping the batches of its last read" file=` + path + ` batches=1 err="batch file ` + path + `: read: is a directory"`); n != 1 {
		t.Errorf("read error logged %d times, want once:\n%s", n, logs)
	}

	swap(content)
	rec.waitFor(t, "the file readable again", func(s Snapshot) bool { return len(s.Files) == 1 && s.Files[0].Err == nil && hasBatches(batch1)(s) })
	waitForRescans(t, rec, logs)
	if n := logs.count(`msg="invalid line in batch file"`); n != 1 {
		t.Errorf("invalid line logged %d times; same content again should not log it again:\n%s", n, logs)
	}
}

// waitForRescans lets the 10 ms re-scan run a number of times: the
// snapshot does not change, so there is nothing else to wait for.
func waitForRescans(t *testing.T, rec *recorder, logs *logBuffer) {
	t.Helper()
	calls, logged := rec.calls(), logs.String()
	time.Sleep(150 * time.Millisecond)
	if rec.calls() != calls || logs.String() != logged {
		t.Errorf("re-scans of unchanged files called onChange or logged:\n%s", strings.TrimPrefix(logs.String(), logged))
	}
}

func TestWatcherLogsInvalidLinesOncePerChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	writeFile(t, path, "# uploads\n12ab "+batch1+"\n")
	_, rec, logs := startWatcher(t, Options{RescanInterval: 10 * time.Millisecond, NoEvents: true}, dir, "*.txt")
	line := `level=warn msg="invalid line in batch file" file=` + path + ` line=2 err="customer ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"`
	waitForRescans(t, rec, logs)
	if n := logs.count(line); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs)
	}
	appendText(t, path, pair(custA, batch2))
	rec.waitFor(t, "the appended batch", hasBatches(batch2))
	if n := logs.count(line); n != 2 {
		t.Errorf("logged %d times, want once more after the file changed:\n%s", n, logs)
	}
}

func TestWatcherFollowsConfigMapUpdate(t *testing.T) {
	// A ConfigMap volume: uploads.txt -> ..data/uploads.txt, ..data ->
	// ..v1; an update writes ..v2 and renames a new ..data link over the
	// old one. Only the directory sees events for that.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "..v1", "uploads.txt"), pair(custA, batch1))
	writeFile(t, filepath.Join(dir, "..v2", "uploads.txt"), pair(custA, batch1)+pair(custA, batch2))
	mustSymlink(t, "..v1", filepath.Join(dir, "..data"))
	mustSymlink(t, filepath.Join("..data", "uploads.txt"), filepath.Join(dir, "uploads.txt"))
	_, rec, _ := startWatcher(t, eventsOnly, dir, "*")
	if s := rec.last(); !hasBatches(batch1)(s) || len(s.Files) != 1 {
		t.Fatalf("start: %+v", s)
	}
	mustSymlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the updated ConfigMap", hasBatches(batch1, batch2))
}

func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), pair(custA, batch1))
	writeFile(t, filepath.Join(dir, "b.csv"), pair(custA, batch2))
	w, rec, _ := startWatcher(t, eventsOnly, dir, "*.txt")
	if err := w.Reload(t.Context(), []string{"*.csv"}); err != nil {
		t.Fatal(err)
	}
	if !hasBatches(batch2)(w.Snapshot()) || !hasBatches(batch2)(rec.last()) {
		t.Errorf("after Reload: %+v", w.Snapshot())
	}
	if err := w.Reload(t.Context(), []string{"[x"}); err == nil {
		t.Error("a malformed glob was accepted")
	}
	writeFile(t, filepath.Join(dir, "c.csv"), pair(custA, batch3))
	rec.waitFor(t, "the kept globs to still apply", hasBatches(batch2, batch3))
}

func TestWatcherStop(t *testing.T) {
	dir := t.TempDir()
	w, rec, _ := startWatcher(t, Options{RescanInterval: 5 * time.Millisecond}, dir, "*.txt")
	w.Stop()
	calls := rec.calls()
	writeFile(t, filepath.Join(dir, "a.txt"), pair(custA, batch1))
	time.Sleep(50 * time.Millisecond)
	if rec.calls() != calls {
		t.Error("onChange called after Stop")
	}
	if err := w.Reload(t.Context(), []string{"*"}); !errors.Is(err, ErrStopped) {
		t.Errorf("Reload after Stop: %v", err)
	}
	w.Stop() // twice is fine
}

func TestWatcherEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	w, err := Start(ctx, Options{BaseDir: t.TempDir(), Globs: []string{"*.txt"}}, func(Snapshot) {})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-w.done:
	case <-time.After(waitLimit):
		t.Fatal("watcher still running after its context ended")
	}
}

func TestStartRefusesBadGlob(t *testing.T) {
	_, err := Start(t.Context(), Options{BaseDir: t.TempDir(), Globs: []string{"[x"}}, func(Snapshot) {})
	if err == nil || err.Error() != `batch file glob "[x": syntax error in pattern` {
		t.Errorf("err = %v", err)
	}
}

func TestFixedDir(t *testing.T) {
	for pattern, want := range map[string]string{
		"/etc/batches/*.txt":     "/etc/batches",
		"/etc/batches/up.txt":    "/etc/batches",
		"/data/*/uploads/up.txt": "/data",
		"/data/[ab]*/x":          "/data",
	} {
		if got := fixedDir(pattern); got != want {
			t.Errorf("fixedDir(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestWatcherLogsATooLargeFileOnce(t *testing.T) {
	// A log that a glob matched keeps growing: its error says the limit,
	// not the size, so it is logged once, not at every re-scan.
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	writeFile(t, path, pair(custA, batch1))
	_, rec, logs := startWatcher(t, Options{RescanInterval: 10 * time.Millisecond, NoEvents: true}, dir, "*.txt")
	if err := os.Truncate(path, MaxFileBytes+1); err != nil {
		t.Fatal(err)
	}
	s := rec.waitFor(t, "the size error", func(s Snapshot) bool { return len(s.Files) == 1 && s.Files[0].Err != nil })
	if !hasBatches(batch1)(s) {
		t.Errorf("batches of the last read lost: %+v", s.Batches)
	}
	if err := os.Truncate(path, MaxFileBytes+4096); err != nil {
		t.Fatal(err)
	}
	waitForRescans(t, rec, logs)
	want := `level=warn msg="cannot read batch file, keeping the batches of its last read" file=` + path +
		` batches=1 err="batch file ` + path + `: larger than the limit of 16 MiB for a batch file, not read"`
	if n := logs.count(want); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs)
	}
}
