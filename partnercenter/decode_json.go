package partnercenter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// decodeJSON walks the top-level object with jsonScanner, so that the
// device list, wherever it appears among the keys, is read one element at
// a time and never held whole. encoding/json was the first reader here; it
// spent most of its time buffering and reflecting over each device, so the
// scanner keeps its grammar and its error messages but none of that work.
func decodeJSON(r io.Reader, b *batchBuilder) error {
	s := newJSONScanner(r)
	kind, err := s.beginValue()
	if err != nil {
		return err
	}
	if kind != jsonObject {
		return notExpected(s, kind, "top-level value: expected an object")
	}
	err = s.forEachMember(true, func(key []byte) error {
		return decodeJSONField(s, key, b)
	})
	if err != nil {
		return err
	}
	return expectJSONEnd(s)
}

// notExpected reports a value of the wrong kind once a scalar has been read
// whole, as json.Decoder.Token reads it: a syntax error in it comes first.
// An object or array is reported from its opening bracket alone.
func notExpected(s *jsonScanner, kind jsonKind, what string) error {
	if kind != jsonObject && kind != jsonArray {
		if err := s.skipRest(kind); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s, got %s", what, kind.describe())
}

// decodeJSONField reads the value of one top-level key.
func decodeJSONField(s *jsonScanner, key []byte, b *batchBuilder) error {
	if bytes.EqualFold(key, []byte(devicesField)) {
		if err := b.startDevices(); err != nil {
			return err
		}
		return decodeJSONDevices(s, b)
	}
	field, ok := lookupScalarField(string(key))
	if !ok {
		return s.skipTopLevelMember()
	}
	raw, err := topLevelString(s)
	if err != nil {
		return fmt.Errorf("%s: %w", field.name, err)
	}
	return field.set(b, raw)
}

// topLevelString reads a member value that must be a string or null.
func topLevelString(s *jsonScanner) (string, error) {
	kind, err := s.beginMember()
	switch {
	case err != nil:
		return "", err
	case kind == jsonNull:
		return "", nil
	case kind != jsonString:
		return "", notExpected(s, kind, "expected a string")
	}
	raw, err := s.scanString(nil, true)
	return string(raw), err
}

// skipTopLevelMember skips the value of an unknown top-level key, with
// the error wording of json.Decoder.Token, which used to walk it.
func (s *jsonScanner) skipTopLevelMember() error {
	kind, err := s.beginMember()
	if err != nil {
		return err
	}
	return s.skipTokenWalk(kind)
}

// skipTokenWalk is skipRest with objects worded as by Token.
func (s *jsonScanner) skipTokenWalk(kind jsonKind) error {
	switch kind {
	case jsonObject:
		return s.forEachMember(true, func([]byte) error {
			kind, err := s.beginMember()
			if err != nil {
				return err
			}
			return s.skipTokenWalk(kind)
		})
	case jsonArray:
		return s.forEachElement(func() error {
			kind, err := s.beginValue()
			if err != nil {
				return err
			}
			return s.skipTokenWalk(kind)
		})
	}
	return s.skipRest(kind)
}

// decodeJSONDevices reads the device array one element at a time. Errors
// inside an element are prefixed with the element; errors between
// elements are the list's, except a bad separator, which json.Decoder
// reported while starting the next element.
func decodeJSONDevices(s *jsonScanner, b *batchBuilder) error {
	kind, err := s.beginMember()
	switch {
	case err != nil:
		return listError(err)
	case kind == jsonNull:
		return nil // "devicesStatus": null is an empty list
	case kind != jsonArray:
		return listError(notExpected(s, kind, "expected an array"))
	}
	var device jsonDevice // reused: its buffers outlive one device
	for first := true; ; first = false {
		more, err := moreDevices(s, first)
		if err != nil {
			return fmt.Errorf("%s: %w", b.deviceContext(), err)
		}
		if !more {
			return listError(s.endDevices(first))
		}
		if err := device.read(s); err != nil {
			return fmt.Errorf("%s: %w", b.deviceContext(), err)
		}
		b.addDevice(&device.fields)
	}
}

// listError prefixes an error of the device list itself.
func listError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", devicesField, err)
}

// moreDevices consumes the ',' before a device other than the first and
// reports whether one follows. The end of the input, ']' and '}' are left
// to endDevices; any other byte where a ',' belongs is an error of the
// next device, worded as json.Decoder.Decode worded it.
func moreDevices(s *jsonScanner, first bool) (bool, error) {
	c, err := s.peek()
	switch {
	case err != nil:
		// The end of the input (or a read error) is endDevices' to word,
		// as json.Decoder would: no device follows.
		return false, nil //nolint:nilerr // reported by endDevices
	case c == ']', c == '}':
		return false, nil
	case first:
		return true, nil
	case c == ',':
		s.pos++
		if _, err := s.peek(); errors.Is(err, io.EOF) {
			return false, io.EOF // json.Decoder's plain "EOF" for `[{},`
		}
		return true, nil
	}
	return false, errors.New("expected comma after array element")
}

// endDevices consumes the ']' that closes the device list.
func (s *jsonScanner) endDevices(empty bool) error {
	c, err := s.peekInValue()
	switch {
	case err != nil:
		return err
	case c == ']':
		s.pos++
		s.closeValue()
		return nil
	case empty:
		return syntaxError(c, "looking for beginning of value")
	}
	return syntaxError(c, "after array element")
}

// expectJSONEnd refuses anything but white space after the object: a
// second value means the body is not what it claims to be.
func expectJSONEnd(s *jsonScanner) error {
	if _, err := s.peek(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	kind, err := s.beginValue()
	if err != nil {
		return err
	}
	if kind != jsonObject && kind != jsonArray {
		if err := s.skipRest(kind); err != nil {
			return err
		}
	}
	return fmt.Errorf("found %s after the top-level object", kind.describe())
}
