package batchstate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// How API health is judged; see Reader.Up.
const (
	// minHealthWindow is the shortest time an answer from Partner Center
	// vouches for it against failing reads.
	minHealthWindow = 5 * time.Minute
	// minCanaryInterval bounds canary reads when refresh_interval is 0.
	minCanaryInterval = 10 * time.Second
)

// healthWindow is how long an answer vouches for the API: a few minutes,
// and always two refresh intervals, so that the canary (at most one per
// refresh interval) has time to answer before the answer goes stale.
func healthWindow(refresh time.Duration) time.Duration {
	return max(minHealthWindow, 2*refresh)
}

func canaryInterval(refresh time.Duration) time.Duration {
	return max(minCanaryInterval, refresh)
}

// health is what reads tell of Partner Center as a whole. It belongs to
// the Reader, which outlives reloads and serves every scrape and probe, so
// API health is a fact about the exporter, never about one scrape target.
type health struct {
	// lastAnswer is when a read last got an answer that shows the API
	// usable with our credentials (see answered), in Unix nanoseconds.
	lastAnswer atomic.Int64
	// lastSuccess is when a read last succeeded: answered and decoded.
	lastSuccess atomic.Int64

	mu sync.Mutex
	// canaryStarted is when the last canary read started.
	canaryStarted time.Time
	// canaryFailed is when the last canary read ended without a usable
	// answer; it counts only while it is newer than lastAnswer.
	canaryFailed time.Time
	// canaryDone is closed when the canary read under way ends; nil when
	// none runs.
	canaryDone <-chan struct{}
	// canaryNext rotates the canary over the settled batches.
	canaryNext int
}

func loadTime(v *atomic.Int64) time.Time {
	if ns := v.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// answered reports whether a read's outcome shows that Partner Center
// answers us: a success, or an answer about the batch itself (403, 404, a
// 429, a body that cannot be used). No answer, a timeout, a token refusal,
// a 401 or a 5xx show nothing of the kind, and neither does a hold, which
// sent no request.
func answered(err error) bool {
	var apiErr *partnercenter.Error
	return err == nil || (errors.As(err, &apiErr) && apiErr.StatusCode != 0 && !partnercenter.Unavailable(err))
}

// note records a read's outcome, ended at now, in the API's health.
func (h *health) note(now time.Time, err error) {
	if err == nil {
		h.lastSuccess.Store(now.UnixNano())
	}
	if answered(err) {
		h.lastAnswer.Store(now.UnixNano())
	}
}

// evidence is what the stored reads of the batches say against the API
// since its last answer.
type evidence struct {
	// token is true when a batch's latest read failed for want of a token.
	token bool
	// unavailable is true when a batch's latest read got no usable answer:
	// no answer, a timeout, 401 or 5xx.
	unavailable bool
	// canary is a settled batch to read when the evidence is ambiguous.
	canary    Target
	hasCanary bool
}

// gather looks at the latest read of every batch in targets. Reads that
// started before the last answer are outweighed by it and not counted.
func (r *Reader) gather(targets []Target, since time.Time) evidence {
	var ev evidence
	r.health.mu.Lock()
	start := r.health.canaryNext
	r.health.mu.Unlock()
	for i := range targets {
		t := targets[(start+i)%len(targets)]
		s, _ := r.store.Get(t)
		switch {
		case s.Settled():
			if !ev.hasCanary {
				ev.canary, ev.hasCanary = t, true
			}
		case s.LastError == nil, s.LastAttempt.Before(since), errors.Is(s.LastError, ErrRestored):
		case isTokenError(s.LastError):
			ev.token = true
		case partnercenter.Unavailable(s.LastError):
			ev.unavailable = true
		}
	}
	return ev
}

func isTokenError(err error) bool {
	var noToken *partnercenter.NoTokenError
	return errors.As(err, &noToken)
}

// Up tells whether Partner Center is usable with our credentials, judged
// on the batches in targets (the listed ones; a probe's few say too little)
// and on every answer any read got:
//   - 0 while the latest read of some batch failed for want of a token;
//   - 0 when reads fail with no usable answer (no answer, a timeout, 401,
//     5xx) and a canary read of a settled batch fails that way too;
//   - 0 when reads fail that way and nothing has answered for the window;
//   - 1 otherwise: an answer from any batch within the window, a failure
//     of the batch itself (403, 404, an unusable body), a 429 hold, or
//     nothing left to read.
//
// While reads fail and the last answer is older than a refresh interval,
// Up reads one settled batch as a canary, at most once per refresh
// interval, and waits for it until ctx ends: it tells a batch's own fault
// from an outage with evidence rather than a guess.
func (r *Reader) Up(ctx context.Context, src Source, targets []Target, p ReadPolicy) bool {
	lastAnswer := loadTime(&r.health.lastAnswer)
	ev := r.gather(targets, lastAnswer)
	if ev.unavailable && !ev.token && ev.hasCanary {
		if done := r.canary(ctx, src, ev.canary, p); done != nil {
			select {
			case <-done:
			case <-ctx.Done():
			}
			lastAnswer = loadTime(&r.health.lastAnswer)
			ev = r.gather(targets, lastAnswer)
		}
	}
	return r.judge(ev, lastAnswer, p)
}

func (r *Reader) judge(ev evidence, lastAnswer time.Time, p ReadPolicy) bool {
	r.health.mu.Lock()
	canaryFailed := r.health.canaryFailed.After(lastAnswer)
	r.health.mu.Unlock()
	switch {
	case ev.token:
		return false
	case !ev.unavailable:
		return true
	case canaryFailed:
		return false
	}
	return r.now().Sub(lastAnswer) <= healthWindow(p.Refresh)
}

// canaryKey is the canary's place in the read queue: it waits for a
// request slot like any read, and at most one runs at a time.
const canaryKey = "\x00canary"

// canary starts a read of the settled batch t, or joins the one under
// way, and returns the channel closed when it ends. It returns nil when
// the last answer or the last canary is younger than a refresh interval.
// The canary's outcome goes into the API's health only: the batch keeps
// its stored values, which are final.
func (r *Reader) canary(ctx context.Context, src Source, t Target, p ReadPolicy) <-chan struct{} {
	h := &r.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.canaryDone != nil {
		return h.canaryDone
	}
	now, every := r.now(), canaryInterval(p.Refresh)
	if now.Sub(loadTime(&h.lastAnswer)) < every || now.Sub(h.canaryStarted) < every {
		return nil
	}
	h.canaryStarted = now
	h.canaryNext++
	detached := context.WithoutCancel(ctx)
	h.canaryDone = r.reads.do(canaryKey, func() { r.readCanary(detached, src, t, p) })
	return h.canaryDone
}

// readCanary reads t and notes what the answer says of the API.
func (r *Reader) readCanary(ctx context.Context, src Source, t Target, p ReadPolicy) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout(p))
	defer cancel()
	_, err := src.BatchStatus(ctx, t.CustomerID, t.TrackingID)
	ended := r.now()
	h := &r.health
	h.note(ended, err)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !answered(err) {
		h.canaryFailed = ended
	}
	h.canaryDone = nil
	level.Debug(log.With(r.logger, "customer_id", t.CustomerID, "batch_tracking_id", t.TrackingID)).Log(
		"msg", "canary read of a finished batch, to tell failing batches from an outage",
		"answered", answered(err), "err", errString(err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
