package storage_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

func BenchmarkOpenLoad5k(b *testing.B)  { benchmarkOpenLoad(b, 5_000) }
func BenchmarkOpenLoad50k(b *testing.B) { benchmarkOpenLoad(b, 50_000) }

// benchmarkOpenLoad measures a restart: open a store of n finished batches
// and load them all. It also reports the CPU time of the process (GC
// included; on a busy machine wall time is mostly waiting), the file size
// and the heap the loaded records keep, per batch.
func benchmarkOpenLoad(b *testing.B, n int) {
	dir := b.TempDir()
	buildStore(b, dir, n)
	info, err := os.Stat(filepath.Join(dir, storage.FileName))
	if err != nil {
		b.Fatal(err)
	}
	before := testkit.LiveHeap()
	var records []storage.Record
	b.ReportAllocs()
	cpuStart, cpuOK := testkit.ProcessCPUTime()
	for b.Loop() {
		records = openLoadClose(b, dir)
	}
	b.StopTimer()
	if cpuEnd, ok := testkit.ProcessCPUTime(); ok && cpuOK {
		b.ReportMetric(float64(cpuEnd-cpuStart)/float64(b.N)/1e6, "cpu-ms/op")
	}
	if len(records) != n {
		b.Fatalf("loaded %d records, want %d", len(records), n)
	}
	retained := int64(testkit.LiveHeap()) - int64(before)
	runtime.KeepAlive(records)
	b.ReportMetric(float64(retained)/float64(n), "retained-B/batch")
	b.ReportMetric(float64(info.Size())/float64(n), "file-B/batch")
}

func openLoadClose(b *testing.B, dir string) []storage.Record {
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	records, err := db.Load()
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	return records
}

// buildStore writes n finished batches in transactions of 1,000, once per
// benchmark: b.Loop runs the benchmark function a single time.
func buildStore(b *testing.B, dir string, n int) {
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const chunk = 1_000
	for start := 0; start < n; start += chunk {
		records := make([]storage.Record, 0, chunk)
		for i := start; i < min(start+chunk, n); i++ {
			records = append(records, finishedRecord(i))
		}
		if err := db.PutAll(records); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut stores one finished batch per operation, each in its own
// fsynced transaction, into a store that grows as it runs.
func BenchmarkPut(b *testing.B) {
	db, err := storage.Open(b.TempDir(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := db.Put(finishedRecord(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDeleteAll50k forgets 50,000 stored batches in one DeleteAll, as
// the exporter does when they have been unlisted for
// forget_removed_batches_after; one Delete each would cost one fsync each.
func BenchmarkDeleteAll50k(b *testing.B) {
	const n = 50_000
	ids := make([]storage.ID, n)
	for i := range ids {
		r := finishedRecord(i)
		ids[i] = storage.ID{CustomerID: r.CustomerID, TrackingID: r.TrackingID}
	}
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		buildStore(b, dir, n)
		db, err := storage.Open(dir, storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := db.DeleteAll(ids); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
