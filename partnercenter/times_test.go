package partnercenter

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	utc := func(year int, month time.Month, day, hour, minute, sec, nsec int) time.Time {
		return time.Date(year, month, day, hour, minute, sec, nsec, time.UTC)
	}
	tests := []struct {
		raw  string
		want time.Time
	}{
		{raw: "2024-05-01T10:00:00Z", want: utc(2024, 5, 1, 10, 0, 0, 0)},
		{raw: "2024-05-01T10:00:00.1Z", want: utc(2024, 5, 1, 10, 0, 0, 100000000)},
		{raw: "2024-05-01T10:00:00.1234567Z", want: utc(2024, 5, 1, 10, 0, 0, 123456700)},
		{raw: "2024-05-01T10:00:00.123456789Z", want: utc(2024, 5, 1, 10, 0, 0, 123456789)},
		{raw: "2024-05-01T10:00:00.1234567891234Z", want: utc(2024, 5, 1, 10, 0, 0, 123456789)},
		{raw: "2024-05-01T10:00:00+01:00", want: utc(2024, 5, 1, 9, 0, 0, 0)},
		{raw: "2024-05-01T10:00:00.25-05:30", want: utc(2024, 5, 1, 15, 30, 0, 250000000)},
		{raw: "2024-05-01T10:00:00+0100", want: utc(2024, 5, 1, 9, 0, 0, 0)},
		{raw: "2024-05-01T10:00:00", want: utc(2024, 5, 1, 10, 0, 0, 0)},
		{raw: "2024-05-01T10:00:00.1234567", want: utc(2024, 5, 1, 10, 0, 0, 123456700)},
		{raw: " 2024-05-01T10:00:00Z\n", want: utc(2024, 5, 1, 10, 0, 0, 0)},
		{raw: "2024-05-01", want: utc(2024, 5, 1, 0, 0, 0, 0)},
		{raw: "0001-01-01T00:00:01Z", want: utc(1, 1, 1, 0, 0, 1, 0)},
		// Unset.
		{raw: ""},
		{raw: "   "},
		{raw: "0001-01-01T00:00:00"},
		{raw: "0001-01-01T00:00:00Z"},
		{raw: "0001-01-01T00:00:00.0000000"},
		{raw: "0001-01-01T00:00:00.0000000Z"},
		{raw: "0001-01-01T00:00:00+00:00"},
		{raw: "0001-01-01T00:00:00+01:00"},
		{raw: "0001-01-01"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseTime(tt.raw)
			if err != nil {
				t.Fatalf("ParseTime(%q) error: %v", tt.raw, err)
			}
			// DeepEqual also checks the location: results must be in UTC.
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTime(%q) = %v (%v), want %v", tt.raw, got, got.Location(), tt.want)
			}
		})
	}
}

func TestParseTimeErrors(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		raw     string
		wantErr string
	}{
		{raw: "yesterday", wantErr: `cannot parse "yesterday" as a time`},
		{raw: "2024-13-01T00:00:00Z", wantErr: `cannot parse "2024-13-01T00:00:00Z" as a time`},
		{raw: "2024-05-01 10:00:00", wantErr: `cannot parse "2024-05-01 10:00:00" as a time`},
		{raw: "1714557600", wantErr: `cannot parse "1714557600" as a time`},
		{raw: "2024-05-01T10:00:00.Z", wantErr: `cannot parse "2024-05-01T10:00:00.Z" as a time`},
		{raw: long, wantErr: `cannot parse "` + long[:maxQuotedLen] + `"... as a time`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseTime(tt.raw)
			if err == nil {
				t.Fatalf("ParseTime(%q) = %v, want error %q", tt.raw, got, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("ParseTime(%q) error = %q, want %q", tt.raw, err, tt.wantErr)
			}
			if !got.IsZero() {
				t.Errorf("ParseTime(%q) = %v with an error, want the zero time", tt.raw, got)
			}
		})
	}
}
