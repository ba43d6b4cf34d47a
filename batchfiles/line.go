package batchfiles

import (
	"errors"
	"net/url"
	"strings"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/guid"
)

// Batch identifies one Autopilot batch: the customer it was uploaded for
// and the tracking ID from the upload's Location header. Both are
// lower-case GUIDs.
type Batch struct {
	CustomerID string
	TrackingID string
}

// The reasons a line is invalid. None of them repeats any of the line:
// a broad glob may match a key or secret file, and these reasons reach the
// log, /config and --config.check. The file and line number are enough to
// find the line.
var (
	errForm         = errors.New(`expected "<customer GUID> <batch GUID>" or a batchJobStatus location`)
	errNotLocation  = errors.New("not a batchJobStatus location (expected /customers/<customer GUID>/batchJobStatus/<batch GUID>)")
	errNotHTTPS     = errors.New("location URL is not https")
	errBadURL       = errors.New("not a valid URL")
	errCustomerGUID = errors.New("customer ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)")
	errBatchGUID    = errors.New("batch tracking ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)")
)

// ParseLine reads one line of a batch file (without its line ending).
// It returns ok=false and a nil error for a blank or comment-only line, and
// an error that says in one phrase what is wrong for an invalid line. The
// accepted forms are described in the package documentation.
func ParseLine(line string) (b Batch, ok bool, err error) {
	text := strings.TrimSpace(stripComment(line))
	if text == "" {
		return Batch{}, false, nil
	}
	b, err = parseBatch(text)
	if err != nil {
		return Batch{}, false, err
	}
	return b, true, nil
}

// stripComment cuts line at the first # that begins it or follows a space
// or tab. A # inside a word is kept, so that a URL fragment is not taken
// for a comment.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

func parseBatch(text string) (Batch, error) {
	if strings.Contains(text, ",") {
		return parseCommaPair(text)
	}
	fields := strings.Fields(text)
	switch {
	case len(fields) == 2 && !strings.Contains(text, "/"):
		return newBatch(fields[0], fields[1])
	case len(fields) == 1 && strings.Contains(text, "/"):
		return parseLocation(text)
	default:
		return Batch{}, errForm
	}
}

func parseCommaPair(text string) (Batch, error) {
	customer, tracking, _ := strings.Cut(text, ",")
	customer, tracking = strings.TrimSpace(customer), strings.TrimSpace(tracking)
	if customer == "" || tracking == "" || strings.Contains(tracking, ",") {
		return Batch{}, errForm
	}
	return newBatch(customer, tracking)
}

// parseLocation reads a Location header value: a path, with or without the
// /v1 prefix, or a full https URL.
func parseLocation(loc string) (Batch, error) {
	path, err := locationPath(loc)
	if err != nil {
		return Batch{}, err
	}
	segments := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segments) == 5 && strings.EqualFold(segments[0], "v1") {
		segments = segments[1:]
	}
	if len(segments) != 4 || !strings.EqualFold(segments[0], "customers") ||
		!strings.EqualFold(segments[2], "batchJobStatus") {
		return Batch{}, errNotLocation
	}
	return newBatch(segments[1], segments[3])
}

// locationPath returns the path of a location, without its query string or
// fragment.
func locationPath(loc string) (string, error) {
	if strings.HasPrefix(loc, "/") {
		path, _, _ := strings.Cut(loc, "?")
		path, _, _ = strings.Cut(path, "#")
		return path, nil
	}
	scheme, _, found := strings.Cut(loc, "://")
	if !found {
		return "", errNotLocation
	}
	if !strings.EqualFold(scheme, "https") {
		return "", errNotHTTPS
	}
	// url.Parse's error quotes the URL: only whether it failed is kept.
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return "", errBadURL
	}
	return u.Path, nil
}

func newBatch(customer, tracking string) (Batch, error) {
	if !guid.Valid(customer) {
		return Batch{}, errCustomerGUID
	}
	if !guid.Valid(tracking) {
		return Batch{}, errBatchGUID
	}
	return Batch{CustomerID: strings.ToLower(customer), TrackingID: strings.ToLower(tracking)}, nil
}
