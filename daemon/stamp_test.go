package daemon

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// A read that waits for a request slot while a reload changes a setting
// reads depend on is made by the old client and stored with its stamp: it
// is read again under the new settings, rather than served as current.
func TestReadQueuedThroughAReloadIsReadAgain(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	release := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	srv.SetHandler(testkit.Customer1, testkit.SlowID, func(int, time.Time) (partnercentertest.Batch, partnercentertest.Response) {
		<-release
		return partnercentertest.Batch{TrackingID: testkit.SlowID, Status: "queued"}, partnercentertest.Response{}
	})
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.SlowID}})
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 0s\n  max_concurrent_requests: 1")
	exp := startExporter(t, path)

	// The slow batch takes the one slot and keeps it after its scrape.
	exp.scrape(t, "1")
	testkit.WaitFor(t, func() bool { return srv.BatchRequests(testkit.Customer1, testkit.SlowID) == 1 })
	// The finished batch is added; its read waits behind the slow one.
	testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.SlowID, testkit.FinishedID}})
	testkit.SetConfig(t, path, "refresh_interval: 0s", "refresh_interval: 0s\n  max_concurrent_requests: 1")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	exp.scrape(t, "1")
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 0 {
		t.Fatalf("finished batch requested %d times while the slot was taken, want 0", got)
	}
	// Now the failed-device cap changes, and the slot frees.
	testkit.SetConfig(t, path, "customers:", "max_failed_devices_per_batch: 2\ncustomers:")
	if err := exp.state.reload(); err != nil {
		t.Fatal(err)
	}
	close(release)
	// The queued read, made by the old client, keeps all 5 failed devices.
	testkit.WaitFor(t, func() bool {
		return srv.BatchRequests(testkit.Customer1, testkit.FinishedID) == 1 && failedDevicesShown(t, exp.url, testkit.FinishedID) == 5
	})
	exp.scrape(t, "")
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times, want 2: the read queued through the reload is read again", got)
	}
	if n := failedDevicesShown(t, exp.url, testkit.FinishedID); n != 2 {
		t.Errorf("%d failed devices shown, want 2 (the new cap)", n)
	}
	exp.scrape(t, "")
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times, want still 2", got)
	}
}

// The stamps are stored: a restart under a raised failed-device cap reads
// a finished batch again (under Helm every values change restarts the pod,
// so the reload path never runs), and one under the same settings does not.
func TestRestartWithOtherReadSettingsReadsFinishedBatchesAgain(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	testkit.SetConfig(t, path, "customers:", "max_failed_devices_per_batch: 0\ncustomers:")
	opts := testOptions()
	opts.StoragePath = filepath.Join(dir, "state")

	first := startExporterWith(t, path, opts)
	testkit.Get(t, first.url+"/metrics", http.StatusOK)
	if n := failedDevicesShown(t, first.url, testkit.FinishedID); n != 0 {
		t.Fatalf("first run shows %d failed devices, want 0 (none kept)", n)
	}
	first.stop(t)

	testkit.SetConfig(t, path, "max_failed_devices_per_batch: 0\n", "max_failed_devices_per_batch: 10\n")
	second := startExporterWith(t, path, opts)
	testkit.Get(t, second.url+"/metrics", http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times over two runs, want 2 (read again under the raised cap)", got)
	}
	if n := failedDevicesShown(t, second.url, testkit.FinishedID); n != 5 {
		t.Errorf("after the restart %d failed devices shown, want all 5", n)
	}
	second.stop(t)

	third := startExporterWith(t, path, opts)
	testkit.Get(t, third.url+"/metrics", http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times over three runs, want still 2", got)
	}
	if n := failedDevicesShown(t, third.url, testkit.FinishedID); n != 5 {
		t.Errorf("third run shows %d failed devices, want 5", n)
	}
	third.stop(t)
}

// Rotating a client secret changes who signs the token requests, not what
// a read returns: a reload reads no finished batch again. The unfinished
// one is read with the new secret.
func TestRotatedSecretReadsNoFinishedBatchAgain(t *testing.T) {
	const rotated = "r0tated-client-value-that-must-not-leak"
	tests := []struct {
		name   string
		inline bool
	}{{"client_secret_file", false}, {"client_secret", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testkit.FakeWithBatches(t)
			dir := t.TempDir()
			path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID, testkit.RunningID}})
			if tt.inline {
				testkit.SetConfig(t, path, "client_secret_file: client_secret", "client_secret: "+testkit.ClientSecret)
			}
			exp := startExporter(t, path)
			exp.scrape(t, "")

			srv.SetCredentials(testkit.ClientID, rotated)
			if tt.inline {
				testkit.SetConfig(t, path, "client_secret: "+testkit.ClientSecret, "client_secret: "+rotated)
			} else if err := os.WriteFile(filepath.Join(dir, "client_secret"), []byte(rotated+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := exp.state.reload(); err != nil {
				t.Fatal(err)
			}
			_, m := exp.scrape(t, "")
			if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
				t.Errorf("finished batch requested %d times across the rotation, want 1", got)
			}
			if got := srv.BatchRequests(testkit.Customer1, testkit.RunningID); got != 2 {
				t.Errorf("unfinished batch requested %d times, want 2", got)
			}
			for _, id := range []string{testkit.FinishedID, testkit.RunningID} {
				if v := testkit.Value(t, m, "partnercenter_batch_scrape_success", testkit.BatchLabels(testkit.Customer1, id)); v != 1 {
					t.Errorf("batch %s scrape_success = %v after the rotation, want 1", id[:8], v)
				}
			}
			if got := fmt.Sprint(srv.TokenRequests()); got != "2" {
				t.Errorf("token requests = %s, want 2 (one per secret)", got)
			}
		})
	}
}

// A store written before stamps existed holds version 1 records without
// one: they count as read under the settings of the first start that
// loads them, which stamps them on disk, so that a later start under other
// settings reads them again.
func TestUnstampedStoredReadsCountAsReadUnderTheFirstStart(t *testing.T) {
	srv := testkit.FakeWithBatches(t)
	dir := t.TempDir()
	path := testkit.WriteConfig(t, dir, srv, map[string][]string{testkit.Customer1: {testkit.FinishedID}})
	storeDir := filepath.Join(dir, "state")
	opts := testOptions()
	opts.StoragePath = storeDir
	first := startExporterWith(t, path, opts)
	testkit.Get(t, first.url+"/metrics", http.StatusOK)
	first.stop(t)

	// Put in its place what the exporter wrote before stamps: a version 1
	// JSON record, with no stamp.
	key := testkit.Customer1 + "/" + testkit.FinishedID
	v1 := `{"v":1,"customer_id":"` + testkit.Customer1 + `","tracking_id":"` + testkit.FinishedID + `",` +
		`"last_success":"2026-12-01T00:00:00Z","batch":{"tracking_id":"` + testkit.FinishedID + `",` +
		`"status":"finished_with_errors","raw_status":"finished_with_errors",` +
		`"started_time":"2026-11-25T10:00:00.123Z","completed_time":"2026-11-25T10:30:00.123Z",` +
		`"devices":{"finished":95,"finished_with_errors":5}}}`
	putStored(t, storeDir, key, v1)
	second := startExporterWith(t, path, opts)
	testkit.Get(t, second.url+"/metrics", http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 1 {
		t.Errorf("finished batch requested %d times, want 1: an unstamped read counts as current", got)
	}
	second.stop(t)
	if records := loadStored(t, storeDir); len(records) != 1 || records[0].Stamp == "" {
		t.Errorf("the first start did not stamp the record: %+v", records)
	}

	testkit.SetConfig(t, path, "customers:", "max_failed_devices_per_batch: 3\ncustomers:")
	third := startExporterWith(t, path, opts)
	testkit.Get(t, third.url+"/metrics", http.StatusOK)
	if got := srv.BatchRequests(testkit.Customer1, testkit.FinishedID); got != 2 {
		t.Errorf("finished batch requested %d times, want 2: read again under the new cap", got)
	}
	if n := failedDevicesShown(t, third.url, testkit.FinishedID); n != 3 {
		t.Errorf("%d failed devices shown, want 3", n)
	}
	third.stop(t)
}

// putStored stores value under key in the batches bucket, as an exporter
// of another version would have.
func putStored(t *testing.T, dir, key, value string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, storage.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("batches")).Put([]byte(key), []byte(value)) }); err != nil {
		t.Fatal(err)
	}
}

// loadStored returns what the store in dir holds.
func loadStored(t *testing.T, dir string) []storage.Record {
	t.Helper()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	records, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	return records
}
