// Command partnercenter_exporter exposes the status of Windows Autopilot
// device batches, read from the Partner Center API, as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/partnercenter-exporter/partnercenter_exporter/daemon"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/waitcmd"
)

const (
	exporterName = "partnercenter_exporter"
	defaultPort  = ":10046"
	// shutdownTimeout bounds how long answers already being written may
	// take to finish after SIGTERM.
	shutdownTimeout = 10 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, make(chan os.Signal, 1)))
}

// flags holds the parsed command line.
type flags struct {
	configFile          string
	configCheck         bool
	demo                bool
	metricsPath         string
	disableBatchDetails bool
	storagePath         string
	scrapeTimeout       time.Duration
	timeoutOffset       time.Duration
	logLevel            string
	logFormat           string
	web                 *web.FlagConfig
	// command is the command selected: "serve" (the default: the
	// daemon) or waitcmd.Name.
	command string
	wait    *waitcmd.Command
}

func parseFlags(args []string, stdout, stderr io.Writer) (*flags, error) {
	app := kingpin.New(exporterName, "Prometheus exporter for Partner Center Autopilot device batch status.")
	app.Version(version.Print(exporterName))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	// kingpin would exit after --help or --version; record it instead so
	// that only main decides the exit code.
	terminated := false
	app.Terminate(func(int) { terminated = true })
	f := &flags{}
	app.Flag("config.file", "Path to the configuration file.").Default("partnercenter.yml").StringVar(&f.configFile)
	app.Flag("config.check", "Validate the configuration file, print a summary or the errors, and exit.").BoolVar(&f.configCheck)
	app.Flag("demo", "Run against a built-in simulated Partner Center (no credentials, no network).").BoolVar(&f.demo)
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&f.metricsPath)
	app.Flag("storage.path", "Directory of an embedded store that keeps what is known of each batch across restarts. Empty: memory only.").Default("").StringVar(&f.storagePath)
	app.Flag("web.disable-batch-details", "Do not serve the /batches pages (they show device serial numbers).").BoolVar(&f.disableBatchDetails)
	app.Flag("scrape.timeout", "Time a scrape may take when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds header.").Default("10s").DurationVar(&f.scrapeTimeout)
	app.Flag("scrape.timeout-offset", "Subtracted from Prometheus' scrape timeout so the answer arrives in time.").Default("0.5s").DurationVar(&f.timeoutOffset)
	app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").Default("info").EnumVar(&f.logLevel, logLevels...)
	app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").Default("logfmt").EnumVar(&f.logFormat, logFormats...)
	f.web = kingpinflag.AddFlags(app, defaultPort)
	// The daemon is a hidden default command, so that its command line
	// stays what it was before there were commands.
	app.Command("serve", "Run the exporter (the default).").Default().Hidden()
	f.wait = waitcmd.AddCommand(app, &f.configFile)
	var err error
	f.command, err = app.Parse(args)
	if terminated {
		return nil, errExitSuccess
	}
	if err != nil {
		// Which command a mistake was made in decides its exit status.
		if ctx, _ := app.ParseContext(args); ctx != nil && ctx.SelectedCommand != nil {
			f.command = ctx.SelectedCommand.FullCommand()
		}
	}
	return f, err
}

// errExitSuccess reports that --help or --version already did the job.
var errExitSuccess = errors.New("nothing more to do")

// run is the whole program; it returns the exit code. Signals arrive on
// sigs so tests can send them.
func run(args []string, stdout, stderr io.Writer, sigs chan os.Signal) int {
	f, err := parseFlags(args, stdout, stderr)
	if err != nil {
		if errors.Is(err, errExitSuccess) {
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		if f.command == waitcmd.Name {
			return waitcmd.ExitUsage
		}
		return 2
	}
	if f.command == waitcmd.Name {
		return f.wait.Run(stdout, stderr, sigs)
	}
	if f.configCheck {
		return daemon.CheckConfig(f.configFile, stdout, stderr)
	}
	logger, base, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", exporterName, err)
		return 2
	}
	if err := serve(f, logger, slogBridge(base), sigs); err != nil {
		level.Error(logger).Log("msg", "exporter stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the exporter until SIGTERM or SIGINT.
func serve(f *flags, logger log.Logger, toolkitLogger *slog.Logger, sigs chan os.Signal) error {
	level.Info(logger).Log("msg", "starting "+exporterName, "version", version.Info())
	level.Info(logger).Log("msg", "build context", "build_context", version.BuildContext())

	selfReg := prometheus.NewRegistry()
	selfReg.MustRegister(
		versioncollector.NewCollector(exporterName),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	d, err := daemon.New(daemon.Options{
		ConfigFile: f.configFile, Demo: f.demo, StoragePath: f.storagePath,
		MetricsPath: f.metricsPath, DisableBatchDetails: f.disableBatchDetails,
		ScrapeTimeout: f.scrapeTimeout, ScrapeTimeoutOffset: f.timeoutOffset,
		Logger: logger, Registry: selfReg,
	})
	if err != nil {
		return err
	}
	// After the server has shut down, so that no answer is still using
	// the store.
	defer func() {
		if err := d.Close(); err != nil {
			level.Error(logger).Log("msg", "closing the exporter", "err", err)
		}
	}()
	// Every request's context derives from base, so that shutting down ends
	// the scrapes still waiting on reads instead of waiting for them.
	base, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(srv, f.web, toolkitLogger) }()

	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = d.Reload() // Logged, and the old configuration keeps serving.
				continue
			}
			level.Info(logger).Log("msg", "shutting down", "signal", sig)
			cancelRequests()
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			return srv.Shutdown(ctx)
		}
	}
}
