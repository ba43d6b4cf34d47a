package batchfiles

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// invalidStrings renders invalid lines as "file:line: reason" for exact
// comparison.
func invalidStrings(invalid []InvalidLine) []string {
	var out []string
	for _, l := range invalid {
		out = append(out, l.String())
	}
	return out
}

func entry(cust, batch, file string, line int) Entry {
	return Entry{Batch: Batch{CustomerID: cust, TrackingID: batch}, File: file, Line: line}
}

func TestParseFileEveryForm(t *testing.T) {
	text := "\xEF\xBB\xBF# uploads of 2025-01-06\r\n" +
		custA + " " + batch1 + "\r\n" +
		"\r\n" +
		"   # indented comment\r\n" +
		"/customers/" + strings.ToUpper(custA) + "/BatchJobStatus/" + batch2 + "   \r\n" +
		"12ab " + batch3 + "\r\n" +
		"https://api.partnercenter.microsoft.com/v1/customers/" + custB + "/batchjobstatus/" + batch1 + "\r\n" +
		custA + "," + batch1 + "\r\n" + // the same batch again: counted once, at line 2
		"\t" + custB + "\t" + batch3 + "\t# trailing comment\r\n" +
		strings.Repeat("y", 5000) + "\r\n" +
		"/v1/customers/" + custB + "/batchJobStatus/" + batch2 + "\r\n" +
		custB + " " + batch3 // half-written: no newline yet
	entries, invalid, err := ParseFile(strings.NewReader(text), "up.txt")
	if err != nil {
		t.Fatal(err)
	}
	wantEntries := []Entry{
		entry(custA, batch1, "up.txt", 2),
		entry(custA, batch2, "up.txt", 5),
		entry(custB, batch1, "up.txt", 7),
		entry(custB, batch3, "up.txt", 9),
		entry(custB, batch2, "up.txt", 11),
	}
	if !slices.Equal(entries, wantEntries) {
		t.Errorf("entries:\n got %+v\nwant %+v", entries, wantEntries)
	}
	wantInvalid := []string{
		"up.txt:6: " + errCustomerGUID.Error(),
		`up.txt:10: line too long: more than 4096 bytes`,
	}
	if got := invalidStrings(invalid); !slices.Equal(got, wantInvalid) {
		t.Errorf("invalid:\n got %q\nwant %q", got, wantInvalid)
	}
}

func TestParseFileHalfWrittenLine(t *testing.T) {
	for _, text := range []string{
		custA,
		custA + " " + batch1,
		"not even close",
		strings.Repeat("z", 5000), // too long, but not finished either
	} {
		entries, invalid, err := ParseFile(strings.NewReader(text), "f")
		if err != nil || entries != nil || invalid != nil {
			t.Errorf("ParseFile(%.20q...) = %v, %v, %v; want nothing", text, entries, invalid, err)
		}
	}
	entries, _, _ := ParseFile(strings.NewReader(custA+" "+batch1+"\n"), "f")
	if want := []Entry{entry(custA, batch1, "f", 1)}; !slices.Equal(entries, want) {
		t.Errorf("once the newline arrives: got %v, want %v", entries, want)
	}
}

func TestParseFileLineLengthBound(t *testing.T) {
	atLimit := "# " + strings.Repeat("c", MaxLineBytes-2)
	overLimit := atLimit + "c"
	text := atLimit + "\n" + atLimit + "\r\n" + overLimit + "\n" + strings.Repeat("d", 3*readBufSize) + "\n" + custA + " " + batch1 + "\n"
	entries, invalid, err := ParseFile(strings.NewReader(text), "f")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Entry{entry(custA, batch1, "f", 5)}; !slices.Equal(entries, want) {
		t.Errorf("entries: got %v, want %v", entries, want)
	}
	want := []string{"f:3: line too long: more than 4096 bytes", "f:4: line too long: more than 4096 bytes"}
	if got := invalidStrings(invalid); !slices.Equal(got, want) {
		t.Errorf("invalid: got %q, want %q", got, want)
	}
}

func TestParseFileBOMOnlyAtStart(t *testing.T) {
	text := custA + " " + batch1 + "\n\xEF\xBB\xBF" + custA + " " + batch2 + "\n"
	entries, invalid, err := ParseFile(strings.NewReader(text), "f")
	if err != nil || len(entries) != 1 {
		t.Fatalf("got %v, %v, %v", entries, invalid, err)
	}
	want := []string{"f:2: " + errCustomerGUID.Error()} // a BOM inside the file is not stripped
	if got := invalidStrings(invalid); !slices.Equal(got, want) {
		t.Errorf("invalid: got %q, want %q", got, want)
	}
}

func TestParseFileUTF16(t *testing.T) {
	for _, bom := range []string{"\xFF\xFE", "\xFE\xFF"} {
		_, _, err := ParseFile(strings.NewReader(bom+"0\x00b\x00\n\x00"), "up.txt")
		want := "batch file up.txt: UTF-16 text: write the file as UTF-8 (PowerShell: Add-Content -Encoding utf8)"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
	}
}

func TestParseFileReadError(t *testing.T) {
	broken := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader(custA+" "+batch1+"\n"), iotest.ErrReader(broken))
	entries, _, err := ParseFile(r, "up.txt")
	if !errors.Is(err, broken) || err.Error() != "batch file up.txt: disk on fire" {
		t.Errorf("err = %v", err)
	}
	if len(entries) != 1 {
		t.Errorf("entries read before the error: %v", entries)
	}
}

func TestParseFileEmpty(t *testing.T) {
	entries, invalid, err := ParseFile(strings.NewReader(""), "f")
	if entries != nil || invalid != nil || err != nil {
		t.Errorf("got %v, %v, %v", entries, invalid, err)
	}
}
