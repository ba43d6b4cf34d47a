package intake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchfiles"
)

// readBody reads a registration request: lines in any batch-file form, or
// JSON (one object or an array, each with customer_id and
// batch_tracking_id, or with location). It returns the batches without
// duplicates, or a status and one problem per bad line or element. No
// problem repeats the request's content: the reasons are those of
// batchfiles, which never quote the line.
func readBody(w http.ResponseWriter, r *http.Request) (batches []batchfiles.Batch, status int, problems []string) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge, []string{fmt.Sprintf("request body larger than %d MiB; send the batches in several requests", MaxBodyBytes>>20)}
	case err != nil:
		return nil, http.StatusBadRequest, []string{"reading the request body: " + err.Error()}
	}
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	if isJSON(r, data) {
		batches, problems = parseJSON(data)
	} else {
		batches, problems = parseLines(data)
	}
	switch {
	case len(problems) > 0:
		return nil, http.StatusBadRequest, problems
	case len(batches) == 0:
		return nil, http.StatusBadRequest, []string{"the request names no batch"}
	}
	return batches, 0, nil
}

// isJSON tells JSON from lines by the content type, or by the first
// character when the type says neither (curl -d sends form encoding).
func isJSON(r *http.Request, data []byte) bool {
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil {
		switch {
		case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
			return true
		case strings.HasPrefix(mediaType, "text/"):
			return false
		}
	}
	trimmed := bytes.TrimSpace(data)
	return len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')
}

// parseLines reads batch-file lines; blank and comment lines are skipped.
func parseLines(data []byte) (batches []batchfiles.Batch, problems []string) {
	var seen dedup
	for i, line := range strings.Split(string(data), "\n") {
		b, ok, err := batchfiles.ParseLine(strings.TrimSuffix(line, "\r"))
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("line %d: %v", i+1, err))
		case ok:
			batches = seen.add(batches, b)
		}
	}
	return batches, problems
}

// jsonBatch is one element of a JSON registration.
type jsonBatch struct {
	CustomerID string `json:"customer_id"`
	TrackingID string `json:"batch_tracking_id"`
	Location   string `json:"location"`
}

func parseJSON(data []byte) (batches []batchfiles.Batch, problems []string) {
	var elements []json.RawMessage
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &elements); err != nil {
			return nil, []string{"not a JSON array of batches: " + jsonProblem(err)}
		}
	} else {
		elements = []json.RawMessage{trimmed}
	}
	var seen dedup
	for i, raw := range elements {
		b, err := parseElement(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("element %d: %v", i+1, err))
			continue
		}
		batches = seen.add(batches, b)
	}
	return batches, problems
}

func parseElement(raw json.RawMessage) (batchfiles.Batch, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var e jsonBatch
	if err := dec.Decode(&e); err != nil {
		return batchfiles.Batch{}, fmt.Errorf("not a batch object: %s", jsonProblem(err))
	}
	var line string
	switch {
	case e.Location != "" && (e.CustomerID != "" || e.TrackingID != ""):
		return batchfiles.Batch{}, errors.New("give customer_id and batch_tracking_id, or location, not both")
	case e.Location != "":
		line = e.Location
	case e.CustomerID == "" || e.TrackingID == "":
		return batchfiles.Batch{}, errors.New("customer_id and batch_tracking_id, or location, are required")
	default:
		if strings.ContainsAny(e.CustomerID+e.TrackingID, " \t,#") {
			return batchfiles.Batch{}, errors.New("customer_id and batch_tracking_id must be GUIDs")
		}
		line = e.CustomerID + " " + e.TrackingID
	}
	b, ok, err := batchfiles.ParseLine(line)
	if err == nil && !ok {
		err = errors.New("names no batch")
	}
	return b, err
}

// jsonProblem says what is wrong with JSON without quoting it: a type
// error names the field, a syntax error the offset.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return "expected an object with customer_id and batch_tracking_id, or location"
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q must be a %s", typeErr.Field, typeErr.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "invalid JSON"
}

// dedup drops a batch named twice in one request.
type dedup map[string]bool

func (d *dedup) add(batches []batchfiles.Batch, b batchfiles.Batch) []batchfiles.Batch {
	if *d == nil {
		*d = dedup{}
	}
	k := key(b.CustomerID, b.TrackingID)
	if (*d)[k] {
		return batches
	}
	(*d)[k] = true
	return append(batches, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
