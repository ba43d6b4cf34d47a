package partnercenter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// xmlRootName and xmlDeviceName are the element names the .NET
// DataContract serializer gives the batch and each device.
const (
	xmlRootName   = "BatchUploadDetails"
	xmlDeviceName = "DeviceUploadDetails"
)

// decodeXML reads a DataContract BatchUploadDetails document with
// xmlScanner, which reads XML as encoding/xml's Token API did (it was the
// first reader here) without allocating per name or text. Element names
// are matched on their local name, case-insensitively; namespaces and
// unknown elements are ignored.
//
// The per-device reader is a small token loop rather than decoding into a
// tagged struct, because struct tags match names case-sensitively. It
// streams all the same: one device is read, folded and forgotten.
func decodeXML(r io.Reader, b *batchBuilder) error {
	s := newXMLScanner(r)
	if err := xmlRoot(s); err != nil {
		return err
	}
	if !strings.EqualFold(string(s.local), xmlRootName) {
		return fmt.Errorf("root element is <%s>, want <%s>", oneLine(string(s.local), maxFieldLen), xmlRootName)
	}
	err := forEachXMLChild(s, "", func() error {
		return decodeXMLField(s, b)
	})
	if err != nil {
		return err
	}
	return expectXMLEnd(s)
}

// decodeXMLField reads one child element of the root, whose start tag was
// just read.
func decodeXMLField(s *xmlScanner, b *batchBuilder) error {
	if bytes.EqualFold(s.local, []byte(devicesField)) {
		return decodeXMLDevices(s, b)
	}
	field, ok := lookupScalarField(string(s.local))
	if !ok {
		return s.skip()
	}
	raw, err := readXMLText(s, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", field.name, err)
	}
	return field.set(b, string(raw))
}

// decodeXMLDevices reads the DevicesStatus element one device at a time.
// A nil list (i:nil="true") has no children and so no devices.
func decodeXMLDevices(s *xmlScanner, b *batchBuilder) error {
	if err := b.startDevices(); err != nil {
		return err
	}
	var device rawDevice // reused: its buffers outlive one device
	return forEachXMLChild(s, devicesField, func() error {
		if !bytes.EqualFold(s.local, []byte(xmlDeviceName)) {
			return s.skip()
		}
		if err := readXMLDevice(s, &device); err != nil {
			return fmt.Errorf("%s: %w", b.deviceContext(), err)
		}
		b.addDevice(&device)
		return nil
	})
}

// readXMLDevice reads one DeviceUploadDetails element whose start tag has
// just been read into device.
func readXMLDevice(s *xmlScanner, device *rawDevice) error {
	if s.isNil {
		return errors.New("device is nil")
	}
	device.reset()
	return forEachXMLChild(s, "", func() error {
		name, dst := device.field(s.local)
		if dst == nil {
			return s.skip() // Attributes and anything unknown
		}
		text, err := readXMLText(s, (*dst)[:0])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		*dst = text
		return nil
	})
}

// field returns the spec name of the device field whose element is named
// local (case-insensitively) and where to store it, or nil if the element
// is not one of them.
func (d *rawDevice) field(local []byte) (string, *[]byte) {
	switch {
	case bytes.EqualFold(local, []byte("deviceId")):
		return "deviceId", &d.DeviceID
	case bytes.EqualFold(local, []byte("serialNumber")):
		return "serialNumber", &d.SerialNumber
	case bytes.EqualFold(local, []byte("productKey")):
		return "productKey", &d.ProductKey
	case bytes.EqualFold(local, []byte("status")):
		return "status", &d.Status
	case bytes.EqualFold(local, []byte("errorCode")):
		return "errorCode", &d.ErrorCode
	case bytes.EqualFold(local, []byte("errorDescription")):
		return "errorDescription", &d.ErrorDescription
	}
	return "", nil
}

// token returns the next start tag, end tag or text; running out of input
// is always unexpected here, because the caller is inside an element or
// before the root.
func (s *xmlScanner) token() (xmlToken, error) {
	tok, err := s.next()
	if errors.Is(err, io.EOF) {
		return 0, io.ErrUnexpectedEOF
	}
	return tok, err
}

// skip consumes the rest of the element whose start tag has just been
// read.
func (s *xmlScanner) skip() error {
	for open := 1; open > 0; {
		tok, err := s.token()
		if err != nil {
			return err
		}
		switch tok {
		case xmlStart:
			open++
		case xmlEnd:
			open--
		}
	}
	return nil
}

// forEachXMLChild calls fn for each child element of the element whose
// start tag has just been read, until its end tag; fn finds the child's
// start tag in s and must consume the whole child. Text between children
// is ignored. Errors of the scanner itself are prefixed with context when
// it is not empty.
func forEachXMLChild(s *xmlScanner, context string, fn func() error) error {
	for {
		tok, err := s.token()
		if err != nil {
			if context != "" {
				return fmt.Errorf("%s: %w", context, err)
			}
			return err
		}
		switch tok {
		case xmlStart:
			if err := fn(); err != nil {
				return err
			}
		case xmlEnd:
			return nil // the scanner has checked that it matches
		}
	}
}

// readXMLText appends to buf the text of the element whose start tag has
// just been read and returns it trimmed; a nil element (i:nil="true")
// reads as empty. Nested elements are skipped. Of the text, leading white
// space is dropped and at most maxRawText bytes are kept: every field is
// cut shorter than that later, so a huge text node must not be kept whole.
func readXMLText(s *xmlScanner, buf []byte) ([]byte, error) {
	if s.isNil {
		return buf[:0], s.skip()
	}
	text := buf[:0]
	for {
		tok, err := s.token()
		if err != nil {
			return buf, err
		}
		switch tok {
		case xmlText:
			if text, err = s.readText(text, true); err != nil {
				return buf, err
			}
		case xmlStart:
			if err := s.skip(); err != nil {
				return buf, err
			}
		case xmlEnd:
			if trimmed := bytes.TrimSpace(text); len(trimmed) > 0 {
				return trimmed, nil
			}
			// TrimSpace gives nil for blank text; keep the buffer instead,
			// for the next device.
			return text[:0], nil
		}
	}
}

// xmlRoot reads up to the root element's start tag, skipping the prolog.
func xmlRoot(s *xmlScanner) error {
	for {
		tok, err := s.token()
		if err != nil {
			return err
		}
		switch tok {
		case xmlStart:
			return nil
		case xmlText:
			if blank, err := s.blankText(); err != nil {
				return err
			} else if !blank {
				return errors.New("unexpected text before the root element")
			}
		}
	}
}

// blankText reads the text just returned and reports whether it is all
// white space.
func (s *xmlScanner) blankText() (bool, error) {
	text, err := s.readText(s.attr[:0], true)
	s.attr = text
	return len(text) == 0, err
}

// expectXMLEnd refuses anything but comments, processing instructions and
// white space after the root element.
func expectXMLEnd(s *xmlScanner) error {
	for {
		tok, err := s.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch tok {
		case xmlStart:
			return fmt.Errorf("unexpected element <%s> after the root element", oneLine(string(s.local), maxFieldLen))
		case xmlText:
			if blank, err := s.blankText(); err != nil {
				return err
			} else if !blank {
				return errors.New("unexpected text after the root element")
			}
		}
	}
}
