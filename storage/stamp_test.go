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
		Batch: &partnercenter.Batch{TrackingID: "t", Status: partnercenter.StatusFinished, RawStatus: "Finished",
			CompletedTime: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
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
