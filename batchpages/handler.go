// Package batchpages serves the failed-device pages: GET /batches lists
// every configured batch as the exporter last read it, and
// GET /batches/{batch_tracking_id} shows one batch with its failed
// devices, as HTML, JSON or (the failed devices) CSV.
//
// The pages only read what the collector's reads already stored: opening
// them never calls Partner Center.
package batchpages

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Options are what the pages read.
type Options struct {
	// Snapshot returns the live configuration, nil before the first load.
	Snapshot func() *config.Config
	// Targets returns the batches to show: the configuration's and those
	// of the batch files. Nil means the configuration's only.
	Targets func() []collector.Target
	// State reads the collector's cache; it must not call the API.
	State func(collector.Target) (collector.BatchState, bool)
	// Now is the clock for running durations and "ago"; nil means time.Now.
	Now func() time.Time
}

// The paths the handler answers. It must be mounted on both, unstripped.
const (
	listPath  = "/batches"
	batchPath = listPath + "/"
)

// Error answers, exact so that tests and users can rely on them.
const (
	msgNoConfig     = "no configuration loaded yet"
	msgNoTrackingID = "no batch tracking ID in the path: the list of batches is at /batches"
	msgMalformedID  = "batch tracking ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"
	msgMethod       = "method not allowed: use GET"
	msgListFormat   = "format must be html or json (csv is offered on each batch page)"
	msgBatchFormat  = "format must be html, json or csv"
)

// notConfigured answers a well-formed ID that no configured batch has.
func notConfigured(trackingID string) string {
	return fmt.Sprintf("no configured batch has tracking ID %s (a configuration reload may have removed it)", trackingID)
}

// retired answers a batch that finished longer ago than the retention.
func retired(trackingID string) string {
	return fmt.Sprintf("batch %s is retired: it finished longer ago than the configured retention", trackingID)
}

type handler struct {
	opts Options
}

// NewHandler serves GET /batches and GET /batches/{batch_tracking_id}
// (also HEAD); any other path under /batches/ answers 404.
func NewHandler(opts Options) http.Handler {
	if opts.Targets == nil {
		opts.Targets = func() []collector.Target {
			if cfg := opts.Snapshot(); cfg != nil {
				return collector.Targets(cfg)
			}
			return nil
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &handler{opts: opts}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	// Without ?format= the answer depends on Accept.
	w.Header().Set("Vary", "Accept")
	rawID, isList, ok := parsePath(r.URL.Path)
	switch {
	case !ok:
		http.NotFound(w, r)
		return
	case !isList && rawID == "":
		http.Error(w, msgNoTrackingID, http.StatusNotFound)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, msgMethod, http.StatusMethodNotAllowed)
		return
	}
	f, err := chooseFormat(r, !isList)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !isList && !partnercenter.ValidGUID(rawID) {
		http.Error(w, msgMalformedID, http.StatusBadRequest)
		return
	}
	cfg := h.opts.Snapshot()
	if cfg == nil {
		http.Error(w, msgNoConfig, http.StatusServiceUnavailable)
		return
	}
	now := h.opts.Now().UTC()
	if isList {
		writeList(w, f, buildList(cfg, h.opts.Targets(), h.opts.State, now))
		return
	}
	// Configured IDs are stored in lower case; the API ignores case.
	trackingID := strings.ToLower(rawID)
	t, found := findTarget(h.opts.Targets(), trackingID)
	if !found {
		http.Error(w, notConfigured(trackingID), http.StatusNotFound)
		return
	}
	if s, _ := h.opts.State(t); s.Retired {
		http.Error(w, retired(trackingID), http.StatusNotFound)
		return
	}
	writeBatch(w, f, buildBatch(cfg, t, h.opts.State, now))
}

// parsePath splits a request path into the list page or one batch ID
// (possibly empty or malformed); ok is false for anything deeper.
func parsePath(p string) (trackingID string, isList, ok bool) {
	if p == listPath {
		return "", true, true
	}
	rest, found := strings.CutPrefix(p, batchPath)
	if !found || strings.Contains(rest, "/") {
		return "", false, false
	}
	return rest, false, true
}

// setSecurityHeaders applies to every answer. The CSP forbids any script
// (the pages have none) so that a value that ever slipped past escaping
// still could not run; the pages show serial numbers, so nothing is cached.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}
