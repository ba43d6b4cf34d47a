package batchpages

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// format is how a page is answered.
type format int

const (
	formatHTML format = iota
	formatJSON
	formatCSV
)

// chooseFormat reads ?format=, and without it the Accept header: JSON
// only when the client asks for it over HTML, so browsers get HTML.
func chooseFormat(r *http.Request, isBatchPage bool) (format, error) {
	switch r.URL.Query().Get("format") {
	case "":
		if prefersJSON(r.Header.Get("Accept")) {
			return formatJSON, nil
		}
		return formatHTML, nil
	case "html":
		return formatHTML, nil
	case "json":
		return formatJSON, nil
	case "csv":
		if isBatchPage {
			return formatCSV, nil
		}
	}
	if isBatchPage {
		return 0, errors.New(msgBatchFormat)
	}
	return 0, errors.New(msgListFormat)
}

// prefersJSON reports whether accept ranks application/json above HTML.
// Wildcards do not count: "*/*" means "anything", and HTML is the default.
func prefersJSON(accept string) bool {
	jsonQ, htmlQ := 0.0, 0.0
	for item := range strings.SplitSeq(accept, ",") {
		mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(item))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				q = 0
			}
		}
		switch mediaType {
		case "application/json":
			jsonQ = max(jsonQ, q)
		case "text/html", "application/xhtml+xml":
			htmlQ = max(htmlQ, q)
		}
	}
	return jsonQ > 0 && jsonQ > htmlQ
}

// Content types of the answers.
const (
	contentTypeHTML = "text/html; charset=utf-8"
	contentTypeJSON = "application/json; charset=utf-8"
	contentTypeCSV  = "text/csv; charset=utf-8; header=present"
)

func writeList(w http.ResponseWriter, f format, page listPage) {
	if f == formatJSON {
		writeEncoded(w, contentTypeJSON, encodeJSON[listPage], page)
		return
	}
	writeEncoded(w, contentTypeHTML, renderHTML[listPage]("list"), page)
}

func writeBatch(w http.ResponseWriter, f format, page batchPage) {
	switch f {
	case formatJSON:
		writeEncoded(w, contentTypeJSON, encodeJSON[batchPage], page)
	case formatCSV:
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, csvFilename(page.Batch.TrackingID)))
		writeEncoded(w, contentTypeCSV, encodeCSV, page)
	default:
		writeEncoded(w, contentTypeHTML, renderHTML[batchPage]("batch"), page)
	}
}

// csvFilename names the download after the batch. The ID is a validated
// GUID, so it needs no quoting.
func csvFilename(trackingID string) string {
	return trackingID + "-failed-devices.csv"
}

// writeEncoded encodes the whole answer before sending any of it, so that
// a failure gives a clean 500 instead of half a page.
func writeEncoded[T any](w http.ResponseWriter, contentType string, encode func(*bytes.Buffer, T) error, page T) {
	var buf bytes.Buffer
	if err := encode(&buf, page); err != nil {
		w.Header().Del("Content-Disposition")
		http.Error(w, "building the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	// A write error means the client went away; nobody is left to tell.
	_, _ = w.Write(buf.Bytes())
}

// encodeJSON indents, for people reading it with curl. encoding/json
// escapes <, > and & as \u003c etc., so that the answer stays inert even
// if something sniffs it as HTML.
func encodeJSON[T any](buf *bytes.Buffer, v T) error {
	enc := json.NewEncoder(buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	return nil
}

// csvHeader names the CSV columns, the JSON names of failedDevice.
var csvHeader = []string{"serial_number", "device_id", "product_key", "status", "error_code", "error_description"}

// encodeCSV writes the failed devices as RFC 4180 CSV with a header row.
// When failed devices were left out, a last comment row says how many: it
// starts with '#' (skipped by readers that honour comments, such as Go's
// csv.Reader with Comment set) and has as many fields as the header.
func encodeCSV(buf *bytes.Buffer, page batchPage) error {
	w := csv.NewWriter(buf)
	rows := make([][]string, 0, len(page.FailedDevices)+2)
	rows = append(rows, csvHeader)
	for _, d := range page.FailedDevices {
		rows = append(rows, []string{
			spreadsheetSafe(d.SerialNumber), spreadsheetSafe(d.DeviceID), spreadsheetSafe(d.ProductKey),
			d.Status, spreadsheetSafe(d.ErrorCode), spreadsheetSafe(d.ErrorDescription),
		})
	}
	if n := page.Batch.FailedDevicesOmitted; n > 0 {
		trailer := make([]string, len(csvHeader))
		trailer[0] = "# " + omittedText(n, page.Batch.FailedDevicesKept)
		rows = append(rows, trailer)
	}
	if err := w.WriteAll(rows); err != nil {
		return fmt.Errorf("encoding CSV: %w", err)
	}
	return nil
}

// spreadsheetSafe defuses a value from the API that a spreadsheet would
// run as a formula (OWASP "CSV injection"): such a value gets a leading
// apostrophe, which spreadsheets hide and treat as "this is text".
func spreadsheetSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// omittedText says how many failed devices were left out and why. Devices
// are only left out once the cap is reached, so kept is the cap that was in
// force when the batch was read, even if a reload changed it since.
func omittedText(omitted, kept int) string {
	devices := "devices were"
	if omitted == 1 {
		devices = "device was"
	}
	return fmt.Sprintf("%d more failed %s left out: the exporter kept the first %d (max_failed_devices_per_batch)",
		omitted, devices, kept)
}
