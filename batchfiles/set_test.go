package batchfiles

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func pair(cust, batch string) string { return cust + " " + batch + "\n" }

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.txt", "b.txt", "c.csv", ".a.txt.swp", ".hidden.txt", "sub/d.txt", "..data/e.txt"} {
		writeFile(t, filepath.Join(dir, name), "")
	}
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "x.txt"), "")

	got, err := Expand(dir, []string{"*.txt", "b.txt", "*/*.txt", "nothing/*.txt", filepath.Join(other, "*.txt"), ".hidden.txt"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, ".hidden.txt"), // named without a wildcard: read
		filepath.Join(dir, "a.txt"),
		filepath.Join(dir, "b.txt"),
		filepath.Join(dir, "sub/d.txt"),
		filepath.Join(other, "x.txt"),
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Expand:\n got %q\nwant %q", got, want)
	}
}

func TestExpandBadGlob(t *testing.T) {
	_, err := Expand(t.TempDir(), []string{"ok.txt", "[uploads.txt"})
	if !errors.Is(err, filepath.ErrBadPattern) || err.Error() != `batch file glob "[uploads.txt": syntax error in pattern` {
		t.Errorf("err = %v", err)
	}
	if _, err := Expand(t.TempDir(), []string{""}); err == nil || err.Error() != "batch file glob is empty" {
		t.Errorf("empty glob: err = %v", err)
	}
}

func TestScanMergesFilesInPathOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.txt"), pair(custA, batch1)+pair(custB, batch2))
	writeFile(t, filepath.Join(dir, "a.txt"), "junk\n"+pair(custB, batch2))
	snap, err := Scan(t.Context(), dir, []string{"*.txt"}, Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	want := []Entry{entry(custB, batch2, a, 2), entry(custA, batch1, b, 1)}
	if !slices.Equal(snap.Batches, want) {
		t.Errorf("batches:\n got %v\nwant %v", snap.Batches, want)
	}
	if len(snap.Files) != 2 || snap.Files[0].Path != a || snap.Files[1].Path != b {
		t.Fatalf("files: %+v", snap.Files)
	}
	if got := invalidStrings(snap.Files[0].Invalid); !slices.Equal(got, []string{a + `:1: expected "<customer GUID> <batch GUID>" or a batchJobStatus location`}) {
		t.Errorf("invalid lines of a.txt: %q", got)
	}
	if len(snap.Files[1].Entries) != 2 {
		t.Errorf("b.txt keeps its own entries, duplicates of other files included: %v", snap.Files[1].Entries)
	}
}

func TestScanUnreadableFileKeepsItsBatches(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "up.txt")
	writeFile(t, path, "bad\n"+pair(custA, batch1))
	first, err := Scan(t.Context(), dir, []string{"*.txt"}, Snapshot{})
	if err != nil || len(first.Batches) != 1 {
		t.Fatalf("first scan: %v, %v", first, err)
	}

	for _, tc := range []struct {
		name    string
		replace func()
		wantErr string
	}{
		{"directory", func() { mustMkdir(t, path) }, "batch file " + path + ": read: is a directory"},
		{"dangling symlink", func() { mustSymlink(t, filepath.Join(dir, "gone"), path) }, "batch file " + path + ": open: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			tc.replace()
			snap, err := Scan(t.Context(), dir, []string{"*.txt"}, first)
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Files) != 1 || snap.Files[0].Err == nil || snap.Files[0].Err.Error() != tc.wantErr {
				t.Fatalf("files: %+v; want error %q", snap.Files, tc.wantErr)
			}
			if !slices.Equal(snap.Batches, first.Batches) || !slices.Equal(snap.Files[0].Invalid, first.Files[0].Invalid) {
				t.Errorf("batches %v, invalid %v; want those of the last read", snap.Batches, snap.Files[0].Invalid)
			}
			if !errors.Is(snap.Files[0].Err, fs.ErrNotExist) && tc.name == "dangling symlink" {
				t.Errorf("error does not wrap the cause: %v", snap.Files[0].Err)
			}
		})
	}
}

func TestScanDroppedFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	writeFile(t, a, pair(custA, batch1))
	writeFile(t, b, pair(custA, batch2))
	first, _ := Scan(t.Context(), dir, []string{"*.txt"}, Snapshot{})
	if len(first.Batches) != 2 {
		t.Fatalf("first: %v", first.Batches)
	}
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	snap, _ := Scan(t.Context(), dir, []string{"*.txt"}, first)
	if want := []Entry{entry(custA, batch2, b, 1)}; !slices.Equal(snap.Batches, want) {
		t.Errorf("after deleting a.txt: %v, want %v", snap.Batches, want)
	}
	snap, _ = Scan(t.Context(), dir, []string{"a.txt"}, snap)
	if len(snap.Files) != 0 || len(snap.Batches) != 0 {
		t.Errorf("b.txt no longer matched: %+v", snap)
	}
}

func TestScanNeverReadFileHasNoBatches(t *testing.T) {
	dir := t.TempDir()
	mustMkdir(t, filepath.Join(dir, "up.txt"))
	snap, err := Scan(t.Context(), dir, []string{"up.txt"}, Snapshot{})
	if err != nil || len(snap.Files) != 1 || snap.Files[0].Err == nil || snap.Batches != nil {
		t.Errorf("got %+v, %v", snap, err)
	}
}

func TestScanCanceled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), pair(custA, batch1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Scan(ctx, dir, []string{"*.txt"}, Snapshot{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestSnapshotEqual(t *testing.T) {
	f := File{Path: "p", Entries: []Entry{entry(custA, batch1, "p", 1)}, Invalid: []InvalidLine{{"p", 2, errors.New("x")}}}
	same := File{Path: "p", Entries: []Entry{entry(custA, batch1, "p", 1)}, Invalid: []InvalidLine{{"p", 2, errors.New("x")}}}
	if !(Snapshot{Files: []File{f}}).Equal(Snapshot{Files: []File{same}}) {
		t.Error("equal snapshots differ")
	}
	for _, changed := range []func(*File){
		func(f *File) { f.Err = errors.New("boom") },
		func(f *File) { f.Entries = nil },
		func(f *File) { f.Invalid = []InvalidLine{{"p", 3, errors.New("x")}} },
		func(f *File) { f.Invalid = []InvalidLine{{"p", 2, errors.New("y")}} },
		func(f *File) { f.Path = "q" },
		func(f *File) { f.Unterminated = 3 },
	} {
		g := same
		changed(&g)
		if (Snapshot{Files: []File{f}}).Equal(Snapshot{Files: []File{g}}) {
			t.Errorf("%+v equals %+v", f, g)
		}
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestScanFileGrownPastTheLimitKeepsItsBatches(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "up.txt")
	writeFile(t, path, "bad\n"+pair(custA, batch1))
	first, err := Scan(t.Context(), dir, []string{"*.txt"}, Snapshot{})
	if err != nil || len(first.Batches) != 1 {
		t.Fatalf("first scan: %v, %v", first, err)
	}
	// Sparse: the size is past the limit without writing 16 MiB.
	if err := os.Truncate(path, MaxFileBytes+1); err != nil {
		t.Fatal(err)
	}
	snap, err := Scan(t.Context(), dir, []string{"*.txt"}, first)
	if err != nil {
		t.Fatal(err)
	}
	want := "batch file " + path + ": larger than the limit of 16 MiB for a batch file, not read"
	if len(snap.Files) != 1 || snap.Files[0].Err == nil || snap.Files[0].Err.Error() != want {
		t.Fatalf("files: %+v; want error %q", snap.Files, want)
	}
	if !slices.Equal(snap.Batches, first.Batches) || !slices.Equal(snap.Files[0].Invalid, first.Files[0].Invalid) {
		t.Errorf("batches %v, invalid %v; want those of the last read", snap.Batches, snap.Files[0].Invalid)
	}

	// Never read before: an error and no batches.
	fresh, err := Scan(t.Context(), dir, []string{"*.txt"}, Snapshot{})
	if err != nil || len(fresh.Files) != 1 || fresh.Files[0].Err == nil || fresh.Batches != nil {
		t.Errorf("without a previous read: %+v, %v", fresh, err)
	}

	// At the limit exactly, the file is read.
	if err := os.Truncate(path, MaxFileBytes); err != nil {
		t.Fatal(err)
	}
	atLimit, err := Scan(t.Context(), dir, []string{"*.txt"}, snap)
	if err != nil || len(atLimit.Files) != 1 || atLimit.Files[0].Err != nil || !slices.Equal(atLimit.Batches, first.Batches) {
		t.Errorf("at the limit: %+v, %v", atLimit, err)
	}
}

func TestCapReaderStopsAFileGrowingWhileRead(t *testing.T) {
	// A file that grows after its size was checked, or a device with no
	// size (a glob matching /dev/zero through a symlink), is stopped at
	// the limit.
	text := pair(custA, batch1) + pair(custA, batch2)
	for _, tc := range []struct {
		limit   int64
		wantErr error
	}{
		{int64(len(text)), nil},
		{int64(len(text)) - 1, errTooLarge},
	} {
		p, err := parse(&capReader{r: strings.NewReader(text), left: tc.limit}, "f")
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("limit %d: err = %v, want %v", tc.limit, err, tc.wantErr)
		}
		if tc.wantErr == nil && len(p.entries) != 2 {
			t.Errorf("limit %d: entries %v", tc.limit, p.entries)
		}
	}
}

func TestScanOnceReadsTheUnterminatedLastLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "up.txt")
	writeFile(t, path, pair(custA, batch1)+"12ab "+batch2)
	snap, err := Scan(t.Context(), dir, []string{"*.txt"}, Snapshot{})
	if err != nil || len(snap.Files) != 1 || snap.Files[0].Unterminated != 2 || len(snap.Files[0].Invalid) != 0 {
		t.Fatalf("Scan: %+v, %v; want line 2 unterminated and not read", snap, err)
	}
	once, err := ScanOnce(t.Context(), dir, []string{"*.txt"})
	if err != nil || len(once.Files) != 1 || once.Files[0].Unterminated != 0 {
		t.Fatalf("ScanOnce: %+v, %v", once, err)
	}
	if got := invalidStrings(once.Files[0].Invalid); !slices.Equal(got, []string{path + ":2: " + errCustomerGUID.Error()}) {
		t.Errorf("invalid: %q", got)
	}
}
