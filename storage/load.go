package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Load returns every stored record in key order: bytewise by the
// lower-cased "customerID/trackingID".
//
// A record that cannot be decoded, say one written by a buggy or newer
// exporter under the same schema version, is deleted and logged; the
// others are kept, since each costs a request to read again. A file whose
// pages turn out to be damaged is moved aside like in Open, and Load then
// returns no records and no error.
func (d *DB) Load() ([]Record, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("storage: loading: %w", errClosed)
	}
	var records []Record
	var undecodable []badRecord
	var legacy []int
	err := guard(func() error {
		return d.bolt.View(func(tx *bolt.Tx) error {
			records, legacy, undecodable = decodeAll(tx.Bucket(batchesBucket))
			return nil
		})
	})
	if err != nil {
		return nil, d.replaceDamaged(err)
	}
	d.deleteUndecodable(undecodable)
	d.migrate(records, legacy)
	return records, nil
}

// badRecord is a stored record that could not be decoded.
type badRecord struct {
	key string
	err error
}

// decodeAll decodes every record of the bucket; legacy are the indexes of
// the records stored as JSON.
func decodeAll(b *bolt.Bucket) (records []Record, legacy []int, undecodable []badRecord) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, isLegacy, err := decodeRecord(k, v)
		if err != nil {
			undecodable = append(undecodable, badRecord{key: string(k), err: err})
			continue
		}
		if isLegacy {
			legacy = append(legacy, len(records))
		}
		records = append(records, r)
	}
	return records, legacy, undecodable
}

// migrate rewrites the records stored as JSON (versions 1 and 2) in the
// binary version 3, in one transaction, so that later starts decode them
// in a fraction of the time. Their meaning does not change: an empty stamp
// stays empty. A failure is logged only; the next Load tries again.
func (d *DB) migrate(records []Record, legacy []int) {
	if len(legacy) == 0 {
		return
	}
	err := guard(func() error {
		return d.bolt.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(batchesBucket)
			var buf []byte
			for _, i := range legacy {
				r := records[i]
				if checkIDs(r.CustomerID, r.TrackingID) != nil {
					continue
				}
				// bbolt keeps the value slice until the transaction
				// commits, so each gets its own.
				buf = appendBinaryRecord(nil, r)
				if err := b.Put(key(r.CustomerID, r.TrackingID), buf); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		d.logWarn("msg", "rewriting stored batches in the current format failed", "path", d.path, "batches", len(legacy), "err", err)
	}
}

// replaceDamaged moves a store whose pages could not be read aside and
// starts an empty one. Only a failure to do so is returned.
func (d *DB) replaceDamaged(cause error) error {
	if err := d.bolt.Close(); err != nil {
		d.logWarn("msg", "closing damaged storage failed", "path", d.path, "err", err)
	}
	db, err := d.replaceUnusable(unusableError{cause})
	if err != nil {
		d.closed = true
		return err
	}
	d.bolt = db
	return nil
}

// deleteUndecodable logs each bad record and deletes them all in one
// transaction; a failure to delete is logged only, the next Load retries.
func (d *DB) deleteUndecodable(bad []badRecord) {
	if len(bad) == 0 {
		return
	}
	for _, r := range bad {
		d.logWarn("msg", "stored batch undecodable, deleted", "path", d.path, "key", r.key, "err", r.err)
	}
	err := guard(func() error {
		return d.bolt.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(batchesBucket)
			for _, r := range bad {
				if err := b.Delete([]byte(r.key)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		d.logWarn("msg", "deleting undecodable stored batches failed", "path", d.path, "err", err)
	}
}
