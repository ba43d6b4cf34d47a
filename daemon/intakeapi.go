package daemon

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/intake"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/plural"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// errIntakeNeedsStorage refuses an intake without a store to keep what it
// registers.
var errIntakeNeedsStorage = errors.New("intake.bearer_token_files is set, but the intake API needs --storage.path: " +
	"batches registered through it are kept only there, and a restart would lose them")

// openIntake starts the intake API on the store, with the batches it
// registered before a restart, and makes those members at once: before
// the store restores what it knew of them, so that none of it is swept as
// unlisted.
func (s *exporterState) openIntake(db *storage.DB, reg prometheus.Registerer) error {
	regs, err := db.LoadRegistrations()
	if err != nil {
		return err
	}
	s.api = intake.New(intake.Options{
		Persist:    db,
		Listed:     s.listedElsewhere,
		PageURL:    s.batchPageURL,
		OnChange:   s.registrationsChanged,
		Logger:     log.With(s.logger, "component", "intake"),
		Registerer: reg,
	}, regs)
	if live := s.current.Load(); live != nil {
		s.api.Configure(live.cfg.Intake.BearerTokenFiles, live.cfg.Intake.MaxBatches)
	}
	s.registrationsChanged()
	return nil
}

// registrationsChanged publishes the batch list again with the intake's
// registrations.
func (s *exporterState) registrationsChanged() {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.registered = s.api.Registrations()
	if live := s.current.Load(); live != nil {
		s.publishLocked(live.cfg, live.client, live.httpc)
	}
}

// registeredCount is how many batches the intake holds, for /config.
func (s *exporterState) registeredCount() int {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	return len(s.registered)
}

// listedElsewhere says where the configuration or a batch file lists a
// batch, for the intake's answers and its refusal to delete such a batch.
func (s *exporterState) listedElsewhere(customerID, trackingID string) (string, bool) {
	live := s.current.Load()
	if live == nil {
		return "", false
	}
	t, ok := live.listed[batchstate.Target{CustomerID: customerID, TrackingID: trackingID}.Key()]
	switch {
	case !ok || t.Origin == batchstate.OriginAPI:
		return "", false
	case t.Origin == "":
		return "the configuration file", true
	}
	return "the batch file " + t.Origin, true
}

// batchPageURL is the failed-device page of a batch, "" while the pages
// are off.
func (s *exporterState) batchPageURL(customerID, trackingID string) string {
	if s.batchPagesOff {
		return ""
	}
	return "/batches/" + customerID + "/" + trackingID
}

// intakeHandler serves the intake API, or says why it is off.
func (s *exporterState) intakeHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.api == nil {
			http.Error(w, "the batch intake API is off: set intake.bearer_token_files and --storage.path to turn it on", http.StatusNotFound)
			return
		}
		s.api.ServeHTTP(w, r)
	}
}

// describeIntake says, for /config, whether the intake is on and what it
// holds; the token files are named, their tokens never shown.
func describeIntake(w io.Writer, in config.Intake, registered int) {
	if !in.Enabled() {
		if registered > 0 {
			fmt.Fprintf(w, "\n# intake: off; %s registered before are still tracked\n", plural.Count(registered, "batch", "batches"))
		}
		return
	}
	fmt.Fprintf(w, "\n# intake: on at %s, tokens from %s; %s registered (at most %d)\n", intake.Path,
		strings.Join(in.BearerTokenFiles, ", "), plural.Count(registered, "batch", "batches"), in.MaxBatches)
}
