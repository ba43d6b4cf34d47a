package partnercenter

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// jsonDevice reads one DeviceUploadDetails object into reusable buffers.
type jsonDevice struct {
	fields rawDevice
	// typeErr is the first value of the wrong kind, codeErr a bad
	// errorCode. Like json.Unmarshal, the decoder reports them only once
	// the whole element has been read, a syntax error taking precedence,
	// then a bad errorCode, then the first other mismatch.
	typeErr, codeErr error
	number           []byte
}

// jsonDeviceFields are the spec names of the device fields, in the order of
// rawDevice.fields.
var jsonDeviceFields = [6]string{"deviceId", "serialNumber", "productKey", "status", "errorCode", "errorDescription"}

// errorCodeField is the index of errorCode in jsonDeviceFields.
const errorCodeField = 4

// read reads the next array element, which must be an object.
func (d *jsonDevice) read(s *jsonScanner) error {
	kind, err := s.beginValue()
	if err != nil {
		return err
	}
	if kind == jsonNull {
		return errors.New("expected an object, got null")
	}
	if kind != jsonObject {
		if err := s.skipRest(kind); err != nil {
			return err
		}
		return fmt.Errorf("expected an object, got %s", kind.describe())
	}
	d.fields.reset()
	d.typeErr, d.codeErr = nil, nil
	err = s.forEachMember(false, func(key []byte) error { return d.readMember(s, key) })
	switch {
	case err != nil:
		return err
	case d.codeErr != nil:
		return d.codeErr
	}
	return d.typeErr
}

// readMember reads the value of one key; unknown keys are skipped.
func (d *jsonDevice) readMember(s *jsonScanner, key []byte) error {
	i := deviceFieldIndex(key)
	if i < 0 {
		return s.skipMember()
	}
	kind, err := s.beginMember()
	if err != nil {
		return err
	}
	if d.codeErr != nil {
		return s.skipRest(kind) // json.Unmarshal stops assigning after it
	}
	dst := d.fields.fields()[i]
	if i == errorCodeField {
		return d.readErrorCode(s, kind, dst)
	}
	switch kind {
	case jsonString:
		*dst, err = s.scanString((*dst)[:0], true)
		return err
	case jsonNull:
		return nil // null leaves a string as it was, as in json.Unmarshal
	}
	if d.typeErr == nil {
		d.typeErr = fmt.Errorf("%s: expected a string, got %s", jsonDeviceFields[i], kind.describe())
	}
	return s.skipRest(kind)
}

// deviceFieldIndex finds a key among jsonDeviceFields, matching as
// encoding/json does: exactly, else case-insensitively (Unicode folding).
func deviceFieldIndex(key []byte) int {
	for i, name := range jsonDeviceFields {
		if string(key) == name {
			return i
		}
	}
	for i, name := range jsonDeviceFields {
		if bytes.EqualFold(key, []byte(name)) {
			return i
		}
	}
	return -1
}

// readErrorCode accepts the error code as a string, a number or null.
func (d *jsonDevice) readErrorCode(s *jsonScanner, kind jsonKind, dst *[]byte) error {
	var err error
	switch kind {
	case jsonString:
		*dst, err = s.scanString((*dst)[:0], true)
	case jsonNumber:
		d.number, err = s.scanNumber(d.number[:0], true)
		*dst = appendNormalisedNumber((*dst)[:0], d.number)
	case jsonNull:
		*dst = (*dst)[:0]
	default:
		d.codeErr = fmt.Errorf("errorCode: expected a string or a number, got %s", kind.describe())
		err = s.skipRest(kind)
	}
	return err
}

// maxExactFloat is the largest magnitude below which every integer is
// exactly representable as a float64.
const maxExactFloat = 1 << 53

// appendNormalisedNumber appends the decimal text of the same code as the
// service would have sent it as a string: 808, 808.0 and 8.08e2 all become
// "808". Anything else is kept as written.
func appendNormalisedNumber(dst, text []byte) []byte {
	if !bytes.ContainsAny(text, ".eE") {
		return append(dst, text...) // JSON integers have no leading zeros: already canonical
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || f != float64(int64(f)) || f >= maxExactFloat || f <= -maxExactFloat {
		return append(dst, text...)
	}
	return strconv.AppendInt(dst, int64(f), 10)
}
