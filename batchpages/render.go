package batchpages

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/plural"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages holds the parsed templates. It is never changed after package
// initialisation; a template that does not parse is a programming error
// that every test of this package reveals.
var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"utc":       utcText,
	"utcValue":  func(t time.Time) string { return utcText(&t) },
	"since":     sinceText,
	"duration":  durationText,
	"topErrors": topErrors,
	"moreCodes": moreCodes,
	"omitted":   omittedText,
	"inc":       func(i int) int { return i + 1 },
	"plural":    plural.Count,
}).ParseFS(templateFiles, "templates/*.html"))

// renderHTML returns an encoder that executes the named page template.
func renderHTML[T any](name string) func(*bytes.Buffer, T) error {
	return func(buf *bytes.Buffer, page T) error {
		if err := pages.ExecuteTemplate(buf, name, page); err != nil {
			return fmt.Errorf("rendering %s page: %w", name, err)
		}
		return nil
	}
}

// noValue stands in for a time or duration that is not set.
const noValue = "—"

// utcText shows a time as RFC 3339 in UTC, to the second.
func utcText(t *time.Time) string {
	if t == nil {
		return noValue
	}
	return t.UTC().Format(time.RFC3339)
}

// sinceText says how long before now t was, e.g. "3m 5s ago".
func sinceText(now time.Time, t *time.Time) string {
	if t == nil {
		return ""
	}
	return humanDuration(now.Sub(*t)) + " ago"
}

// durationText shows a batch duration.
func durationText(s batchSummary) string {
	if s.DurationSeconds == nil {
		return noValue
	}
	text := humanDuration(time.Duration(*s.DurationSeconds * float64(time.Second)))
	return text
}

// humanDuration rounds d to the second and shows its two largest units,
// e.g. "2d 3h", "4m 12s" or "45s". Negative durations (clock skew) are 0s.
func humanDuration(d time.Duration) string {
	secs := int64(max(d, 0).Round(time.Second) / time.Second)
	units := []struct {
		suffix string
		value  int64
	}{
		{"d", secs / 86400},
		{"h", secs / 3600 % 24},
		{"m", secs / 60 % 60},
		{"s", secs % 60},
	}
	i := 0
	for i < len(units)-1 && units[i].value == 0 {
		i++
	}
	text := fmt.Sprintf("%d%s", units[i].value, units[i].suffix)
	if i+1 < len(units) && units[i+1].value != 0 {
		text += fmt.Sprintf(" %d%s", units[i+1].value, units[i+1].suffix)
	}
	return text
}

// listErrorCodes is how many error codes a row of the list shows.
const listErrorCodes = 5

// topErrors returns the error codes a list row shows: those with most
// devices (the model keeps them in that order).
func topErrors(errs []errorCount) []errorCount {
	return errs[:min(listErrorCodes, len(errs))]
}

// moreCodes is how many error codes topErrors left out.
func moreCodes(errs []errorCount) int {
	return max(len(errs)-listErrorCodes, 0)
}
