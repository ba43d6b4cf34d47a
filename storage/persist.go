package storage

import (
	"github.com/partnercenter-exporter/partnercenter_exporter/batchstate"
)

// DB is what a batchstate.Store writes through to.
var _ batchstate.Persister = (*DB)(nil)

// SaveBatch stores what is known of t: its last successful read, or the
// marker of a retired batch.
func (d *DB) SaveBatch(t batchstate.Target, s batchstate.BatchState) error {
	return d.Put(Record{
		CustomerID: t.CustomerID, TrackingID: t.TrackingID, Stamp: s.Stamp,
		Batch: s.Batch, LastSuccess: s.LastSuccess, Retired: s.Retired,
	})
}

// ForgetBatches forgets all of ts in one transaction.
func (d *DB) ForgetBatches(ts []batchstate.Target) error {
	ids := make([]ID, len(ts))
	for i, t := range ts {
		ids[i] = ID{CustomerID: t.CustomerID, TrackingID: t.TrackingID}
	}
	return d.DeleteAll(ids)
}
