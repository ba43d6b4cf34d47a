package storage_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// fullRecord sets every field of Record and Batch, with unknown statuses
// and a zero completion time.
func fullRecord() storage.Record {
	b := &partnercenter.Batch{
		TrackingID:            "9F2C0D1E-AAAA-4BBB-8CCC-0123456789AB",
		Status:                partnercenter.StatusUnknown,
		RawStatus:             "Paused-ish",
		StartedTime:           time.Date(2026, 11, 30, 23, 59, 58, 123456789, time.UTC),
		UnknownDeviceStatuses: []string{"weird", "Stranger"},
		Errors: []partnercenter.ErrorCount{
			{Code: "806", Description: "ZtdDeviceAlreadyAssigned", Devices: 2},
			{Code: "", Description: "", Devices: 0},
		},
		OtherErrorDevices: 3,
		FailedDevices: []partnercenter.Device{
			{SerialNumber: "SN1", DeviceID: "dev-1", ProductKey: "PK1", Status: partnercenter.StatusFinishedWithErrors, ErrorCode: "806", ErrorDescription: "ZtdDeviceAlreadyAssigned"},
			{SerialNumber: "SN2", Status: partnercenter.StatusUnknown, ErrorCode: "x"},
			{DeviceID: "dev-3", Status: partnercenter.StatusQueued},
		},
		FailedDevicesOmitted: 4,
	}
	for i, s := range partnercenter.Statuses {
		b.Devices[s] = 10 + i
	}
	return storage.Record{
		CustomerID:  "Customer-A",
		TrackingID:  b.TrackingID,
		Stamp:       "3f1c0a9d5e7b2468",
		Batch:       b,
		LastSuccess: time.Date(2026, 12, 1, 0, 0, 1, 5, time.UTC),
	}
}

func TestRoundTripFullRecord(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, &logBuffer{})
	want := fullRecord()
	zeroTimes := storage.Record{CustomerID: "c", TrackingID: "t", Batch: &partnercenter.Batch{TrackingID: "t", Status: partnercenter.StatusQueued}}
	retired := storage.Record{
		CustomerID: "d", TrackingID: "t", Retired: true, LastSuccess: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Batch: &partnercenter.Batch{
			TrackingID: "t", Status: partnercenter.StatusFinished, RawStatus: "finished",
			CompletedTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		},
	}
	mustPut(t, db, want, zeroTimes, retired)

	got := mustLoad(t, db)
	if len(got) != 3 {
		t.Fatalf("Load returned %d records, want 3", len(got))
	}
	if !reflect.DeepEqual(got[2], retired) {
		t.Errorf("retired marker:\n got %+v\nwant %+v", got[2], retired)
	}
	if !reflect.DeepEqual(got[0], zeroTimes) {
		t.Errorf("zero times:\n got %+v\nwant %+v", got[0], zeroTimes)
	}
	if !reflect.DeepEqual(got[1], want) {
		t.Errorf("full record:\n got %+v\n     %+v\nwant %+v\n     %+v", got[1], *got[1].Batch, want, *want.Batch)
	}
}

func TestTimesComeBackInUTC(t *testing.T) {
	db := mustOpen(t, t.TempDir(), &logBuffer{})
	r := finishedRecord(1)
	paris := time.FixedZone("CET", 3600)
	r.LastSuccess = time.Now().In(paris) // with a monotonic reading
	mustPut(t, db, r)

	got := mustLoad(t, db)[0].LastSuccess
	if !got.Equal(r.LastSuccess) || got.Location() != time.UTC {
		t.Errorf("LastSuccess = %v, want %v in UTC", got, r.LastSuccess)
	}
}

// TestStatusesStoredByName guards the file format: a reordering of the
// Status enum must not change what stored data means.
func TestStatusesStoredByName(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, &logBuffer{})
	mustPut(t, db, fullRecord())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	value := rawValue(t, dir, "customer-a/9f2c0d1e-aaaa-4bbb-8ccc-0123456789ab")
	if value[0] != 3 {
		t.Errorf("stored value is version %d, want 3", value[0])
	}
	// Version 3 is binary; the statuses are there by name, each as a
	// length and the name.
	for _, want := range []string{"3f1c0a9d5e7b2468", "\x07unknown", "\x14finished_with_errors", "\x06queued", "\x0aprocessing\x16"} {
		if !strings.Contains(value, want) {
			t.Errorf("stored value lacks %q: %q", want, value)
		}
	}
}

func TestLoadIsInKeyOrderAndKeysIgnoreCase(t *testing.T) {
	db := mustOpen(t, t.TempDir(), &logBuffer{})
	rec := func(customer, tracking string) storage.Record {
		return storage.Record{CustomerID: customer, TrackingID: tracking, Batch: &partnercenter.Batch{TrackingID: tracking}}
	}
	mustPut(t, db, rec("b", "2"), rec("a", "9"), rec("B", "1"), rec("a", "10"))
	mustPut(t, db, rec("A", "9")) // replaces a/9

	var keys []string
	for _, r := range mustLoad(t, db) {
		keys = append(keys, r.CustomerID+"/"+r.TrackingID)
	}
	want := []string{"a/10", "A/9", "B/1", "b/2"}
	if !slices.Equal(keys, want) {
		t.Errorf("Load order = %q, want %q", keys, want)
	}
}

func TestDelete(t *testing.T) {
	db := mustOpen(t, t.TempDir(), &logBuffer{})
	mustPut(t, db, finishedRecord(1), finishedRecord(2))
	r := finishedRecord(1)
	if err := db.Delete(strings.ToUpper(r.CustomerID), r.TrackingID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := db.Delete("absent", "batch"); err != nil {
		t.Errorf("Delete of an absent batch: %v", err)
	}
	got := mustLoad(t, db)
	if len(got) != 1 || got[0].TrackingID != finishedRecord(2).TrackingID {
		t.Errorf("after Delete, Load = %+v, want only record 2", got)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(dir, testOptions(&logBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, finishedRecord(1), finishedRecord(2))
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	logs := &logBuffer{}
	got := mustLoad(t, mustOpen(t, dir, logs))
	if !reflect.DeepEqual(got, []storage.Record{finishedRecord(1), finishedRecord(2)}) {
		t.Errorf("after reopening, Load = %+v", got)
	}
	if logs.String() != "" {
		t.Errorf("reopening an intact store logged: %s", logs)
	}
}

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	mustOpen(t, dir, &logBuffer{})
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode = %v, want 0700", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, storage.FileName)); err != nil {
		t.Errorf("store file: %v", err)
	}
}

// TestSecondOpenIsLocked relies on bbolt's flock, which locks per open file
// description: a second open in the same process conflicts like another
// process would.
func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	first := mustOpen(t, dir, &logBuffer{})
	mustPut(t, first, finishedRecord(1))

	start := time.Now()
	second, err := storage.Open(dir, testOptions(&logBuffer{}))
	if err == nil {
		_ = second.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("second Open took %v", elapsed)
	}
	path := filepath.Join(dir, storage.FileName)
	want := "storage " + path + " is locked by another process (is another exporter using --storage.path=" + dir + "?)"
	if err.Error() != want || !errors.Is(err, storage.ErrLocked) {
		t.Errorf("error = %q, want %q wrapping ErrLocked", err, want)
	}
	assertNothingMovedAside(t, dir)

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, mustOpen(t, dir, &logBuffer{})); len(got) != 1 {
		t.Errorf("after the first closed, Load = %d records, want 1", len(got))
	}
}

func TestPutRejectsIncompleteRecords(t *testing.T) {
	db := mustOpen(t, t.TempDir(), &logBuffer{})
	batch := &partnercenter.Batch{TrackingID: "t"}
	for name, r := range map[string]storage.Record{
		"no batch":       {CustomerID: "c", TrackingID: "t"},
		"no customer":    {TrackingID: "t", Batch: batch},
		"no tracking":    {CustomerID: "c", Batch: batch},
		"slash customer": {CustomerID: "c/d", TrackingID: "t", Batch: batch},
	} {
		if err := db.Put(r); err == nil || !strings.HasPrefix(err.Error(), "storage: encoding batch ") {
			t.Errorf("%s: Put error = %v, want an encoding error", name, err)
		}
	}
	if got := mustLoad(t, db); len(got) != 0 {
		t.Errorf("rejected records were stored: %+v", got)
	}
}

func TestClosedStoreFails(t *testing.T) {
	db, err := storage.Open(t.TempDir(), testOptions(&logBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := db.Put(finishedRecord(1)); err == nil || !strings.Contains(err.Error(), "storage is closed") {
		t.Errorf("Put after Close = %v", err)
	}
	if _, err := db.Load(); err == nil {
		t.Error("Load after Close succeeded")
	}
}

// TestFailedWriteLeavesStoreUsable makes bbolt refuse to grow the file, a
// real write failure that leaves the transaction rolled back.
func TestFailedWriteLeavesStoreUsable(t *testing.T) {
	const maxSize = 1 << 20
	db, err := storage.OpenTuned(t.TempDir(), testOptions(&logBuffer{}), func(o *bolt.Options) { o.MaxSize = maxSize })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	mustPut(t, db, finishedRecord(1))

	huge := finishedRecord(2)
	huge.Batch.RawStatus = strings.Repeat("x", 2*maxSize)
	err = db.Put(huge)
	if !errors.Is(err, bolterrors.ErrMaxSizeReached) || !strings.HasPrefix(err.Error(), "storage: storing batch "+strings.ToLower(huge.CustomerID)) {
		t.Fatalf("Put of a record beyond the size limit = %v", err)
	}

	if got := mustLoad(t, db); !reflect.DeepEqual(got, []storage.Record{finishedRecord(1)}) {
		t.Errorf("after a failed Put, Load = %+v", got)
	}
	mustPut(t, db, finishedRecord(3))
	if got := mustLoad(t, db); len(got) != 2 {
		t.Errorf("after a failed then a good Put, Load has %d records, want 2", len(got))
	}
}

// rawValue reads one stored value with bbolt directly.
func rawValue(t *testing.T, dir, key string) string {
	t.Helper()
	var value string
	withRawStore(t, dir, func(tx *bolt.Tx) error {
		value = string(tx.Bucket([]byte("batches")).Get([]byte(key)))
		return nil
	})
	return value
}

// withRawStore changes a closed store with bbolt directly.
func withRawStore(t *testing.T, dir string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, storage.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func assertNothingMovedAside(t *testing.T, dir string) {
	t.Helper()
	if moved, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*")); len(moved) != 0 {
		t.Errorf("files moved aside: %q", moved)
	}
}

// TestConcurrentUse runs under -race: the collector stores reads from many
// goroutines.
func TestConcurrentUse(t *testing.T) {
	db := mustOpen(t, t.TempDir(), &logBuffer{})
	const writers, each = 4, 5
	errs := make(chan error, writers*each*2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- db.Put(finishedRecord(w*each + i))
				_, err := db.Load()
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := mustLoad(t, db); len(got) != writers*each {
		t.Errorf("Load returned %d records, want %d", len(got), writers*each)
	}
}
