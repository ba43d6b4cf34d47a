package batchpages

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// The model below is shared by the three formats: HTML templates read the
// same structs that are encoded as JSON, so that the formats cannot drift
// apart. Its JSON field names are part of the exporter's documented
// interface (README, "Failed-device pages").

// listPage is GET /batches.
type listPage struct {
	GeneratedTime            time.Time      `json:"generated_time"`
	MaxFailedDevicesPerBatch int            `json:"max_failed_devices_per_batch"`
	Batches                  []batchSummary `json:"batches"`
}

// batchPage is GET /batches/{customer_id}/{batch_tracking_id}.
type batchPage struct {
	GeneratedTime            time.Time      `json:"generated_time"`
	MaxFailedDevicesPerBatch int            `json:"max_failed_devices_per_batch"`
	Batch                    batchSummary   `json:"batch"`
	FailedDevices            []failedDevice `json:"failed_devices"`
}

// attention says why a batch deserves a look; the list is sorted by it.
type attention string

// The attention values, most urgent first (see attentionRank).
const (
	attentionFailing    attention = "failing"    // the last read failed
	attentionNotRead    attention = "not_read"   // never read yet
	attentionUnfinished attention = "unfinished" // queued, processing or unknown
	attentionErrored    attention = "errored"    // finished, some devices failed
	attentionOK         attention = "ok"         // finished without errors
)

var attentionRank = map[attention]int{
	attentionFailing:    0,
	attentionNotRead:    1,
	attentionUnfinished: 2,
	attentionErrored:    3,
	attentionOK:         4,
}

// batchSummary is one configured batch as the exporter last saw it.
type batchSummary struct {
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name"`
	TrackingID   string `json:"batch_tracking_id"`
	// Source is where the batch is listed: "configuration", the batch
	// file and line ("uploads.txt:12"), or "api" for the intake API.
	Source string `json:"source"`
	// Registered is when the intake API registered the batch; absent for
	// the other sources.
	Registered *time.Time `json:"registered,omitempty"`
	Attention  attention  `json:"attention"`
	// Status through FailedDevicesOmitted come from the last successful
	// read. Without one, the pointers are null, Errors is empty and the
	// counts are 0.
	Status          *string       `json:"status"`
	Devices         *deviceCounts `json:"devices"`
	StartedTime     *time.Time    `json:"started_time"`
	CompletedTime   *time.Time    `json:"completed_time"`
	DurationSeconds *float64      `json:"duration_seconds"`
	Running         bool          `json:"running"`
	// Errors lists the error codes, most devices first.
	Errors            []errorCount `json:"errors"`
	OtherErrorDevices int          `json:"other_error_devices"`
	// FailedDevicesKept is how many failed devices the batch page lists;
	// FailedDevicesOmitted is how many more failed but were not kept.
	FailedDevicesKept    int        `json:"failed_devices_kept"`
	FailedDevicesOmitted int        `json:"failed_devices_omitted"`
	LastSuccessTime      *time.Time `json:"last_success_time"`
	LastAttemptTime      *time.Time `json:"last_attempt_time"`
	LastError            *readError `json:"last_error"`
}

// deviceCounts is the number of devices per device status.
type deviceCounts struct {
	Queued             int `json:"queued"`
	Processing         int `json:"processing"`
	Finished           int `json:"finished"`
	FinishedWithErrors int `json:"finished_with_errors"`
	Unknown            int `json:"unknown"`
	Total              int `json:"total"`
}

// errorCount is the number of devices that reported one error code.
type errorCount struct {
	Code        string `json:"error_code"`
	Description string `json:"description"`
	Devices     int    `json:"devices"`
}

// failedDevice is one kept failed device; its JSON names are also the CSV
// columns.
type failedDevice struct {
	SerialNumber     string `json:"serial_number"`
	DeviceID         string `json:"device_id"`
	ProductKey       string `json:"product_key"`
	Status           string `json:"status"`
	ErrorCode        string `json:"error_code"`
	ErrorDescription string `json:"error_description"`
}

// Where a failed read failed.
const (
	sourcePartnerCenter = "partner_center" // the batch request
	sourceTokenEndpoint = "token_endpoint" // getting an access token
	sourceExporter      = "exporter"       // a deadline or another local cause
)

// readError is why the last read of a batch failed. HTTPStatus is 0 when no
// HTTP answer was received; the strings are empty when unknown.
type readError struct {
	Source        string `json:"source"`
	Message       string `json:"message"`
	HTTPStatus    int    `json:"http_status"`
	ErrorCode     string `json:"error_code"`
	Description   string `json:"description"`
	CorrelationID string `json:"correlation_id"`
	RequestID     string `json:"request_id"`
}

// stateFunc reads the batch store (batchstate.Store) without calling the API.
type stateFunc func(batchstate.Target) (batchstate.BatchState, bool)

// buildList summarises every configured batch, the ones needing attention
// first and otherwise in configuration order.
func buildList(listing Listing, state stateFunc, now time.Time) listPage {
	summaries := make([]batchSummary, 0, len(listing.Targets))
	for _, t := range listing.Targets {
		s, _ := state(t)
		if s.Retired {
			continue
		}
		summaries = append(summaries, summarize(t, s, now))
	}
	slices.SortStableFunc(summaries, func(a, b batchSummary) int {
		return cmp.Compare(attentionRank[a.Attention], attentionRank[b.Attention])
	})
	return listPage{
		GeneratedTime:            now,
		MaxFailedDevicesPerBatch: listing.MaxFailedDevicesPerBatch,
		Batches:                  summaries,
	}
}

// buildBatch describes one batch with its failed devices.
func buildBatch(maxFailedDevices int, t batchstate.Target, state stateFunc, now time.Time) batchPage {
	s, _ := state(t)
	page := batchPage{
		GeneratedTime:            now,
		MaxFailedDevicesPerBatch: maxFailedDevices,
		Batch:                    summarize(t, s, now),
		FailedDevices:            []failedDevice{},
	}
	if s.Batch != nil {
		for _, d := range s.Batch.FailedDevices {
			page.FailedDevices = append(page.FailedDevices, failedDevice{
				SerialNumber:     d.SerialNumber,
				DeviceID:         d.DeviceID,
				ProductKey:       d.ProductKey,
				Status:           d.Status.String(),
				ErrorCode:        d.ErrorCode,
				ErrorDescription: d.ErrorDescription,
			})
		}
	}
	return page
}

// findTarget returns the batch of the given (lower-case) customer among
// targets.
func findTarget(targets []batchstate.Target, customerID string) (batchstate.Target, bool) {
	for _, t := range targets {
		if t.CustomerID == customerID {
			return t, true
		}
	}
	return batchstate.Target{}, false
}

func summarize(t batchstate.Target, s batchstate.BatchState, now time.Time) batchSummary {
	sum := batchSummary{
		CustomerID:      t.CustomerID,
		CustomerName:    t.CustomerName,
		TrackingID:      t.TrackingID,
		Source:          sourceOf(t),
		Registered:      timeOrNil(t.Registered),
		Errors:          []errorCount{},
		LastSuccessTime: timeOrNil(s.LastSuccess),
		LastAttemptTime: timeOrNil(s.LastAttempt),
	}
	if s.LastError != nil {
		sum.LastError = describeError(s.LastError)
	}
	if b := s.Batch; b != nil {
		status := b.Status.String()
		sum.Status = &status
		sum.Devices = countDevices(b.Devices)
		sum.StartedTime = timeOrNil(b.StartedTime)
		sum.CompletedTime = timeOrNil(b.CompletedTime)
		if d, running, ok := b.Duration(now); ok {
			secs := d.Seconds()
			sum.DurationSeconds, sum.Running = &secs, running
		}
		for _, e := range b.ErrorsByDevices() {
			sum.Errors = append(sum.Errors, errorCount{Code: e.Code, Description: e.Description, Devices: e.Devices})
		}
		sum.OtherErrorDevices = b.OtherErrorDevices
		sum.FailedDevicesKept = len(b.FailedDevices)
		sum.FailedDevicesOmitted = b.FailedDevicesOmitted
	}
	sum.Attention = classify(s)
	return sum
}

// sourceOf names where a batch is listed.
func sourceOf(t batchstate.Target) string {
	if t.Origin == "" {
		return "configuration"
	}
	return t.Origin
}

func classify(s batchstate.BatchState) attention {
	b := s.Batch
	switch {
	case s.LastError != nil:
		return attentionFailing
	case b == nil:
		return attentionNotRead
	case !b.Status.Done():
		return attentionUnfinished
	case hasFailures(b):
		return attentionErrored
	}
	return attentionOK
}

// hasFailures reports whether any device of the batch failed, whatever the
// batch status says.
func hasFailures(b *partnercenter.Batch) bool {
	return b.Status == partnercenter.StatusFinishedWithErrors ||
		b.Devices[partnercenter.StatusFinishedWithErrors] > 0 ||
		len(b.Errors) > 0 || b.OtherErrorDevices > 0 ||
		len(b.FailedDevices) > 0 || b.FailedDevicesOmitted > 0
}

func countDevices(d partnercenter.DeviceCounts) *deviceCounts {
	return &deviceCounts{
		Queued:             d[partnercenter.StatusQueued],
		Processing:         d[partnercenter.StatusProcessing],
		Finished:           d[partnercenter.StatusFinished],
		FinishedWithErrors: d[partnercenter.StatusFinishedWithErrors],
		Unknown:            d[partnercenter.StatusUnknown],
		Total:              d.Total(),
	}
}

// describeError picks out of a read error what helps to act on it. The
// message is the error's own text: the client already keeps URLs, tokens
// and secrets out of its errors. Anything that is neither an API nor a
// token error (a scrape deadline, an invalid ID) is the exporter's side.
func describeError(err error) *readError {
	re := &readError{Source: sourceExporter, Message: err.Error()}
	var apiErr *partnercenter.Error
	var tokenErr *partnercenter.TokenError
	switch {
	case errors.As(err, &apiErr):
		re.Source = sourcePartnerCenter
		re.HTTPStatus = apiErr.StatusCode
		re.ErrorCode = apiErr.Code
		re.Description = apiErr.Description
		re.CorrelationID = apiErr.CorrelationID
		re.RequestID = apiErr.RequestID
	case errors.As(err, &tokenErr):
		re.Source = sourceTokenEndpoint
		re.HTTPStatus = tokenErr.StatusCode
		re.ErrorCode = tokenErr.Code
		re.Description = tokenErr.Description
	}
	return re
}

// timeOrNil returns t in UTC, or nil for the zero time ("unset").
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
