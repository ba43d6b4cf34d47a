package partnercenter

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// repeatReader yields its pattern n times without holding it n times, so
// that the body does not count against the memory the decoder uses.
type repeatReader struct {
	pattern string
	n       int
	off     int // offset into the current copy of pattern
}

func (r *repeatReader) Read(p []byte) (int, error) {
	written := 0
	for written < len(p) && r.n > 0 {
		c := copy(p[written:], r.pattern[r.off:])
		written += c
		r.off += c
		if r.off == len(r.pattern) {
			r.off = 0
			r.n--
		}
	}
	if written == 0 {
		return 0, io.EOF
	}
	return written, nil
}

// TestDecodeRefusesDeepNestingEarly feeds 10 MiB of openings under an
// unknown key. The decoders' own stacks grow with every level; the body
// must be refused after 64 levels, having allocated little.
func TestDecodeRefusesDeepNestingEarly(t *testing.T) {
	const bodySize = 10 << 20
	const allocLimit = 64 << 20
	tests := []struct {
		name, contentType, head, open string
	}{
		{"json", "application/json", `{"status":"finished","links":`, "["},
		{"xml", "application/xml", `<BatchUploadDetails><Status>finished</Status><Links>`, "<a>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := io.MultiReader(strings.NewReader(tt.head), &repeatReader{pattern: tt.open, n: bodySize / len(tt.open)})
			var err error
			alloc := testkit.AllocatedBy(func() { _, err = Decode(body, tt.contentType, DecodeOptions{}) })
			if want := "decode batch: nesting deeper than 64 levels"; err == nil || err.Error() != want {
				t.Fatalf("Decode error = %v, want %q", err, want)
			}
			if grown := alloc.Total; grown >= allocLimit {
				t.Errorf("decoding allocated %d bytes, want less than %d", grown, allocLimit)
			}
			if grown := alloc.HeapGrowth; grown >= allocLimit {
				t.Errorf("live heap grew by %d bytes, want less than %d", grown, allocLimit)
			}
		})
	}
}

func TestDecodeNestingLimit(t *testing.T) {
	nested := func(open, closing string, levels int) string {
		return strings.Repeat(open, levels) + strings.Repeat(closing, levels)
	}
	tooDeep := "decode batch: nesting deeper than 64 levels"
	tests := []struct {
		name, body, wantErr string
	}{
		// The top-level object or root element is level 1.
		{"json at the limit", `{"links":` + nested("[", "]", 63) + `}`, ""},
		{"json past the limit", `{"links":` + nested("[", "]", 64) + `}`, tooDeep},
		{"json objects past the limit", `{"links":` + nested(`{"a":`, "}", 64) + `}`, tooDeep},
		{
			"json in a device", `{"devicesStatus":[{"attributes":` + nested("[", "]", 70) + `}]}`,
			"decode batch: devicesStatus[0]: nesting deeper than 64 levels",
		},
		{"json brackets in strings do not count", `{"links":"` + strings.Repeat(`[{\"`, 100) + `"}`, ""},
		{"xml at the limit", `<BatchUploadDetails>` + nested("<a>", "</a>", 63) + `</BatchUploadDetails>`, ""},
		{"xml past the limit", `<BatchUploadDetails>` + nested("<a>", "</a>", 64) + `</BatchUploadDetails>`, tooDeep},
		{
			"xml in a device field", `<BatchUploadDetails><DevicesStatus><DeviceUploadDetails><Status>` +
				nested("<a>", "</a>", 70) + `</Status></DeviceUploadDetails></DevicesStatus></BatchUploadDetails>`,
			"decode batch: devicesStatus[0]: status: nesting deeper than 64 levels",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.body), "", DecodeOptions{})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("Decode error = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

// TestDecodeCutsLongStrings: every string taken from the body is cut to a
// bounded length on a rune boundary.
func TestDecodeCutsLongStrings(t *testing.T) {
	long := strings.Repeat("x", 255) + strings.Repeat("é", 1000) // a cut at 256 falls inside an 'é'
	wantField := strings.Repeat("x", 255)
	longDescription := strings.Repeat("é", 1000)
	bodies := map[string]string{
		"json": `{"batchTrackingId":"` + long + `","status":"` + long + `","devicesStatus":[` +
			`{"deviceId":"` + long + `","serialNumber":"` + long + `","productKey":"` + long + `","status":"` + long +
			`","errorCode":"` + long + `","errorDescription":"` + longDescription + `"}]}`,
		"xml": `<BatchUploadDetails><BatchTrackingId>` + long + `</BatchTrackingId><Status>` + long + `</Status><DevicesStatus>` +
			`<DeviceUploadDetails><DeviceId>` + long + `</DeviceId><SerialNumber>` + long + `</SerialNumber><ProductKey>` + long +
			`</ProductKey><Status>` + long + `</Status><ErrorCode>` + long + `</ErrorCode><ErrorDescription>` + longDescription +
			`</ErrorDescription></DeviceUploadDetails></DevicesStatus></BatchUploadDetails>`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			b, err := Decode(strings.NewReader(body), "", DecodeOptions{MaxFailedDevices: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(b.FailedDevices) != 1 || len(b.Errors) != 1 || len(b.UnknownDeviceStatuses) != 1 {
				t.Fatalf("decoded %+v, want one failed device, one error code and one unknown status", b)
			}
			d := b.FailedDevices[0]
			fields := map[string]string{
				"TrackingID": b.TrackingID, "RawStatus": b.RawStatus, "DeviceID": d.DeviceID,
				"SerialNumber": d.SerialNumber, "ProductKey": d.ProductKey, "ErrorCode": d.ErrorCode,
				"Errors[0].Code": b.Errors[0].Code, "UnknownDeviceStatuses[0]": b.UnknownDeviceStatuses[0],
			}
			for field, got := range fields {
				if got != wantField {
					t.Errorf("%s has %d bytes, want the first %d bytes of the value", field, len(got), len(wantField))
				}
			}
			for field, got := range map[string]string{"ErrorDescription": d.ErrorDescription, "Errors[0].Description": b.Errors[0].Description} {
				if len(got) > MaxErrorDescriptionLen || !utf8.ValidString(got) || !strings.HasPrefix(longDescription, got) {
					t.Errorf("%s = %q (%d bytes), want a valid UTF-8 prefix of at most %d bytes", field, got, len(got), MaxErrorDescriptionLen)
				}
			}
		})
	}
}

// TestDecodeAllocationsDoNotDependOnDevices: with no failed device kept,
// decoding 100 times more devices must not allocate more: a device that
// is only counted costs no allocation, in either format. (XML was read
// with encoding/xml, which allocated about 70 times per device for the
// names and attributes it returned, until xmlScanner.)
func TestDecodeAllocationsDoNotDependOnDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 100,000 devices several times")
	}
	// Slack for what grows with the body but not per device: the rare
	// extra read and the runtime's own bookkeeping.
	const slack = 16
	for _, format := range []bodyFormat{jsonBody, xmlBody} {
		t.Run(format.String(), func(t *testing.T) {
			small := decodeAllocs(t, format, 1_000)
			large := decodeAllocs(t, format, 100_000)
			if large-small >= slack {
				t.Errorf("decoding allocated %.0f times for 1,000 devices and %.0f for 100,000, want a difference under %d", small, large, slack)
			}
			t.Logf("allocations: %.0f for 1,000 devices, %.0f for 100,000", small, large)
		})
	}
}

// decodeAllocs is the mean number of allocations Decode makes for a body
// of n devices, one in ten failed, keeping none of them.
func decodeAllocs(t *testing.T, format bodyFormat, n int) float64 {
	body, err := io.ReadAll(newGeneratedBody(format, n, 10, 5))
	if err != nil {
		t.Fatal(err)
	}
	return testing.AllocsPerRun(3, func() {
		if _, err := Decode(bytes.NewReader(body), format.contentType(), DecodeOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
