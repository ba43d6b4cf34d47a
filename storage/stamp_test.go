package storage_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// A record written before stamps existed (version 1) is still read, with
// no stamp: the exporter decides what that means.
func TestVersion1RecordReadsWithoutStamp(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, &logBuffer{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Exactly what the exporter wrote before stamps were added.
	v1 := `{"v":1,"customer_id":"c","tracking_id":"t","last_success":"2026-12-01T00:00:01Z","retired":true,` +
		`"batch":{"tracking_id":"t","status":"finished","raw_status":"Finished","completed_time":"2026-11-30T00:00:00Z"}}`
	withRawStore(t, dir, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("batches")).Put([]byte("c/t"), []byte(v1))
	})
	logs := &logBuffer{}
	got := mustLoad(t, mustOpen(t, dir, logs))
	want := []storage.Record{{
		CustomerID: "c", TrackingID: "t", LastSuccess: time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC), Retired: true,
		Batch: &partnercenter.Batch{
			TrackingID: "t", Status: partnercenter.StatusFinished, RawStatus: "Finished",
			CompletedTime: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
		},
	}}
	if !reflect.DeepEqual(got, want) || logs.String() != "" {
		t.Errorf("Load = %+v (logs %q), want %+v and no log", got, logs, want)
	}
}

func TestPutAllAndDeleteAll(t *testing.T) {
	db := mustOpen(t, t.TempDir(), &logBuffer{})
	var records []storage.Record
	for i := range 10 {
		r := finishedRecord(i)
		r.Stamp = "s"
		records = append(records, r)
	}
	if err := db.PutAll(records); err != nil {
		t.Fatalf("PutAll: %v", err)
	}
	if got := mustLoad(t, db); len(got) != 10 || got[0].Stamp != "s" {
		t.Fatalf("after PutAll, Load = %d records (first stamp %q), want 10 stamped", len(got), got[0].Stamp)
	}
	ids := []storage.ID{{CustomerID: "not", TrackingID: "stored"}}
	for i := range 8 {
		r := finishedRecord(i)
		ids = append(ids, storage.ID{CustomerID: strings.ToUpper(r.CustomerID), TrackingID: r.TrackingID})
	}
	if err := db.DeleteAll(ids); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	var kept []string
	for _, r := range mustLoad(t, db) {
		kept = append(kept, r.TrackingID)
	}
	slices.Sort(kept)
	if want := []string{finishedRecord(8).TrackingID, finishedRecord(9).TrackingID}; !slices.Equal(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	// A record that cannot be stored changes nothing.
	bad := finishedRecord(11)
	bad.Batch = nil
	if err := db.PutAll([]storage.Record{finishedRecord(10), bad}); err == nil {
		t.Error("PutAll of a record without a batch succeeded")
	}
	if got := mustLoad(t, db); len(got) != 2 {
		t.Errorf("a failed PutAll left %d records, want the 2 before it", len(got))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAll(ids); err == nil || !strings.Contains(err.Error(), "storage: deleting 9 batches: storage is closed") {
		t.Errorf("DeleteAll after Close: %v", err)
	}
}

// A store written by the exporter before version 3 (JSON records) is read
// as it was, and rewritten in version 3 by the first Load, once.
func TestVersion2RecordIsReadAndMigratedOnce(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, &logBuffer{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Exactly what the exporter wrote in version 2.
	v2 := `{"v":2,"customer_id":"C","tracking_id":"T","stamp":"abc","last_success":"2026-12-01T00:00:01.5Z",` +
		`"batch":{"tracking_id":"T","status":"finished_with_errors","raw_status":"FinishedWithErrors",` +
		`"started_time":"2026-11-30T00:00:00Z","completed_time":"2026-11-30T01:00:00.25Z",` +
		`"devices":{"finished":7,"finished_with_errors":2},"unknown_device_statuses":["weird"],` +
		`"errors":[{"code":"806","description":"Already assigned","devices":2}],"other_error_devices":1,` +
		`"failed_devices":[{"serial_number":"SN1","device_id":"d1","product_key":"PK","status":"finished_with_errors","error_code":"806","error_description":"Already assigned"}],` +
		`"failed_devices_omitted":1}}`
	withRawStore(t, dir, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("batches")).Put([]byte("c/t"), []byte(v2))
	})
	b := &partnercenter.Batch{
		TrackingID: "T", Status: partnercenter.StatusFinishedWithErrors, RawStatus: "FinishedWithErrors",
		StartedTime: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), CompletedTime: time.Date(2026, 11, 30, 1, 0, 0, 250e6, time.UTC),
		UnknownDeviceStatuses: []string{"weird"},
		Errors:                []partnercenter.ErrorCount{{Code: "806", Description: "Already assigned", Devices: 2}},
		OtherErrorDevices:     1,
		FailedDevices: []partnercenter.Device{{
			SerialNumber: "SN1", DeviceID: "d1", ProductKey: "PK",
			Status: partnercenter.StatusFinishedWithErrors, ErrorCode: "806", ErrorDescription: "Already assigned",
		}},
		FailedDevicesOmitted: 1,
	}
	b.Devices[partnercenter.StatusFinished] = 7
	b.Devices[partnercenter.StatusFinishedWithErrors] = 2
	want := []storage.Record{{CustomerID: "C", TrackingID: "T", Stamp: "abc", LastSuccess: time.Date(2026, 12, 1, 0, 0, 1, 500e6, time.UTC), Batch: b}}

	logs := &logBuffer{}
	db = mustOpen(t, dir, logs)
	if got := mustLoad(t, db); !reflect.DeepEqual(got, want) || logs.String() != "" {
		t.Fatalf("first Load = %+v (logs %q), want %+v and no log", got, logs, want)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	migrated := rawValue(t, dir, "c/t")
	if migrated[0] != 3 {
		t.Fatalf("after the first Load the value is %q, want version 3", migrated)
	}
	db = mustOpen(t, dir, logs)
	if got := mustLoad(t, db); !reflect.DeepEqual(got, want) || logs.String() != "" {
		t.Fatalf("second Load = %+v (logs %q), want %+v and no log", got, logs, want)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if again := rawValue(t, dir, "c/t"); again != migrated {
		t.Fatalf("the second Load rewrote the value: %q, was %q", again, migrated)
	}
}
