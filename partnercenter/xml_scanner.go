package partnercenter

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// xmlScanner reads the XML of a batch body as encoding/xml's Decoder.Token
// in strict mode reads it: it accepts and refuses the same documents, with
// the same error messages and line numbers. It was the first reader here,
// and 94% of the decoding time went to the strings and attribute slices it
// made for every name and text of every device; this scanner hands out
// names and text as views of its buffers, valid until the next call, so
// that a device that is only counted costs no allocation.
//
// Unlike encoding/xml it never keeps more than bounded amounts: at most
// maxNestingDepth open elements (deeper is errTooDeep), names of at most
// maxXMLName bytes, and of a text only what the caller keeps (at most
// maxRawText). Comments, processing instructions and directives are
// checked and skipped: the decoder ignores them.
type xmlScanner struct {
	r        io.Reader
	buf      []byte
	pos, end int
	// rerr is the reader's error, seen once the buffer is used up.
	rerr error
	// err is sticky: once set, every call returns it.
	err  error
	line int

	// open are the names of the open elements, raw (prefix:local), as
	// offsets into names.
	open  []int
	names []byte
	// needClose is set after a self-closing start tag: its end comes next.
	needClose bool

	// What next returned for a start tag, valid until the next call.
	local []byte
	isNil bool

	// textPending is set when next returned xmlText and the text has not
	// been read; cdata says it is a CDATA section.
	textPending, cdata bool

	// name and attr are scratch buffers.
	name, attr []byte
}

type xmlToken int

const (
	xmlStart xmlToken = iota
	xmlEnd
	xmlText
)

// maxXMLName bounds element, attribute and processing instruction target
// names. encoding/xml has no bound; no name of a batch comes near it.
const maxXMLName = 1024

// xmlBufferSize is the read buffer of the scanner.
const xmlBufferSize = 32 << 10

func newXMLScanner(r io.Reader) *xmlScanner {
	return &xmlScanner{r: r, buf: make([]byte, xmlBufferSize), line: 1}
}

func (s *xmlScanner) syntaxError(msg string) error {
	return &xml.SyntaxError{Msg: msg, Line: s.line}
}

// fill reads more input once the buffer is used up; false means there is
// none (s.rerr says why).
func (s *xmlScanner) fill() bool {
	if s.rerr != nil {
		return false
	}
	for range maxEmptyReads {
		n, err := s.r.Read(s.buf)
		s.pos, s.end = 0, n
		if err != nil {
			s.rerr = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	s.rerr = io.ErrNoProgress
	return false
}

// getc consumes one byte; false at the end of the input or on a read
// error, which is then in s.err.
func (s *xmlScanner) getc() (byte, bool) {
	if s.err != nil {
		return 0, false
	}
	if s.pos == s.end && !s.fill() {
		s.err = s.rerr
		return 0, false
	}
	c := s.buf[s.pos]
	s.pos++
	if c == '\n' {
		s.line++
	}
	return c, true
}

// mustgetc is getc where the input may not end.
func (s *xmlScanner) mustgetc() (byte, bool) {
	c, ok := s.getc()
	if !ok && errors.Is(s.err, io.EOF) {
		s.err = s.syntaxError("unexpected EOF")
	}
	return c, ok
}

// ungetc gives back the byte getc just returned.
func (s *xmlScanner) ungetc() {
	s.pos--
	if s.buf[s.pos] == '\n' {
		s.line--
	}
}

func (s *xmlScanner) fail(msg string) error {
	s.err = s.syntaxError(msg)
	return s.err
}

// space skips white space.
func (s *xmlScanner) space() {
	for s.pos < s.end {
		switch s.buf[s.pos] {
		case ' ', '\r', '\t':
		case '\n':
			s.line++
		default:
			return
		}
		s.pos++
	}
	for {
		c, ok := s.getc()
		if !ok {
			return
		}
		if c != ' ' && c != '\r' && c != '\n' && c != '\t' {
			s.ungetc()
			return
		}
	}
}

// next returns the next start tag, end tag or text (to be read with
// readText, or skipped by the next call to next). At the end of the input
// it returns io.EOF, or a syntax error while elements are open.
func (s *xmlScanner) next() (xmlToken, error) {
	if s.textPending {
		if _, err := s.readText(nil, false); err != nil {
			return 0, err
		}
	}
	for {
		tok, ok, err := s.rawToken()
		if err != nil {
			if errors.Is(err, io.EOF) && len(s.open) > 0 {
				s.err = s.syntaxError("unexpected EOF")
				return 0, s.err
			}
			return 0, err
		}
		if ok {
			return tok, nil
		}
	}
}

// rawToken reads one token; ok is false for one that is skipped (comment,
// processing instruction, directive).
func (s *xmlScanner) rawToken() (xmlToken, bool, error) {
	if s.err != nil {
		return 0, false, s.err
	}
	if s.needClose {
		s.needClose = false
		s.pop()
		return xmlEnd, true, nil
	}
	b, ok := s.getc()
	if !ok {
		return 0, false, s.err
	}
	if b != '<' {
		s.ungetc()
		s.textPending, s.cdata = true, false
		return xmlText, true, nil
	}
	if b, ok = s.mustgetc(); !ok {
		return 0, false, s.err
	}
	switch b {
	case '/':
		return s.endTag()
	case '?':
		return 0, false, s.procInst()
	case '!':
		if b, ok = s.mustgetc(); !ok {
			return 0, false, s.err
		}
		switch b {
		case '-':
			return 0, false, s.comment()
		case '[':
			for i := range 6 {
				if b, ok = s.mustgetc(); !ok {
					return 0, false, s.err
				}
				if b != "CDATA["[i] {
					return 0, false, s.fail("invalid <![ sequence")
				}
			}
			s.textPending, s.cdata = true, true
			return xmlText, true, nil
		}
		return 0, false, s.directive()
	}
	s.ungetc()
	return s.startTag()
}

// readName reads a name into s.name: the bytes up to the first ASCII byte
// that cannot be in a name. false with s.err nil when there is none.
func (s *xmlScanner) readName() bool {
	s.name = s.name[:0]
	b, ok := s.mustgetc()
	if !ok {
		return false
	}
	if b < utf8.RuneSelf && !isNameByte(b) {
		s.ungetc()
		return false
	}
	s.name = append(s.name, b)
	for {
		// Within the buffer, name bytes are taken without getc.
		for s.pos < s.end && len(s.name) < maxXMLName {
			c := s.buf[s.pos]
			if c < utf8.RuneSelf && !isNameByte(c) {
				return true
			}
			s.name = append(s.name, c)
			s.pos++
		}
		if b, ok = s.mustgetc(); !ok {
			return false
		}
		if b < utf8.RuneSelf && !isNameByte(b) {
			s.ungetc()
			return true
		}
		if len(s.name) == maxXMLName {
			s.err = fmt.Errorf("XML name longer than %d bytes on line %d", maxXMLName, s.line)
			return false
		}
		s.name = append(s.name, b)
	}
}

// readXMLName is encoding/xml's name(): a name that must be valid.
func (s *xmlScanner) readXMLName() bool {
	if !s.readName() {
		return false
	}
	if !isXMLName(s.name) {
		s.err = s.syntaxError("invalid XML name: " + string(s.name))
		return false
	}
	return true
}

// readNSName is encoding/xml's nsname(): a valid name with at most one
// colon. It returns the local part (a view of s.name).
func (s *xmlScanner) readNSName() ([]byte, bool) {
	if !s.readXMLName() {
		return nil, false
	}
	if bytes.Count(s.name, []byte{':'}) > 1 {
		return nil, false
	}
	_, local := splitXMLName(s.name)
	return local, true
}

// splitXMLName splits a name with at most one colon into prefix and local
// part as encoding/xml does: no prefix unless both sides are non-empty.
func splitXMLName(name []byte) (prefix, local []byte) {
	p, l, ok := bytes.Cut(name, []byte{':'})
	if !ok || len(p) == 0 || len(l) == 0 {
		return nil, name
	}
	return p, l
}

func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c == '-'
}

// isXMLName reports whether name is an XML name. ASCII names are checked
// here; the rare others by encoding/xml itself, whose tables of name
// characters are not exported.
func isXMLName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	ascii := true
	for _, c := range name {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		c := name[0]
		return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == ':'
	}
	_, err := xml.NewDecoder(bytes.NewReader(append(append([]byte("<"), name...), " />"...))).RawToken()
	var syntax *xml.SyntaxError
	return !errors.As(err, &syntax) || !strings.HasPrefix(syntax.Msg, "invalid XML name")
}

// startTag reads a start tag after its '<'.
func (s *xmlScanner) startTag() (xmlToken, bool, error) {
	local, ok := s.readNSName()
	if !ok {
		if s.err == nil {
			s.err = s.syntaxError("expected element name after <")
		}
		return 0, false, s.err
	}
	start, localLen := len(s.names), len(local)
	s.names = append(s.names, s.name...)
	s.isNil = false
	sawNil := false
	empty := false
	for {
		s.space()
		b, ok := s.mustgetc()
		if !ok {
			return 0, false, s.err
		}
		if b == '/' {
			empty = true
			if b, ok = s.mustgetc(); !ok {
				return 0, false, s.err
			}
			if b != '>' {
				return 0, false, s.fail("expected /> in element")
			}
			break
		}
		if b == '>' {
			break
		}
		s.ungetc()
		attrLocal, ok := s.readNSName()
		if !ok {
			if s.err == nil {
				s.err = s.syntaxError("expected attribute name in element")
			}
			return 0, false, s.err
		}
		// The first attribute named nil (whatever its prefix) decides, as
		// isXMLNil did over encoding/xml's attributes.
		keep := !sawNil && string(attrLocal) == "nil"
		s.space()
		if b, ok = s.mustgetc(); !ok {
			return 0, false, s.err
		}
		if b != '=' {
			return 0, false, s.fail("attribute name without = in element")
		}
		s.space()
		q, ok := s.mustgetc()
		if !ok {
			return 0, false, s.err
		}
		if q != '"' && q != '\'' {
			return 0, false, s.fail("unquoted or missing attribute value in element")
		}
		s.attr = s.attr[:0]
		value, err := s.text(int(q), false, s.attr, keep)
		if err != nil {
			return 0, false, err
		}
		if keep {
			s.attr = value
			sawNil = true
			v := strings.TrimSpace(string(value))
			s.isNil = v == "true" || v == "1"
		}
	}
	s.open = append(s.open, start)
	if len(s.open) > maxNestingDepth {
		s.err = errTooDeep
		return 0, false, s.err
	}
	if empty {
		s.needClose = true
	}
	s.local = s.names[len(s.names)-localLen:]
	return xmlStart, true, nil
}

// pop closes the innermost element.
func (s *xmlScanner) pop() {
	top := s.open[len(s.open)-1]
	s.open = s.open[:len(s.open)-1]
	s.names = s.names[:top]
}

// endTag reads an end tag after its "</" and checks that it closes the
// innermost element.
func (s *xmlScanner) endTag() (xmlToken, bool, error) {
	if _, ok := s.readNSName(); !ok {
		if s.err == nil {
			s.err = s.syntaxError("expected element name after </")
		}
		return 0, false, s.err
	}
	prefix, local := splitXMLName(s.name)
	s.space()
	b, ok := s.mustgetc()
	if !ok {
		return 0, false, s.err
	}
	if b != '>' {
		return 0, false, s.fail("invalid characters between </" + string(local) + " and >")
	}
	if len(s.open) == 0 {
		return 0, false, s.fail("unexpected end element </" + string(local) + ">")
	}
	openPrefix, openLocal := splitXMLName(s.names[s.open[len(s.open)-1]:])
	switch {
	case !bytes.Equal(openLocal, local):
		return 0, false, s.fail("element <" + string(openLocal) + "> closed by </" + string(local) + ">")
	case !bytes.Equal(openPrefix, prefix):
		space := string(prefix)
		if space == "" {
			space = `""`
		}
		return 0, false, s.fail("element <" + string(openLocal) + "> in space " + string(openPrefix) +
			" closed by </" + string(local) + "> in space " + space)
	}
	s.pop()
	return xmlEnd, true, nil
}

// procInst reads a processing instruction after its "<?". The XML
// declaration's version and encoding are checked as encoding/xml checks
// them; of its content at most maxRawText bytes are looked at.
func (s *xmlScanner) procInst() error {
	if !s.readXMLName() {
		if s.err == nil {
			s.err = s.syntaxError("expected target name after <?")
		}
		return s.err
	}
	isDecl := string(s.name) == "xml"
	s.space()
	s.attr = s.attr[:0]
	var b0 byte
	for {
		b, ok := s.mustgetc()
		if !ok {
			return s.err
		}
		if isDecl && len(s.attr) < maxRawText {
			s.attr = append(s.attr, b)
		}
		if b0 == '?' && b == '>' {
			break
		}
		b0 = b
	}
	if !isDecl {
		return nil
	}
	content := string(s.attr[:max(len(s.attr)-2, 0)])
	if ver := procInstParam("version", content); ver != "" && ver != "1.0" {
		s.err = fmt.Errorf("xml: unsupported version %q; only version 1.0 is supported", ver)
		return s.err
	}
	if enc := procInstParam("encoding", content); enc != "" && !strings.EqualFold(enc, "utf-8") {
		s.err = fmt.Errorf("xml: encoding %q declared but Decoder.CharsetReader is nil", enc)
		return s.err
	}
	return nil
}

// procInstParam finds param="value" (or ”) in a processing instruction's
// content, by encoding/xml's rule.
func procInstParam(param, content string) string {
	param += "="
	i := 0
	var sep byte
	for i < len(content) {
		sub := content[i:]
		k := strings.Index(sub, param)
		if k < 0 || len(param)+k >= len(sub) {
			return ""
		}
		i += len(param) + k + 1
		if c := sub[len(param)+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	j := strings.IndexByte(content[i:], sep)
	if j < 0 {
		return ""
	}
	return content[i : i+j]
}

// comment reads a comment after its "<!-".
func (s *xmlScanner) comment() error {
	b, ok := s.mustgetc()
	if !ok {
		return s.err
	}
	if b != '-' {
		return s.fail("invalid sequence <!- not part of <!--")
	}
	var b0, b1 byte
	for {
		if b, ok = s.mustgetc(); !ok {
			return s.err
		}
		if b0 == '-' && b1 == '-' {
			if b != '>' {
				return s.fail(`invalid sequence "--" not allowed in comments`)
			}
			return nil
		}
		b0, b1 = b1, b
	}
}

// directive skips a directive (<!DOCTYPE ...>) whose first byte after
// "<!" has been read: quoted angle brackets do not nest, comments inside
// are skipped.
func (s *xmlScanner) directive() error {
	var inquote byte
	depth := 0
	for {
		b, ok := s.mustgetc()
		if !ok {
			return s.err
		}
		if inquote == 0 && b == '>' && depth == 0 {
			return nil
		}
	handle:
		switch {
		case b == inquote:
			inquote = 0
		case inquote != 0:
		case b == '\'' || b == '"':
			inquote = b
		case b == '>':
			depth--
		case b == '<':
			for i := range 3 {
				if b, ok = s.mustgetc(); !ok {
					return s.err
				}
				if b != "!--"[i] {
					depth++
					goto handle
				}
			}
			var b0, b1 byte
			for {
				if b, ok = s.mustgetc(); !ok {
					return s.err
				}
				if b0 == '-' && b1 == '-' && b == '>' {
					break
				}
				b0, b1 = b1, b
			}
		}
	}
}

// readText reads the text next returned, appending to dst what
// appendXMLText would keep of it when keep is set: the text without its
// leading white space, cut at maxRawText.
func (s *xmlScanner) readText(dst []byte, keep bool) ([]byte, error) {
	s.textPending = false
	return s.text(-1, s.cdata, dst, keep)
}

// text reads character data as encoding/xml's Decoder.text does: up to
// '<' (or the quote, or "]]>" in a CDATA section), entities replaced,
// "\r\n" and "\r" read as "\n", and the result checked for UTF-8 and XML
// characters once it is all read, so that the first fault is the one
// encoding/xml reports.
func (s *xmlScanner) text(quote int, cdata bool, dst []byte, keep bool) ([]byte, error) {
	var b0, b1 byte
	t := textSink{dst: dst, keep: keep}
	v := &t.v
	// brackets are ']' of a CDATA section held back: they may start its
	// "]]>".
	brackets := 0
	for {
		// Plain ASCII text, the bulk of a body, goes byte by byte without
		// the checks below.
		if !cdata && v.pending == 0 && brackets == 0 {
			for s.pos < s.end {
				c := s.buf[s.pos]
				if c < 0x20 || c >= utf8.RuneSelf || c == '<' || c == '&' || c == ']' || c == '>' || int(c) == quote {
					if c != '\t' && c != '\n' || b1 == '\r' {
						break
					}
				}
				s.pos++
				if c == '\n' {
					s.line++
				}
				if keep && (len(t.dst) > 0 || !isSpace(c)) && len(t.dst) < maxRawText {
					t.dst = append(t.dst, c)
				}
				b0, b1 = b1, c
			}
		}
		b, ok := s.getc()
		if !ok {
			if cdata {
				if errors.Is(s.err, io.EOF) {
					s.err = s.syntaxError("unexpected EOF in CDATA section")
				}
				return t.dst, s.err
			}
			break
		}
		if quote < 0 && b0 == ']' && b1 == ']' && b == '>' {
			if cdata {
				brackets -= 2
				break
			}
			return t.dst, s.fail("unescaped ]]> not in CDATA section")
		}
		if cdata {
			if b == ']' {
				brackets++
				b0, b1 = b1, b
				continue
			}
			for ; brackets > 0; brackets-- {
				t.emit(']')
			}
		}
		if b == '<' && !cdata {
			if quote >= 0 {
				return t.dst, s.fail("unescaped < inside quoted string")
			}
			s.ungetc()
			break
		}
		if quote >= 0 && b == byte(quote) {
			break
		}
		if b == '&' && !cdata {
			r, err := s.entity()
			if err != nil {
				return t.dst, err
			}
			v.flush()
			var enc [utf8.UTFMax]byte
			n := utf8.EncodeRune(enc[:], r)
			for _, c := range enc[:n] {
				t.emit(c)
			}
			b0, b1 = 0, 0
			continue
		}
		switch {
		case b == '\r':
			t.emit('\n')
		case b1 == '\r' && b == '\n':
		default:
			t.emit(b)
		}
		b0, b1 = b1, b
	}
	for ; brackets > 0; brackets-- {
		t.emit(']')
	}
	v.flush()
	if v.err != "" {
		return t.dst, s.fail(v.err)
	}
	return t.dst, nil
}

// textSink takes the decoded bytes of a text: it checks them all and keeps
// what appendXMLText would.
type textSink struct {
	dst  []byte
	keep bool
	v    textValidator
}

func (t *textSink) emit(c byte) {
	t.v.add(c)
	if t.keep && (len(t.dst) > 0 || !isSpace(c)) && len(t.dst) < maxRawText {
		t.dst = append(t.dst, c)
	}
}

// entity reads a character entity after its '&' and returns its
// character; an entity encoding/xml does not know is an error worded as
// it words it (an entity name is quoted up to maxFieldLen bytes).
func (s *xmlScanner) entity() (rune, error) {
	ent := append(s.name[:0], '&')
	b, ok := s.mustgetc()
	if !ok {
		return 0, s.err
	}
	semicolon := false
	if b == '#' {
		ent = append(ent, b)
		if b, ok = s.mustgetc(); !ok {
			return 0, s.err
		}
		base := 10
		if b == 'x' {
			base = 16
			ent = append(ent, b)
			if b, ok = s.mustgetc(); !ok {
				return 0, s.err
			}
		}
		start := len(ent)
		for '0' <= b && b <= '9' || base == 16 && ('a' <= b && b <= 'f' || 'A' <= b && b <= 'F') {
			if len(ent) < maxFieldLen {
				ent = append(ent, b)
			}
			if b, ok = s.mustgetc(); !ok {
				return 0, s.err
			}
		}
		if b != ';' {
			s.ungetc()
		} else {
			semicolon = true
			n, err := strconv.ParseUint(string(ent[start:]), base, 64)
			if err == nil && n <= utf8.MaxRune && len(ent) < maxFieldLen {
				s.name = ent
				return rune(n), nil
			}
		}
	} else {
		s.ungetc()
		for {
			c, ok := s.mustgetc()
			if !ok {
				return 0, s.err
			}
			if c < utf8.RuneSelf && !isNameByte(c) {
				s.ungetc()
				break
			}
			if len(ent) < maxFieldLen {
				ent = append(ent, c)
			}
		}
		if b, ok = s.mustgetc(); !ok {
			return 0, s.err
		}
		if b != ';' {
			s.ungetc()
		} else {
			semicolon = true
			switch string(ent[1:]) {
			case "lt":
				return '<', nil
			case "gt":
				return '>', nil
			case "amp":
				return '&', nil
			case "apos":
				return '\'', nil
			case "quot":
				return '"', nil
			}
		}
	}
	s.name = ent
	msg := "invalid character entity " + string(ent)
	if semicolon {
		msg += ";"
	} else {
		msg += " (no semicolon)"
	}
	return 0, s.fail(msg)
}

// textValidator checks decoded text byte by byte and remembers the first
// fault: invalid UTF-8 or a character XML does not allow.
type textValidator struct {
	seq     [utf8.UTFMax]byte
	pending int
	err     string
}

func (v *textValidator) add(c byte) {
	if v.pending == 0 && c < utf8.RuneSelf {
		v.check(rune(c))
		return
	}
	if c < utf8.RuneSelf {
		// An ASCII byte ends a sequence that was not whole.
		v.invalid()
		v.add(c)
		return
	}
	if v.pending > 0 && utf8.RuneStart(c) {
		v.invalid()
	}
	v.seq[v.pending] = c
	v.pending++
	if utf8.FullRune(v.seq[:v.pending]) {
		r, size := utf8.DecodeRune(v.seq[:v.pending])
		if r == utf8.RuneError && size == 1 {
			v.invalid()
			return
		}
		v.pending = 0
		v.check(r)
	}
}

// invalid records invalid UTF-8 and drops the first byte of the pending
// sequence, as utf8.DecodeRune steps over it; the rest is read again.
func (v *textValidator) invalid() {
	if v.err == "" {
		v.err = "invalid UTF-8"
	}
	rest := append([]byte(nil), v.seq[1:v.pending]...)
	v.pending = 0
	for _, c := range rest {
		v.add(c)
	}
}

// flush ends the text: a sequence left pending is invalid.
func (v *textValidator) flush() {
	for v.pending > 0 {
		v.invalid()
	}
}

func (v *textValidator) check(r rune) {
	if v.err == "" && !isInCharacterRange(r) {
		v.err = fmt.Sprintf("illegal character code %U", r)
	}
}

// isInCharacterRange is XML's Char production.
func isInCharacterRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
