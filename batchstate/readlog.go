package batchstate

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// logOutcome logs what a read changed, judged against the state before it,
// so that nothing needs remembering beyond the state itself: a failure is
// logged when it starts or changes kind, a recovery once, and an
// unrecognised status value when it first appears.
func logOutcome(logger log.Logger, prev BatchState, batch *partnercenter.Batch, err error) {
	if errors.Is(prev.LastError, ErrRestored) {
		prev.LastError = nil // Not a failure: the batch was not read yet.
	}
	if err != nil {
		if prev.LastError == nil || failureSignature(prev.LastError) != failureSignature(err) {
			level.Warn(logger).Log(failureKeyvals(err)...)
		}
		return
	}
	if prev.LastError != nil {
		level.Info(logger).Log("msg", "batch read again successfully after failures")
	}
	for _, v := range newUnknownStatuses(prev.Batch, batch) {
		level.Warn(logger).Log("msg", "unrecognised status value, counted as unknown", "value", v)
	}
	level.Debug(logger).Log("msg", "batch read", "status", batch.Status, "devices", batch.Devices.Total())
}

func failureKeyvals(err error) []any {
	if _, ok := errors.AsType[*partnercenter.HoldError](err); ok {
		return []any{"msg", "batch not read", "err", err}
	}
	kv := []any{"msg", "reading batch failed", "err", err}
	if apiErr, ok := errors.AsType[*partnercenter.Error](err); ok {
		kv = append(kv, "http_status", apiErr.StatusCode, "error_code", apiErr.Code,
			"request_id", apiErr.RequestID, "correlation_id", apiErr.CorrelationID)
	}
	if errors.Is(err, partnercenter.ErrResponseTooLarge) {
		// The client says the numbers; the operator needs the setting.
		kv = append(kv, "setting", "partner_center.max_response_size")
	}
	return kv
}

// failureSignature identifies a kind of failure, so that a batch that
// keeps failing the same way is logged once: the same HTTP status and
// Partner Center code, the same class of transport failure (not its text,
// which names the local port), the same token endpoint refusal. A 429 and
// the exporter's hold that follows it are one kind, "throttled": a
// throttled batch alternates between them.
func failureSignature(err error) string {
	var apiErr *partnercenter.Error
	var tokenErr *partnercenter.TokenError
	var hold *partnercenter.HoldError
	switch {
	case errors.As(err, &hold):
		return "throttled"
	case errors.As(err, &apiErr):
		switch apiErr.StatusCode {
		case http.StatusTooManyRequests:
			return "throttled"
		case 0:
			return "no answer: " + partnercenter.TransportFailure(apiErr.Err)
		case http.StatusOK:
			if errors.Is(apiErr, partnercenter.ErrResponseTooLarge) {
				return "bad response: too large"
			}
			return "bad response"
		}
		return fmt.Sprintf("http %d code %s", apiErr.StatusCode, apiErr.Code)
	case errors.As(err, &tokenErr):
		return fmt.Sprintf("token endpoint %d %s", tokenErr.StatusCode, tokenErr.Code)
	}
	// No token (a token request that got no answer, a credential file
	// that cannot be read) or no time left.
	return "local: " + partnercenter.TransportFailure(err)
}

// newUnknownStatuses lists, sorted, the unrecognised status values of next
// that prev (the previous successful read, possibly nil) did not have.
func newUnknownStatuses(prev, next *partnercenter.Batch) []string {
	seen := unknownStatuses(prev)
	var fresh []string
	for _, v := range unknownStatuses(next) {
		if !slices.Contains(seen, v) && !slices.Contains(fresh, v) {
			fresh = append(fresh, v)
		}
	}
	slices.Sort(fresh)
	return fresh
}

// unknownStatuses is every unrecognised status value of b: its own and its
// devices' (the decoder keeps a bounded number of the latter).
func unknownStatuses(b *partnercenter.Batch) []string {
	if b == nil {
		return nil
	}
	values := b.UnknownDeviceStatuses
	if _, ok := partnercenter.ParseStatus(b.RawStatus); !ok {
		values = append(slices.Clip(values), b.RawStatus)
	}
	return values
}
