package partnercenter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

// may1 returns a time on 2024-05-01 (UTC), the day of every fixture.
func may1(hour, minute, sec, nsec int) time.Time {
	return time.Date(2024, time.May, 1, hour, minute, sec, nsec, time.UTC)
}

// specJSONBatch is what testdata/spec.json decodes to with default options.
func specJSONBatch() *Batch {
	return &Batch{
		TrackingID:    "8c3a1c2e-5f0b-4b7e-9d2a-1f2e3d4c5b6a",
		Status:        StatusFinishedWithErrors,
		RawStatus:     "finished_with_errors",
		StartedTime:   may1(10, 0, 0, 123456700),
		CompletedTime: may1(10, 5, 30, 0),
		Devices:       DeviceCounts{StatusFinished: 1, StatusFinishedWithErrors: 3},
		Errors: []ErrorCount{
			{Code: "808", Description: "ZtdDeviceAssignedToOtherTenant", Devices: 2},
			{Code: "806", Description: "ZtdDeviceAlreadyAssigned", Devices: 1},
		},
		FailedDevices: []Device{
			{SerialNumber: "SN-0002", ProductKey: "PK-0002", Status: StatusFinishedWithErrors, ErrorCode: "808", ErrorDescription: "ZtdDeviceAssignedToOtherTenant"},
			{SerialNumber: "SN-0003", Status: StatusFinishedWithErrors, ErrorCode: "806", ErrorDescription: "ZtdDeviceAlreadyAssigned"},
			{SerialNumber: "SN-0004", Status: StatusFinishedWithErrors, ErrorCode: "808", ErrorDescription: "Another description of 808"},
		},
	}
}

// specXMLBatch is what testdata/spec.xml decodes to with default options.
func specXMLBatch() *Batch {
	return &Batch{
		TrackingID:  "4d3c2b1a-0f9e-4d8c-b7a6-958473625140",
		Status:      StatusProcessing,
		RawStatus:   "processing",
		StartedTime: may1(10, 0, 0, 123456700),
		Devices:     DeviceCounts{StatusFinished: 1, StatusFinishedWithErrors: 1, StatusProcessing: 1},
		Errors: []ErrorCount{
			{Code: "808", Description: "ZtdDeviceAssignedToOtherTenant", Devices: 1},
		},
		FailedDevices: []Device{
			{SerialNumber: "SN-0502", ProductKey: "PK-0502", Status: StatusFinishedWithErrors, ErrorCode: "808", ErrorDescription: "ZtdDeviceAssignedToOtherTenant"},
		},
	}
}

// bomBatch is what both testdata/bom.json and testdata/bom.xml decode to.
func bomBatch() *Batch {
	return &Batch{
		TrackingID:    "5d0c0c6e-8e0a-4f3b-9f1e-2b6c1e9a7d40",
		Status:        StatusFinished,
		RawStatus:     "finished",
		StartedTime:   may1(10, 0, 0, 0),
		CompletedTime: may1(10, 1, 0, 0),
		Devices:       DeviceCounts{StatusFinished: 1},
	}
}

func TestDecodeFixtures(t *testing.T) {
	keepOne := specJSONBatch()
	keepOne.FailedDevices = keepOne.FailedDevices[:1]
	keepOne.FailedDevicesOmitted = 2

	keepNone := specJSONBatch()
	keepNone.FailedDevices = nil
	keepNone.FailedDevicesOmitted = 3

	// 63 two-byte runes, then one byte: the 64th rune would straddle the
	// 128-byte limit, so the cut falls before it.
	cutDescription := strings.Repeat("Ä", 63) + "X"

	tests := []struct {
		name        string
		file        string
		contentType string
		opts        *DecodeOptions // nil keeps DefaultMaxFailedDevices
		want        *Batch
	}{
		{name: "spec json", file: "spec.json", contentType: "application/json", want: specJSONBatch()},
		{name: "json with charset", file: "spec.json", contentType: "application/json; charset=utf-8", want: specJSONBatch()},
		{name: "text/json", file: "spec.json", contentType: "text/json", want: specJSONBatch()},
		{name: "media type case", file: "spec.json", contentType: "Text/JSON; Charset=UTF-8", want: specJSONBatch()},
		{name: "json sniffed without content type", file: "spec.json", contentType: "", want: specJSONBatch()},
		{name: "json sniffed for unknown content type", file: "spec.json", contentType: "application/octet-stream", want: specJSONBatch()},
		{name: "keep one failed device", file: "spec.json", contentType: "application/json", opts: &DecodeOptions{MaxFailedDevices: 1}, want: keepOne},
		{name: "keep no failed devices", file: "spec.json", contentType: "application/json", opts: &DecodeOptions{MaxFailedDevices: 0}, want: keepNone},
		{name: "json with BOM", file: "bom.json", contentType: "application/json", want: bomBatch()},
		{name: "json with BOM sniffed", file: "bom.json", contentType: "", want: bomBatch()},
		{
			name: "json key case, unknown fields, devices first", file: "case_and_extras.json", contentType: "application/json",
			want: &Batch{
				TrackingID:    "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9",
				Status:        StatusFinishedWithErrors,
				RawStatus:     "Finished_With_Errors",
				StartedTime:   may1(9, 0, 0, 0),
				CompletedTime: may1(9, 30, 0, 500000000),
				Devices:       DeviceCounts{StatusFinished: 1, StatusFinishedWithErrors: 1},
				Errors:        []ErrorCount{{Code: "806", Description: "ZtdDeviceAlreadyAssigned", Devices: 1}},
				FailedDevices: []Device{{
					SerialNumber: "SN-0202", DeviceID: "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", ProductKey: "PK-0202",
					Status: StatusFinishedWithErrors, ErrorCode: "806", ErrorDescription: "ZtdDeviceAlreadyAssigned",
				}},
			},
		},
		{
			name: "error code spellings and descriptions", file: "error_codes.json", contentType: "application/json",
			want: &Batch{
				TrackingID:    "3f2e1d0c-b9a8-4776-8554-433221100fed",
				Status:        StatusFinishedWithErrors,
				RawStatus:     "finished_with_errors",
				StartedTime:   may1(10, 0, 0, 0),
				CompletedTime: may1(10, 0, 1, 0),
				Devices:       DeviceCounts{StatusFinished: 5, StatusFinishedWithErrors: 5},
				Errors: []ErrorCount{
					{Code: "808", Description: "Device is assigned to another tenant.", Devices: 3},
					{Code: "806", Description: "Finished, but still carries a code", Devices: 1},
					{Code: "-1", Description: cutDescription, Devices: 1},
					{Code: "1.5", Devices: 1},
				},
				FailedDevices: []Device{
					{SerialNumber: "SN-0301", Status: StatusFinishedWithErrors, ErrorCode: "808"},
					{SerialNumber: "SN-0302", Status: StatusFinishedWithErrors, ErrorCode: "808", ErrorDescription: "Device is assigned to another tenant."},
					{SerialNumber: "SN-0303", Status: StatusFinishedWithErrors, ErrorCode: "808", ErrorDescription: "Second description of 808"},
					{SerialNumber: "SN-0308", Status: StatusFinished, ErrorCode: "806", ErrorDescription: "Finished, but still carries a code"},
					{SerialNumber: "SN-0309", Status: StatusFinishedWithErrors, ErrorCode: "-1", ErrorDescription: cutDescription},
					{SerialNumber: "SN-0310", Status: StatusFinishedWithErrors, ErrorCode: "1.5"},
				},
			},
		},
		{
			name: "status spellings", file: "statuses.json", contentType: "application/json",
			want: &Batch{
				TrackingID:  "6e5d4c3b-2a19-4807-96f5-e4d3c2b1a098",
				Status:      StatusProcessing,
				RawStatus:   "in-progress",
				StartedTime: may1(10, 0, 0, 123456789),
				Devices: DeviceCounts{
					StatusFinishedWithErrors: 2, StatusProcessing: 3, StatusQueued: 1, StatusFinished: 1, StatusUnknown: 7,
				},
				UnknownDeviceStatuses: []string{"Paused", "paused"},
				FailedDevices: []Device{
					{SerialNumber: "SN-0401", Status: StatusFinishedWithErrors},
					{SerialNumber: "SN-0402", Status: StatusFinishedWithErrors},
				},
			},
		},
		{
			name: "queued with unset times", file: "queued.json", contentType: "application/json",
			want: &Batch{TrackingID: "9a8b7c6d-5e4f-4301-a2b3-c4d5e6f70819", Status: StatusQueued, RawStatus: "queued"},
		},
		{
			name: "unrecognised batch status", file: "unrecognised.json", contentType: "application/json",
			want: &Batch{
				TrackingID:  "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
				Status:      StatusUnknown,
				RawStatus:   "Paused",
				StartedTime: may1(10, 0, 0, 123456700),
			},
		},
		{
			name: "missing fields", file: "minimal.json", contentType: "application/json",
			want: &Batch{TrackingID: "2b3c4d5e-6f70-4812-9a3b-4c5d6e7f8091", Status: StatusUnknown},
		},
		{name: "spec xml", file: "spec.xml", contentType: "application/xml", want: specXMLBatch()},
		{name: "text/xml with charset", file: "spec.xml", contentType: "text/xml; charset=utf-8", want: specXMLBatch()},
		{name: "xml sniffed without content type", file: "spec.xml", contentType: "", want: specXMLBatch()},
		{name: "xml sniffed for unknown content type", file: "spec.xml", contentType: "text/plain", want: specXMLBatch()},
		{name: "xml with BOM", file: "bom.xml", contentType: "application/xml", want: bomBatch()},
		{name: "xml with BOM sniffed", file: "bom.xml", contentType: "", want: bomBatch()},
		{
			name: "xml name case, prefixes, unknown elements", file: "case_and_extras.xml", contentType: "text/xml",
			want: &Batch{
				TrackingID:    "7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a0f9",
				Status:        StatusFinishedWithErrors,
				RawStatus:     "Finished_With_Errors",
				StartedTime:   may1(9, 0, 0, 500000000),
				CompletedTime: may1(9, 30, 0, 0),
				Devices:       DeviceCounts{StatusFinished: 1, StatusFinishedWithErrors: 1},
				Errors:        []ErrorCount{{Code: "806", Description: "ZtdDeviceAlreadyAssigned & more", Devices: 1}},
				FailedDevices: []Device{{
					SerialNumber: "SN-0601", Status: StatusFinishedWithErrors, ErrorCode: "806", ErrorDescription: "ZtdDeviceAlreadyAssigned & more",
				}},
			},
		},
		{
			name: "xml nil device list and MinValue times", file: "nil_devices.xml", contentType: "application/xml",
			want: &Batch{TrackingID: "8f7e6d5c-4b3a-4291-8f0e-d1c2b3a49586", Status: StatusQueued, RawStatus: "queued"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			opts := DecodeOptions{MaxFailedDevices: DefaultMaxFailedDevices}
			if tt.opts != nil {
				opts = *tt.opts
			}
			got, err := Decode(bytes.NewReader(body), tt.contentType, opts)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := diffBatch(got, tt.want); diff != "" {
				t.Errorf("Decode(%s) mismatch:\n%s", tt.file, diff)
			}
		})
	}
}

// diffBatch lists the fields of got that differ from want, or returns "".
func diffBatch(got, want *Batch) string {
	var diff strings.Builder
	g, w := reflect.ValueOf(*got), reflect.ValueOf(*want)
	for i := range g.NumField() {
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			fmt.Fprintf(&diff, "%s:\n\tgot  %+v\n\twant %+v\n", g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface())
		}
	}
	return diff.String()
}

func TestDecodeErrors(t *testing.T) {
	longTime := strings.Repeat("9", 100)
	tests := []struct {
		name        string
		body        string
		contentType string
		wantErr     string
	}{
		{name: "empty body", body: "", wantErr: "decode batch: empty response body"},
		{name: "white space only", body: " \r\n\t", contentType: "application/json", wantErr: "decode batch: empty response body"},
		{name: "BOM only", body: utf8BOM + "\n", contentType: "application/xml", wantErr: "decode batch: empty response body"},
		{name: "top-level array", body: `[{"status":"finished"}]`, wantErr: "decode batch: top-level value: expected an object, got an array"},
		{name: "top-level string", body: `"finished"`, wantErr: "decode batch: top-level value: expected an object, got a string"},
		{name: "top-level null", body: `null`, wantErr: "decode batch: top-level value: expected an object, got null"},
		{name: "tracking id not a string", body: `{"batchTrackingId": 5}`, wantErr: "decode batch: batchTrackingId: expected a string, got a number"},
		{name: "status is an object", body: `{"status": {"value": "finished"}}`, wantErr: "decode batch: status: expected a string, got an object"},
		{name: "bad started time", body: `{"startedTime": "yesterday"}`, wantErr: `decode batch: startedTime: cannot parse "yesterday" as a time`},
		{name: "bad completed time", body: `{"completedTime": "2024-13-01T00:00:00Z"}`, wantErr: `decode batch: completedTime: cannot parse "2024-13-01T00:00:00Z" as a time`},
		{name: "long bad time is cut", body: `{"startedTime": "` + longTime + `"}`, wantErr: `decode batch: startedTime: cannot parse "` + longTime[:maxQuotedLen] + `"... as a time`},
		{name: "time is a number", body: `{"startedTime": 1714557600}`, wantErr: "decode batch: startedTime: expected a string, got a number"},
		{name: "devices is an object", body: `{"devicesStatus": {}}`, wantErr: "decode batch: devicesStatus: expected an array, got an object"},
		{name: "devices is a string", body: `{"devicesStatus": "none"}`, wantErr: "decode batch: devicesStatus: expected an array, got a string"},
		{name: "device is a number", body: `{"devicesStatus": [{}, 5]}`, wantErr: "decode batch: devicesStatus[1]: expected an object, got a number"},
		{name: "device is null", body: `{"devicesStatus": [{}, null]}`, wantErr: "decode batch: devicesStatus[1]: expected an object, got null"},
		{name: "device is an array", body: `{"devicesStatus": [[]]}`, wantErr: "decode batch: devicesStatus[0]: expected an object, got an array"},
		{name: "serial number is a number", body: `{"devicesStatus": [{"serialNumber": 5}]}`, wantErr: "decode batch: devicesStatus[0]: serialNumber: expected a string, got a number"},
		{name: "device status is a boolean", body: `{"devicesStatus": [{}, {}, {"Status": true}]}`, wantErr: "decode batch: devicesStatus[2]: status: expected a string, got a boolean"},
		{name: "error code is a boolean", body: `{"devicesStatus": [{"errorCode": true}]}`, wantErr: "decode batch: devicesStatus[0]: errorCode: expected a string or a number, got a boolean"},
		{name: "error code is an object", body: `{"devicesStatus": [{"errorCode": {"code": 808}}]}`, wantErr: "decode batch: devicesStatus[0]: errorCode: expected a string or a number, got an object"},
		{name: "bad escape in device", body: `{"devicesStatus": [{"errorCode": "\x"}]}`, wantErr: `decode batch: devicesStatus[0]: invalid character 'x' in string escape code`},
		{name: "trailing comma in device", body: `{"devicesStatus": [{"status": "finished",}]}`, wantErr: "decode batch: devicesStatus[0]: invalid character '}' looking for beginning of object key string"},
		{name: "truncated in a device", body: `{"devicesStatus": [{"status": "finished"}, {"sta`, wantErr: "decode batch: devicesStatus[1]: unexpected EOF"},
		{name: "truncated after a device", body: `{"devicesStatus": [{"status": "finished"}`, wantErr: "decode batch: devicesStatus: unexpected EOF"},
		{name: "truncated after a value", body: `{"status": "finished"`, wantErr: "decode batch: unexpected EOF"},
		{name: "truncated after a comma", body: `{"status": "finished",`, wantErr: "decode batch: unexpected EOF"},
		{name: "truncated in an unknown field", body: `{"links": [1, {"self": `, wantErr: "decode batch: unexpected EOF"},
		{name: "missing colon", body: `{"status" "finished"}`, wantErr: `decode batch: status: invalid character '"' after object key`},
		{name: "second top-level object", body: `{} {}`, wantErr: "decode batch: found an object after the top-level object"},
		{name: "garbage after the object", body: `{}x`, wantErr: "decode batch: invalid character 'x' looking for beginning of value"},
		{name: "two device lists", body: `{"devicesStatus": [], "DevicesStatus": []}`, wantErr: "decode batch: devicesStatus: appears more than once"},
		{name: "xml declared as json", body: `<BatchUploadDetails/>`, contentType: "application/json", wantErr: "decode batch: invalid character '<' looking for beginning of value"},
		{name: "json declared as xml", body: `{"status": "finished"}`, contentType: "application/xml", wantErr: "decode batch: unexpected text before the root element"},
		{name: "wrong xml root", body: `<Error><Code>600</Code></Error>`, wantErr: "decode batch: root element is <Error>, want <BatchUploadDetails>"},
		{name: "truncated xml", body: `<BatchUploadDetails><Status>finished</Status>`, wantErr: "decode batch: XML syntax error on line 1: unexpected EOF"},
		{name: "xml prolog only", body: `<?xml version="1.0"?>`, wantErr: "decode batch: unexpected EOF"},
		{name: "bad xml time", body: `<BatchUploadDetails><StartedTime>yesterday</StartedTime></BatchUploadDetails>`, wantErr: `decode batch: startedTime: cannot parse "yesterday" as a time`},
		{name: "mismatched xml tag", body: `<BatchUploadDetails><Status>finished</status></BatchUploadDetails>`, wantErr: "decode batch: status: XML syntax error on line 1: element <Status> closed by </status>"},
		{
			name:    "truncated xml device",
			body:    "<BatchUploadDetails><DevicesStatus>\n<DeviceUploadDetails><Status>finished</Status></DeviceUploadDetails>\n<DeviceUploadDetails><Status>fin",
			wantErr: "decode batch: devicesStatus[1]: status: XML syntax error on line 3: unexpected EOF",
		},
		{
			name:    "truncated after xml device",
			body:    "<BatchUploadDetails><DevicesStatus><DeviceUploadDetails/>",
			wantErr: "decode batch: devicesStatus: XML syntax error on line 1: unexpected EOF",
		},
		{
			name:    "nil xml device",
			body:    `<BatchUploadDetails xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><DevicesStatus><DeviceUploadDetails i:nil="true"/></DevicesStatus></BatchUploadDetails>`,
			wantErr: "decode batch: devicesStatus[0]: device is nil",
		},
		{name: "two xml device lists", body: `<BatchUploadDetails><DevicesStatus/><devicesStatus/></BatchUploadDetails>`, wantErr: "decode batch: devicesStatus: appears more than once"},
		{name: "second xml root", body: `<BatchUploadDetails/><BatchUploadDetails/>`, wantErr: "decode batch: unexpected element <BatchUploadDetails> after the root element"},
		{name: "text after xml root", body: `<BatchUploadDetails/> trailing`, wantErr: "decode batch: unexpected text after the root element"},
		{name: "unknown xml entity", body: `<BatchUploadDetails><Status>&nbsp;</Status></BatchUploadDetails>`, wantErr: "decode batch: status: XML syntax error on line 1: invalid character entity &nbsp;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(strings.NewReader(tt.body), tt.contentType, DecodeOptions{})
			if err == nil {
				t.Fatalf("Decode succeeded with %+v, want error %q", got, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Decode error:\n\tgot  %q\n\twant %q", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("Decode returned %+v with an error, want nil", got)
			}
		})
	}
}

var errReaderBroke = errors.New("reader broke")

// failingReader reads from r until limit bytes have been read, then fails
// with err, as the caller's size-capping reader does.
type failingReader struct {
	r     io.Reader
	limit int64
	err   error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.limit <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.limit {
		p = p[:f.limit]
	}
	n, err := f.r.Read(p)
	f.limit -= int64(n)
	return n, err
}

func TestDecodeReturnsReaderError(t *testing.T) {
	tests := []struct {
		name        string
		body        io.Reader
		contentType string
		failAfter   int64
		wantErr     string // exact, when the failure point is deterministic
	}{
		{name: "before the first byte", body: strings.NewReader(`{}`), failAfter: 0, wantErr: "decode batch: reader broke"},
		{name: "after the BOM", body: strings.NewReader(utf8BOM + `{}`), failAfter: 3, wantErr: "decode batch: reader broke"},
		{
			name:      "inside a json device",
			body:      strings.NewReader(`{"devicesStatus": [{"status": "finished"}, {"status": "finished"}]}`),
			failAfter: int64(len(`{"devicesStatus": [{"status": "finished"}, {"sta`)),
			wantErr:   "decode batch: devicesStatus[1]: reader broke",
		},
		{
			name:        "inside an xml device",
			body:        strings.NewReader(`<BatchUploadDetails><DevicesStatus><DeviceUploadDetails><Status>finished</Status></DeviceUploadDetails></DevicesStatus></BatchUploadDetails>`),
			contentType: "application/xml",
			failAfter:   int64(len(`<BatchUploadDetails><DevicesStatus><DeviceUploadDetails><Status>fin`)),
			wantErr:     "decode batch: devicesStatus[0]: status: reader broke",
		},
		{name: "mid-stream json", body: newGeneratedBody(jsonBody, 10_000, 10, 5), failAfter: 500_000},
		{name: "mid-stream xml", body: newGeneratedBody(xmlBody, 10_000, 10, 5), failAfter: 500_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &failingReader{r: tt.body, limit: tt.failAfter, err: errReaderBroke}
			got, err := Decode(r, tt.contentType, DecodeOptions{})
			if !errors.Is(err, errReaderBroke) {
				t.Fatalf("Decode = %+v, %v; want an error wrapping %v", got, err, errReaderBroke)
			}
			if tt.wantErr != "" && err.Error() != tt.wantErr {
				t.Errorf("Decode error:\n\tgot  %q\n\twant %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeErrorCodeLimit(t *testing.T) {
	// MaxErrorCodes+2 distinct codes, then one more device for the first
	// code and one for an overflowing code.
	var body strings.Builder
	body.WriteString(`{"devicesStatus": [`)
	for i := range MaxErrorCodes + 2 {
		fmt.Fprintf(&body, `{"status": "finished_with_errors", "errorCode": "%d"},`, i)
	}
	fmt.Fprintf(&body, `{"errorCode": "0"}, {"errorCode": "%d"}]}`, MaxErrorCodes+1)

	got, err := Decode(strings.NewReader(body.String()), "application/json", DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(got.Errors) != MaxErrorCodes {
		t.Fatalf("len(Errors) = %d, want %d", len(got.Errors), MaxErrorCodes)
	}
	if want := (ErrorCount{Code: "0", Devices: 2}); got.Errors[0] != want {
		t.Errorf("Errors[0] = %+v, want %+v", got.Errors[0], want)
	}
	last := MaxErrorCodes - 1
	if want := (ErrorCount{Code: strconv.Itoa(last), Devices: 1}); got.Errors[last] != want {
		t.Errorf("Errors[%d] = %+v, want %+v", last, got.Errors[last], want)
	}
	if got.OtherErrorDevices != 3 {
		t.Errorf("OtherErrorDevices = %d, want 3", got.OtherErrorDevices)
	}
	if want := MaxErrorCodes + 4; got.FailedDevicesOmitted != want {
		t.Errorf("FailedDevicesOmitted = %d, want %d", got.FailedDevicesOmitted, want)
	}
}

func TestDecodeUnknownStatusLimit(t *testing.T) {
	var body strings.Builder
	body.WriteString(`{"devicesStatus": [`)
	for i := range maxUnknownStatuses + 5 {
		fmt.Fprintf(&body, `{"status": "odd%d"}, {"status": "odd%d"},`, i, i)
	}
	body.WriteString(`{"status": "finished"}]}`)

	got, err := Decode(strings.NewReader(body.String()), "", DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	var want []string
	for i := range maxUnknownStatuses {
		want = append(want, "odd"+strconv.Itoa(i))
	}
	if !reflect.DeepEqual(got.UnknownDeviceStatuses, want) {
		t.Errorf("UnknownDeviceStatuses = %q, want %q", got.UnknownDeviceStatuses, want)
	}
	if wantCounts := (DeviceCounts{StatusUnknown: 2 * (maxUnknownStatuses + 5), StatusFinished: 1}); got.Devices != wantCounts {
		t.Errorf("Devices = %v, want %v", got.Devices, wantCounts)
	}
}

// TestDecodeGeneratedBody checks the generator used by the memory test
// and the benchmarks, and the default cap on kept failed devices.
func TestDecodeGeneratedBody(t *testing.T) {
	for _, format := range []bodyFormat{jsonBody, xmlBody} {
		t.Run(format.String(), func(t *testing.T) {
			const devices = DefaultMaxFailedDevices + 5
			got, err := Decode(newGeneratedBody(format, devices, 1, 3), format.contentType(), DecodeOptions{MaxFailedDevices: DefaultMaxFailedDevices})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := (DeviceCounts{StatusFinishedWithErrors: devices}); got.Devices != want {
				t.Errorf("Devices = %v, want %v", got.Devices, want)
			}
			wantErrors := []ErrorCount{
				{Code: "800", Description: "Generated error 800", Devices: 3335},
				{Code: "801", Description: "Generated error 801", Devices: 3335},
				{Code: "802", Description: "Generated error 802", Devices: 3335},
			}
			if !reflect.DeepEqual(got.Errors, wantErrors) {
				t.Errorf("Errors = %+v, want %+v", got.Errors, wantErrors)
			}
			if len(got.FailedDevices) != DefaultMaxFailedDevices || got.FailedDevicesOmitted != 5 {
				t.Errorf("kept %d failed devices and omitted %d, want %d and 5", len(got.FailedDevices), got.FailedDevicesOmitted, DefaultMaxFailedDevices)
			}
			wantLast := Device{
				SerialNumber: "SN0000009999", DeviceID: "00009999-0000-4000-8000-000000000000",
				Status: StatusFinishedWithErrors, ErrorCode: "800", ErrorDescription: "Generated error 800",
			}
			if last := got.FailedDevices[len(got.FailedDevices)-1]; last != wantLast {
				t.Errorf("last kept device = %+v, want %+v", last, wantLast)
			}
		})
	}
}

// TestDecodeMemoryDoesNotGrowWithDevices streams a body of more than 60 MB
// and checks that the live heap seen while decoding stays small: the
// device list must be folded, not kept.
func TestDecodeMemoryDoesNotGrowWithDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("streams more than 60 MB")
	}
	const (
		devices   = 300_000
		minBody   = 60 << 20
		heapLimit = 16 << 20
	)
	// The heap figure depends on the GC running; GOGC=off would defeat it.
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	body := newGeneratedBody(jsonBody, devices, 0, 0)
	// Sampled by the body as it is read, not by a ticker, so that no
	// megabyte goes by unmeasured however the goroutines are scheduled.
	var peak uint64
	body.onMegabyte = func() { peak = max(peak, testkit.HeapBytes()) }
	runtime.GC()

	got, err := Decode(body, "application/json", DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if want := (DeviceCounts{StatusFinished: devices}); got.Devices != want {
		t.Fatalf("Devices = %v, want %v", got.Devices, want)
	}
	if body.produced <= minBody {
		t.Fatalf("the generated body has %d bytes, want more than %d for this test to mean anything", body.produced, minBody)
	}
	if peak == 0 || peak >= heapLimit {
		t.Errorf("peak heap while decoding %d bytes = %d bytes, want less than %d (and more than 0)", body.produced, peak, heapLimit)
	}
	t.Logf("decoded %d bytes with a peak heap of %d bytes", body.produced, peak)
}

func BenchmarkDecodeJSON(b *testing.B) { benchmarkDecode(b, jsonBody) }

func BenchmarkDecodeXML(b *testing.B) { benchmarkDecode(b, xmlBody) }

// benchmarkDecode decodes 100,000 devices, 10% failed with 5 distinct
// error codes. The body is generated once, outside the timer.
func benchmarkDecode(b *testing.B, format bodyFormat) {
	const devices = 100_000
	body, err := io.ReadAll(newGeneratedBody(format, devices, 10, 5))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	var batch *Batch
	for b.Loop() {
		batch, err = Decode(bytes.NewReader(body), format.contentType(), DecodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if want := (DeviceCounts{StatusFinished: devices * 9 / 10, StatusFinishedWithErrors: devices / 10}); batch.Devices != want {
		b.Fatalf("Devices = %v, want %v", batch.Devices, want)
	}
}

func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
	}
	f.Add([]byte(`{"devicesStatus": [{"errorCode": 1e400}, {"errorCode": -0.0}]}`), "application/json")
	f.Add([]byte(`<BatchUploadDetails><DevicesStatus><DeviceUploadDetails><ErrorCode>1</ErrorCode></DeviceUploadDetails></DevicesStatus></BatchUploadDetails>`), "text/xml")

	const maxFailed = 3
	f.Fuzz(func(t *testing.T, data []byte, contentType string) {
		got, err := Decode(bytes.NewReader(data), contentType, DecodeOptions{MaxFailedDevices: maxFailed})
		if err != nil {
			return
		}
		total := got.Devices.Total()
		errorDevices := got.OtherErrorDevices
		for _, e := range got.Errors {
			errorDevices += e.Devices
			if e.Code == "" || len(e.Description) > MaxErrorDescriptionLen {
				t.Errorf("bad error entry %+v", e)
			}
		}
		switch {
		case len(got.Errors) > MaxErrorCodes:
			t.Errorf("%d error codes kept, limit %d", len(got.Errors), MaxErrorCodes)
		case len(got.UnknownDeviceStatuses) > maxUnknownStatuses:
			t.Errorf("%d unknown statuses kept, limit %d", len(got.UnknownDeviceStatuses), maxUnknownStatuses)
		case len(got.FailedDevices) > maxFailed:
			t.Errorf("%d failed devices kept, limit %d", len(got.FailedDevices), maxFailed)
		case len(got.FailedDevices)+got.FailedDevicesOmitted > total:
			t.Errorf("%d failed devices of %d", len(got.FailedDevices)+got.FailedDevicesOmitted, total)
		case errorDevices > total:
			t.Errorf("%d devices with errors of %d", errorDevices, total)
		}
	})
}

type bodyFormat int

const (
	jsonBody bodyFormat = iota
	xmlBody
)

func (f bodyFormat) String() string {
	if f == xmlBody {
		return "xml"
	}
	return "json"
}

func (f bodyFormat) contentType() string {
	if f == xmlBody {
		return "application/xml; charset=utf-8"
	}
	return "application/json; charset=utf-8"
}

// generatedBody produces a BatchUploadDetails body piece by piece, one
// device at a time, so that a test can stream a huge body without holding
// it. Device i fails when failedEvery > 0 and i%failedEvery == 0, with one
// of errorCodes codes in turn.
type generatedBody struct {
	format      bodyFormat
	devices     int
	failedEvery int
	errorCodes  int
	// onMegabyte, if set, is called each time another MiB has been read.
	onMegabyte func()

	next     int // the next device to write; -1 before the header
	pending  []byte
	buf      []byte
	produced int64
	reported int64
}

func newGeneratedBody(format bodyFormat, devices, failedEvery, errorCodes int) *generatedBody {
	return &generatedBody{format: format, devices: devices, failedEvery: failedEvery, errorCodes: errorCodes, next: -1}
}

func (g *generatedBody) Read(p []byte) (int, error) {
	for len(g.pending) == 0 {
		if !g.fill() {
			return 0, io.EOF
		}
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	g.produced += int64(n)
	if g.onMegabyte != nil && g.produced-g.reported >= 1<<20 {
		g.reported = g.produced
		g.onMegabyte()
	}
	return n, nil
}

// fill puts the next piece of the body into pending; false means done.
func (g *generatedBody) fill() bool {
	buf := g.buf[:0]
	switch {
	case g.next < 0:
		buf = g.appendHeader(buf)
	case g.next < g.devices:
		buf = g.appendDevice(buf, g.next)
	case g.next == g.devices:
		buf = g.appendFooter(buf)
	default:
		return false
	}
	g.next++
	g.buf, g.pending = buf, buf
	return true
}

func (g *generatedBody) appendHeader(buf []byte) []byte {
	if g.format == xmlBody {
		return append(buf, `<?xml version="1.0" encoding="utf-8"?>
<BatchUploadDetails xmlns="http://schemas.datacontract.org/2004/07/Microsoft.Partner.Providers.Contracts.V1" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
<BatchTrackingId>0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5</BatchTrackingId><CompletedTime i:nil="true"/><DevicesStatus>
`...)
	}
	return append(buf, `{"batchTrackingId":"0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5","devicesStatus":[
`...)
}

func (g *generatedBody) appendFooter(buf []byte) []byte {
	if g.format == xmlBody {
		return append(buf, `</DevicesStatus><StartedTime>2024-05-01T10:00:00.1234567Z</StartedTime><Status>processing</Status></BatchUploadDetails>
`...)
	}
	return append(buf, `],"status":"processing","startedTime":"2024-05-01T10:00:00.1234567Z","completedTime":null}
`...)
}

func (g *generatedBody) appendDevice(buf []byte, i int) []byte {
	status, code := "finished", ""
	if g.failedEvery > 0 && i%g.failedEvery == 0 {
		status = "finished_with_errors"
		code = strconv.Itoa(800 + (i/g.failedEvery)%g.errorCodes)
	}
	// Plain appends rather than fmt: the memory test generates 300,000
	// devices, under the race detector too.
	if g.format == xmlBody {
		if i > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, `<DeviceUploadDetails><Attributes xmlns="http://schemas.datacontract.org/2004/07/Microsoft.Partner.Core.Collections"><Etag i:nil="true"/><ObjectType>DeviceUploadDetails</ObjectType></Attributes><DeviceId>`...)
		buf = appendZeroPadded(buf, i, 8)
		buf = append(buf, `-0000-4000-8000-000000000000</DeviceId><ErrorCode>`...)
		buf = append(buf, code...)
		buf = append(buf, `</ErrorCode><ErrorDescription>`...)
		buf = appendDescription(buf, code)
		buf = append(buf, `</ErrorDescription><ProductKey i:nil="true"/><SerialNumber>SN`...)
		buf = appendZeroPadded(buf, i, 10)
		buf = append(buf, `</SerialNumber><Status>`...)
		buf = append(buf, status...)
		return append(buf, `</Status></DeviceUploadDetails>`...)
	}
	if i > 0 {
		buf = append(buf, ",\n"...)
	}
	buf = append(buf, `{"deviceId":"`...)
	buf = appendZeroPadded(buf, i, 8)
	buf = append(buf, `-0000-4000-8000-000000000000","serialNumber":"SN`...)
	buf = appendZeroPadded(buf, i, 10)
	buf = append(buf, `","productKey":"","status":"`...)
	buf = append(buf, status...)
	buf = append(buf, `","errorCode":"`...)
	buf = append(buf, code...)
	buf = append(buf, `","errorDescription":"`...)
	buf = appendDescription(buf, code)
	return append(buf, `","attributes":{"objectType":"DeviceUploadDetails","etag":null}}`...)
}

func appendDescription(buf []byte, code string) []byte {
	if code == "" {
		return buf
	}
	return append(append(buf, "Generated error "...), code...)
}

// appendZeroPadded appends n in decimal, zero-padded to width digits.
func appendZeroPadded(buf []byte, n, width int) []byte {
	digits := strconv.Itoa(n)
	for range width - len(digits) {
		buf = append(buf, '0')
	}
	return append(buf, digits...)
}
