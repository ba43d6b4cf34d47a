package partnercenter_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// The fuzz targets of this file run their seeds (f.Add and
// testdata/fuzz/<FuzzName>/) under plain go test; `make fuzz` runs them as
// fuzzers. They live in the external test package so that they only rely
// on the documented API and never collide with helpers of the in-package
// tests.

const (
	fuzzContentTypeJSON = "application/json; charset=utf-8"
	fuzzContentTypeXML  = "application/xml; charset=utf-8"
)

// FuzzDecodeJSON feeds arbitrary bodies to Decode as JSON. maxFailed is
// the DecodeOptions.MaxFailedDevices cap, small so that the fuzzer reaches
// the "cap reached" path with a handful of devices.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"batchTrackingId":"0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9","status":"finished","devicesStatus":[]}`), int8(0))
	f.Add([]byte(`{"devicesStatus":[{"status":"finished_with_errors","errorCode":808},{"status":"Finished_With_Errors","errorCode":"808"}]}`), int8(1))
	f.Add([]byte("\xEF\xBB\xBF {\"status\":\"inProgress\",\"devicesStatus\":null}"), int8(-1))
	f.Add([]byte(`{"devicesStatus":[{"status":"finished"},`), int8(3)) // truncated
	f.Fuzz(func(t *testing.T, body []byte, maxFailed int8) {
		checkDecode(t, body, fuzzContentTypeJSON, maxFailed, countJSONDevices)
	})
}

// FuzzDecodeXML is FuzzDecodeJSON for DataContract XML bodies.
func FuzzDecodeXML(f *testing.F) {
	f.Add([]byte(`<BatchUploadDetails><Status>queued</Status><DevicesStatus i:nil="true" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"/></BatchUploadDetails>`), int8(0))
	f.Add([]byte(`<batchuploaddetails><devicesstatus><deviceuploaddetails><Status>finished_with_errors</Status><ErrorCode>806</ErrorCode></deviceuploaddetails></devicesstatus></batchuploaddetails>`), int8(1))
	f.Add([]byte("\xEF\xBB\xBF<?xml version=\"1.0\"?><BatchUploadDetails><DevicesStatus><DeviceUploadDetails>"), int8(2)) // truncated
	f.Fuzz(func(t *testing.T, body []byte, maxFailed int8) {
		checkDecode(t, body, fuzzContentTypeXML, maxFailed, countXMLDevices)
	})
}

// deviceCounter counts the devices of a body that Decode accepted, by a
// route independent of Decode's streaming walk. ok is false when the
// counter cannot tell, so that the count is not compared.
type deviceCounter func(t *testing.T, body []byte) (n int, ok bool)

// checkDecode decodes body three times, asserts that the results agree and,
// on success, that the batch keeps every invariant Batch documents.
func checkDecode(t *testing.T, body []byte, contentType string, maxFailed int8, count deviceCounter) {
	opts := partnercenter.DecodeOptions{MaxFailedDevices: int(maxFailed)}
	got, err := partnercenter.Decode(bytes.NewReader(body), contentType, opts)

	// The same input must give the same answer, however the reader hands
	// it over: a difference would mean state leaking between decodes or a
	// dependence on read boundaries, which the network does not keep.
	for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body))} {
		again, againErr := partnercenter.Decode(r, contentType, opts)
		if errString(err) != errString(againErr) || !reflect.DeepEqual(got, again) {
			t.Fatalf("decoding the same body again differs:\nfirst:  %+v, %v\nsecond: %+v, %v", got, err, again, againErr)
		}
	}

	if err != nil {
		if got != nil {
			t.Fatalf("Decode returned a batch along with the error %v", err)
		}
		return
	}
	checkBatchInvariants(t, got, effectiveCap(opts.MaxFailedDevices))
	if want, ok := count(t, body); ok && got.Devices.Total() != want {
		t.Fatalf("device counts total %d, the body has %d devices (counts %v)", got.Devices.Total(), want, got.Devices)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// effectiveCap applies the rule documented at DecodeOptions.MaxFailedDevices.
func effectiveCap(maxFailed int) int {
	return max(maxFailed, 0)
}

// checkBatchInvariants asserts what the Batch documentation promises. The
// decoder does not promise valid UTF-8 (JSON strings come out valid
// because encoding/json replaces bad bytes, XML names are not checked), so
// UTF-8 validity is not asserted here.
func checkBatchInvariants(t *testing.T, b *partnercenter.Batch, maxFailed int) {
	t.Helper()
	for s, n := range b.Devices {
		if n < 0 {
			t.Errorf("Devices[%v] = %d, negative", partnercenter.Status(s), n)
		}
	}
	total := b.Devices.Total()

	if status, _ := partnercenter.ParseStatus(b.RawStatus); status != b.Status {
		t.Errorf("Status %v does not match RawStatus %q", b.Status, b.RawStatus)
	}
	for name, tm := range map[string]time.Time{"StartedTime": b.StartedTime, "CompletedTime": b.CompletedTime} {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s %v is not in UTC", name, tm)
		}
	}

	// Failed devices: capped, and only left out once the cap is reached.
	failed := len(b.FailedDevices) + b.FailedDevicesOmitted
	switch {
	case len(b.FailedDevices) > maxFailed:
		t.Errorf("%d failed devices kept, cap %d", len(b.FailedDevices), maxFailed)
	case b.FailedDevicesOmitted < 0:
		t.Errorf("FailedDevicesOmitted = %d, negative", b.FailedDevicesOmitted)
	case b.FailedDevicesOmitted > 0 && len(b.FailedDevices) != maxFailed:
		t.Errorf("%d failed devices left out while only %d of %d were kept", b.FailedDevicesOmitted, len(b.FailedDevices), maxFailed)
	case failed > total:
		t.Errorf("%d failed devices of %d devices", failed, total)
	case b.Devices[partnercenter.StatusFinishedWithErrors] > failed:
		// Every finished_with_errors device counts as failed.
		t.Errorf("%d finished_with_errors devices but only %d failed ones", b.Devices[partnercenter.StatusFinishedWithErrors], failed)
	}
	for _, d := range b.FailedDevices {
		if !d.Failed() || d.ErrorCode != strings.TrimSpace(d.ErrorCode) || len(d.ErrorDescription) > partnercenter.MaxErrorDescriptionLen {
			t.Errorf("bad failed device %+v", d)
		}
	}

	// Error codes: distinct, non-empty, capped; every device with a code
	// is a failed device.
	errorDevices := b.OtherErrorDevices
	seen := make(map[string]bool, len(b.Errors))
	for _, e := range b.Errors {
		if e.Code == "" || seen[e.Code] || e.Devices < 1 || len(e.Description) > partnercenter.MaxErrorDescriptionLen {
			t.Errorf("bad error entry %+v", e)
		}
		seen[e.Code] = true
		errorDevices += e.Devices
	}
	switch {
	case len(b.Errors) > partnercenter.MaxErrorCodes:
		t.Errorf("%d error codes kept, limit %d", len(b.Errors), partnercenter.MaxErrorCodes)
	case b.OtherErrorDevices < 0:
		t.Errorf("OtherErrorDevices = %d, negative", b.OtherErrorDevices)
	case b.OtherErrorDevices > 0 && len(b.Errors) < partnercenter.MaxErrorCodes:
		t.Errorf("%d devices counted as other errors with only %d codes kept", b.OtherErrorDevices, len(b.Errors))
	case errorDevices > failed:
		t.Errorf("%d devices with an error code but only %d failed ones", errorDevices, failed)
	}

	// Unknown statuses: distinct values that ParseStatus really rejects.
	seenStatus := make(map[string]bool)
	for _, s := range b.UnknownDeviceStatuses {
		if _, ok := partnercenter.ParseStatus(s); ok || strings.TrimSpace(s) == "" || seenStatus[s] {
			t.Errorf("bad unknown device status %q in %q", s, b.UnknownDeviceStatuses)
		}
		seenStatus[s] = true
	}
}

// countJSONDevices counts the elements of the device list with
// encoding/json's Unmarshal instead of Decode's token walk. Top-level keys
// match case-insensitively, as in Decode; a body Decode accepted has at
// most one device list.
func countJSONDevices(t *testing.T, body []byte) (int, bool) {
	t.Helper()
	body = trimBOMAndSpace(body)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		// Unmarshal stops at a nesting depth of 10000, which a token walk
		// does not have; anything else is a disagreement about the syntax.
		if strings.Contains(err.Error(), "exceeded max depth") {
			return 0, false
		}
		t.Fatalf("Decode accepted a body encoding/json rejects: %v", err)
	}
	n := 0
	for key, value := range top {
		if !strings.EqualFold(key, "devicesStatus") {
			continue
		}
		var devices []json.RawMessage
		if err := json.Unmarshal(value, &devices); err != nil {
			t.Fatalf("Decode accepted a device list encoding/json cannot read as an array: %v", err)
		}
		n += len(devices)
	}
	return n, true
}

// countXMLDevices counts the DeviceUploadDetails children of the root's
// DevicesStatus child with a plain depth-tracking token loop.
func countXMLDevices(t *testing.T, body []byte) (int, bool) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(trimBOMAndSpace(body)))
	depth, inDevices, n := 0, false, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return n, true
		}
		if err != nil {
			t.Fatalf("Decode accepted a body encoding/xml rejects: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2:
				inDevices = strings.EqualFold(tok.Name.Local, "devicesStatus")
			case depth == 3 && inDevices && strings.EqualFold(tok.Name.Local, "DeviceUploadDetails"):
				n++
			}
		case xml.EndElement:
			depth--
		}
	}
}

// trimBOMAndSpace drops what Decode skips before the first significant
// byte, so that the counters read the document Decode read.
func trimBOMAndSpace(body []byte) []byte {
	return bytes.TrimLeft(bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF")), " \t\r\n")
}

// FuzzParseTime checks that ParseTime never panics, that what it accepts
// is in UTC and survives a round trip through RFC 3339, and that its error
// messages stay short whatever the input (maxQuotedLen).
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.1234567Z", "2024-05-01T10:00:00+01:00",
		"2024-05-01T10:00:00", "2024-05-01T10:00:00+0100", "2024-05-01", "0001-01-01T00:00:00",
		"0001-01-01T00:00:00.0000000Z", "9999-12-31T23:59:59.9999999-14:00", " 2024-05-01T10:00:00Z\n",
		"2024-02-30T10:00:00Z", "not a time",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := partnercenter.ParseTime(raw)
		if err != nil {
			// The message quotes at most 64 bytes of the input, and %q
			// writes at most 4 bytes for each (\xff).
			if msg := err.Error(); len(msg) > 64*4+64 {
				t.Fatalf("error message is %d bytes long: %.200q...", len(msg), msg)
			}
			if !got.IsZero() {
				t.Fatalf("error %v came with the time %v", err, got)
			}
			return
		}
		if got.IsZero() {
			return // "unset": the empty string or .NET's DateTime.MinValue
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) = %v, not in UTC", raw, got)
		}
		// White space around the value does not matter.
		if padded, err := partnercenter.ParseTime(" \t" + raw + "\r\n"); err != nil || !padded.Equal(got) {
			t.Fatalf("ParseTime with white space around %q = %v, %v; want %v", raw, padded, err, got)
		}
		// A round trip through RFC 3339 gives the same instant, as long as
		// the year still has the four digits RFC 3339 allows (an offset
		// can push 9999-12-31 into the year 10000).
		if y := got.Year(); y < 0 || y > 9999 {
			return
		}
		text := got.Format(time.RFC3339Nano)
		back, err := partnercenter.ParseTime(text)
		if err != nil || !back.Equal(got) {
			t.Fatalf("ParseTime(%q) = %v; its RFC 3339 form %q parses as %v, %v", raw, got, text, back, err)
		}
	})
}

// FuzzParseStatus checks that ParseStatus never panics, agrees with
// Status.String, and is insensitive to ASCII case, '_', '-' and spaces as
// documented.
//
// Full Unicode case insensitivity is NOT asserted: ParseStatus lower-cases
// with strings.ToLower, so a spelling whose upper case differs from its
// lower case in more than ASCII (the long s in "proceſſing", the dotless i
// in "fınished") is unknown while its strings.ToUpper form is known. The
// service sends ASCII, so only the direction "known stays known" is
// checked for strings.ToUpper.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		"queued", "processing", "inProgress", "in_progress", "Finished", "FINISHED_WITH_ERRORS",
		"finished-with-errors", " finished with errors ", "unknown", "", "Failed", "finishedwitherrors\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := partnercenter.ParseStatus(raw)
		if !ok && got != partnercenter.StatusUnknown {
			t.Fatalf("ParseStatus(%q) = %v, false; an unknown spelling must give StatusUnknown", raw, got)
		}
		if ok {
			if back, backOK := partnercenter.ParseStatus(got.String()); !backOK || back != got {
				t.Fatalf("ParseStatus(%q) = %v, but its name %q parses as %v, %v", raw, got, got.String(), back, backOK)
			}
			if up, upOK := partnercenter.ParseStatus(strings.ToUpper(raw)); !upOK || up != got {
				t.Fatalf("ParseStatus(%q) = %v, but ParseStatus(ToUpper) = %v, %v", raw, got, up, upOK)
			}
		}
		for _, variant := range []string{asciiUpper(raw), strings.ToLower(raw), separated(raw, '_'), separated(raw, '-'), separated(raw, ' ')} {
			if v, vOK := partnercenter.ParseStatus(variant); v != got || vOK != ok {
				t.Fatalf("ParseStatus(%q) = %v, %v but ParseStatus(%q) = %v, %v", raw, got, ok, variant, v, vOK)
			}
		}
	})
}

// asciiUpper upper-cases ASCII letters only, leaving every other byte as
// it is (strings.ToUpper would also rewrite invalid UTF-8).
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// separated puts sep between every two runes of s (invalid bytes count as
// runes of their own, as in a range loop).
func separated(s string, sep rune) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteRune(sep)
		}
		if r == utf8.RuneError {
			// Keep the original byte(s) rather than U+FFFD.
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
