package storage_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// fixedNow is the clock of every test, so that names of moved files are known.
var fixedNow = time.Date(2026, 12, 1, 20, 45, 0, 0, time.UTC)

const fixedNowName = "20261201T204500Z"

// logBuffer collects logfmt lines from the store.
type logBuffer = testkit.SyncBuffer

func testOptions(logs *logBuffer) storage.Options {
	return storage.Options{
		Logger:      log.NewLogfmtLogger(logs),
		LockTimeout: 100 * time.Millisecond,
		Now:         func() time.Time { return fixedNow },
	}
}

func mustOpen(t testing.TB, dir string, logs *logBuffer) *storage.DB {
	t.Helper()
	db, err := storage.Open(dir, testOptions(logs))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustLoad(t testing.TB, db *storage.DB) []storage.Record {
	t.Helper()
	records, err := db.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return records
}

func mustPut(t testing.TB, db *storage.DB, records ...storage.Record) {
	t.Helper()
	for _, r := range records {
		if err := db.Put(r); err != nil {
			t.Fatalf("Put %s/%s: %v", r.CustomerID, r.TrackingID, err)
		}
	}
}

// finishedBatch is a realistic finished batch: 100 devices, a few error
// codes and the failed devices kept.
func finishedBatch(i int) *partnercenter.Batch {
	const failed = 10
	started := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	b := &partnercenter.Batch{
		TrackingID:    fmt.Sprintf("%08x-1111-2222-3333-%012x", i, i),
		Status:        partnercenter.StatusFinishedWithErrors,
		RawStatus:     "finished_with_errors",
		StartedTime:   started,
		CompletedTime: started.Add(7 * time.Minute),
		Errors: []partnercenter.ErrorCount{
			{Code: "806", Description: "ZtdDeviceAlreadyAssigned: the device is already assigned to another tenant", Devices: 6},
			{Code: "808", Description: "ZtdDeviceAssignedToOtherTenant", Devices: 3},
			{Code: "-2147024809", Description: "The parameter is incorrect.", Devices: 1},
		},
	}
	b.Devices[partnercenter.StatusFinished] = 100 - failed
	b.Devices[partnercenter.StatusFinishedWithErrors] = failed
	for d := range failed {
		e := b.Errors[d%len(b.Errors)]
		b.FailedDevices = append(b.FailedDevices, partnercenter.Device{
			SerialNumber:     fmt.Sprintf("SN%06d%04d", i, d),
			DeviceID:         fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012x", i, d),
			ProductKey:       fmt.Sprintf("PK-%06d-%04d", i, d),
			Status:           partnercenter.StatusFinishedWithErrors,
			ErrorCode:        e.Code,
			ErrorDescription: e.Description,
		})
	}
	return b
}

func finishedRecord(i int) storage.Record {
	b := finishedBatch(i)
	return storage.Record{
		CustomerID:  fmt.Sprintf("%08x-cccc-4444-5555-666666666666", i%7),
		TrackingID:  b.TrackingID,
		Batch:       b,
		LastSuccess: b.CompletedTime.Add(time.Minute),
	}
}
