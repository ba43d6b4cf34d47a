package partnercenter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// errEmptyBody is returned (wrapped) for a body with nothing but white
// space and a byte order mark in it.
var errEmptyBody = errors.New("empty response body")

// utf8BOM is the byte order mark some Microsoft services put before a body.
const utf8BOM = "\xEF\xBB\xBF"

// Bounds on what a body may contain.
const (
	// maxNestingDepth bounds how deeply arrays, objects or elements nest,
	// the top-level object or root element being level 1. A batch needs 4;
	// the decoders' own token stacks have no limit, so an endless run of
	// '[' or start tags would otherwise grow them up to the size cap.
	maxNestingDepth = 64
	// maxFieldLen bounds every identifier, code, status, serial number and
	// product key taken from the body, in bytes.
	maxFieldLen = 256
	// maxRawText bounds how much of one XML text node is collected before
	// it is trimmed and cut to its field's limit.
	maxRawText = 4 << 10
)

// errTooDeep is returned (wrapped) for a body nested deeper than
// maxNestingDepth.
var errTooDeep = fmt.Errorf("nesting deeper than %d levels", maxNestingDepth)

// Decode reads one BatchUploadDetails body as a stream: the device list is
// folded into counts element by element, so memory does not grow with the
// number of devices (except Batch.FailedDevices, which opts caps).
//
// contentType selects JSON or XML; when it is empty or names neither, the
// first byte of the body decides ('<' means XML). Errors from r are
// returned wrapped, so errors.Is finds them.
func Decode(r io.Reader, contentType string, opts DecodeOptions) (*Batch, error) {
	br := bufio.NewReader(r)
	first, err := skipBOMAndSpace(br)
	if err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	b := newBatchBuilder(opts)
	if isXML(contentType, first) {
		err = decodeXML(br, b)
	} else {
		err = decodeJSON(br, b)
	}
	if err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	return &b.batch, nil
}

// skipBOMAndSpace consumes a leading byte order mark and white space and
// returns the first significant byte without consuming it.
func skipBOMAndSpace(br *bufio.Reader) (byte, error) {
	prefix, err := br.Peek(len(utf8BOM))
	switch {
	case string(prefix) == utf8BOM:
		if _, err := br.Discard(len(utf8BOM)); err != nil {
			return 0, err
		}
	case err != nil && !errors.Is(err, io.EOF):
		// bufio hands a read error out only once: report it now.
		return 0, err
	}
	for {
		c, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return 0, errEmptyBody
		}
		if err != nil {
			return 0, err
		}
		if !isSpace(c) {
			return c, br.UnreadByte()
		}
	}
}

// isSpace reports whether c is white space in both JSON and XML.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// isXML decides the body format from the media type, or from the first
// significant byte when the media type names neither JSON nor XML.
func isXML(contentType string, first byte) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	switch {
	case mediaType == "application/json", mediaType == "text/json", strings.HasSuffix(mediaType, "+json"):
		return false
	case mediaType == "application/xml", mediaType == "text/xml", strings.HasSuffix(mediaType, "+xml"):
		return true
	}
	return first == '<'
}

// rawDevice is one device as read from either format, before any
// normalisation. Its fields are buffers that the format decoders reuse from
// one device to the next, so that a device that is only counted costs no
// allocation; addDevice copies out what it keeps.
type rawDevice struct {
	DeviceID         []byte
	SerialNumber     []byte
	ProductKey       []byte
	Status           []byte
	ErrorCode        []byte
	ErrorDescription []byte
}

// reset empties every field, keeping the buffers.
func (d *rawDevice) reset() {
	for _, f := range d.fields() {
		*f = (*f)[:0]
	}
}

func (d *rawDevice) fields() [6]*[]byte {
	return [6]*[]byte{&d.DeviceID, &d.SerialNumber, &d.ProductKey, &d.Status, &d.ErrorCode, &d.ErrorDescription}
}

// batchBuilder accumulates a Batch while the body is read. The format
// decoders only hand it fields and devices; every rule about what to count
// and what to keep lives here, so that JSON and XML agree.
type batchBuilder struct {
	batch            Batch
	maxFailedDevices int
	// errorIndex maps an error code to its position in batch.Errors.
	errorIndex map[string]int
	sawDevices bool
	// nextDevice is the index of the next device in the list.
	nextDevice int
}

func newBatchBuilder(opts DecodeOptions) *batchBuilder {
	return &batchBuilder{
		batch:            Batch{Status: StatusUnknown},
		maxFailedDevices: max(opts.MaxFailedDevices, 0),
		errorIndex:       make(map[string]int),
	}
}

// devicesField is the spec name of the device list.
const devicesField = "devicesStatus"

// scalarField is a top-level field holding one string, with the spec name
// used in error messages.
type scalarField struct {
	name string
	set  func(b *batchBuilder, raw string) error
}

var scalarFields = []scalarField{
	{"batchTrackingId", (*batchBuilder).setTrackingID},
	{"status", (*batchBuilder).setStatus},
	{"startedTime", (*batchBuilder).setStartedTime},
	{"completedTime", (*batchBuilder).setCompletedTime},
}

// lookupScalarField finds a top-level field by name, case-insensitively
// (JSON uses camelCase, XML PascalCase).
func lookupScalarField(name string) (scalarField, bool) {
	for _, f := range scalarFields {
		if strings.EqualFold(f.name, name) {
			return f, true
		}
	}
	return scalarField{}, false
}

func (b *batchBuilder) setTrackingID(raw string) error {
	b.batch.TrackingID = cutField(raw)
	return nil
}

func (b *batchBuilder) setStatus(raw string) error {
	b.batch.RawStatus = cutField(raw)
	b.batch.Status, _ = ParseStatus(b.batch.RawStatus)
	return nil
}

func (b *batchBuilder) setStartedTime(raw string) error {
	return setTime(&b.batch.StartedTime, "startedTime", raw)
}

func (b *batchBuilder) setCompletedTime(raw string) error {
	return setTime(&b.batch.CompletedTime, "completedTime", raw)
}

func setTime(dst *time.Time, field, raw string) error {
	t, err := ParseTime(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = t
	return nil
}

// startDevices is called when the device list begins. A second list would
// be counted twice, so it is refused rather than guessed at.
func (b *batchBuilder) startDevices() error {
	if b.sawDevices {
		return fmt.Errorf("%s: appears more than once", devicesField)
	}
	b.sawDevices = true
	return nil
}

// deviceContext names the device about to be read, for error messages.
func (b *batchBuilder) deviceContext() string {
	return fmt.Sprintf("%s[%d]", devicesField, b.nextDevice)
}

// addDevice folds one device into the counts and, if it failed, into the
// capped list of failed devices. Strings are made only for what is kept.
func (b *batchBuilder) addDevice(raw *rawDevice) {
	b.nextDevice++
	rawStatus := cutFieldBytes(raw.Status)
	status := b.deviceStatus(rawStatus)
	code := cutFieldBytes(bytes.TrimSpace(raw.ErrorCode))
	b.batch.Devices[status]++
	if len(code) > 0 {
		b.countError(code, raw.ErrorDescription)
	}
	if len(code) > 0 || status == StatusFinishedWithErrors {
		b.keepFailed(raw, status, code)
	}
}

// deviceStatus parses a device status and remembers a value it does not
// recognise, so that the caller can log it. A missing status is not worth
// reporting: it is simply unknown.
func (b *batchBuilder) deviceStatus(raw []byte) Status {
	status, ok := parseStatusBytes(raw)
	if ok || len(bytes.TrimSpace(raw)) == 0 {
		return status
	}
	unknown := b.batch.UnknownDeviceStatuses
	if len(unknown) < maxUnknownStatuses && !slices.ContainsFunc(unknown, func(s string) bool { return s == string(raw) }) {
		b.batch.UnknownDeviceStatuses = append(unknown, string(raw))
	}
	return status
}

// countError counts a device under its error code. The description is
// only turned into a string when an entry needs it.
func (b *batchBuilder) countError(code, rawDescription []byte) {
	if i, ok := b.errorIndex[string(code)]; ok {
		entry := &b.batch.Errors[i]
		entry.Devices++
		if entry.Description == "" {
			entry.Description = cutDescription(rawDescription)
		}
		return
	}
	if len(b.batch.Errors) >= MaxErrorCodes {
		b.batch.OtherErrorDevices++
		return
	}
	b.errorIndex[string(code)] = len(b.batch.Errors)
	b.batch.Errors = append(b.batch.Errors, ErrorCount{Code: string(code), Description: cutDescription(rawDescription), Devices: 1})
}

func (b *batchBuilder) keepFailed(raw *rawDevice, status Status, code []byte) {
	if len(b.batch.FailedDevices) >= b.maxFailedDevices {
		b.batch.FailedDevicesOmitted++
		return
	}
	b.batch.FailedDevices = append(b.batch.FailedDevices, Device{
		SerialNumber:     string(cutFieldBytes(raw.SerialNumber)),
		DeviceID:         string(cutFieldBytes(raw.DeviceID)),
		ProductKey:       string(cutFieldBytes(raw.ProductKey)),
		Status:           status,
		ErrorCode:        string(code),
		ErrorDescription: cutDescription(raw.ErrorDescription),
	})
}

// cutDescription trims an error description and cuts it to
// MaxErrorDescriptionLen bytes on a rune boundary, as a new string.
func cutDescription(raw []byte) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return ""
	}
	return cutAtRune(string(trimmed[:min(len(trimmed), MaxErrorDescriptionLen+utf8.UTFMax)]), MaxErrorDescriptionLen)
}

// cutFieldBytes is cutField for a buffer; the result shares its memory.
func cutFieldBytes(raw []byte) []byte {
	if len(raw) <= maxFieldLen {
		return raw
	}
	n := maxFieldLen
	for n > 0 && !utf8.RuneStart(raw[n]) {
		n--
	}
	return raw[:n]
}

// cutField cuts a value taken from the body to maxFieldLen bytes on a rune
// boundary. A cut copy is cloned so that it does not pin the decoded one.
func cutField(s string) string {
	if len(s) <= maxFieldLen {
		return s
	}
	return strings.Clone(cutAtRune(s, maxFieldLen))
}

// cutAtRune returns the longest prefix of s that is at most n bytes long
// and does not end inside a UTF-8 sequence.
func cutAtRune(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxFoldedStatus bounds the folded form of an ASCII status: it is longer
// than every known spelling, so anything that does not fit is unknown.
const maxFoldedStatus = 32

// parseStatusBytes is ParseStatus without allocating for the ASCII
// spellings the service sends. Anything else goes through ParseStatus, so
// that both agree on Unicode case and white space.
func parseStatusBytes(raw []byte) (Status, bool) {
	var folded [maxFoldedStatus]byte
	n := 0
	for _, c := range bytes.Trim(raw, asciiSpace) {
		switch {
		case c >= utf8.RuneSelf:
			return ParseStatus(string(raw))
		case c == '_', c == '-', c == ' ':
			continue
		case n == len(folded):
			return StatusUnknown, false
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		folded[n] = c
		n++
	}
	s, ok := statusAliases[string(folded[:n])]
	if !ok {
		return StatusUnknown, false
	}
	return s, true
}

// asciiSpace is the white space strings.TrimSpace drops in ASCII text.
const asciiSpace = " \t\n\v\f\r"
