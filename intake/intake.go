// Package intake is the batch intake API: upload pipelines that share no
// disk with the exporter hand over their batches with
// POST /api/v1/batches and stop tracking them with
// DELETE /api/v1/batches/{customer_id}/{batch_tracking_id}. Registered
// batches are one more membership source beside the configuration and the
// batch files, kept in the exporter's store so that a restart loses none.
package intake

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// Path is where the intake is served; DELETE takes Path/{customer}/{batch}.
const Path = "/api/v1/batches"

// MaxBodyBytes bounds a registration request's body.
const MaxBodyBytes = 1 << 20

// Persister keeps registrations across restarts; *storage.DB is one.
type Persister interface {
	PutRegistrations(rs []storage.Registration) error
	DeleteRegistration(customerID, trackingID string) error
}

// Options wire the intake into the exporter.
type Options struct {
	// Persist keeps the registrations. Required: a registration that a
	// restart would lose is a batch nobody watches.
	Persist Persister
	// Listed says where the configuration or a batch file lists a batch,
	// if they do.
	Listed func(customerID, trackingID string) (where string, ok bool)
	// PageURL is the /batches address of a batch, "" when the pages are
	// off.
	PageURL func(customerID, trackingID string) string
	// OnChange is called after the registrations changed, outside the
	// intake's lock.
	OnChange func()
	Logger   log.Logger
	// Registerer gets partnercenter_intake_requests_total.
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Intake serves the intake API. It is safe for concurrent use.
type Intake struct {
	opts     Options
	requests *prometheus.CounterVec

	mu         sync.Mutex
	tokens     *tokenFiles // nil while the intake is off
	tokenPaths []string
	maxBatches int
	regs       map[string]storage.Registration
}

// New returns an intake that knows the registrations restored from the
// store, and is off until Configure names token files.
func New(opts Options, restored []storage.Registration) *Intake {
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	in := &Intake{opts: opts, regs: make(map[string]storage.Registration, len(restored))}
	for _, r := range restored {
		r.CustomerID, r.TrackingID = strings.ToLower(r.CustomerID), strings.ToLower(r.TrackingID)
		in.regs[key(r.CustomerID, r.TrackingID)] = r
	}
	in.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "partnercenter", Subsystem: "intake", Name: "requests_total",
		Help: "Requests to the batch intake API (/api/v1/batches), by HTTP status code.",
	}, []string{"code"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(in.requests)
	}
	return in
}

func key(customerID, trackingID string) string { return customerID + "/" + trackingID }

// Configure applies the intake settings of a (re)loaded configuration: no
// token files turn the intake off. Registrations are kept either way.
func (in *Intake) Configure(tokenFiles []string, maxBatches int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.maxBatches = maxBatches
	if slices.Equal(tokenFiles, in.tokenPaths) {
		return
	}
	in.tokenPaths = slices.Clone(tokenFiles)
	in.tokens = nil
	if len(tokenFiles) > 0 {
		in.tokens = newTokenFiles(tokenFiles)
	}
}

// Registrations lists the registered batches, oldest first.
func (in *Intake) Registrations() []storage.Registration {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]storage.Registration, 0, len(in.regs))
	for _, r := range in.regs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b storage.Registration) int {
		return cmp.Or(a.Registered.Compare(b.Registered), cmp.Compare(key(a.CustomerID, a.TrackingID), key(b.CustomerID, b.TrackingID)))
	})
	return out
}

// ServeHTTP answers POST Path and DELETE Path/{customer}/{batch}.
func (in *Intake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() { in.requests.WithLabelValues(strconv.Itoa(rec.status)).Inc() }()
	tokens := in.currentTokens()
	if tokens == nil {
		http.Error(rec, "the batch intake API is off: set intake.bearer_token_files to turn it on", http.StatusNotFound)
		return
	}
	if !in.authorized(tokens, r) {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="partnercenter_exporter"`)
		http.Error(rec, "a valid bearer token is required (Authorization: Bearer <token>)", http.StatusUnauthorized)
		return
	}
	rest, _ := strings.CutPrefix(r.URL.Path, Path)
	switch rest {
	case "", "/":
		if r.Method != http.MethodPost {
			rec.Header().Set("Allow", http.MethodPost)
			http.Error(rec, "use POST to register batches", http.StatusMethodNotAllowed)
			return
		}
		in.register(rec, r)
	default:
		if r.Method != http.MethodDelete {
			rec.Header().Set("Allow", http.MethodDelete)
			http.Error(rec, "use DELETE to stop tracking a registered batch", http.StatusMethodNotAllowed)
			return
		}
		in.unregister(rec, strings.TrimPrefix(rest, "/"))
	}
}

func (in *Intake) currentTokens() *tokenFiles {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.tokens
}

// authorized checks the request's bearer token, logging each token file
// that changed (never a token).
func (in *Intake) authorized(tokens *tokenFiles, r *http.Request) bool {
	scheme, presented, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	ok, changed := tokens.check(strings.TrimSpace(presented))
	for _, c := range changed {
		if c.err != nil {
			level.Warn(in.opts.Logger).Log("msg", "intake token file gives no token", "err", c.err)
		} else {
			level.Info(in.opts.Logger).Log("msg", "intake token file read", "file", c.path)
		}
	}
	return ok && strings.EqualFold(scheme, "Bearer")
}

// batchAnswer is one batch of a registration's answer.
type batchAnswer struct {
	CustomerID string    `json:"customer_id"`
	TrackingID string    `json:"batch_tracking_id"`
	Registered time.Time `json:"registered"`
	// Already is true when the batch was registered before this request.
	Already bool `json:"already_registered"`
	// ListedIn names where the configuration or a batch file lists it too.
	ListedIn string `json:"listed_in,omitempty"`
	URL      string `json:"url,omitempty"`
}

// errTooMany refuses a registration past intake.max_batches.
var errTooMany = errors.New("too many registered batches")

func (in *Intake) register(w http.ResponseWriter, r *http.Request) {
	batches, status, problems := readBody(w, r)
	if status != 0 {
		writeJSON(w, status, errorAnswer{Errors: problems})
		return
	}
	answers, added, err := in.add(batches)
	switch {
	case errors.Is(err, errTooMany):
		writeJSON(w, http.StatusInsufficientStorage, errorAnswer{Errors: []string{err.Error()}})
		return
	case err != nil:
		level.Error(in.opts.Logger).Log("msg", "storing registered batches failed; none registered", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorAnswer{Errors: []string{"storing the batches failed; none was registered: " + err.Error()}})
		return
	}
	status = http.StatusOK
	if added > 0 {
		status = http.StatusCreated
		level.Info(in.opts.Logger).Log("msg", "batches registered through the intake", "new", added, "in_request", len(batches))
		if in.opts.OnChange != nil {
			in.opts.OnChange()
		}
	}
	writeJSON(w, status, registerAnswer{Batches: answers})
}

type registerAnswer struct {
	Batches []batchAnswer `json:"batches"`
}

type errorAnswer struct {
	Errors []string `json:"errors"`
}

// add registers the batches that are not registered yet, all or none, and
// describes every batch of the request.
func (in *Intake) add(batches []batchfiles.Batch) (answers []batchAnswer, added int, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := in.opts.Now().UTC()
	var fresh []storage.Registration
	for _, b := range batches {
		reg, already := in.regs[key(b.CustomerID, b.TrackingID)]
		if !already {
			reg = storage.Registration{CustomerID: b.CustomerID, TrackingID: b.TrackingID, Registered: now}
			fresh = append(fresh, reg)
		}
		a := batchAnswer{CustomerID: b.CustomerID, TrackingID: b.TrackingID, Registered: reg.Registered, Already: already}
		if in.opts.Listed != nil {
			a.ListedIn, _ = in.opts.Listed(b.CustomerID, b.TrackingID)
		}
		if in.opts.PageURL != nil {
			a.URL = in.opts.PageURL(b.CustomerID, b.TrackingID)
		}
		answers = append(answers, a)
	}
	if len(fresh) == 0 {
		return answers, 0, nil
	}
	if len(in.regs)+len(fresh) > in.maxBatches {
		return nil, 0, fmt.Errorf("%w: %d registered, %d more would pass intake.max_batches (%d); stop tracking finished batches with DELETE %s/{customer_id}/{batch_tracking_id}",
			errTooMany, len(in.regs), len(fresh), in.maxBatches, Path)
	}
	if err := in.opts.Persist.PutRegistrations(fresh); err != nil {
		return nil, 0, err
	}
	for _, reg := range fresh {
		in.regs[key(reg.CustomerID, reg.TrackingID)] = reg
	}
	return answers, len(fresh), nil
}

func (in *Intake) unregister(w http.ResponseWriter, rest string) {
	customer, tracking, ok := strings.Cut(rest, "/")
	b, valid, err := batchfiles.ParseLine(customer + " " + tracking)
	if !ok || !valid || err != nil || strings.Contains(tracking, "/") {
		http.Error(w, "expected "+Path+"/{customer_id}/{batch_tracking_id} with two GUIDs", http.StatusBadRequest)
		return
	}
	if in.opts.Listed != nil {
		if where, listed := in.opts.Listed(b.CustomerID, b.TrackingID); listed {
			http.Error(w, fmt.Sprintf("batch %s of customer %s is listed in %s: remove it there", b.TrackingID, b.CustomerID, where), http.StatusConflict)
			return
		}
	}
	found, err := in.remove(b)
	switch {
	case err != nil:
		level.Error(in.opts.Logger).Log("msg", "deleting a registered batch failed; still registered", "err", err)
		http.Error(w, "deleting the registration failed; the batch is still registered: "+err.Error(), http.StatusInternalServerError)
	case !found:
		http.Error(w, fmt.Sprintf("batch %s of customer %s is not registered through the intake", b.TrackingID, b.CustomerID), http.StatusNotFound)
	default:
		level.Info(in.opts.Logger).Log("msg", "registered batch no longer tracked", "customer_id", b.CustomerID, "batch_tracking_id", b.TrackingID)
		if in.opts.OnChange != nil {
			in.opts.OnChange()
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (in *Intake) remove(b batchfiles.Batch) (found bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	k := key(b.CustomerID, b.TrackingID)
	if _, ok := in.regs[k]; !ok {
		return false, nil
	}
	if err := in.opts.Persist.DeleteRegistration(b.CustomerID, b.TrackingID); err != nil {
		return true, err
	}
	delete(in.regs, k)
	return true, nil
}

// statusRecorder remembers the status an answer was given.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
