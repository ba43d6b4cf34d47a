package batchfiles

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Defaults for Options.
const (
	// DefaultRescanInterval keeps an appended line under 30 s from being
	// monitored on filesystems that send no events.
	DefaultRescanInterval = 10 * time.Second
	// DefaultDebounce gathers a burst of events (an editor's save, a
	// ConfigMap update) into one scan.
	DefaultDebounce = 200 * time.Millisecond
	// maxLoggedInvalid bounds the invalid lines logged for one change of a
	// file, so that a wrong file (a binary, a log) does not flood the log.
	maxLoggedInvalid = 20
)

// ErrStopped is returned by Reload once the watcher has stopped.
var ErrStopped = errors.New("batch file watcher stopped")

// Options configure a Watcher.
type Options struct {
	// BaseDir resolves relative globs: the configuration file's directory.
	BaseDir string
	Globs   []string
	// RescanInterval is how often every file is read again whatever the
	// events; 0 means DefaultRescanInterval.
	RescanInterval time.Duration
	// Debounce is how long a scan waits after the first event of a burst;
	// 0 means DefaultDebounce.
	Debounce time.Duration
	// NoEvents turns fsnotify off, leaving the periodic re-scan alone.
	NoEvents bool
	// ticks, when set (by tests), replaces the RescanInterval ticker: each
	// value received starts one periodic re-scan.
	ticks <-chan time.Time
	// Logger receives warnings about invalid lines and unreadable files;
	// nil logs nothing.
	Logger log.Logger
}

func (o Options) withDefaults() Options {
	if o.RescanInterval <= 0 {
		o.RescanInterval = DefaultRescanInterval
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	o.Globs = slices.Clone(o.Globs)
	return o
}

// Watcher keeps a Snapshot of the batch files up to date: it scans them
// again after filesystem events in their directories and every
// RescanInterval, and calls onChange with each snapshot that differs from
// the one before.
type Watcher struct {
	opts     Options // Globs is owned by the run goroutine after Start
	onChange func(Snapshot)
	notify   *fsnotify.Watcher // nil when events are off or unavailable
	reloads  chan reloadRequest
	cancel   context.CancelFunc
	done     chan struct{}

	// tails is what the periodic re-scans saw of each file's last line
	// without a newline. Only the run goroutine (and Start, before it)
	// touches it.
	tails map[string]tailSeen

	mu   sync.Mutex
	snap Snapshot
}

// tailSeen is a file's unterminated last line at the latest periodic scan.
// settled means that scan found it unchanged since the one before: it has
// stayed the same for at least a RescanInterval, so its writer is taken to
// be done with it and it is read. Any change makes it wait again.
type tailSeen struct {
	key     tailKey
	settled bool
}

type reloadRequest struct {
	globs []string
	done  chan struct{}
}

// Start scans the files once, calls onChange with that first snapshot
// (even an empty one) and returns a Watcher that goes on watching until
// ctx ends or Stop is called. onChange is called from one goroutine at a
// time, never concurrently, and must not call Reload or Stop. Start fails
// only on a malformed glob or when ctx has ended.
func Start(ctx context.Context, opts Options, onChange func(Snapshot)) (*Watcher, error) {
	opts = opts.withDefaults()
	if _, err := Expand(opts.BaseDir, opts.Globs); err != nil {
		return nil, err
	}
	w := &Watcher{
		opts:     opts,
		onChange: onChange,
		reloads:  make(chan reloadRequest),
		done:     make(chan struct{}),
	}
	// The first scan counts as a periodic one: an unterminated last line
	// found now is read if the first re-scan finds it unchanged.
	snap, err := w.scan(ctx, true, Snapshot{})
	if err != nil {
		return nil, err
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.notify = openNotify(opts)
	w.syncWatches(snap)
	logChanges(opts.Logger, Snapshot{}, snap)
	w.publish(snap)
	go w.run(ctx)
	return w, nil
}

// openNotify returns an fsnotify watcher, or nil when events are off or
// the system refuses one (inotify limits): the re-scan still works then.
func openNotify(opts Options) *fsnotify.Watcher {
	if opts.NoEvents {
		return nil
	}
	notify, err := fsnotify.NewWatcher()
	if err != nil {
		level.Warn(opts.Logger).Log("msg", "cannot watch batch file directories, relying on the periodic re-scan",
			"interval", opts.RescanInterval, "err", err)
		return nil
	}
	return notify
}

// Snapshot returns the latest snapshot.
func (w *Watcher) Snapshot() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snap
}

// Reload replaces the globs (after a configuration reload) and returns
// once the files have been scanned with them and onChange called if that
// changed anything. A malformed glob is refused and the old globs stay.
func (w *Watcher) Reload(ctx context.Context, globs []string) error {
	if _, err := Expand(w.opts.BaseDir, globs); err != nil {
		return err
	}
	req := reloadRequest{globs: slices.Clone(globs), done: make(chan struct{})}
	select {
	case w.reloads <- req:
	case <-ctx.Done():
		return fmt.Errorf("reloading batch file globs: %w", ctx.Err())
	case <-w.done:
		return ErrStopped
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reloading batch file globs: %w", ctx.Err())
	}
}

// Stop stops watching and waits until the watcher's goroutine has ended,
// so that onChange is not called after Stop returns.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	if w.notify != nil {
		defer w.notify.Close()
	}
	events, errs := w.notifyChannels()
	ticks := w.opts.ticks
	if ticks == nil {
		ticker := time.NewTicker(w.opts.RescanInterval)
		defer ticker.Stop()
		ticks = ticker.C
	}
	var debounced <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			w.rescan(ctx, true)
		case ev := <-events:
			if ev.Op != fsnotify.Chmod && debounced == nil {
				debounced = time.After(w.opts.Debounce)
			}
		case err := <-errs:
			// An overflow means events were lost: scan as for an event.
			level.Debug(w.opts.Logger).Log("msg", "batch file watch error", "err", err)
			if debounced == nil {
				debounced = time.After(w.opts.Debounce)
			}
		case <-debounced:
			debounced = nil
			w.rescan(ctx, false)
		case req := <-w.reloads:
			w.opts.Globs = req.globs
			w.rescan(ctx, false)
			close(req.done)
		}
	}
}

// notifyChannels returns fsnotify's channels, or nil channels (which never
// deliver) when there is no fsnotify watcher.
func (w *Watcher) notifyChannels() (<-chan fsnotify.Event, <-chan error) {
	if w.notify == nil {
		return nil, nil
	}
	return w.notify.Events, w.notify.Errors
}

// scan reads the files. periodic is true for the RescanInterval scans
// (and the first one), which alone advance what is known of unterminated
// last lines: scans after events come at any moment, possibly between two
// writes of the same line.
func (w *Watcher) scan(ctx context.Context, periodic bool, prev Snapshot) (Snapshot, error) {
	readTail := func(path string, key tailKey) bool {
		seen, ok := w.tails[path]
		if periodic {
			return ok && seen.key == key
		}
		return ok && seen.settled && seen.key == key
	}
	snap, err := scan(ctx, w.opts.BaseDir, w.opts.Globs, prev, readTail)
	if err != nil || !periodic {
		return snap, err
	}
	tails := make(map[string]tailSeen)
	for _, f := range snap.Files {
		switch {
		case f.Err != nil:
			// Not read this time: what was known of it stays.
			if seen, ok := w.tails[f.Path]; ok {
				tails[f.Path] = seen
			}
		case f.tail.present():
			tails[f.Path] = tailSeen{key: f.tail, settled: f.Unterminated == 0}
		}
	}
	w.tails = tails
	return snap, nil
}

func (w *Watcher) rescan(ctx context.Context, periodic bool) {
	prev := w.Snapshot()
	snap, err := w.scan(ctx, periodic, prev)
	if err != nil {
		if ctx.Err() == nil {
			level.Warn(w.opts.Logger).Log("msg", "scanning batch files failed", "err", err)
		}
		return
	}
	w.syncWatches(snap)
	if snap.Equal(prev) {
		return
	}
	logChanges(w.opts.Logger, prev, snap)
	w.publish(snap)
}

func (w *Watcher) publish(snap Snapshot) {
	w.mu.Lock()
	w.snap = snap
	w.mu.Unlock()
	w.onChange(snap)
}

// syncWatches watches the directories that matter now and stops watching
// the others. A directory that cannot be watched (it does not exist yet)
// is tried again at the next scan; until then the re-scan covers it.
func (w *Watcher) syncWatches(snap Snapshot) {
	if w.notify == nil {
		return
	}
	want := watchDirs(w.opts, snap)
	for _, dir := range w.notify.WatchList() {
		if !slices.Contains(want, dir) {
			_ = w.notify.Remove(dir)
		}
	}
	watched := w.notify.WatchList()
	for _, dir := range want {
		if slices.Contains(watched, dir) {
			continue
		}
		if err := w.notify.Add(dir); err != nil {
			level.Debug(w.opts.Logger).Log("msg", "cannot watch batch file directory yet", "dir", dir, "err", err)
		}
	}
}

// watchDirs returns the directories whose events may change the snapshot:
// the fixed leading directory of each glob, where new files appear, and
// the directory of each file and of its symlink's target, where files are
// written or replaced.
func watchDirs(opts Options, snap Snapshot) []string {
	var dirs []string
	for _, glob := range opts.Globs {
		dirs = append(dirs, fixedDir(resolve(opts.BaseDir, glob)))
	}
	for _, f := range snap.Files {
		dirs = append(dirs, filepath.Dir(f.Path))
		if target, err := filepath.EvalSymlinks(f.Path); err == nil {
			dirs = append(dirs, filepath.Dir(target))
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// fixedDir returns the deepest directory of pattern that has no wildcard.
func fixedDir(pattern string) string {
	dir := filepath.Dir(pattern)
	for hasMeta(dir) {
		dir = filepath.Dir(dir)
	}
	return dir
}

func hasMeta(path string) bool {
	magic := `*?[\`
	if filepath.Separator == '\\' {
		magic = `*?[` // a backslash separates, not escapes, on Windows
	}
	return strings.ContainsAny(path, magic)
}

// logChanges logs what changed from prev to next, file by file, so that
// an invalid line or an unreadable file is logged once per change of its
// file, not at every re-scan.
func logChanges(logger log.Logger, prev, next Snapshot) {
	for _, f := range next.Files {
		old, had := prev.file(f.Path)
		if f.Err != nil {
			if !had || errorText(old.Err) != errorText(f.Err) {
				level.Warn(logger).Log("msg", "cannot read batch file, keeping the batches of its last read",
					"file", f.Path, "batches", len(f.Entries), "err", f.Err)
			}
			continue
		}
		if had && old.Err != nil {
			level.Info(logger).Log("msg", "batch file readable again", "file", f.Path)
		}
		if !had || !sameContent(old, f) {
			logInvalid(logger, f)
		}
		if f.Unterminated != 0 && (!had || old.Unterminated != f.Unterminated) {
			level.Info(logger).Log("msg", "last line of batch file has no newline yet, read once it stays unchanged through a re-scan",
				"file", f.Path, "line", f.Unterminated)
		}
	}
	for _, old := range prev.Files {
		if _, ok := next.file(old.Path); !ok {
			level.Info(logger).Log("msg", "batch file gone, its batches dropped", "file", old.Path, "batches", len(old.Entries))
		}
	}
	level.Info(logger).Log("msg", "batch files read", "files", len(next.Files), "batches", len(next.Batches))
}

func sameContent(a, b File) bool {
	return slices.Equal(a.Entries, b.Entries) && slices.EqualFunc(a.Invalid, b.Invalid, InvalidLine.equal)
}

func logInvalid(logger log.Logger, f File) {
	for i, l := range f.Invalid {
		if i == maxLoggedInvalid {
			level.Warn(logger).Log("msg", "more invalid lines in batch file, not logged", "file", f.Path,
				"count", len(f.Invalid)-maxLoggedInvalid)
			return
		}
		level.Warn(logger).Log("msg", "invalid line in batch file", "file", l.File, "line", l.Line, "err", l.Err)
	}
}
