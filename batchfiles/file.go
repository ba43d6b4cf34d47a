package batchfiles

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// MaxLineBytes bounds the length of a line, without its line ending. A
// longer line is invalid; reading goes on with the next line.
const MaxLineBytes = 4096

// Entry is a batch named in a batch file, with the file and the (1-based)
// line that named it first.
type Entry struct {
	Batch
	File string
	Line int
}

// InvalidLine is a line of a batch file that is none of the accepted forms.
type InvalidLine struct {
	File string
	Line int
	Err  error
}

// String returns "file:line: reason".
func (l InvalidLine) String() string {
	return fmt.Sprintf("%s:%d: %v", l.File, l.Line, l.Err)
}

var (
	utf8BOM     = []byte("\xEF\xBB\xBF")
	errTooLong  = fmt.Errorf("line too long: more than %d bytes", MaxLineBytes)
	errUTF16    = errors.New("UTF-16 text: write the file as UTF-8 (PowerShell: Add-Content -Encoding utf8)")
	utf16BOMs   = [][]byte{{0xFF, 0xFE}, {0xFE, 0xFF}}
	readBufSize = MaxLineBytes + len("\r\n")
)

// ParseFile reads a batch file from r; name is the file's name for entries,
// invalid lines and errors. It returns the batches in the order of their
// first line, each once, and the invalid lines. Only complete lines count:
// a last line without a newline is not read, and is not an error either.
// err is non-nil when r fails or the file is UTF-16; entries and invalid
// are then those read so far.
func ParseFile(r io.Reader, name string) (entries []Entry, invalid []InvalidLine, err error) {
	br := bufio.NewReaderSize(r, readBufSize)
	if isUTF16(br) {
		return nil, nil, fmt.Errorf("batch file %s: %w", name, errUTF16)
	}
	seen := make(map[Batch]struct{})
	for lineNo := 1; ; lineNo++ {
		line, tooLong, complete, err := readLine(br)
		if err != nil {
			return entries, invalid, fmt.Errorf("batch file %s: %w", name, withoutPath(err))
		}
		if !complete {
			return entries, invalid, nil
		}
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		b, ok, lineErr := parseFileLine(line, tooLong)
		switch {
		case lineErr != nil:
			invalid = append(invalid, InvalidLine{File: name, Line: lineNo, Err: lineErr})
		case ok:
			if _, dup := seen[b]; !dup {
				seen[b] = struct{}{}
				entries = append(entries, Entry{Batch: b, File: name, Line: lineNo})
			}
		}
	}
}

// parseFileLine parses a line as read, CR and all.
func parseFileLine(line []byte, tooLong bool) (Batch, bool, error) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if tooLong || len(line) > MaxLineBytes {
		return Batch{}, false, errTooLong
	}
	return ParseLine(string(line))
}

// withoutPath drops the path that an error from os repeats, since the
// message names the file already.
func withoutPath(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return fmt.Errorf("%s: %w", pathErr.Op, pathErr.Err)
	}
	return err
}

func isUTF16(br *bufio.Reader) bool {
	start, _ := br.Peek(2)
	for _, bom := range utf16BOMs {
		if bytes.Equal(start, bom) {
			return true
		}
	}
	return false
}

// readLine returns the next line without its newline; the slice is valid
// until the next read. complete is false at the end of the input, which
// includes a last line with no newline yet. A line too long for the buffer
// is skipped up to its newline and reported as tooLong, without content:
// it is invalid whatever it says.
func readLine(br *bufio.Reader) (line []byte, tooLong, complete bool, err error) {
	line, err = br.ReadSlice('\n')
	switch {
	case err == nil:
		return line[:len(line)-1], false, true, nil
	case errors.Is(err, bufio.ErrBufferFull):
		complete, err = skipLine(br)
		return nil, true, complete, err
	case errors.Is(err, io.EOF):
		return nil, false, false, nil
	default:
		return nil, false, false, err
	}
}

// skipLine discards input up to and including the next newline, and
// reports whether there was one.
func skipLine(br *bufio.Reader) (bool, error) {
	for {
		_, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return false, nil
		default:
			return false, err
		}
	}
}
