package daemon

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/plural"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// batchIntake keeps the batch files of the live configuration watched and
// tells the exporter state when their batches change. It belongs to
// exporterState and is driven under its reload lock.
type batchIntake struct {
	logger  log.Logger
	watcher *batchfiles.Watcher
	globs   []string
	invalid *prometheus.GaugeVec

	// countMu orders the updates of invalid; counted is the files it has
	// a series for.
	countMu sync.Mutex
	counted map[string]bool
}

func newBatchIntake(logger log.Logger, reg prometheus.Registerer) *batchIntake {
	in := &batchIntake{
		logger: logger,
		invalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "partnercenter", Subsystem: "batch_file", Name: "invalid_lines",
			Help: "Lines of a batch file that are not a batch and were skipped.",
		}, []string{"file"}),
	}
	reg.MustRegister(in.invalid)
	return in
}

// follow makes the watched globs those of cfg: it starts, changes or stops
// the watcher. onChange receives every new snapshot, the first one before
// follow returns. A bad glob leaves the previous globs watched.
func (in *batchIntake) follow(cfg *config.Config, onChange func(batchfiles.Snapshot)) error {
	switch {
	case slices.Equal(in.globs, cfg.BatchFiles):
		return nil
	case len(cfg.BatchFiles) == 0:
		in.stop()
		onChange(batchfiles.Snapshot{})
		return nil
	case in.watcher == nil:
		w, err := batchfiles.Start(context.Background(), batchfiles.Options{
			Globs: cfg.BatchFiles, Logger: in.logger,
		}, onChange)
		if err != nil {
			return fmt.Errorf("batch files: %w", err)
		}
		in.watcher = w
	default:
		if err := in.watcher.Reload(context.Background(), cfg.BatchFiles); err != nil {
			return fmt.Errorf("batch files: %w", err)
		}
	}
	in.globs = slices.Clone(cfg.BatchFiles)
	return nil
}

func (in *batchIntake) stop() {
	if in.watcher != nil {
		in.watcher.Stop()
		in.watcher = nil
	}
	in.globs = nil
}

// setInvalidLines sets partnercenter_batch_file_invalid_lines for a snapshot, in
// place: each file's series is set, and only those of files that went away
// are deleted. A Reset first would let a scrape in between see the metric
// empty, and every file clean.
func (in *batchIntake) setInvalidLines(snap batchfiles.Snapshot) {
	in.countMu.Lock()
	defer in.countMu.Unlock()
	current := make(map[string]bool, len(snap.Files))
	for _, f := range snap.Files {
		in.invalid.WithLabelValues(f.Path).Set(float64(len(f.Invalid)))
		current[f.Path] = true
	}
	for path := range in.counted {
		if !current[path] {
			in.invalid.DeleteLabelValues(path)
		}
	}
	in.counted = current
}

// configTargets lists the batches of the configuration file in file order.
func configTargets(cfg *config.Config) []batchstate.Target {
	var targets []batchstate.Target
	for _, c := range cfg.Customers {
		for _, b := range c.Batches {
			targets = append(targets, batchstate.Target{CustomerID: c.ID, CustomerName: c.Name, TrackingID: b})
		}
	}
	return targets
}

// mergeTargets lists the configuration's batches, then those of the batch
// files that the configuration does not list already, then those of the
// intake API that neither lists. A file batch takes
// its customer's name from the configuration, when it has one.
func mergeTargets(cfg *config.Config, snap batchfiles.Snapshot, registered []storage.Registration) []batchstate.Target {
	targets := configTargets(cfg)
	seen := make(map[string]bool, len(targets)+len(snap.Batches))
	for _, t := range targets {
		seen[t.Key()] = true
	}
	names := make(map[string]string, len(cfg.Customers))
	for _, c := range cfg.Customers {
		names[c.ID] = c.Name
	}
	for _, e := range snap.Batches {
		t := batchstate.Target{
			CustomerID: e.CustomerID, CustomerName: names[e.CustomerID], TrackingID: e.TrackingID,
			Origin: fmt.Sprintf("%s:%d", e.File, e.Line),
		}
		if !seen[t.Key()] {
			seen[t.Key()] = true
			targets = append(targets, t)
		}
	}
	for _, r := range registered {
		t := batchstate.Target{
			CustomerID: r.CustomerID, CustomerName: names[r.CustomerID], TrackingID: r.TrackingID,
			Origin: batchstate.OriginAPI, Registered: r.Registered,
		}
		if !seen[t.Key()] {
			seen[t.Key()] = true
			targets = append(targets, t)
		}
	}
	return targets
}

// describeBatchFiles says, for /config, what each batch file gave.
func describeBatchFiles(w io.Writer, globs []string, snap batchfiles.Snapshot) {
	if len(globs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n# batch_files: %s matched by %s\n", plural.Count(len(snap.Files), "file", "files"), strings.Join(globs, ", "))
	for _, f := range snap.Files {
		fmt.Fprintf(w, "#   %s: %s, %s", f.Path, plural.Count(len(f.Entries), "batch", "batches"),
			plural.Count(len(f.Invalid), "invalid line", "invalid lines"))
		if f.Unterminated != 0 {
			fmt.Fprintf(w, ", line %d not read yet (no newline: read once unchanged through a re-scan)", f.Unterminated)
		}
		if f.Err != nil {
			fmt.Fprintf(w, " (last read failed, its batches kept: %v)", f.Err)
		}
		fmt.Fprintln(w)
	}
}

// checkBatchFiles reads the batch files of cfg once, for --config.check,
// a last line without a newline included. It prints every bad line (by
// file, line number and reason, never its content) and unreadable file to
// stderr and a summary to stdout, and reports whether all were clean.
func checkBatchFiles(cfg *config.Config, stdout, stderr io.Writer) bool {
	if len(cfg.BatchFiles) == 0 {
		return true
	}
	snap, err := batchfiles.ScanOnce(context.Background(), "", cfg.BatchFiles)
	if err != nil {
		fmt.Fprintf(stderr, "batch files: %v\n", err)
		return false
	}
	clean := true
	for _, f := range snap.Files {
		if f.Err != nil {
			fmt.Fprintf(stderr, "%v\n", f.Err)
			clean = false
		}
		for _, l := range f.Invalid {
			fmt.Fprintln(stderr, l.String())
			clean = false
		}
	}
	fmt.Fprintf(stdout, "batch files: %s, %s\n", plural.Count(len(snap.Files), "file", "files"),
		plural.Count(len(snap.Batches), "batch", "batches"))
	return clean
}
