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
	err := guard(func() error {
		return d.bolt.View(func(tx *bolt.Tx) error {
			records, undecodable = decodeAll(tx.Bucket(batchesBucket))
			return nil
		})
	})
	if err != nil {
		return nil, d.replaceDamaged(err)
	}
	d.deleteUndecodable(undecodable)
	return records, nil
}

// badRecord is a stored record that could not be decoded.
type badRecord struct {
	key string
	err error
}

// decodeAll decodes every record of the bucket.
func decodeAll(b *bolt.Bucket) (records []Record, undecodable []badRecord) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, err := decodeRecord(k, v)
		if err != nil {
			undecodable = append(undecodable, badRecord{key: string(k), err: err})
			continue
		}
		records = append(records, r)
	}
	return records, undecodable
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
