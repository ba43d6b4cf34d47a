package main

import (
	"fmt"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/collector"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// storePersister writes the collector's store through to the embedded
// store on disk.
type storePersister struct{ db *storage.DB }

func (p storePersister) Save(t collector.Target, s collector.BatchState) error {
	return p.db.Put(storage.Record{
		CustomerID: t.CustomerID, TrackingID: t.TrackingID,
		Batch: s.Batch, LastSuccess: s.LastSuccess, Retired: s.Retired,
	})
}

func (p storePersister) Delete(t collector.Target) error {
	return p.db.Delete(t.CustomerID, t.TrackingID)
}

// openStorage opens the store in dir, puts back what it kept of the
// configured batches, deletes the rest, and makes every later change of
// the collector's store write through to it. A failed write is logged and
// counted, never fatal. It must run after the first configuration load
// and before the first scrape.
func (s *exporterState) openStorage(dir string, reg prometheus.Registerer) (*storage.DB, error) {
	logger := log.With(s.logger, "component", "storage")
	db, err := storage.Open(dir, storage.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	records, err := db.Load()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	restored, settled := 0, 0
	for _, r := range records {
		t := collector.Target{CustomerID: strings.ToLower(r.CustomerID), TrackingID: strings.ToLower(r.TrackingID)}
		state := collector.BatchState{Batch: r.Batch, LastSuccess: r.LastSuccess, Retired: r.Retired}
		if !s.store.Restore(t, state) {
			if err := db.Delete(r.CustomerID, r.TrackingID); err != nil {
				level.Warn(logger).Log("msg", "deleting a batch no longer configured failed", "err", err)
			}
			continue
		}
		restored++
		if state.Settled() {
			settled++
		}
	}
	writeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "partnercenter", Subsystem: "storage", Name: "write_errors_total",
		Help: "Writes to the --storage.path store that failed; the exporter keeps serving from memory.",
	})
	reg.MustRegister(writeErrors)
	s.store.Persist(storePersister{db}, func(err error) {
		writeErrors.Inc()
		level.Error(logger).Log("msg", "storage write failed; serving from memory", "err", err)
	})
	level.Info(logger).Log("msg", "storage opened", "path", dir,
		"restored", fmt.Sprintf("%d batches, %d of them finished", restored, settled), "dropped", len(records)-restored)
	return db, nil
}
