// Package batchpages serves the failed-device pages: GET /batches lists
// every configured batch as the exporter last read it, and
// GET /batches/{customer_id}/{batch_tracking_id} shows one batch with its
// failed devices, as HTML, JSON or (the failed devices) CSV. The customer
// is part of the address because batch files may list the same tracking
// ID under two customers. An address of the older form
// /batches/{batch_tracking_id} redirects to the batch's page when one
// customer lists that ID, and lists the pages when several do.
//
// The pages only read what the collector's reads already stored: opening
// them never calls Partner Center.
package batchpages

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Options are what the pages read.
type Options struct {
	// Listing returns what the pages show of the live configuration; ok
	// is false before the first load.
	Listing func() (l Listing, ok bool)
	// State reads the batch store (batchstate.Store); it must not call the API.
	State func(batchstate.Target) (batchstate.BatchState, bool)
	// Now is the clock for running durations and "ago"; nil means time.Now.
	Now func() time.Time
}

// Listing is what the pages take of one live configuration, read
// together so that a page never mixes two.
type Listing struct {
	// Targets are the batches to show, with their customers' names: the
	// configuration's and those of the batch files and the intake API.
	Targets []batchstate.Target
	// MaxFailedDevicesPerBatch is max_failed_devices_per_batch, which the
	// pages name where a batch's failed devices were cut short.
	MaxFailedDevicesPerBatch int
}

// The paths the handler answers. It must be mounted on both, unstripped.
const (
	listPath  = "/batches"
	batchPath = listPath + "/"
)

// Error answers, exact so that tests and users can rely on them.
const (
	msgNoConfig          = "no configuration loaded yet"
	msgNoTrackingID      = "no batch tracking ID in the path: the list of batches is at /batches"
	msgMalformedID       = "batch tracking ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"
	msgMalformedCustomer = "customer ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"
	msgMethod            = "method not allowed: use GET"
	msgListFormat        = "format must be html or json (csv is offered on each batch page)"
	msgBatchFormat       = "format must be html, json or csv"
)

// notConfigured answers a well-formed ID that no configured batch has.
func notConfigured(trackingID string) string {
	return fmt.Sprintf("no configured batch has tracking ID %s (a configuration reload may have removed it)", trackingID)
}

// notUnderCustomer answers a tracking ID that the customer in the path
// does not list; others lists the customers that do, if any.
func notUnderCustomer(customerID, trackingID string, others []batchstate.Target) string {
	msg := fmt.Sprintf("customer %s has no configured batch with tracking ID %s (a configuration reload may have removed it)", customerID, trackingID)
	if len(others) > 0 {
		msg += "; it is listed under " + describeTargets(others)
	}
	return msg
}

// ambiguous answers an old-style address whose tracking ID several
// customers list.
func ambiguous(trackingID string, targets []batchstate.Target) string {
	return fmt.Sprintf("batch tracking ID %s is listed under %d customers: %s", trackingID, len(targets), describeTargets(targets))
}

// describeTargets names each batch's customer and page.
func describeTargets(targets []batchstate.Target) string {
	parts := make([]string, len(targets))
	for i, t := range targets {
		name := ""
		if t.CustomerName != "" {
			name = " (" + t.CustomerName + ")"
		}
		parts[i] = fmt.Sprintf("customer %s%s at %s%s/%s", t.CustomerID, name, batchPath, t.CustomerID, t.TrackingID)
	}
	return strings.Join(parts, ", ")
}

// retired answers a batch that finished longer ago than the retention.
func retired(trackingID string) string {
	return fmt.Sprintf("batch %s is retired: it finished longer ago than the configured retention", trackingID)
}

type handler struct {
	opts Options
}

// NewHandler serves GET /batches, GET /batches/{customer_id}/{batch_tracking_id}
// and the older GET /batches/{batch_tracking_id} (also HEAD); any other
// path under /batches/ answers 404.
func NewHandler(opts Options) http.Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &handler{opts: opts}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	// Without ?format= the answer depends on Accept.
	w.Header().Set("Vary", "Accept")
	p, ok := parsePath(r.URL.Path)
	switch {
	case !ok:
		http.NotFound(w, r)
		return
	case !p.isList && p.trackingID == "":
		http.Error(w, msgNoTrackingID, http.StatusNotFound)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, msgMethod, http.StatusMethodNotAllowed)
		return
	}
	f, err := chooseFormat(r, !p.isList)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !p.isList {
		if p.hasCustomer && !partnercenter.ValidGUID(p.customerID) {
			http.Error(w, msgMalformedCustomer, http.StatusBadRequest)
			return
		}
		if !partnercenter.ValidGUID(p.trackingID) {
			http.Error(w, msgMalformedID, http.StatusBadRequest)
			return
		}
	}
	listing, ok := h.opts.Listing()
	if !ok {
		http.Error(w, msgNoConfig, http.StatusServiceUnavailable)
		return
	}
	now := h.opts.Now().UTC()
	if p.isList {
		writeList(w, f, buildList(listing, h.opts.State, now))
		return
	}
	// Configured IDs are stored in lower case; the API ignores case.
	customerID, trackingID := strings.ToLower(p.customerID), strings.ToLower(p.trackingID)
	listed, retiredToo := h.listed(listing.Targets, trackingID)
	if !p.hasCustomer {
		serveOldAddress(w, r, trackingID, listed, retiredToo)
		return
	}
	t, found := findTarget(listed, customerID)
	if !found {
		if _, gone := findTarget(retiredToo, customerID); gone {
			http.Error(w, retired(trackingID), http.StatusNotFound)
			return
		}
		http.Error(w, notUnderCustomer(customerID, trackingID, listed), http.StatusNotFound)
		return
	}
	writeBatch(w, f, buildBatch(listing.MaxFailedDevicesPerBatch, t, h.opts.State, now))
}

// listed returns the batches of targets with the (lower-case) tracking ID
// that the pages show, and those that retired.
func (h *handler) listed(targets []batchstate.Target, trackingID string) (listed, retired []batchstate.Target) {
	for _, t := range targets {
		if t.TrackingID != trackingID {
			continue
		}
		if s, _ := h.opts.State(t); s.Retired {
			retired = append(retired, t)
		} else {
			listed = append(listed, t)
		}
	}
	return listed, retired
}

// serveOldAddress answers /batches/{batch_tracking_id}, the address before
// pages named the customer: a redirect to the batch's page when one
// customer lists the ID, the list of pages when several do. The redirect
// is relative, so that it holds behind a proxy that serves the exporter
// under a path prefix, and temporary, since a batch file may later list
// the ID under a second customer.
func serveOldAddress(w http.ResponseWriter, r *http.Request, trackingID string, listed, retiredToo []batchstate.Target) {
	switch {
	case len(listed) == 1:
		loc := listed[0].CustomerID + "/" + listed[0].TrackingID
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	case len(listed) > 1:
		http.Error(w, ambiguous(trackingID, listed), http.StatusMultipleChoices)
	case len(retiredToo) > 0:
		http.Error(w, retired(trackingID), http.StatusNotFound)
	default:
		http.Error(w, notConfigured(trackingID), http.StatusNotFound)
	}
}

// pagePath is a request path split up.
type pagePath struct {
	isList      bool
	hasCustomer bool
	customerID  string // as in the path: possibly malformed
	trackingID  string // as in the path: possibly empty or malformed
}

// parsePath splits a request path into the list page, one batch (with or
// without its customer), or nothing the handler serves (ok false).
func parsePath(path string) (p pagePath, ok bool) {
	if path == listPath {
		return pagePath{isList: true}, true
	}
	rest, found := strings.CutPrefix(path, batchPath)
	if !found {
		return pagePath{}, false
	}
	switch parts := strings.Split(rest, "/"); len(parts) {
	case 1:
		return pagePath{trackingID: parts[0]}, true
	case 2:
		return pagePath{hasCustomer: true, customerID: parts[0], trackingID: parts[1]}, true
	default:
		return pagePath{}, false
	}
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
