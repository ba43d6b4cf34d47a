package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// schemaVersion is stored in the meta bucket. A store of another version
// is incompatible and is moved aside; bump it whenever the buckets or the
// record encoding change in a way older code would misread.
const schemaVersion = "1"

var (
	metaBucket       = []byte("meta")
	batchesBucket    = []byte("batches")
	schemaVersionKey = []byte("schema_version")
)

// corruptTimeFormat names a file moved aside by the UTC time it was moved.
const corruptTimeFormat = "20060102T150405Z"

// unusableError marks a store that opened or read wrongly because of its
// content, as opposed to a lock held elsewhere or a directory we cannot
// use. Only such a store is moved aside.
type unusableError struct{ err error }

func (e unusableError) Error() string { return e.err.Error() }
func (e unusableError) Unwrap() error { return e.err }

func unusable(err error) error { return unusableError{err} }

// Open opens or creates the store DIR/partnercenter.db, creating DIR (mode
// 0700) when missing. A damaged or incompatible file is moved aside to
// partnercenter.db.corrupt-<UTC time>, logged, and replaced by an empty
// store. Open fails when another process holds the store (the error wraps
// ErrLocked) and when the directory or file cannot be used at all.
func Open(dir string, opts Options) (*DB, error) {
	return open(dir, opts, nil)
}

func open(dir string, opts Options, tune func(*bolt.Options)) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: creating directory: %w", err)
	}
	d := &DB{dir: dir, path: filepath.Join(dir, FileName), opts: opts.withDefaults(), tune: tune}
	db, err := d.openBolt()
	if bad, ok := errors.AsType[unusableError](err); ok {
		db, err = d.replaceUnusable(bad)
	}
	if err != nil {
		return nil, err
	}
	d.bolt = db
	return d, nil
}

// openBolt opens the file and checks that it is a store of this schema,
// initialising a new one.
func (d *DB) openBolt() (*bolt.DB, error) {
	// bbolt waits for the lock forever without a timeout.
	boltOpts := &bolt.Options{Timeout: d.opts.LockTimeout}
	// If bbolt panics while opening, it has not returned the DB; keep the
	// file so that its descriptor, and with it the lock, can be released.
	// The file's memory mapping cannot be, and stays until exit: address
	// space, not memory, once per damaged file.
	var file *os.File
	boltOpts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	if d.tune != nil {
		d.tune(boltOpts)
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		db, err = bolt.Open(d.path, 0o600, boltOpts)
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("storage %s is %w (is another exporter using --storage.path=%s?)", d.path, ErrLocked, d.dir)
	case isPathError(err):
		return nil, fmt.Errorf("storage: opening %s: %w", d.path, err)
	default:
		if db == nil && file != nil {
			_ = file.Close()
		}
		return nil, unusable(err)
	}
	if err := guard(func() error { return checkSchema(db) }); err != nil {
		_ = db.Close()
		return nil, unusable(err)
	}
	return db, nil
}

// isPathError reports a failure to open or read the file itself, such as
// a permission error; moving the file aside would not help.
func isPathError(err error) bool {
	var pathErr *fs.PathError
	return errors.As(err, &pathErr)
}

// checkSchema accepts a store of this schema version and initialises a
// brand-new one; anything else is incompatible.
func checkSchema(db *bolt.DB) error {
	var fresh bool
	err := db.View(func(tx *bolt.Tx) error {
		if err := checkSize(db, tx); err != nil {
			return err
		}
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			fresh = tx.ForEach(func([]byte, *bolt.Bucket) error { return errNotEmpty }) == nil
			if !fresh {
				return errors.New("not a partnercenter_exporter store: no meta bucket")
			}
			return nil
		}
		if v := meta.Get(schemaVersionKey); string(v) != schemaVersion {
			return fmt.Errorf("schema version %q, this exporter uses %q", v, schemaVersion)
		}
		if tx.Bucket(batchesBucket) == nil {
			return errors.New("no batches bucket")
		}
		return nil
	})
	if err != nil || !fresh {
		return err
	}
	return db.Update(initSchema)
}

var errNotEmpty = errors.New("not empty")

// checkSize catches a truncated file before a page beyond its end is read.
func checkSize(db *bolt.DB, tx *bolt.Tx) error {
	info, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	if tx.Size() > info.Size() {
		return fmt.Errorf("file is truncated: %d bytes, its pages need %d", info.Size(), tx.Size())
	}
	return nil
}

func initSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket(metaBucket)
	if err != nil {
		return err
	}
	if err := meta.Put(schemaVersionKey, []byte(schemaVersion)); err != nil {
		return err
	}
	_, err = tx.CreateBucket(batchesBucket)
	return err
}

// replaceUnusable moves the unusable file aside and opens a new store in
// its place. The caller holds no open bbolt DB on the file.
func (d *DB) replaceUnusable(cause unusableError) (*bolt.DB, error) {
	movedTo, err := d.moveAside()
	if err != nil {
		return nil, fmt.Errorf("storage %s is unusable (%w) and could not be moved aside: %w", d.path, cause, err)
	}
	d.logWarn("msg", "storage unusable, moved aside and started empty", "path", d.path, "moved_to", movedTo, "err", cause)
	db, err := d.openBolt()
	if err != nil {
		return nil, fmt.Errorf("storage: opening a new store after moving %s aside: %w", d.path, err)
	}
	return db, nil
}

// moveAside renames the store to a name that keeps the time, adding a
// counter if a file of that name exists already.
func (d *DB) moveAside() (string, error) {
	base := d.path + ".corrupt-" + d.opts.Now().UTC().Format(corruptTimeFormat)
	target := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(d.path, target); err != nil {
		return "", err
	}
	return target, nil
}

// guard turns a panic in fn into an error. bbolt panics on some damaged
// pages, and reading a page beyond the end of a truncated file faults; the
// store is a cache and must not take the exporter down.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt panicked: %v", p)
		}
	}()
	return fn()
}
