package storage

import bolt "go.etcd.io/bbolt"

// OpenTuned is Open with a hook that changes bbolt's options, so that tests
// can provoke real bbolt failures.
func OpenTuned(dir string, opts Options, tune func(*bolt.Options)) (*DB, error) {
	return open(dir, opts, tune)
}

// PutAll stores records in one transaction: benchmarks use it to build big
// stores without one fsync per record.
func (d *DB) PutAll(records []Record) error {
	return d.update(func(tx *bolt.Tx) error {
		for _, r := range records {
			value, err := encodeRecord(r)
			if err != nil {
				return err
			}
			if err := tx.Bucket(batchesBucket).Put(key(r.CustomerID, r.TrackingID), value); err != nil {
				return err
			}
		}
		return nil
	})
}
