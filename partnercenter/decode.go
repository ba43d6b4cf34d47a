package partnercenter

import (
	"bufio"
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
// normalisation.
type rawDevice struct {
	DeviceID         string
	SerialNumber     string
	ProductKey       string
	Status           string
	ErrorCode        string
	ErrorDescription string
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
	maxFailed := opts.MaxFailedDevices
	switch {
	case maxFailed == 0:
		maxFailed = DefaultMaxFailedDevices
	case maxFailed < 0:
		maxFailed = 0
	}
	return &batchBuilder{
		batch:            Batch{Status: StatusUnknown},
		maxFailedDevices: maxFailed,
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
// capped list of failed devices.
func (b *batchBuilder) addDevice(raw rawDevice) {
	b.nextDevice++
	device := Device{
		SerialNumber:     cutField(raw.SerialNumber),
		DeviceID:         cutField(raw.DeviceID),
		ProductKey:       cutField(raw.ProductKey),
		Status:           b.deviceStatus(cutField(raw.Status)),
		ErrorCode:        cutField(strings.TrimSpace(raw.ErrorCode)),
		ErrorDescription: cutDescription(raw.ErrorDescription),
	}
	b.batch.Devices[device.Status]++
	if device.ErrorCode != "" {
		b.countError(device.ErrorCode, device.ErrorDescription)
	}
	if device.Failed() {
		b.keepFailed(device)
	}
}

// deviceStatus parses a device status and remembers a value it does not
// recognise, so that the caller can log it. A missing status is not worth
// reporting: it is simply unknown.
func (b *batchBuilder) deviceStatus(raw string) Status {
	status, ok := ParseStatus(raw)
	if ok || strings.TrimSpace(raw) == "" {
		return status
	}
	unknown := b.batch.UnknownDeviceStatuses
	if len(unknown) < maxUnknownStatuses && !slices.Contains(unknown, raw) {
		b.batch.UnknownDeviceStatuses = append(unknown, raw)
	}
	return status
}

func (b *batchBuilder) countError(code, description string) {
	if i, ok := b.errorIndex[code]; ok {
		entry := &b.batch.Errors[i]
		entry.Devices++
		if entry.Description == "" {
			entry.Description = description
		}
		return
	}
	if len(b.batch.Errors) >= MaxErrorCodes {
		b.batch.OtherErrorDevices++
		return
	}
	b.errorIndex[code] = len(b.batch.Errors)
	b.batch.Errors = append(b.batch.Errors, ErrorCount{Code: code, Description: description, Devices: 1})
}

func (b *batchBuilder) keepFailed(device Device) {
	if len(b.batch.FailedDevices) >= b.maxFailedDevices {
		b.batch.FailedDevicesOmitted++
		return
	}
	b.batch.FailedDevices = append(b.batch.FailedDevices, device)
}

// cutDescription trims an error description and cuts it to
// MaxErrorDescriptionLen bytes. A cut copy is cloned so that the kept
// string does not pin a much larger decoded one in memory.
func cutDescription(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= MaxErrorDescriptionLen {
		return s
	}
	return strings.Clone(cutAtRune(s, MaxErrorDescriptionLen))
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
