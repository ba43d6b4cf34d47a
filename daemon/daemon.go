// Package daemon is the running exporter: the live configuration and the
// client built from it, what is known of the batches and who reads them,
// the batch files, the probe admissions, the optional storage, and the
// HTTP endpoints that serve it all. Package main gives it its flags,
// logger, listener and signals.
package daemon

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/pcclient"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// Options are the settings a daemon is built from; the command line gives
// them.
type Options struct {
	// ConfigFile is the configuration file, read at New and on every
	// Reload. Ignored with Demo.
	ConfigFile string
	// Demo runs against a simulated Partner Center inside the process,
	// with a configuration that points at it.
	Demo bool
	// StoragePath is the directory of the embedded store that keeps what
	// is known of each batch across restarts; empty keeps it in memory.
	StoragePath string
	// MetricsPath is where the metrics are served; empty: /metrics.
	MetricsPath string
	// DisableBatchDetails turns the /batches pages off, for deployments
	// that must not show device serial numbers.
	DisableBatchDetails bool
	// ScrapeTimeout is the time a scrape may take when Prometheus sends no
	// X-Prometheus-Scrape-Timeout-Seconds header; zero: 10s.
	ScrapeTimeout time.Duration
	// ScrapeTimeoutOffset is subtracted from Prometheus' scrape timeout so
	// that the answer arrives in time.
	ScrapeTimeoutOffset time.Duration
	// Logger receives the daemon's log; nil discards it.
	Logger log.Logger
	// Registry holds the exporter's own metrics, served on MetricsPath
	// beside the batches'. The daemon registers its metrics on it; nil
	// gives a registry of its own.
	Registry *prometheus.Registry

	// demoClock is the simulated Partner Center's clock; nil: time.Now.
	// Tests set it to play the demo's scenario at a chosen instant.
	demoClock func() time.Time
}

// Daemon is a running exporter, from New until Close.
type Daemon struct {
	state   *exporterState
	handler http.Handler
	// db is the store under StoragePath, nil without one.
	db *storage.DB
	// demo is the simulated Partner Center, nil outside demo mode.
	demo *demo

	closeOnce sync.Once
	closeErr  error
}

// New loads the configuration, opens the storage and starts watching the
// batch files. On an error nothing it started is left running.
func New(opts Options) (*Daemon, error) {
	logger := opts.Logger
	if logger == nil {
		logger = log.NewNopLogger()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	srvOpts := serverOptions{
		metricsPath: opts.MetricsPath, scrapeTimeout: opts.ScrapeTimeout, timeoutOffset: opts.ScrapeTimeoutOffset,
		disableBatchDetails: opts.DisableBatchDetails,
	}
	if srvOpts.metricsPath == "" {
		srvOpts.metricsPath = "/metrics"
	}
	if srvOpts.scrapeTimeout == 0 {
		srvOpts.scrapeTimeout = 10 * time.Second
	}
	apiMetrics := collector.NewAPIMetrics(reg)
	load := func() (*config.Config, error) { return config.Load(opts.ConfigFile) }
	d := &Daemon{}
	if opts.Demo {
		clock := opts.demoClock
		if clock == nil {
			clock = time.Now
		}
		demo, err := newDemo(logger, clock)
		if err != nil {
			return nil, err
		}
		d.demo = demo
		load = demo.config
		srvOpts.description = DemoDescription
	}
	d.state = newExporterState(logger, load, pcclient.DefaultHTTPClient(), apiMetrics, reg)
	d.state.storagePath, d.state.batchPagesOff = opts.StoragePath, opts.DisableBatchDetails
	if err := d.start(opts.StoragePath, reg, srvOpts, logger); err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// start loads the first configuration, then opens the storage, which
// needs the client of that configuration for the stamps of old records.
func (d *Daemon) start(storagePath string, reg *prometheus.Registry, opts serverOptions, logger log.Logger) error {
	if err := d.state.reload(); err != nil {
		return err
	}
	if storagePath != "" {
		db, err := d.state.openStorage(storagePath, reg)
		if err != nil {
			return err
		}
		d.db = db
	}
	mux, err := newMux(d.state, reg, opts, logger)
	if err != nil {
		return err
	}
	d.handler = mux
	return nil
}

// Handler serves every endpoint of the exporter: the metrics, /probe,
// /sd, /config, /batches, /-/reload, /-/healthy, /-/ready and the landing
// page.
func (d *Daemon) Handler() http.Handler { return d.handler }

// Reload loads the configuration again and swaps it in. On an error,
// which is logged too, the previous configuration keeps serving.
func (d *Daemon) Reload() error { return d.state.reload() }

// Close stops watching the batch files and forgetting batches, then closes
// the storage and the demo. Scrapes still running may fail; stop serving
// first. It may be called more than once.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		// The batch file watcher and the forgetting write to the store:
		// stop them before closing it.
		d.state.close()
		if d.db != nil {
			if err := d.db.Close(); err != nil {
				d.closeErr = fmt.Errorf("close storage: %w", err)
			}
		}
		if d.demo != nil {
			d.demo.Close()
		}
	})
	return d.closeErr
}

// CheckConfig validates the configuration file at path and reads its batch
// files once, for --config.check: it prints a summary to stdout and every
// error to stderr, and returns the exit code, 0 when all is well.
func CheckConfig(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK: %s\n", path, cfg.Summary())
	if !checkBatchFiles(cfg, stdout, stderr) {
		return 1
	}
	return 0
}
