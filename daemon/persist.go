package daemon

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// openStorage opens the store in dir, puts back every batch it kept, and
// makes every later change of the batch store write through to it.
// A kept batch that is not listed now is known for
// forget_removed_batches_after from now on, so that a batch file that
// appears after the start finds its batches read already. A failed write
// is logged and counted, never fatal. It must run after the first
// configuration load and before the first scrape.
//
// A record written before stamps existed has none: it is taken as read
// under the settings of this start, which is what the exporter assumed
// before, and stamped so on disk (one transaction), so that a later start
// under other settings reads it again.
func (s *exporterState) openStorage(dir string, reg prometheus.Registerer) (*storage.DB, error) {
	logger := log.With(s.logger, "component", "storage")
	db, err := storage.Open(dir, storage.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	records, err := db.Load()
	if err == nil {
		err = s.openIntake(db, reg)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	writeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "partnercenter", Subsystem: "storage", Name: "write_errors_total",
		Help: "Writes to the --storage.path store that failed; the exporter keeps serving from memory.",
	})
	reg.MustRegister(writeErrors)
	onError := func(err error) {
		writeErrors.Inc()
		level.Error(logger).Log("msg", "storage write failed; serving from memory", "err", err)
	}

	stamp := s.live().client.ReadStamp()
	var unstamped []storage.Record
	for i := range records {
		if records[i].Stamp == "" {
			records[i].Stamp = stamp
			unstamped = append(unstamped, records[i])
		}
	}
	// Before anything is restored, so that no write of the store can be
	// overtaken by this one.
	if err := db.PutAll(unstamped); err != nil {
		onError(err)
	}
	// From here on every change is written through, the forgetting of a
	// restored batch included.
	s.store.Persist(db, onError)
	now := time.Now()
	listed, settled := 0, 0
	for _, r := range records {
		t := batchstate.Target{CustomerID: strings.ToLower(r.CustomerID), TrackingID: strings.ToLower(r.TrackingID)}
		state := batchstate.BatchState{Batch: r.Batch, LastSuccess: r.LastSuccess, Stamp: r.Stamp, Retired: r.Retired}
		if !s.store.Restore(t, state, now) {
			continue
		}
		listed++
		if state.Settled() {
			settled++
		}
	}
	forgotten := s.store.Sweep(now) // forget_removed_batches_after: 0
	s.forget.schedule()
	level.Info(logger).Log("msg", "storage opened", "path", dir,
		"restored", fmt.Sprintf("%d listed batches, %d of them finished", listed, settled),
		"unlisted", fmt.Sprintf("%d batches kept for forget_removed_batches_after", len(records)-listed-forgotten),
		"forgotten", forgotten, "stamped", len(unstamped))
	return db, nil
}
