// Package storage keeps what the exporter knows of each batch in an
// embedded bbolt store, so that a restart neither reads every finished
// batch again from a throttled API nor loses the failed-device lists.
//
// The store is a cache: a damaged or incompatible file is moved aside and
// replaced by an empty one rather than stopping the exporter. Only a lock
// held by another process makes Open fail on an intact directory.
package storage

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	bolt "go.etcd.io/bbolt"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// FileName is the name of the store inside the storage directory.
const FileName = "partnercenter.db"

// Record is what is stored of one batch. It reads back as it was put,
// except that times come back in UTC without a monotonic reading and
// empty slices come back nil.
type Record struct {
	CustomerID string
	TrackingID string
	// Stamp names the settings Batch was read under. It is opaque to the
	// store, and empty in a record written before stamps existed (record
	// version 1).
	Stamp string
	// Batch is the last successful read; never nil in a stored record.
	Batch *partnercenter.Batch
	// LastSuccess is when Batch was read.
	LastSuccess time.Time
	// Retired marks a batch that finished longer ago than the retention:
	// Batch then holds only its status and times.
	Retired bool
}

// ID names one stored batch. IDs compare case-insensitively.
type ID struct {
	CustomerID string
	TrackingID string
}

// Options tunes Open. The zero value is usable.
type Options struct {
	// Logger receives the warnings about a store moved aside or records
	// dropped; nil discards them.
	Logger log.Logger
	// LockTimeout bounds the wait for another process to release the
	// store; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// Now names files moved aside; nil means time.Now.
	Now func() time.Time
}

// DefaultLockTimeout is the LockTimeout used when Options leaves it 0.
const DefaultLockTimeout = time.Second

// ErrLocked is wrapped by the error Open returns when another process
// holds the store.
var ErrLocked = errors.New("locked by another process")

// DB is an open store. It is safe for concurrent use.
type DB struct {
	dir    string
	path   string
	opts   Options
	tune   func(*bolt.Options) // lets tests change bbolt's options
	mu     sync.Mutex          // guards bolt, which Load may replace
	bolt   *bolt.DB
	closed bool
}

var errClosed = errors.New("storage is closed")

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Close releases the store and its lock. Later calls of any method fail.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.bolt.Close(); err != nil {
		return fmt.Errorf("storage: closing %s: %w", d.path, err)
	}
	return nil
}

// Put stores r in one atomic, fsynced transaction, replacing what was
// stored under the same IDs (compared case-insensitively; the IDs are
// kept as given). It rejects a record without a Batch, with an empty ID or
// with a '/' in the customer ID. On error nothing changed and the store
// stays usable; the caller decides whether to count or log it.
func (d *DB) Put(r Record) error {
	value, err := encodeRecord(r)
	if err != nil {
		return fmt.Errorf("storage: encoding batch %s/%s: %w", r.CustomerID, r.TrackingID, err)
	}
	k := key(r.CustomerID, r.TrackingID)
	err = d.update(func(tx *bolt.Tx) error {
		return tx.Bucket(batchesBucket).Put(k, value)
	})
	if err != nil {
		return fmt.Errorf("storage: storing batch %s: %w", k, err)
	}
	return nil
}

// Delete removes one batch; deleting a batch that is not stored is no error.
func (d *DB) Delete(customerID, trackingID string) error {
	k := key(customerID, trackingID)
	err := d.update(func(tx *bolt.Tx) error {
		return tx.Bucket(batchesBucket).Delete(k)
	})
	if err != nil {
		return fmt.Errorf("storage: deleting batch %s: %w", k, err)
	}
	return nil
}

// PutAll stores records in one atomic, fsynced transaction, as Put does
// each: many records cost one sync, not one each. On error nothing
// changed.
func (d *DB) PutAll(records []Record) error {
	if len(records) == 0 {
		return nil
	}
	values := make([][]byte, len(records))
	for i, r := range records {
		v, err := encodeRecord(r)
		if err != nil {
			return fmt.Errorf("storage: encoding batch %s/%s: %w", r.CustomerID, r.TrackingID, err)
		}
		values[i] = v
	}
	err := d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(batchesBucket)
		for i, r := range records {
			if err := b.Put(key(r.CustomerID, r.TrackingID), values[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: storing %d batches: %w", len(records), err)
	}
	return nil
}

// DeleteAll removes the batches ids names in one atomic, fsynced
// transaction: forgetting 50,000 batches costs one sync, not 50,000 (about
// 20 s, during which every other write waits). IDs that are not stored are
// no error. On error nothing changed.
func (d *DB) DeleteAll(ids []ID) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = key(id.CustomerID, id.TrackingID)
	}
	// In key order, each leaf is visited once rather than once per key.
	slices.SortFunc(keys, bytes.Compare)
	err := d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(batchesBucket)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: deleting %d batches: %w", len(ids), err)
	}
	return nil
}

// update runs fn in a write transaction. A panic inside bbolt, which a
// damaged file can cause, becomes an error rather than a crash.
func (d *DB) update(fn func(*bolt.Tx) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	return guard(func() error { return d.bolt.Update(fn) })
}

func (d *DB) logWarn(keyvals ...any) {
	level.Warn(d.opts.Logger).Log(keyvals...)
}
