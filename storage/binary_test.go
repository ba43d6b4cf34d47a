package storage

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Every cut of a version 3 value, and one with bytes after it, is
// refused: never read as another record, never a panic.
func TestTruncatedBinaryRecordIsUndecodable(t *testing.T) {
	b := &partnercenter.Batch{
		TrackingID: "t", Status: partnercenter.StatusFinishedWithErrors, RawStatus: "x",
		StartedTime: time.Unix(1, 2).UTC(), CompletedTime: time.Unix(3, 4).UTC(),
		UnknownDeviceStatuses: []string{"u"},
		Errors:                []partnercenter.ErrorCount{{Code: "1", Description: "d", Devices: 1}},
		OtherErrorDevices:     -1,
		FailedDevices:         []partnercenter.Device{{SerialNumber: "s", Status: partnercenter.StatusQueued, ErrorCode: "1"}},
		FailedDevicesOmitted:  2,
	}
	b.Devices[partnercenter.StatusQueued] = 5
	value, err := encodeRecord(Record{CustomerID: "c", TrackingID: "t", Stamp: "s", LastSuccess: time.Unix(5, 6).UTC(), Batch: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeRecord([]byte("c/t"), value); err != nil {
		t.Fatalf("whole value: %v", err)
	}
	for n := 1; n < len(value); n++ {
		if r, _, err := decodeRecord([]byte("c/t"), value[:n]); err == nil {
			t.Fatalf("value cut at %d of %d bytes decoded as %+v", n, len(value), r)
		}
	}
	if _, _, err := decodeRecord([]byte("c/t"), append(value, 0)); err == nil || !strings.Contains(err.Error(), "after the binary record") {
		t.Fatalf("value with a byte after it: %v", err)
	}
}

// A count larger than the value could hold allocates nothing and fails.
func TestBinaryRecordWithHugeCountIsUndecodable(t *testing.T) {
	w := binWriter{buf: []byte{recordVersion}}
	w.str("c")
	w.str("t")
	w.str("")
	w.time(time.Time{})
	w.bool(false)
	w.str("t")
	w.str("finished")
	w.str("")
	w.time(time.Time{})
	w.time(time.Time{})
	w.uint(0)       // device counts
	w.uint(0)       // unknown statuses
	w.uint(1 << 40) // errors
	huge := w.buf
	allocs := testing.AllocsPerRun(10, func() {
		if _, _, err := decodeRecord([]byte("c/t"), huge); !errors.Is(err, errTruncated) {
			t.Fatalf("err = %v, want %v", err, errTruncated)
		}
	})
	if allocs > 5 {
		t.Fatalf("%.0f allocations", allocs)
	}
}
