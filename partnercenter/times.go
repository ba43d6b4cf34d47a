package partnercenter

import (
	"fmt"
	"strings"
	"time"
)

// timeLayouts are the spellings of a time the service has been seen to use,
// most common first. time.Parse accepts any number of fractional-second
// digits after the seconds (keeping the first nine) even though the layouts
// do not mention them.
var timeLayouts = []string{
	time.RFC3339,               // 2024-05-01T10:00:00.1234567Z, ...+01:00
	"2006-01-02T15:04:05",      // .NET DateTime of kind Unspecified: no zone, taken as UTC
	"2006-01-02T15:04:05Z0700", // offset without a colon
	"2006-01-02",               // date only
}

// maxQuotedLen bounds how much of an unexpected value is copied into an
// error message, so that a huge bogus field cannot flood the logs.
const maxQuotedLen = 64

// ParseTime parses a time as Partner Center sends it: RFC 3339 with any
// number of fractional digits, with "Z", with an offset or with no zone
// (taken as UTC), or a bare date. The result is in UTC.
//
// A zero Time with a nil error means "unset": the empty string and .NET's
// DateTime.MinValue (0001-01-01T00:00:00, with or without zone or
// fractional zeros), which the service sends for times that have not
// happened yet.
func ParseTime(raw string) (time.Time, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range timeLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if isDotNetMinValue(t) {
			return time.Time{}, nil
		}
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %s as a time", quoteForError(raw))
}

// isDotNetMinValue reports whether t reads 0001-01-01T00:00:00 on its own
// clock, whatever its zone: that is how .NET spells "no value".
func isDotNetMinValue(t time.Time) bool {
	return t.Equal(time.Date(1, time.January, 1, 0, 0, 0, 0, t.Location()))
}

// quoteForError quotes s for an error message, cut to maxQuotedLen bytes.
func quoteForError(s string) string {
	if len(s) <= maxQuotedLen {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", cutAtRune(s, maxQuotedLen))
}
