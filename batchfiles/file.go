package batchfiles

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// MaxLineBytes bounds the length of a line, without its line ending. A
// longer line is invalid; reading goes on with the next line.
const MaxLineBytes = 4096

// MaxFileBytes bounds the size of a batch file. A larger one is not read
// at all: a year of uploads by a large partner is about 5 MiB, so a file
// over the limit is most likely a log or a dump that a broad glob matched,
// and parsing it at every re-scan would cost seconds of CPU each time.
const MaxFileBytes = 16 << 20

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
	// Err says what is wrong, never what the line says.
	Err error
}

// String returns "file:line: reason".
func (l InvalidLine) String() string {
	return fmt.Sprintf("%s:%d: %v", l.File, l.Line, l.Err)
}

var (
	utf8BOM     = []byte("\xEF\xBB\xBF")
	errTooLong  = fmt.Errorf("line too long: more than %d bytes", MaxLineBytes)
	errTooLarge = fmt.Errorf("larger than the limit of %d MiB for a batch file, not read", MaxFileBytes>>20)
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
	p, err := parse(r, name)
	return p.entries, p.invalid, err
}

// parsed is what parse read of a file.
type parsed struct {
	name    string
	entries []Entry
	invalid []InvalidLine
	seen    map[Batch]struct{}
	// tail is the last line when it has no newline, not parsed yet; nil
	// when the file ends in a newline or is empty.
	tail *tail
}

// tail is a last line without a newline.
type tail struct {
	line    int
	text    []byte // a copy; nil when tooLong
	tooLong bool
	key     tailKey
}

// tailKey identifies an unterminated last line between scans: where it
// starts, how long it is and a hash of its last bytes (all of it unless it
// is too long, which only its length matters for). The zero key is no
// line. It holds no content, only a hash.
type tailKey struct {
	start, length int64
	sum           [sha256.Size]byte
}

func (k tailKey) present() bool { return k.length > 0 }

// parse reads r line by line. p is never nil; on an error it holds what
// was read so far.
func parse(r io.Reader, name string) (*parsed, error) {
	p := &parsed{name: name, seen: make(map[Batch]struct{})}
	lr := &lineReader{br: bufio.NewReaderSize(r, readBufSize)}
	if isUTF16(lr.br) {
		return p, fmt.Errorf("batch file %s: %w", name, errUTF16)
	}
	for lineNo := 1; ; lineNo++ {
		l, err := lr.next()
		if err != nil {
			return p, fmt.Errorf("batch file %s: %w", name, withoutPath(err))
		}
		if !l.complete {
			if l.length > 0 {
				p.tail = &tail{line: lineNo, text: bytes.Clone(l.text), tooLong: l.tooLong, key: l.key}
			}
			return p, nil
		}
		p.add(lineNo, l.text, l.tooLong)
	}
}

// add parses one line, as read (CR and all), into p.
func (p *parsed) add(lineNo int, line []byte, tooLong bool) {
	if lineNo == 1 {
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	b, ok, lineErr := parseFileLine(line, tooLong)
	switch {
	case lineErr != nil:
		p.invalid = append(p.invalid, InvalidLine{File: p.name, Line: lineNo, Err: lineErr})
	case ok:
		if _, dup := p.seen[b]; !dup {
			p.seen[b] = struct{}{}
			p.entries = append(p.entries, Entry{Batch: b, File: p.name, Line: lineNo})
		}
	}
}

// readTail parses the unterminated last line as a line, and forgets it.
func (p *parsed) readTail() {
	if p.tail != nil {
		p.add(p.tail.line, p.tail.text, p.tail.tooLong)
		p.tail = nil
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
	if pathErr, ok := errors.AsType[*fs.PathError](err); ok {
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

// lineReader reads lines and counts the bytes it consumed.
type lineReader struct {
	br     *bufio.Reader
	offset int64
}

// rawLine is a line as lineReader read it.
type rawLine struct {
	// text is the line without its newline, valid until the next read;
	// nil when tooLong: a line too long for the buffer is skipped, without
	// content, since it is invalid whatever it says.
	text     []byte
	tooLong  bool
	complete bool // it ended in a newline
	length   int64
	key      tailKey // only for an incomplete line
}

func (lr *lineReader) next() (rawLine, error) {
	var l rawLine
	start := lr.offset
	for {
		chunk, err := lr.br.ReadSlice('\n')
		lr.offset += int64(len(chunk))
		l.length = lr.offset - start
		switch {
		case err == nil:
			if !l.tooLong {
				l.text = chunk[:len(chunk)-1]
			}
			l.complete, l.length = true, l.length-1
			return l, nil
		case errors.Is(err, bufio.ErrBufferFull):
			l.tooLong, l.text = true, nil
		case errors.Is(err, io.EOF):
			if !l.tooLong {
				l.text = chunk
			}
			l.key = tailKey{start: start, length: l.length, sum: sha256.Sum256(chunk)}
			return l, nil
		default:
			return l, err
		}
	}
}

// capReader reads at most left bytes from r, then fails with errTooLarge
// if r has more: a file can grow between its size check and its read, and
// a device or pipe has no size to check.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var probe [1]byte
		n, err := c.r.Read(probe[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
