package storage

import bolt "go.etcd.io/bbolt"

// OpenTuned is Open with a hook that changes bbolt's options, so that tests
// can provoke real bbolt failures.
func OpenTuned(dir string, opts Options, tune func(*bolt.Options)) (*DB, error) {
	return open(dir, opts, tune)
}
