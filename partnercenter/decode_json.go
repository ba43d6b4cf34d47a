package partnercenter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// decodeJSON walks the top-level object token by token, so that the
// device list, wherever it appears among the keys, is read one element at
// a time and never held whole.
func decodeJSON(r io.Reader, b *batchBuilder) error {
	dec := json.NewDecoder(&jsonDepthReader{r: r})
	// Keep numbers as text: a number where a string belongs is reported by
	// its kind, and an error code given as a number is normalised by hand.
	dec.UseNumber()

	tok, err := jsonToken(dec)
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("top-level value: expected an object, got %s", describeJSONToken(tok))
	}
	for dec.More() {
		tok, err := jsonToken(dec)
		if err != nil {
			return err
		}
		// Inside an object, Token returns every key as a string.
		key, _ := tok.(string)
		if err := decodeJSONField(dec, key, b); err != nil {
			return err
		}
	}
	if _, err := jsonToken(dec); err != nil { // the closing '}'
		return err
	}
	return expectJSONEnd(dec)
}

// decodeJSONField reads the value of one top-level key.
func decodeJSONField(dec *json.Decoder, key string, b *batchBuilder) error {
	if strings.EqualFold(key, devicesField) {
		return decodeJSONDevices(dec, b)
	}
	field, ok := lookupScalarField(key)
	if !ok {
		return skipJSONValue(dec)
	}
	raw, err := jsonString(dec)
	if err != nil {
		return fmt.Errorf("%s: %w", field.name, err)
	}
	return field.set(b, raw)
}

// decodeJSONDevices reads the device array one element at a time.
func decodeJSONDevices(dec *json.Decoder, b *batchBuilder) error {
	if err := b.startDevices(); err != nil {
		return err
	}
	tok, err := jsonToken(dec)
	if err != nil {
		return fmt.Errorf("%s: %w", devicesField, err)
	}
	if tok == nil {
		return nil // "devicesStatus": null is an empty list
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("%s: expected an array, got %s", devicesField, describeJSONToken(tok))
	}
	var scratch jsonDevice
	for dec.More() {
		device, err := decodeJSONDevice(dec, &scratch)
		if err != nil {
			return fmt.Errorf("%s: %w", b.deviceContext(), err)
		}
		b.addDevice(device)
	}
	if _, err := jsonToken(dec); err != nil { // the closing ']'
		return fmt.Errorf("%s: %w", devicesField, err)
	}
	return nil
}

// jsonDevice is the JSON form of one DeviceUploadDetails. encoding/json
// matches keys case-insensitively and skips unknown ones (attributes).
type jsonDevice struct {
	DeviceID         string        `json:"deviceId"`
	SerialNumber     string        `json:"serialNumber"`
	ProductKey       string        `json:"productKey"`
	Status           string        `json:"status"`
	ErrorCode        jsonErrorCode `json:"errorCode"`
	ErrorDescription string        `json:"errorDescription"`
}

// decodeJSONDevice decodes the next array element into scratch, which is
// reused between elements to save an allocation per device.
func decodeJSONDevice(dec *json.Decoder, scratch *jsonDevice) (rawDevice, error) {
	*scratch = jsonDevice{}
	// Decoding null into a pointer sets it to nil, which is how a null
	// element is told apart from an empty object.
	device := scratch
	if err := dec.Decode(&device); err != nil {
		return rawDevice{}, describeJSONDecodeError(err)
	}
	if device == nil {
		return rawDevice{}, errors.New("expected an object, got null")
	}
	return rawDevice{
		DeviceID:         device.DeviceID,
		SerialNumber:     device.SerialNumber,
		ProductKey:       device.ProductKey,
		Status:           device.Status,
		ErrorCode:        string(device.ErrorCode),
		ErrorDescription: device.ErrorDescription,
	}, nil
}

// jsonDepthReader refuses a body nested deeper than maxNestingDepth
// before json.Decoder sees it. The decoder has no such limit of its own
// for Token (its stack grows with every '['), and Decode buffers a whole
// value; counting bytes as they pass covers both. Bytes before the one
// that goes too deep are handed on, so the decoder reports the error at
// the place it happens.
type jsonDepthReader struct {
	r        io.Reader
	depth    int
	inString bool
	escaped  bool
	err      error
}

func (j *jsonDepthReader) Read(p []byte) (int, error) {
	if j.err != nil {
		return 0, j.err
	}
	n, err := j.r.Read(p)
	for i, c := range p[:n] {
		if !j.track(c) {
			j.err = errTooDeep
			return i, j.err
		}
	}
	return n, err
}

// track follows one byte and reports whether the depth is still allowed.
// Brackets inside strings do not count.
func (j *jsonDepthReader) track(c byte) bool {
	switch {
	case j.escaped:
		j.escaped = false
	case j.inString:
		switch c {
		case '\\':
			j.escaped = true
		case '"':
			j.inString = false
		}
	case c == '"':
		j.inString = true
	case c == '[', c == '{':
		j.depth++
		return j.depth <= maxNestingDepth
	case c == ']', c == '}':
		j.depth--
	}
	return true
}

// jsonErrorCode accepts the error code as a string, a number or null.
type jsonErrorCode string

// UnmarshalJSON implements json.Unmarshaler.
func (c *jsonErrorCode) UnmarshalJSON(data []byte) error {
	switch {
	case string(data) == "null":
		*c = ""
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("errorCode: %w", err)
		}
		*c = jsonErrorCode(s)
	case data[0] == '-' || ('0' <= data[0] && data[0] <= '9'):
		*c = jsonErrorCode(normaliseNumber(string(data)))
	default:
		return fmt.Errorf("errorCode: expected a string or a number, got %s", describeJSONKind(data[0]))
	}
	return nil
}

// maxExactFloat is the largest magnitude below which every integer is
// exactly representable as a float64.
const maxExactFloat = 1 << 53

// normaliseNumber turns a JSON number into the decimal text of the same
// code as the service would have sent it as a string: 808, 808.0 and
// 8.08e2 all become "808". Anything else is kept as written.
func normaliseNumber(text string) string {
	if !strings.ContainsAny(text, ".eE") {
		return text // JSON integers have no leading zeros: already canonical
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f != float64(int64(f)) || f >= maxExactFloat || f <= -maxExactFloat {
		return text
	}
	return strconv.FormatInt(int64(f), 10)
}

// jsonToken returns the next token; running out of input is always
// unexpected here, because the caller still expects a token.
func jsonToken(dec *json.Decoder) (json.Token, error) {
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, io.ErrUnexpectedEOF
	}
	return tok, err
}

// jsonString reads a value that must be a string or null.
func jsonString(dec *json.Decoder) (string, error) {
	tok, err := jsonToken(dec)
	if err != nil {
		return "", err
	}
	switch v := tok.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("expected a string, got %s", describeJSONToken(tok))
}

// skipJSONValue consumes one value token by token. Decoding it into a
// throwaway value would first buffer all of it, however large.
func skipJSONValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := jsonToken(dec)
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// expectJSONEnd refuses anything but white space after the object: a
// second value means the body is not what it claims to be.
func expectJSONEnd(dec *json.Decoder) error {
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("found %s after the top-level object", describeJSONToken(tok))
}

// describeJSONDecodeError rewords a type mismatch found while decoding a
// device in the terms of the spec rather than of Go types. Other errors
// (syntax, reader) are returned unchanged so that errors.Is still works.
func describeJSONDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) {
		return err
	}
	got := describeTypeErrorValue(typeErr.Value)
	if typeErr.Field == "" {
		return fmt.Errorf("expected an object, got %s", got)
	}
	return fmt.Errorf("%s: expected a string, got %s", typeErr.Field, got)
}

// describeTypeErrorValue words the Value of a json.UnmarshalTypeError
// ("string", "number", "number 1.5", "bool", "array", "object").
func describeTypeErrorValue(value string) string {
	kind, _, _ := strings.Cut(value, " ")
	switch kind {
	case "string", "number":
		return "a " + kind
	case "bool":
		return "a boolean"
	case "array", "object":
		return "an " + kind
	}
	return value
}

// describeJSONToken words the kind of a token for an error message.
func describeJSONToken(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		if v == '{' {
			return "an object"
		}
	}
	return fmt.Sprintf("%v", tok)
}

// describeJSONKind words the kind of a raw JSON value from its first byte.
func describeJSONKind(first byte) string {
	switch first {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "a value"
}
