package storage_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/partnercenter-exporter/partnercenter_exporter/storage"
)

// storeBytes returns the file of a closed, intact store holding n records.
func storeBytes(t *testing.T, n int) []byte {
	t.Helper()
	dir := t.TempDir()
	db, err := storage.Open(dir, testOptions(&logBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		mustPut(t, db, finishedRecord(i))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, storage.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func garbage(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// rawStore returns the file of a bbolt store changed by fn.
func rawStore(t *testing.T, fn func(*bolt.Tx) error) []byte {
	t.Helper()
	dir := t.TempDir()
	db, err := storage.Open(dir, testOptions(&logBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, finishedRecord(1))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	withRawStore(t, dir, fn)
	data, err := os.ReadFile(filepath.Join(dir, storage.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestUnusableStoreIsMovedAside(t *testing.T) {
	const pageSize = 4096
	intact := storeBytes(t, 300)
	damagedPages := bytes.Clone(intact)
	copy(damagedPages[4*pageSize:], garbage(len(intact)-4*pageSize))
	zeroedMeta := bytes.Clone(intact)
	clear(zeroedMeta[:2*pageSize])

	cases := map[string][]byte{
		"leaf pages damaged": damageLeafPages(t, intact, pageSize),
		"garbage":            garbage(64 << 10),
		"a few bytes":        []byte("not a database"),
		"half length":        intact[:len(intact)/2],
		"one page":           intact[:pageSize],
		"meta pages zeroed":  zeroedMeta,
		"data pages damaged": damagedPages,
		"other schema version": rawStore(t, func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte("2"))
		}),
		"no batches bucket": rawStore(t, func(tx *bolt.Tx) error {
			return tx.DeleteBucket([]byte("batches"))
		}),
		"another program's store": rawStore(t, func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte("meta")); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte("something else"))
			return err
		}),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			assertMovedAsideAndEmpty(t, content)
		})
	}
}

// damageLeafPages gives every leaf page holding batches an invalid page
// type, leaving the meta, freelist and branch pages intact: Open succeeds
// and the damage shows only when Load reads the batches.
func damageLeafPages(t *testing.T, file []byte, pageSize int) []byte {
	t.Helper()
	const leafPageFlag, invalidPageFlag = 0x02, 0x20
	damaged := bytes.Clone(file)
	n := 0
	for id := 2; (id+1)*pageSize <= len(damaged); id++ {
		page := damaged[id*pageSize : (id+1)*pageSize]
		// Page header: id uint64, flags uint16, count uint16, overflow uint32.
		isPageStart := binary.LittleEndian.Uint64(page) == uint64(id)
		isLeaf := binary.LittleEndian.Uint16(page[8:]) == leafPageFlag
		if isPageStart && isLeaf && !bytes.Contains(page, []byte("schema_version")) {
			binary.LittleEndian.PutUint16(page[8:], invalidPageFlag)
			n++
		}
	}
	if n == 0 {
		t.Fatal("found no leaf page to damage")
	}
	return damaged
}

// assertMovedAsideAndEmpty opens a store holding content: Open and Load
// succeed with no records, the content is kept under a name with the time,
// the move is logged and the new store works.
func assertMovedAsideAndEmpty(t *testing.T, content []byte) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, storage.FileName)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	db := mustOpen(t, dir, logs)
	if got := mustLoad(t, db); len(got) != 0 {
		t.Errorf("Load returned %d records from a replaced store", len(got))
	}
	t.Log(logs)

	movedTo := path + ".corrupt-" + fixedNowName
	if moved, err := os.ReadFile(movedTo); err != nil || !bytes.Equal(moved, content) {
		t.Errorf("moved-aside file %s: err %v, same content %t", movedTo, err, bytes.Equal(moved, content))
	}
	wantLog := `level=warn msg="storage unusable, moved aside and started empty" path=` + path + ` moved_to=` + movedTo + ` err=`
	if !strings.HasPrefix(logs.String(), wantLog) || strings.Count(logs.String(), "\n") != 1 {
		t.Errorf("log = %q, want one line starting %q", logs, wantLog)
	}

	mustPut(t, db, finishedRecord(1))
	if got := mustLoad(t, db); !reflect.DeepEqual(got, []storage.Record{finishedRecord(1)}) {
		t.Errorf("new store: Load = %+v", got)
	}
}

// An empty file is what a crash between creating the file and writing its
// first pages leaves; bbolt initialises it under its lock. Nothing in it is
// worth keeping, so it is not moved aside.
func TestEmptyFileStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, storage.FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	db := mustOpen(t, dir, logs)
	if got := mustLoad(t, db); len(got) != 0 {
		t.Errorf("Load = %+v", got)
	}
	mustPut(t, db, finishedRecord(1))
	assertNothingMovedAside(t, dir)
}

func TestSecondMoveInTheSameSecondKeepsBoth(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, storage.FileName)
	for i, content := range []string{"first garbage", "second garbage"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		db := mustOpen(t, dir, &logBuffer{})
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		movedTo := path + ".corrupt-" + fixedNowName
		if i > 0 {
			movedTo += "-1"
		}
		if got, err := os.ReadFile(movedTo); string(got) != content {
			t.Errorf("%s holds %q (%v), want %q", movedTo, got, err, content)
		}
	}
}

// A record that cannot be decoded is dropped alone: the others still save
// a request each.
func TestUndecodableRecordIsDeleted(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(dir, testOptions(&logBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, finishedRecord(1), finishedRecord(2))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"a/not-json":       "{",
		"a/newer-version":  `{"v":3,"customer_id":"a","tracking_id":"newer-version","batch":{}}`,
		"a/unknown-status": `{"v":1,"customer_id":"a","tracking_id":"unknown-status","batch":{"status":"paused"}}`,
		"a/wrong-key":      `{"v":1,"customer_id":"b","tracking_id":"x","batch":{"status":"queued"}}`,
		"a/no-batch":       `{"v":1,"customer_id":"a","tracking_id":"no-batch"}`,
		"a/v1-with-stamp":  `{"v":1,"customer_id":"a","tracking_id":"v1-with-stamp","stamp":"x","batch":{"status":"queued"}}`,
	}
	withRawStore(t, dir, func(tx *bolt.Tx) error {
		for k, v := range bad {
			if err := tx.Bucket([]byte("batches")).Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})

	logs := &logBuffer{}
	db = mustOpen(t, dir, logs)
	want := []storage.Record{finishedRecord(1), finishedRecord(2)}
	if got := mustLoad(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want the two good records", got)
	}
	for k := range bad {
		if line := `level=warn msg="stored batch undecodable, deleted" path=` + filepath.Join(dir, storage.FileName) + " key=" + k + " err="; !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs)
		}
	}
	assertNothingMovedAside(t, dir)

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	logs = &logBuffer{}
	if got := mustLoad(t, mustOpen(t, dir, logs)); !reflect.DeepEqual(got, want) || logs.String() != "" {
		t.Errorf("after reopening, Load = %+v, logs %q; want the good records, no log", got, logs)
	}
}

// Damage that Open cannot see is found by Load, which moves the file aside
// in the same way and returns no records rather than an error.
func TestDamageFoundByLoadIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, storage.FileName)
	if err := os.WriteFile(path, damageLeafPages(t, storeBytes(t, 300), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	db := mustOpen(t, dir, logs)
	if logs.String() != "" {
		t.Fatalf("Open already found the damage: %s", logs)
	}
	if got := mustLoad(t, db); len(got) != 0 {
		t.Errorf("Load returned %d records", len(got))
	}
	if !strings.Contains(logs.String(), `msg="storage unusable, moved aside and started empty"`) {
		t.Errorf("log = %q", logs)
	}
	if _, err := os.Stat(path + ".corrupt-" + fixedNowName); err != nil {
		t.Errorf("not moved aside: %v", err)
	}
	mustPut(t, db, finishedRecord(1))
	if got := mustLoad(t, db); len(got) != 1 {
		t.Errorf("new store: Load returned %d records, want 1", len(got))
	}
}
