// Package partnercenter is a small client for the Partner Center REST API
// resource "Get BatchJobStatus" (device deployment for Windows Autopilot).
//
// It knows nothing about Prometheus: it returns typed results and typed
// errors, and reports its own traffic through the Observer interface. The
// bearer tokens it sends come from a TokenSource; package auth holds the
// sources that get them from Microsoft Entra ID.
package partnercenter

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Status is the state of a batch or of one device in it, normalised from
// the many spellings the service uses.
type Status int

// The documented status values. StatusUnknown also stands for every value
// the exporter does not recognise.
const (
	StatusQueued Status = iota
	StatusProcessing
	StatusFinished
	StatusFinishedWithErrors
	StatusUnknown
	numStatuses
)

// Statuses lists every Status in a fixed order, for callers that must emit
// one series per possible value.
var Statuses = [numStatuses]Status{StatusQueued, StatusProcessing, StatusFinished, StatusFinishedWithErrors, StatusUnknown}

var statusNames = [numStatuses]string{"queued", "processing", "finished", "finished_with_errors", "unknown"}

// String returns the snake_case name used in metric labels and pages.
func (s Status) String() string {
	if s < 0 || s >= numStatuses {
		return "unknown"
	}
	return statusNames[s]
}

// Done reports whether the status is final: such a batch never changes again.
func (s Status) Done() bool {
	return s == StatusFinished || s == StatusFinishedWithErrors
}

// statusAliases maps a folded spelling (lower case, no '_' or '-' or
// spaces) to its Status.
var statusAliases = map[string]Status{
	"queued":             StatusQueued,
	"processing":         StatusProcessing,
	"inprogress":         StatusProcessing,
	"finished":           StatusFinished,
	"finishedwitherrors": StatusFinishedWithErrors,
	"unknown":            StatusUnknown,
}

// ParseStatus matches raw case-, '_'-, '-'- and space-insensitively.
// It returns ok=false when raw is not a known spelling (the result is then
// StatusUnknown) so that callers can log the unexpected value.
func ParseStatus(raw string) (s Status, ok bool) {
	folded := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(raw)))
	s, ok = statusAliases[folded]
	if !ok {
		return StatusUnknown, false
	}
	return s, true
}

// DeviceCounts holds the number of devices per Status, indexed by Status.
type DeviceCounts [numStatuses]int

// Total is the number of devices in the batch.
func (d DeviceCounts) Total() int {
	n := 0
	for _, c := range d {
		n += c
	}
	return n
}

// ErrorCount is the number of devices that reported one error code.
type ErrorCount struct {
	Code string
	// Description is the first description seen for this code, cut to
	// MaxErrorDescriptionLen bytes (on a rune boundary).
	Description string
	Devices     int
}

// Device is one device that failed, kept for the failed-device pages.
type Device struct {
	SerialNumber     string
	DeviceID         string
	ProductKey       string
	Status           Status
	ErrorCode        string
	ErrorDescription string
}

// Failed reports whether the device counts as failed: it carries an error
// code or the device status is finished_with_errors.
func (d Device) Failed() bool {
	return d.ErrorCode != "" || d.Status == StatusFinishedWithErrors
}

// Batch is the decoded summary of one BatchUploadDetails response. The
// device list is folded into counts while it is read, so its size does not
// depend on the number of devices, except FailedDevices (capped).
type Batch struct {
	TrackingID string
	Status     Status
	// RawStatus is the status string as the service sent it.
	RawStatus string
	// StartedTime and CompletedTime are zero while unset.
	StartedTime   time.Time
	CompletedTime time.Time
	Devices       DeviceCounts
	// UnknownDeviceStatuses lists distinct device status values that were
	// not recognised (at most maxUnknownStatuses), for logging.
	UnknownDeviceStatuses []string
	// Errors has one entry per distinct non-empty error code, in the order
	// first seen, at most MaxErrorCodes; devices with further codes are
	// counted in OtherErrorDevices.
	Errors            []ErrorCount
	OtherErrorDevices int
	// FailedDevices holds at most DecodeOptions.MaxFailedDevices failed
	// devices; FailedDevicesOmitted counts the failed ones left out.
	FailedDevices        []Device
	FailedDevicesOmitted int
}

// Limits on what one decoded batch keeps, so that memory is bounded by
// these numbers rather than by the size of the response.
const (
	MaxErrorCodes          = 1000
	MaxErrorDescriptionLen = 128
	maxUnknownStatuses     = 16
	// DefaultMaxFailedDevices is the exporter's default for
	// DecodeOptions.MaxFailedDevices (its configuration's
	// max_failed_devices_per_batch). Decode applies no default of its own.
	DefaultMaxFailedDevices = 10000
)

// DecodeOptions tunes Decode.
type DecodeOptions struct {
	// MaxFailedDevices caps Batch.FailedDevices; 0 (or less) keeps none,
	// as in the configuration.
	MaxFailedDevices int
}

// Duration is completed − started once both are set, and now − started
// while an unfinished batch runs (running is then true). A finished batch
// without a completion time has none (ok is false) rather than one that
// grows for ever, and so has a batch that has not started. Clock skew
// never makes it negative.
func (b *Batch) Duration(now time.Time) (d time.Duration, running, ok bool) {
	switch {
	case b.StartedTime.IsZero():
		return 0, false, false
	case !b.CompletedTime.IsZero():
		return max(b.CompletedTime.Sub(b.StartedTime), 0), false, true
	case b.Status.Done():
		return 0, false, false
	}
	return max(now.Sub(b.StartedTime), 0), true, true
}

// ErrorsByDevices returns a copy of Errors, the codes with most devices
// first and ties in the order the service listed them.
func (b *Batch) ErrorsByDevices() []ErrorCount {
	codes := slices.Clone(b.Errors)
	slices.SortStableFunc(codes, func(x, y ErrorCount) int { return cmp.Compare(y.Devices, x.Devices) })
	return codes
}
