package storage_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

func TestRegistrationsSurviveReopening(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, &logBuffer{})
	at := time.Date(2026, 12, 7, 10, 0, 0, 123, time.FixedZone("CET", 3600))
	rs := []storage.Registration{
		{CustomerID: "c0000000-0000-4000-8000-000000000001", TrackingID: "b0000000-0000-4000-8000-000000000002", Registered: at},
		{CustomerID: "c0000000-0000-4000-8000-000000000001", TrackingID: "b0000000-0000-4000-8000-000000000001", Registered: at.Add(time.Second)},
	}
	if got, err := db.LoadRegistrations(); err != nil || len(got) != 0 {
		t.Fatalf("a new store has registrations %v, %v", got, err)
	}
	if err := db.PutRegistrations(rs); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRegistration("C0000000-0000-4000-8000-000000000001", "b0000000-0000-4000-8000-000000000002"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRegistration("c0000000-0000-4000-8000-000000000009", "b0000000-0000-4000-8000-000000000009"); err != nil {
		t.Errorf("deleting a registration that is not stored: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, dir, &logBuffer{})
	got, err := db.LoadRegistrations()
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.Registration{{CustomerID: rs[1].CustomerID, TrackingID: rs[1].TrackingID, Registered: rs[1].Registered.UTC()}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registrations after reopening:\n got  %v\n want %v", got, want)
	}
	// The batches bucket is not touched by registrations.
	if records, err := db.Load(); err != nil || len(records) != 0 {
		t.Errorf("batch records %v, %v; want none", records, err)
	}
}

func TestPutRegistrationsIsAllOrNothing(t *testing.T) {
	db := mustOpen(t, t.TempDir(), &logBuffer{})
	err := db.PutRegistrations([]storage.Registration{
		{CustomerID: "c0000000-0000-4000-8000-000000000001", TrackingID: "b0000000-0000-4000-8000-000000000001"},
		{CustomerID: "bad/customer", TrackingID: "b0000000-0000-4000-8000-000000000002"},
	})
	if err == nil {
		t.Fatal("a registration with a '/' in its customer ID was stored")
	}
	if got, _ := db.LoadRegistrations(); len(got) != 0 {
		t.Errorf("a failed PutRegistrations stored %v", got)
	}
}
