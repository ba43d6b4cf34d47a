package daemon

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchpages"
	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/intake"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// serverOptions are the flags that shape the HTTP side.
type serverOptions struct {
	metricsPath   string
	scrapeTimeout time.Duration
	timeoutOffset time.Duration
	// description goes on the landing page (the demo says it is one).
	description string
	// disableBatchDetails turns the failed-device pages off, for
	// deployments that must not show serial numbers.
	disableBatchDetails bool
}

// newMux wires every HTTP endpoint of the exporter.
func newMux(state *exporterState, selfReg *prometheus.Registry, opts serverOptions, logger log.Logger) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.Handle(opts.metricsPath, promhttp.InstrumentMetricHandler(selfReg, metricsHandler(state, selfReg, opts, logger)))
	mux.Handle("/probe", probeHandler(state, opts, logger))
	mux.HandleFunc("/sd", sdHandler(state))
	mux.HandleFunc("/config", configHandler(state))
	mux.Handle(intake.Path, state.intakeHandler())
	mux.Handle(intake.Path+"/", state.intakeHandler())
	mux.HandleFunc("/-/reload", reloadHandler(state))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if state.live() == nil {
			http.Error(w, "Not ready: no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	if !opts.disableBatchDetails {
		// The failed-device pages read the cache, never the API.
		batches := batchpages.NewHandler(batchpages.Options{
			Listing: state.batchListing, State: state.store.Get,
		})
		mux.Handle("/batches", batches)
		mux.Handle("/batches/", batches)
	}
	if opts.metricsPath != "/" {
		landing, err := landingPage(opts)
		if err != nil {
			return nil, err
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

func landingPage(opts serverOptions) (http.Handler, error) {
	description := "Prometheus exporter for the status of Windows Autopilot device batches uploaded through Partner Center"
	if opts.description != "" {
		description = opts.description
	}
	links := []web.LandingLinks{
		{Address: opts.metricsPath, Text: "Metrics"},
		{Address: "/config", Text: "Configuration", Description: "the effective configuration, secrets hidden"},
	}
	if !opts.disableBatchDetails {
		links = append(links, web.LandingLinks{Address: "/batches", Text: "Batches", Description: "status and failed devices of every configured batch"})
	}
	links = append(links, web.LandingLinks{Address: "/-/healthy", Text: "Health"})
	page, err := web.NewLandingPage(web.LandingConfig{
		Name:        "Partner Center Exporter",
		Description: description,
		Version:     version.Info(),
		Links:       links,
		// The exporter serves no /debug/pprof, so offer no links to it.
		Profiling: "false",
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	return page, nil
}

// metricsHandler serves one scrape: the batch collector bound to this
// request's deadline on a registry of its own, beside the long-lived
// self-metrics. The reader and store behind the collector are shared by all
// scrapes.
func metricsHandler(state *exporterState, selfReg *prometheus.Registry, opts serverOptions, logger log.Logger) http.Handler {
	errLog := promhttpLogger{level.Error(logger)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		live := state.live()
		if live == nil {
			http.Error(w, "no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := scrapeContext(r, opts)
		defer cancel()

		scrape := collector.NewScrape(ctx, live.policy, live.customers, live.targets, live.client, state.reader)
		if exporterOnly(r) {
			scrape = collector.NewExporterHealth(ctx, live.policy, live.targets, live.client, state.reader)
		}
		// The scrape goes first so the traffic counters include its requests.
		collector.Serve(w, r, scrape, selfReg, errLog)
	})
}

// scrapeContext bounds one scrape or probe by its deadline (see
// scrapeTimeout) and gives its requests one MS-CorrelationId.
func scrapeContext(r *http.Request, opts serverOptions) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout(r, opts.scrapeTimeout, opts.timeoutOffset))
	return partnercenter.WithCorrelationID(ctx, partnercenter.NewGUID()), cancel
}

// exporterOnly reports whether the scrape asks only for the exporter's own
// metrics (?collect[]=exporter), API health included, which read no batch:
// replicas sharing the batches through /probe are monitored this way.
func exporterOnly(r *http.Request) bool {
	return slices.Contains(r.URL.Query()["collect[]"], "exporter")
}

// scrapeTimeout is Prometheus' scrape timeout less offset, so the answer
// arrives before Prometheus gives up, or fallback without the header. An
// offset larger than the timeout is ignored rather than leaving no time.
func scrapeTimeout(r *http.Request, fallback, offset time.Duration) time.Duration {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return fallback
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs <= 0 {
		return fallback
	}
	timeout := time.Duration(secs * float64(time.Second))
	if timeout > offset {
		return timeout - offset
	}
	return timeout
}

func configHandler(state *exporterState) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		live := state.live()
		if live == nil {
			http.Error(w, "no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		out, err := live.cfg.RedactedYAML()
		if err != nil {
			http.Error(w, "cannot show configuration: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(out)
		describeBatchFiles(w, live.cfg.BatchFiles, state.batchFiles())
		describeIntake(w, live.cfg.Intake, state.registeredCount())
	}
}

func reloadHandler(state *exporterState) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload the configuration", http.StatusMethodNotAllowed)
			return
		}
		if err := state.reload(); err != nil {
			http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "configuration reloaded")
	}
}

// promhttpLogger adapts a go-kit logger to promhttp's Println logger.
type promhttpLogger struct{ logger log.Logger }

func (l promhttpLogger) Println(v ...any) {
	l.logger.Log("msg", fmt.Sprint(v...))
}
