package waitcmd

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// The results of a wait, as the JSON output names them.
const (
	resultFinished           = "finished"
	resultFinishedWithErrors = "finished_with_errors"
	resultTimeout            = "timeout"
	resultUnknown            = "unknown"
	resultReadFailed         = "read_failed"
	resultInterrupted        = "interrupted"
)

// outcome is the final state the summary and the JSON output show.
type outcome struct {
	batch  batchfiles.Batch
	result string
	// exitCode is the command's exit status.
	exitCode int
	elapsed  time.Duration
	// last is the last successful read, nil when there was none.
	last *partnercenter.Batch
	// lastErr is the error of the last read when it failed, and
	// failures how many reads in a row failed up to it.
	lastErr  error
	failures int
	timeout  time.Duration
	ignore   map[string]bool
	// failed and ignored count the failed devices of last that fail
	// the wait and those whose error code is ignored.
	failed, ignored int
}

// waiter polls one batch.
type waiter struct {
	client      *partnercenter.Client
	batch       batchfiles.Batch
	opts        Options
	ignore      map[string]bool
	e           env
	progress    *progress
	readTimeout time.Duration
	start       time.Time

	last     *partnercenter.Batch
	lastErr  error
	failures int
}

// wait reads the batch until it is finished, its status is unknown, reads
// keep failing, the timeout passes or a signal arrives.
func (w *waiter) wait(ctx context.Context) *outcome {
	stopRedraws := w.progress.redrawEvery(redrawEvery, func() time.Duration { return w.e.now().Sub(w.start) })
	defer stopRedraws()
	for {
		b, err := w.read(ctx)
		if ctx.Err() != nil {
			return w.stopped(ctx)
		}
		var next time.Duration
		switch {
		case err == nil:
			w.last, w.lastErr, w.failures = b, nil, 0
			w.show(nil)
			if b.Status.Done() || b.Status == partnercenter.StatusUnknown {
				return w.outcome(ctx)
			}
			next = w.opts.Interval
		case throttled(err):
			// Partner Center asked to wait: not a failure, and the
			// client's hold says until when.
			w.lastErr = err
			next = max(w.opts.Interval, time.Until(w.client.ThrottledUntil()))
			w.show(&holdEnd{until: w.client.ThrottledUntil()})
		default:
			w.lastErr = err
			w.failures++
			w.show(nil)
			if permanent(err) || w.failures >= w.opts.MaxReadFailures {
				return w.outcome(ctx)
			}
			next = backoff(w.opts.Interval, w.failures)
		}
		if !pause(ctx, next) {
			return w.stopped(ctx)
		}
	}
}

// read reads the batch once, bounded so that the client waits out only a
// short Retry-After itself and reports a long one, which the progress
// line then shows.
func (w *waiter) read(ctx context.Context) (*partnercenter.Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, w.readTimeout)
	defer cancel()
	return w.client.BatchStatus(ctx, w.batch.CustomerID, w.batch.TrackingID)
}

// pause waits d; it reports false when ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *waiter) show(hold *holdEnd) {
	w.progress.update(progressText(w.last, w.lastErr, w.failures, w.opts.MaxReadFailures, hold), w.e.now().Sub(w.start))
}

// stopped is the outcome once ctx ended: the timeout or a signal.
func (w *waiter) stopped(ctx context.Context) *outcome {
	out := w.outcome(ctx)
	if sig, ok := errors.AsType[interrupted](context.Cause(ctx)); ok {
		out.result, out.exitCode = resultInterrupted, sig.exitCode()
	} else {
		out.result, out.exitCode = resultTimeout, ExitIncomplete
	}
	return out
}

// outcome judges what is known now.
func (w *waiter) outcome(ctx context.Context) *outcome {
	out := &outcome{
		batch: w.batch, elapsed: w.e.now().Sub(w.start), last: w.last, lastErr: w.lastErr,
		failures: w.failures, timeout: w.opts.Timeout, ignore: w.ignore,
	}
	if w.last != nil {
		out.failed, out.ignored = countFailures(w.last, w.ignore)
	}
	switch {
	case ctx.Err() != nil:
		// stopped sets the result.
	case w.lastErr != nil:
		out.result, out.exitCode = resultReadFailed, ExitIncomplete
	case w.last.Status == partnercenter.StatusUnknown:
		out.result, out.exitCode = resultUnknown, ExitIncomplete
	case out.failed > 0 || w.last.Status == partnercenter.StatusFinishedWithErrors && out.ignored == 0:
		// A batch that says it finished with errors fails the wait even
		// when no failed device was kept to say why, unless every error
		// it listed is ignored.
		out.result, out.exitCode = resultFinishedWithErrors, ExitFinishedWithErrors
	default:
		out.result, out.exitCode = resultFinished, ExitFinished
	}
	return out
}

// countFailures counts the failed devices of b: failed ones fail the
// wait, ignored ones carry an ignored error code. Devices are counted by
// error code (every code, not only the failed devices kept); a device
// with an error status but no code, and one with a code beyond the codes
// kept, is never ignored.
func countFailures(b *partnercenter.Batch, ignore map[string]bool) (failed, ignored int) {
	for _, e := range b.Errors {
		if ignore[e.Code] {
			ignored += e.Devices
		} else {
			failed += e.Devices
		}
	}
	failed += b.OtherErrorDevices
	for _, d := range b.FailedDevices {
		if d.ErrorCode == "" && d.Failed() {
			failed++
		}
	}
	return failed, ignored
}

// throttled reports a read that Partner Center's 429 held back: the
// answer itself, or the client's hold that outlasted the read's bound.
func throttled(err error) bool {
	var holdErr *partnercenter.HoldError
	var apiErr *partnercenter.Error
	return errors.As(err, &holdErr) || errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests
}

// permanent reports a failed read that no retry will mend: the API
// refused the request (400) or the exporter's credentials (401 after a
// fresh token, 403), the token endpoint refused them, or a credential
// file cannot be read. A 404 is not: a batch just uploaded may not be
// readable at once.
func permanent(err error) bool {
	if apiErr, ok := errors.AsType[*partnercenter.Error](err); ok {
		switch apiErr.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			return true
		}
		return false
	}
	if tokenErr, ok := errors.AsType[*partnercenter.TokenError](err); ok {
		return tokenErr.StatusCode >= 400 && tokenErr.StatusCode < 500 && tokenErr.StatusCode != http.StatusTooManyRequests
	}
	var pathErr *fs.PathError
	return errors.As(err, &pathErr)
}

// backoff is the pause after the n-th failed read in a row: the interval,
// doubled for each further failure, at most maxBackoff (or the interval
// when that is longer).
func backoff(interval time.Duration, n int) time.Duration {
	d := interval
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return max(min(d, maxBackoff), interval)
}
