package partnercenter

// The XML decoder as it was before xmlScanner, on encoding/xml's Token
// API: the reference the scanner is compared with (xml_scanner_test.go).

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// refDecodeXML reads a DataContract BatchUploadDetails document with the
// streaming Token API. Element names are matched on their local name,
// case-insensitively; namespaces and unknown elements are ignored.
//
// The per-device reader is a small token loop rather than DecodeElement
// into a tagged struct, because struct tags match names case-sensitively.
// It streams all the same: one device is read, folded and forgotten.
func refDecodeXML(r io.Reader, b *batchBuilder) error {
	dec := &refXmlStream{dec: xml.NewDecoder(r)}
	root, err := refXmlRoot(dec)
	if err != nil {
		return err
	}
	if !strings.EqualFold(root.Name.Local, xmlRootName) {
		return fmt.Errorf("root element is <%s>, want <%s>", oneLine(root.Name.Local, maxFieldLen), xmlRootName)
	}
	err = refForEachXMLChild(dec, "", func(child xml.StartElement) error {
		return refDecodeXMLField(dec, child, b)
	})
	if err != nil {
		return err
	}
	return refExpectXMLEnd(dec)
}

// refDecodeXMLField reads one child element of the root.
func refDecodeXMLField(dec *refXmlStream, child xml.StartElement, b *batchBuilder) error {
	if strings.EqualFold(child.Name.Local, devicesField) {
		return refDecodeXMLDevices(dec, b)
	}
	field, ok := lookupScalarField(child.Name.Local)
	if !ok {
		return dec.skip()
	}
	raw, err := refReadXMLText(dec, child, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", field.name, err)
	}
	return field.set(b, string(raw))
}

// refDecodeXMLDevices reads the DevicesStatus element one device at a time.
// A nil list (i:nil="true") has no children and so no devices.
func refDecodeXMLDevices(dec *refXmlStream, b *batchBuilder) error {
	if err := b.startDevices(); err != nil {
		return err
	}
	var device rawDevice // reused: its buffers outlive one device
	return refForEachXMLChild(dec, devicesField, func(child xml.StartElement) error {
		if !strings.EqualFold(child.Name.Local, xmlDeviceName) {
			return dec.skip()
		}
		if err := refReadXMLDevice(dec, child, &device); err != nil {
			return fmt.Errorf("%s: %w", b.deviceContext(), err)
		}
		b.addDevice(&device)
		return nil
	})
}

// refReadXMLDevice reads one DeviceUploadDetails element whose start tag has
// just been read into device.
func refReadXMLDevice(dec *refXmlStream, start xml.StartElement, device *rawDevice) error {
	if refIsXMLNil(start) {
		return errors.New("device is nil")
	}
	device.reset()
	return refForEachXMLChild(dec, "", func(child xml.StartElement) error {
		name, dst := refField(device, child.Name.Local)
		if dst == nil {
			return dec.skip() // Attributes and anything unknown
		}
		text, err := refReadXMLText(dec, child, (*dst)[:0])
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
func refField(d *rawDevice, local string) (string, *[]byte) {
	switch {
	case strings.EqualFold(local, "deviceId"):
		return "deviceId", &d.DeviceID
	case strings.EqualFold(local, "serialNumber"):
		return "serialNumber", &d.SerialNumber
	case strings.EqualFold(local, "productKey"):
		return "productKey", &d.ProductKey
	case strings.EqualFold(local, "status"):
		return "status", &d.Status
	case strings.EqualFold(local, "errorCode"):
		return "errorCode", &d.ErrorCode
	case strings.EqualFold(local, "errorDescription"):
		return "errorDescription", &d.ErrorDescription
	}
	return "", nil
}

// refForEachXMLChild calls fn for each child element of the element whose
// start tag has just been read, until its end tag. fn must consume the
// whole child. Text between children is ignored. Errors of the decoder
// itself are prefixed with context when it is not empty.
func refForEachXMLChild(dec *refXmlStream, context string, fn func(child xml.StartElement) error) error {
	for {
		tok, err := dec.token()
		if err != nil {
			if context != "" {
				return fmt.Errorf("%s: %w", context, err)
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := fn(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil // the decoder has checked that it matches
		}
	}
}

// refReadXMLText appends to buf the text of the element whose start tag has
// just been read and returns it trimmed; a nil element (i:nil="true")
// reads as empty. Nested elements are skipped.
func refReadXMLText(dec *refXmlStream, start xml.StartElement, buf []byte) ([]byte, error) {
	if refIsXMLNil(start) {
		return buf[:0], dec.skip()
	}
	text := buf[:0]
	for {
		tok, err := dec.token()
		if err != nil {
			return buf, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			text = refAppendXMLText(text, t)
		case xml.StartElement:
			if err := dec.skip(); err != nil {
				return buf, err
			}
		case xml.EndElement:
			return bytes.TrimSpace(text), nil
		}
	}
}

// refAppendXMLText adds chunk to text, dropping leading white space and
// anything past maxRawText: every field is cut shorter than that later, so
// a huge text node must not be kept whole.
func refAppendXMLText(text, chunk []byte) []byte {
	if len(text) == 0 {
		chunk = bytes.TrimLeft(chunk, " \t\r\n")
	}
	room := maxRawText - len(text)
	if room <= 0 {
		return text
	}
	return append(text, chunk[:min(len(chunk), room)]...)
}

// refIsXMLNil reports whether the element carries xsi:nil="true", whatever
// the prefix of the XML Schema instance namespace.
func refIsXMLNil(start xml.StartElement) bool {
	for _, attr := range start.Attr {
		if attr.Name.Local == "nil" {
			value := strings.TrimSpace(attr.Value)
			return value == "true" || value == "1"
		}
	}
	return false
}

// refXmlRoot returns the root element's start tag, skipping the prolog.
func refXmlRoot(dec *refXmlStream) (xml.StartElement, error) {
	for {
		tok, err := dec.token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if !refIsBlank(t) {
				return xml.StartElement{}, errors.New("unexpected text before the root element")
			}
		}
	}
}

// refExpectXMLEnd refuses anything but comments, processing instructions and
// white space after the root element.
func refExpectXMLEnd(dec *refXmlStream) error {
	for {
		tok, err := dec.dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return fmt.Errorf("unexpected element <%s> after the root element", oneLine(t.Name.Local, maxFieldLen))
		case xml.CharData:
			if !refIsBlank(t) {
				return errors.New("unexpected text after the root element")
			}
		}
	}
}

// refXmlStream reads tokens and counts how deeply elements nest.
// xml.Decoder has no depth limit: it keeps a stack entry per open element,
// so a body of nothing but start tags would grow it until the size cap.
type refXmlStream struct {
	dec   *xml.Decoder
	depth int
}

// token returns the next token; running out of input is always
// unexpected here, because the caller is inside an element or before the
// root. An element nested more than maxNestingDepth levels is an error.
func (s *refXmlStream) token() (xml.Token, error) {
	tok, err := s.dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	switch tok.(type) {
	case xml.StartElement:
		s.depth++
		if s.depth > maxNestingDepth {
			return nil, errTooDeep
		}
	case xml.EndElement:
		s.depth--
	}
	return tok, nil
}

// skip consumes the rest of the element whose start tag has just been
// read. It replaces xml.Decoder.Skip, which does not count depth.
func (s *refXmlStream) skip() error {
	for open := 1; open > 0; {
		tok, err := s.token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			open++
		case xml.EndElement:
			open--
		}
	}
	return nil
}

func refIsBlank(text []byte) bool {
	for _, c := range text {
		if !isSpace(c) {
			return false
		}
	}
	return true
}
