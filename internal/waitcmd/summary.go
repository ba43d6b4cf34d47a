package waitcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// writeSummary prints the outcome for a person: the last status, the
// devices per status, the error codes with their descriptions, a table of
// the failed devices and the result with its exit status.
func writeSummary(w io.Writer, out *outcome) {
	fmt.Fprintf(w, "batch %s of customer %s\n", out.batch.TrackingID, out.batch.CustomerID)
	b := out.last
	if b == nil {
		fmt.Fprintln(w, "status: not read")
	} else {
		status := b.Status.String()
		if raw := unknownRaw(b); raw != "" {
			status += fmt.Sprintf(" (Partner Center sent %q)", clean(raw))
		}
		fmt.Fprintf(w, "status: %s\n", status)
		fmt.Fprintf(w, "devices: %s\n", deviceText(b.Devices))
		writeErrorCodes(w, b, out.ignore)
		writeFailedDevices(w, b, out.ignore)
	}
	fmt.Fprintf(w, "elapsed: %s\n", elapsedText(out.elapsed))
	fmt.Fprintf(w, "result: %s (exit status %d)\n", resultText(out), out.exitCode)
}

func writeErrorCodes(w io.Writer, b *partnercenter.Batch, ignore map[string]bool) {
	codes := b.ErrorsByDevices()
	if len(codes) == 0 && b.OtherErrorDevices == 0 {
		return
	}
	fmt.Fprintln(w, "error codes:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CODE\tDEVICES\tDESCRIPTION")
	for _, e := range codes {
		desc := clean(e.Description)
		if ignore[e.Code] {
			desc += " (ignored)"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", clean(e.Code), e.Devices, desc)
	}
	if b.OtherErrorDevices > 0 {
		fmt.Fprintf(tw, "  (other)\t%d\tcodes beyond the first %d\n", b.OtherErrorDevices, partnercenter.MaxErrorCodes)
	}
	_ = tw.Flush() // w's own errors are the caller's, as with Fprintf.
}

func writeFailedDevices(w io.Writer, b *partnercenter.Batch, ignore map[string]bool) {
	if len(b.FailedDevices) == 0 && b.FailedDevicesOmitted == 0 {
		return
	}
	fmt.Fprintln(w, "failed devices:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERIAL NUMBER\tPRODUCT KEY\tCODE\tDESCRIPTION")
	for _, d := range b.FailedDevices {
		desc := clean(d.ErrorDescription)
		if ignore[d.ErrorCode] {
			desc += " (ignored)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", orDash(clean(d.SerialNumber)), orDash(clean(d.ProductKey)), orDash(clean(d.ErrorCode)), desc)
	}
	_ = tw.Flush()
	if b.FailedDevicesOmitted > 0 {
		fmt.Fprintf(w, "  and %d more, not kept (max_failed_devices_per_batch)\n", b.FailedDevicesOmitted)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// resultText says in a phrase how the wait ended.
func resultText(out *outcome) string {
	switch out.result {
	case resultFinished:
		if out.ignored > 0 {
			return fmt.Sprintf("finished; %s with an ignored error code", deviceCount(out.ignored))
		}
		return "finished"
	case resultFinishedWithErrors:
		if out.failed == 0 {
			return "finished with errors"
		}
		return fmt.Sprintf("finished with errors: %s failed", deviceCount(out.failed))
	case resultTimeout:
		return fmt.Sprintf("timed out (--timeout=%s) before the batch finished", out.timeout)
	case resultUnknown:
		return "the batch's status is unknown"
	case resultReadFailed:
		return fmt.Sprintf("reads keep failing (%d in a row): %s", out.failures, clean(out.lastErr.Error()))
	case resultInterrupted:
		return "interrupted before the batch finished"
	}
	return out.result
}

// jsonOutcome is the final state for the next pipeline step. Its field
// names follow the /batches JSON of the exporter.
type jsonOutcome struct {
	CustomerID string `json:"customer_id"`
	TrackingID string `json:"batch_tracking_id"`
	// Result is finished, finished_with_errors, timeout, unknown,
	// read_failed or interrupted.
	Result         string  `json:"result"`
	ExitCode       int     `json:"exit_code"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Status and what follows are those of the last successful read;
	// null when there was none.
	Status        *string       `json:"status"`
	StartedTime   *time.Time    `json:"started_time"`
	CompletedTime *time.Time    `json:"completed_time"`
	Devices       *deviceCounts `json:"devices"`
	// FailedDeviceCount and IgnoredDeviceCount count by error code, as
	// the exit status does.
	FailedDeviceCount    int            `json:"failed_device_count"`
	IgnoredDeviceCount   int            `json:"ignored_device_count"`
	IgnoredErrorCodes    []string       `json:"ignored_error_codes"`
	Errors               []errorCount   `json:"errors"`
	OtherErrorDevices    int            `json:"other_error_devices"`
	FailedDevices        []failedDevice `json:"failed_devices"`
	FailedDevicesOmitted int            `json:"failed_devices_omitted"`
	// LastError is the last read's error when it failed, and
	// ReadFailures how many reads failed in a row up to it.
	LastError    *string `json:"last_error"`
	ReadFailures int     `json:"read_failures"`
}

type deviceCounts struct {
	Queued             int `json:"queued"`
	Processing         int `json:"processing"`
	Finished           int `json:"finished"`
	FinishedWithErrors int `json:"finished_with_errors"`
	Unknown            int `json:"unknown"`
	Total              int `json:"total"`
}

type errorCount struct {
	Code        string `json:"error_code"`
	Description string `json:"description"`
	Devices     int    `json:"devices"`
	Ignored     bool   `json:"ignored"`
}

type failedDevice struct {
	SerialNumber     string `json:"serial_number"`
	DeviceID         string `json:"device_id"`
	ProductKey       string `json:"product_key"`
	Status           string `json:"status"`
	ErrorCode        string `json:"error_code"`
	ErrorDescription string `json:"error_description"`
	Ignored          bool   `json:"ignored"`
}

func newJSONOutcome(out *outcome) jsonOutcome {
	j := jsonOutcome{
		CustomerID: out.batch.CustomerID, TrackingID: out.batch.TrackingID,
		Result: out.result, ExitCode: out.exitCode, ElapsedSeconds: max(out.elapsed, 0).Seconds(),
		FailedDeviceCount: out.failed, IgnoredDeviceCount: out.ignored,
		IgnoredErrorCodes: sortedCodes(out.ignore),
		Errors:            []errorCount{}, FailedDevices: []failedDevice{},
		ReadFailures: out.failures,
	}
	if out.lastErr != nil {
		msg := out.lastErr.Error()
		j.LastError = &msg
	}
	b := out.last
	if b == nil {
		return j
	}
	status := b.Status.String()
	j.Status = &status
	j.StartedTime, j.CompletedTime = timeOrNil(b.StartedTime), timeOrNil(b.CompletedTime)
	d := b.Devices
	j.Devices = &deviceCounts{
		Queued: d[partnercenter.StatusQueued], Processing: d[partnercenter.StatusProcessing],
		Finished: d[partnercenter.StatusFinished], FinishedWithErrors: d[partnercenter.StatusFinishedWithErrors],
		Unknown: d[partnercenter.StatusUnknown], Total: d.Total(),
	}
	for _, e := range b.ErrorsByDevices() {
		j.Errors = append(j.Errors, errorCount{Code: e.Code, Description: e.Description, Devices: e.Devices, Ignored: out.ignore[e.Code]})
	}
	j.OtherErrorDevices = b.OtherErrorDevices
	for _, dev := range b.FailedDevices {
		j.FailedDevices = append(j.FailedDevices, failedDevice{
			SerialNumber: dev.SerialNumber, DeviceID: dev.DeviceID, ProductKey: dev.ProductKey,
			Status: dev.Status.String(), ErrorCode: dev.ErrorCode, ErrorDescription: dev.ErrorDescription,
			Ignored: dev.ErrorCode != "" && out.ignore[dev.ErrorCode],
		})
	}
	j.FailedDevicesOmitted = b.FailedDevicesOmitted
	return j
}

func writeJSON(w io.Writer, out *outcome) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(newJSONOutcome(out))
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// sortedCodes lists codes in order, so that the output is the same from
// run to run.
func sortedCodes(codes map[string]bool) []string {
	return append([]string{}, slices.Sorted(maps.Keys(codes))...)
}
