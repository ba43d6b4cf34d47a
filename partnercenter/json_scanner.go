package partnercenter

import (
	"errors"
	"io"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScanner reads JSON one byte at a time from its own buffer. It is
// written for the decoder in decode_json.go: it checks the syntax as
// strictly as encoding/json, words its errors the same way (callers and
// tests rely on the text), bounds nesting at maxNestingDepth, and copies a
// string only into a buffer the caller hands it, so that reading a device
// that is merely counted allocates nothing.
type jsonScanner struct {
	r        io.Reader
	buf      []byte
	pos, end int
	// err is the reader's error, io.EOF included, once it has been seen;
	// the bytes read before it are served first.
	err   error
	depth int
	// escaped is scratch for strings that need unescaping or repair.
	escaped []byte
	// key holds the key forEachMember is handing out. Nested objects share
	// it, which is why a key is only valid until its value is read.
	key []byte
}

// jsonBufferSize is what the scanner reads at a time: large enough that
// the per-read cost vanishes, small enough not to matter per decode.
const jsonBufferSize = 32 << 10

// maxEmptyReads is how many (0, nil) reads in a row are taken for no
// progress, as bufio does.
const maxEmptyReads = 100

func newJSONScanner(r io.Reader) *jsonScanner {
	return &jsonScanner{r: r, buf: make([]byte, jsonBufferSize)}
}

// jsonKind is the kind of a JSON value, known from its first byte.
type jsonKind int

const (
	jsonString jsonKind = iota
	jsonNumber
	jsonBool
	jsonNull
	jsonObject
	jsonArray
)

// describe words the kind for an error message.
func (k jsonKind) describe() string {
	return [...]string{"a string", "a number", "a boolean", "null", "an object", "an array"}[k]
}

// fill reads more input once the buffer is used up; false means there is
// none (s.err says why).
func (s *jsonScanner) fill() bool {
	if s.err != nil {
		return false
	}
	for range maxEmptyReads {
		n, err := s.r.Read(s.buf)
		s.pos, s.end = 0, n
		if err != nil {
			s.err = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// inputError is the error for input that ended or failed where more was
// needed.
func (s *jsonScanner) inputError() error {
	if s.err == nil || errors.Is(s.err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return s.err
}

// peek returns the next byte that is not white space without consuming
// it; at the end of the input it returns the reader's error (io.EOF).
func (s *jsonScanner) peek() (byte, error) {
	for {
		for s.pos < s.end {
			c := s.buf[s.pos]
			if !isSpace(c) {
				return c, nil
			}
			s.pos++
		}
		if !s.fill() {
			return 0, s.err
		}
	}
}

// peekInValue is peek where the value is not over yet, so that the end of
// the input is unexpected.
func (s *jsonScanner) peekInValue() (byte, error) {
	c, err := s.peek()
	if err != nil {
		return 0, s.inputError()
	}
	return c, nil
}

// next consumes and returns the next byte, white space included.
func (s *jsonScanner) next() (byte, error) {
	if s.pos == s.end && !s.fill() {
		return 0, s.inputError()
	}
	c := s.buf[s.pos]
	s.pos++
	return c, nil
}

// syntaxError words a bad byte as encoding/json does.
func syntaxError(c byte, context string) error {
	if context == "" {
		return errors.New("invalid character " + quoteChar(c))
	}
	return errors.New("invalid character " + quoteChar(c) + " " + context)
}

// quoteChar formats c as encoding/json does in its messages.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// expect consumes the next significant byte, which must be want.
func (s *jsonScanner) expect(want byte, context string) error {
	c, err := s.peekInValue()
	if err != nil {
		return err
	}
	if c != want {
		return syntaxError(c, context)
	}
	s.pos++
	return nil
}

// beginValue starts the next value: it consumes the opening bracket of an
// object or array (counting depth), the opening quote of a string and the
// whole of a literal; a number is left for scanNumber.
func (s *jsonScanner) beginValue() (jsonKind, error) {
	c, err := s.peekInValue()
	if err != nil {
		return 0, err
	}
	switch {
	case c == '{' || c == '[':
		s.pos++
		if s.depth++; s.depth > maxNestingDepth {
			return 0, errTooDeep
		}
		if c == '{' {
			return jsonObject, nil
		}
		return jsonArray, nil
	case c == '"':
		s.pos++
		return jsonString, nil
	case c == '-' || ('0' <= c && c <= '9'):
		return jsonNumber, nil
	case c == 't':
		return jsonBool, s.literal("true")
	case c == 'f':
		return jsonBool, s.literal("false")
	case c == 'n':
		return jsonNull, s.literal("null")
	}
	return 0, syntaxError(c, "looking for beginning of value")
}

// literal consumes the literal word, whose first byte has been peeked.
func (s *jsonScanner) literal(word string) error {
	s.pos++
	for i := 1; i < len(word); i++ {
		c, err := s.next()
		if err != nil {
			return err
		}
		if c != word[i] {
			return syntaxError(c, "in literal "+word+" (expecting "+quoteChar(word[i])+")")
		}
	}
	return nil
}

// closeValue ends an object or array.
func (s *jsonScanner) closeValue() { s.depth-- }

// skipRest consumes what beginValue left of a value.
func (s *jsonScanner) skipRest(kind jsonKind) error {
	var err error
	switch kind {
	case jsonString:
		_, err = s.scanString(nil, false)
	case jsonNumber:
		_, err = s.scanNumber(nil, false)
	case jsonObject:
		err = s.forEachMember(false, func([]byte) error { return s.skipMember() })
	case jsonArray:
		err = s.forEachElement(func() error { return s.skipValue() })
	}
	return err
}

// skipValue consumes a whole value.
func (s *jsonScanner) skipValue() error {
	kind, err := s.beginValue()
	if err != nil {
		return err
	}
	return s.skipRest(kind)
}

// skipMember consumes the colon and the value of an object member.
func (s *jsonScanner) skipMember() error {
	if err := s.expect(':', "after object key"); err != nil {
		return err
	}
	return s.skipValue()
}

// forEachMember walks an object whose '{' beginValue consumed, calling fn
// with each key; fn must consume the colon and the value (see
// beginMember). The key is only valid until fn starts reading the value.
//
// tokenWalk words a bad byte right after '{' as json.Decoder.Token does
// ("invalid character 'x'", without context) rather than as its scanner
// does: the top level has always been read with Token.
func (s *jsonScanner) forEachMember(tokenWalk bool, fn func(key []byte) error) error {
	c, err := s.peekInValue()
	if err != nil {
		return err
	}
	if c == '}' {
		s.pos++
		s.closeValue()
		return nil
	}
	if c != '"' && tokenWalk {
		return syntaxError(c, "")
	}
	for {
		if err := s.expect('"', "looking for beginning of object key string"); err != nil {
			return err
		}
		if s.key, err = s.scanString(s.key[:0], true); err != nil {
			return err
		}
		if err := fn(s.key); err != nil {
			return err
		}
		c, err := s.peekInValue()
		if err != nil {
			return err
		}
		switch c {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.closeValue()
			return nil
		default:
			return syntaxError(c, "after object key:value pair")
		}
	}
}

// forEachElement walks an array whose '[' beginValue consumed, calling fn
// for each element; fn must consume it.
func (s *jsonScanner) forEachElement(fn func() error) error {
	c, err := s.peekInValue()
	if err != nil {
		return err
	}
	if c == ']' {
		s.pos++
		s.closeValue()
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		if done, err := s.afterElement(); done || err != nil {
			return err
		}
	}
}

// afterElement consumes the ',' or ']' after an array element and reports
// whether the array is over.
func (s *jsonScanner) afterElement() (done bool, err error) {
	c, err := s.peekInValue()
	if err != nil {
		return false, err
	}
	switch c {
	case ',':
		s.pos++
		return false, nil
	case ']':
		s.pos++
		s.closeValue()
		return true, nil
	}
	return false, syntaxError(c, "after array element")
}

// beginMember consumes the colon after a key and starts its value.
func (s *jsonScanner) beginMember() (jsonKind, error) {
	if err := s.expect(':', "after object key"); err != nil {
		return 0, err
	}
	return s.beginValue()
}

// stringByteClass marks the bytes that end the fast path through a
// string: the closing quote, a backslash, the control characters JSON
// forbids in strings, and non-ASCII bytes, so that only a string that has
// some is checked for valid UTF-8.
var stringByteClass = func() (class [256]bool) {
	for c := range 0x20 {
		class[c] = true
	}
	for c := utf8.RuneSelf; c < len(class); c++ {
		class[c] = true
	}
	class['"'], class['\\'] = true, true
	return class
}()

// scanString consumes a string whose opening quote has been read. With
// keep it appends the unescaped text to dst and returns it, with bad UTF-8
// replaced by U+FFFD as encoding/json does; without keep it only checks.
func (s *jsonScanner) scanString(dst []byte, keep bool) ([]byte, error) {
	start := len(dst)
	escaped, nonASCII := false, false
	for {
		run := s.pos
		for run < s.end && !stringByteClass[s.buf[run]] {
			run++
		}
		if keep {
			dst = append(dst, s.buf[s.pos:run]...)
		}
		s.pos = run
		if s.pos == s.end {
			if !s.fill() {
				return dst, s.inputError()
			}
			continue
		}
		c := s.buf[s.pos]
		s.pos++
		switch {
		case c >= utf8.RuneSelf:
			nonASCII = true
			if keep {
				dst = append(dst, c)
			}
		case c == '"':
			if keep && (escaped || (nonASCII && !utf8.Valid(dst[start:]))) {
				return s.unescape(dst, start)
			}
			return dst, nil
		case c == '\\':
			escaped = true
			var err error
			if dst, err = s.scanEscape(dst, keep); err != nil {
				return dst, err
			}
		default:
			return dst, syntaxError(c, "in string literal")
		}
	}
}

// scanEscape checks the escape after a backslash and, with keep, appends
// it as written; unescape decodes it once the string is complete.
func (s *jsonScanner) scanEscape(dst []byte, keep bool) ([]byte, error) {
	c, err := s.next()
	if err != nil {
		return dst, err
	}
	if keep {
		dst = append(dst, '\\', c)
	}
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return dst, nil
	case 'u':
		for range 4 {
			h, err := s.next()
			if err != nil {
				return dst, err
			}
			if _, ok := hexValue(h); !ok {
				return dst, syntaxError(h, `in \u hexadecimal character escape`)
			}
			if keep {
				dst = append(dst, h)
			}
		}
		return dst, nil
	}
	return dst, syntaxError(c, "in string escape code")
}

func hexValue(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10), true
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}

// unescape rewrites dst[start:], checked string text as written, into its
// value: escapes decoded, surrogate pairs joined, and every byte of bad
// UTF-8 and every lone surrogate replaced by U+FFFD, as encoding/json's
// unquote does.
func (s *jsonScanner) unescape(dst []byte, start int) ([]byte, error) {
	raw := append(s.escaped[:0], dst[start:]...)
	s.escaped = raw
	dst = dst[:start]
	for i := 0; i < len(raw); {
		var r rune
		size := 1
		switch c := raw[i]; {
		case c == '\\':
			r, size = decodeEscape(raw[i:])
		case c < utf8.RuneSelf:
			r = rune(c)
		default:
			r, size = utf8.DecodeRune(raw[i:]) // RuneError for a bad byte
		}
		dst = utf8.AppendRune(dst, r)
		i += size
	}
	return dst, nil
}

// decodeEscape decodes the checked escape at the start of raw and returns
// how many bytes it used.
func decodeEscape(raw []byte) (rune, int) {
	if raw[1] == 'u' {
		return decodeUnicodeEscape(raw)
	}
	return rune(simpleEscape(raw[1])), 2
}

// decodeUnicodeEscape decodes the \uXXXX at the start of raw, joined with
// a second one when they form a surrogate pair, and returns how many bytes
// it used.
func decodeUnicodeEscape(raw []byte) (rune, int) {
	r := hex4(raw[2:6])
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if len(raw) >= 12 && raw[6] == '\\' && raw[7] == 'u' {
		if pair := utf16.DecodeRune(r, hex4(raw[8:12])); pair != utf8.RuneError {
			return pair, 12
		}
	}
	return utf8.RuneError, 6
}

// hex4 reads four hex digits that scanEscape has already checked.
func hex4(digits []byte) rune {
	var r rune
	for _, h := range digits {
		v, _ := hexValue(h)
		r = r<<4 | v
	}
	return r
}

func simpleEscape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\' and '/'
}

// scanNumber consumes a number, whose first byte has been peeked, checking
// the JSON grammar; with keep it appends the text to dst. The number ends
// at the first byte that cannot continue it, or at the end of the input.
func (s *jsonScanner) scanNumber(dst []byte, keep bool) ([]byte, error) {
	take := func() byte {
		c := s.buf[s.pos]
		s.pos++
		if keep {
			dst = append(dst, c)
		}
		return c
	}
	// peekByte returns the next byte, or 0 at the end of the input.
	peekByte := func() byte {
		if s.pos == s.end && !s.fill() {
			return 0
		}
		return s.buf[s.pos]
	}
	// digits consumes one or more digits; context words a missing one.
	digits := func(context string) error {
		c := peekByte()
		if c < '0' || c > '9' {
			return s.numberError(c, context)
		}
		for c >= '0' && c <= '9' {
			take()
			c = peekByte()
		}
		return nil
	}
	if peekByte() == '-' {
		take()
	}
	if c := peekByte(); c == '0' {
		take()
	} else if err := digits("in numeric literal"); err != nil {
		return dst, err
	}
	if peekByte() == '.' {
		take()
		if err := digits("after decimal point in numeric literal"); err != nil {
			return dst, err
		}
	}
	if c := peekByte(); c == 'e' || c == 'E' {
		take()
		if c := peekByte(); c == '+' || c == '-' {
			take()
		}
		if err := digits("in exponent of numeric literal"); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// numberError is the error for c where a digit was needed; c is 0 at the
// end of the input.
func (s *jsonScanner) numberError(c byte, context string) error {
	if s.pos == s.end {
		return s.inputError()
	}
	return syntaxError(c, context)
}
