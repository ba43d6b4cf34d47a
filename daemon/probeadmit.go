package daemon

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/config"
)

// maxAdmittedBatches bounds the batches that are read only because /probe
// named them, so that probing random IDs cannot grow what the exporter
// keeps (in memory and on disk) without end.
const maxAdmittedBatches = 10000

// admission is one unlisted batch /probe admitted.
type admission struct {
	target     batchstate.Target
	lastProbed time.Time
}

// probeAdmissions is the registry of the batches /probe may read although
// neither the configuration nor a batch file lists them (with
// probe.allow_unlisted_batches or probe.allow_unconfigured_customers).
// An admitted batch is forgotten once it has not been probed for
// probe.forget_unprobed_after; admissions are rate-limited and capped.
// A batch a publish removed from the list is not admitted again until an
// /sd answer without it has been served, so that Prometheus probing it
// from a discovery result older than the removal cannot bring it back.
//
// The registry owns admission only: the store learns the admitted batches
// through onChange, which re-publishes the live configuration.
type probeAdmissions struct {
	now func() time.Time
	// onChange is called, without the registry's lock, after the admitted
	// batches changed.
	onChange func()

	mu       sync.Mutex
	settings config.Probe
	limiter  *rate.Limiter
	admitted map[string]admission
	// removed holds when publishes took batches off the list, by key,
	// until an /sd answer that does not list them was served or, for
	// setups that do not use /sd, forget_unprobed_after has passed.
	removed map[string]time.Time
	// sweep forgets the unprobed batches when the first of them is due;
	// nil while nothing is admitted or after stop.
	sweep   *time.Timer
	stopped bool
}

func newProbeAdmissions(now func() time.Time, onChange func()) *probeAdmissions {
	return &probeAdmissions{
		now:      now,
		onChange: onChange,
		admitted: map[string]admission{},
		removed:  map[string]time.Time{},
	}
}

// admissionError is why /probe refuses a batch before anything is read.
func admissionError(status int, retryAfter time.Duration, format string, args ...any) error {
	return &probeRequestError{status: status, retryAfter: retryAfter, msg: fmt.Sprintf(format, args...)}
}

// admit makes the unlisted targets of one probe admitted, or says why
// not. Admitted batches have their last-probed time renewed. Each new
// admission takes one token of the rate limiter; when the tokens run out
// the batches admitted so far stay admitted (so that a retry makes
// progress) and the probe is refused with 429 and a Retry-After.
func (a *probeAdmissions) admit(targets []batchstate.Target) error {
	changed, err := a.admitLocked(targets)
	if changed {
		a.onChange()
	}
	return err
}

func (a *probeAdmissions) admitLocked(targets []batchstate.Target) (changed bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for _, t := range targets {
		k := t.Key()
		if ad, ok := a.admitted[k]; ok {
			ad.lastProbed = now
			a.admitted[k] = ad
			continue
		}
		if err = a.refusal(t, k, now); err != nil {
			break
		}
		a.admitted[k] = admission{target: t, lastProbed: now}
		changed = true
	}
	if changed {
		a.scheduleSweep(now)
	}
	return changed, err
}

// refusal says why a batch that is not admitted cannot be now, or takes
// one admission token for it.
func (a *probeAdmissions) refusal(t batchstate.Target, k string, now time.Time) error {
	switch {
	case a.stillRemoved(k, now):
		return admissionError(http.StatusNotFound, 0,
			"batch %s of customer %s was removed from the configuration or batch files; "+
				"it can be probed again once /sd has been served without it", t.TrackingID, t.CustomerID)
	case len(a.admitted) >= maxAdmittedBatches:
		return admissionError(http.StatusServiceUnavailable, 0,
			"%d unlisted batches are admitted already, the most there may be; list the batches instead "+
				"(unprobed ones are forgotten after probe.forget_unprobed_after)", maxAdmittedBatches)
	case !a.limiter.AllowN(now, 1):
		return admissionError(http.StatusTooManyRequests, a.retryAfter(now),
			"more than %d unlisted batches admitted per minute (probe.max_admissions_per_minute)",
			a.settings.MaxAdmissionsPerMinute)
	}
	return nil
}

// stillRemoved reports whether a publish took the batch off the list and
// no /sd answer has been served since, nor forget_unprobed_after passed.
func (a *probeAdmissions) stillRemoved(k string, now time.Time) bool {
	at, ok := a.removed[k]
	if ok && now.Sub(at) >= a.settings.ForgetUnprobedAfter {
		delete(a.removed, k)
		return false
	}
	return ok
}

// retryAfter is how long until the limiter has a token again, in whole
// seconds as Retry-After wants them.
func (a *probeAdmissions) retryAfter(now time.Time) time.Duration {
	missing := 1 - a.limiter.TokensAt(now)
	// From the setting rather than the limiter's rate per second, which
	// is inexact in floating point (2 a minute would give 31 s).
	secs := math.Ceil(missing * 60 / float64(a.settings.MaxAdmissionsPerMinute))
	return time.Duration(max(secs, 1)) * time.Second
}

// targets lists the admitted batches, for the store's membership.
func (a *probeAdmissions) targets() []batchstate.Target {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]batchstate.Target, 0, len(a.admitted))
	for _, ad := range a.admitted {
		out = append(out, ad.target)
	}
	// A stable order keeps the store's membership calls reproducible.
	slices.SortFunc(out, func(x, y batchstate.Target) int { return cmp.Compare(x.Key(), y.Key()) })
	return out
}

// published follows a change of the live configuration: its probe
// settings, and the batches old listed that listed no longer does, which
// may not be admitted until /sd has been served without them. Batches now
// listed need no admission. With the opt-in off the registry empties.
// It is called under the publisher's lock and does not call onChange: the
// publish under way already hands the store the admitted batches.
func (a *probeAdmissions) published(p config.Probe, old, listed []batchstate.Target) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.configure(p, now)
	if !p.UnlistedAllowed() {
		clear(a.admitted)
		clear(a.removed)
		return
	}
	isListed := make(map[string]bool, len(listed))
	for _, t := range listed {
		isListed[t.Key()] = true
		delete(a.admitted, t.Key())
		delete(a.removed, t.Key())
	}
	for _, t := range old {
		if !isListed[t.Key()] {
			a.removed[t.Key()] = now
		}
	}
	a.forgetUnprobed(now)
}

// configure applies the probe settings: max_admissions_per_minute a
// minute, and as many at once. The limiter keeps the tokens it has, up to
// a new burst.
func (a *probeAdmissions) configure(p config.Probe, now time.Time) {
	a.settings = p
	perSecond := rate.Limit(float64(p.MaxAdmissionsPerMinute) / 60)
	if a.limiter == nil {
		a.limiter = rate.NewLimiter(perSecond, p.MaxAdmissionsPerMinute)
		return
	}
	a.limiter.SetLimitAt(now, perSecond)
	a.limiter.SetBurstAt(now, p.MaxAdmissionsPerMinute)
}

// sdServed notes that an /sd answer listing served went out: the removed
// batches it does not list are no longer in Prometheus' discovery, so
// probes of them come from elsewhere and may be admitted again.
func (a *probeAdmissions) sdServed(served []batchstate.Target) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.removed) == 0 {
		return
	}
	inAnswer := make(map[string]bool, len(served))
	for _, t := range served {
		inAnswer[t.Key()] = true
	}
	for k := range a.removed {
		if !inAnswer[k] {
			delete(a.removed, k)
		}
	}
}

// forgetUnprobed drops the admitted batches not probed for
// forget_unprobed_after, and reports whether there were any.
func (a *probeAdmissions) forgetUnprobed(now time.Time) bool {
	forgot := false
	for k, ad := range a.admitted {
		if now.Sub(ad.lastProbed) >= a.settings.ForgetUnprobedAfter {
			delete(a.admitted, k)
			forgot = true
		}
	}
	return forgot
}

// forgetDue is the sweep: it forgets what is due, tells the publisher,
// and schedules the next sweep.
func (a *probeAdmissions) forgetDue() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	if a.sweep != nil {
		a.sweep.Stop() // when called before its time, as tests do
		a.sweep = nil
	}
	now := a.now()
	forgot := a.forgetUnprobed(now)
	a.scheduleSweep(now)
	a.mu.Unlock()
	if forgot {
		a.onChange()
	}
}

// scheduleSweep arms the sweep for when the least recently probed batch
// is due to be forgotten, unless one is armed or nothing is admitted.
// A sweep that finds a batch probed meanwhile just arms the next one.
func (a *probeAdmissions) scheduleSweep(now time.Time) {
	if a.sweep != nil || a.stopped || len(a.admitted) == 0 {
		return
	}
	oldest := now
	for _, ad := range a.admitted {
		if ad.lastProbed.Before(oldest) {
			oldest = ad.lastProbed
		}
	}
	a.sweep = time.AfterFunc(max(oldest.Add(a.settings.ForgetUnprobedAfter).Sub(now), time.Second), a.forgetDue)
}

// stop disarms the sweep for good.
func (a *probeAdmissions) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if a.sweep != nil {
		a.sweep.Stop()
		a.sweep = nil
	}
}
