package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// maxProbeBatches bounds the batches one /probe request may name.
const maxProbeBatches = 100

// probeRequestError is a /probe request refused before anything is read.
type probeRequestError struct {
	status int
	// retryAfter, when not zero, goes into a Retry-After header.
	retryAfter time.Duration
	msg        string
}

func (e *probeRequestError) Error() string { return e.msg }

func badProbe(status int, format string, args ...any) error {
	return &probeRequestError{status: status, msg: fmt.Sprintf(format, args...)}
}

// probeHandler serves GET /probe?customer_id=…&batch_tracking_id=…: the
// partnercenter_batch_* series of just those batches and partnercenter_up,
// on a registry of its own (the Prometheus multi-target pattern). It reads
// through the same reader, store and client as /metrics. Batches neither
// the configuration nor a batch file lists are refused unless probe
// settings allow them; then they go through the admission registry.
func probeHandler(state *exporterState, opts serverOptions, logger log.Logger) http.Handler {
	errLog := promhttpLogger{level.Error(logger)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		live := state.live()
		if live == nil {
			http.Error(w, "no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		targets, unlisted, err := probeTargets(live, r.URL.Query())
		if err == nil && len(unlisted) > 0 {
			err = state.probes.admit(unlisted)
		}
		if reqErr, ok := errors.AsType[*probeRequestError](err); ok {
			if reqErr.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(reqErr.retryAfter/time.Second)))
			}
			http.Error(w, reqErr.msg, reqErr.status)
			return
		}
		ctx, cancel := scrapeContext(r, opts)
		defer cancel()
		collector.Serve(w, r, collector.NewProbe(ctx, live.policy, targets, live.client, state.reader), nil, errLog)
	})
}

// probeTargets validates the query and names the batches to read, and
// which of them are unlisted (neither the configuration nor a batch file
// lists them). A customer the configuration does not know is refused
// unless probe.allow_unconfigured_customers; an unlisted batch unless
// probe.allow_unlisted_batches (or allow_unconfigured_customers).
func probeTargets(live *liveConfig, q url.Values) (targets, unlisted []batchstate.Target, err error) {
	customers, batches := q["customer_id"], q["batch_tracking_id"]
	switch {
	case len(customers) != 1:
		return nil, nil, badProbe(http.StatusBadRequest, "exactly one customer_id parameter is required")
	case !partnercenter.ValidGUID(customers[0]):
		return nil, nil, badProbe(http.StatusBadRequest, "customer_id %q is not a GUID", cut(customers[0]))
	case len(batches) == 0:
		return nil, nil, badProbe(http.StatusBadRequest, "at least one batch_tracking_id parameter is required")
	case len(batches) > maxProbeBatches:
		return nil, nil, badProbe(http.StatusBadRequest, "at most %d batch_tracking_id parameters per probe, got %d", maxProbeBatches, len(batches))
	}
	customer := strings.ToLower(customers[0])
	name, known := live.customerName(customer)
	if !known && !live.cfg.Probe.AllowUnconfiguredCustomers {
		return nil, nil, badProbe(http.StatusForbidden, "customer %s is not configured (set probe.allow_unconfigured_customers to probe it)", customer)
	}
	targets = make([]batchstate.Target, 0, len(batches))
	seen := map[string]bool{}
	for _, b := range batches {
		if !partnercenter.ValidGUID(b) {
			return nil, nil, badProbe(http.StatusBadRequest, "batch_tracking_id %q is not a GUID", cut(b))
		}
		id := strings.ToLower(b)
		if !seen[id] {
			seen[id] = true
			targets = append(targets, batchstate.Target{CustomerID: customer, CustomerName: name, TrackingID: id})
		}
	}
	for i, t := range targets {
		if listed, ok := live.listed[t.Key()]; ok {
			targets[i] = listed
			continue
		}
		if !live.cfg.Probe.UnlistedAllowed() {
			return nil, nil, badProbe(http.StatusNotFound, "batch %s of customer %s is not listed in the configuration or a batch file "+
				"(set probe.allow_unlisted_batches to probe it)", t.TrackingID, customer)
		}
		unlisted = append(unlisted, t)
	}
	return targets, unlisted, nil
}

// keyed indexes the listed batches by their store key.
func keyed(targets []batchstate.Target) map[string]batchstate.Target {
	out := make(map[string]batchstate.Target, len(targets))
	for _, t := range targets {
		out[t.Key()] = t
	}
	return out
}

// cut keeps an echoed parameter short.
func cut(s string) string {
	const maxEcho = 64
	if len(s) > maxEcho {
		return s[:maxEcho] + "…"
	}
	return s
}

// sdTargetGroup is one target of Prometheus HTTP service discovery.
type sdTargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// sdHandler serves GET /sd: one target per listed batch (configuration,
// then batch files), in Prometheus HTTP SD format. Retired batches are
// listed too: only the replica that reads a batch knows it is retired,
// and every replica must give the same targets, or the target would come
// and go with each refresh depending on who answered. Probing a retired
// batch costs no read and shows no batch series. The target address is
// this exporter as the client reached it, so that Prometheus can /probe
// it.
func sdHandler(state *exporterState) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		live := state.live()
		if live == nil {
			http.Error(w, "no configuration loaded", http.StatusServiceUnavailable)
			return
		}
		groups := make([]sdTargetGroup, 0, len(live.targets))
		for _, t := range live.targets {
			groups = append(groups, sdTargetGroup{
				Targets: []string{r.Host},
				Labels: map[string]string{
					"customer_id": t.CustomerID, "batch_tracking_id": t.TrackingID, "customer_name": t.CustomerName,
				},
			})
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(groups); err == nil {
			// Prometheus now has a list without the batches removed
			// before it: probes of them no longer come from stale
			// discovery.
			state.probes.sdServed(live.targets)
		}
	}
}
