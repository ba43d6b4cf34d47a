package storage

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// registrationsBucket holds the batches an upload pipeline registered
// through the intake API. They are a membership source of their own:
// unlike what is known of a batch, which can be read again, a lost
// registration is a batch nobody watches, so they are kept apart from the
// batches bucket and never swept with it.
var registrationsBucket = []byte("registrations")

// Registration is one batch registered through the intake API.
type Registration struct {
	CustomerID string
	TrackingID string
	// Registered is when the intake first accepted it.
	Registered time.Time
}

// storedRegistration is a Registration's value in the bucket; its key is
// the batch key.
type storedRegistration struct {
	Version    int       `json:"v"`
	Registered time.Time `json:"registered"`
}

const registrationVersion = 1

// PutRegistrations stores rs in one atomic, fsynced transaction, all or
// none.
func (d *DB) PutRegistrations(rs []Registration) error {
	err := d.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(registrationsBucket)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := checkIDs(r.CustomerID, r.TrackingID); err != nil {
				return err
			}
			value, err := json.Marshal(storedRegistration{Version: registrationVersion, Registered: r.Registered.UTC()})
			if err != nil {
				return err
			}
			if err := b.Put(key(r.CustomerID, r.TrackingID), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: storing %d registrations: %w", len(rs), err)
	}
	return nil
}

// DeleteRegistration forgets one registration; one that is not stored is
// no error.
func (d *DB) DeleteRegistration(customerID, trackingID string) error {
	k := key(customerID, trackingID)
	err := d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(registrationsBucket)
		if b == nil {
			return nil
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("storage: deleting registration %s: %w", k, err)
	}
	return nil
}

// LoadRegistrations returns every stored registration, in key order. A
// value that cannot be decoded (written by a newer exporter, or damaged)
// is kept as registered at the zero time rather than dropped: the batch
// is what matters, and dropping it would stop watching it.
func (d *DB) LoadRegistrations() ([]Registration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("storage: loading registrations: %w", errClosed)
	}
	var out []Registration
	err := guard(func() error {
		return d.bolt.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(registrationsBucket)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				customer, tracking, ok := strings.Cut(string(k), "/")
				if !ok {
					return nil
				}
				var s storedRegistration
				if json.Unmarshal(v, &s) != nil {
					s = storedRegistration{}
				}
				out = append(out, Registration{CustomerID: customer, TrackingID: tracking, Registered: s.Registered})
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: loading registrations: %w", err)
	}
	return out, nil
}
