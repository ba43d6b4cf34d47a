package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Version 3 records are binary: decoding 50,000 JSON records was 2.9 s of
// CPU at start-up, nearly all of it in encoding/json's reflection. A
// version 3 value is the version as one byte (3; a JSON value starts with
// '{'), then the fields of storedRecord and storedBatch in their order:
// strings as a uvarint length and the bytes, integers as varints, booleans
// as one byte, times as a byte (0 for the zero time) and then Unix seconds
// (varint) and nanoseconds (uvarint) in UTC, lists and the device counts
// as a uvarint count and their items. Statuses are stored by name, as in
// JSON. Nothing follows the last field.

// appendBinaryRecord appends the version 3 encoding of r.
func appendBinaryRecord(buf []byte, r Record) []byte {
	w := binWriter{buf: append(buf, recordVersion)}
	w.str(r.CustomerID)
	w.str(r.TrackingID)
	w.str(r.Stamp)
	w.time(r.LastSuccess)
	w.bool(r.Retired)
	b := r.Batch
	w.str(b.TrackingID)
	w.str(b.Status.String())
	w.str(b.RawStatus)
	w.time(b.StartedTime)
	w.time(b.CompletedTime)
	n := 0
	for _, st := range partnercenter.Statuses {
		if b.Devices[st] != 0 {
			n++
		}
	}
	w.uint(uint64(n))
	for _, st := range partnercenter.Statuses {
		if v := b.Devices[st]; v != 0 {
			w.str(st.String())
			w.int(v)
		}
	}
	w.uint(uint64(len(b.UnknownDeviceStatuses)))
	for _, s := range b.UnknownDeviceStatuses {
		w.str(s)
	}
	w.uint(uint64(len(b.Errors)))
	for _, e := range b.Errors {
		w.str(e.Code)
		w.str(e.Description)
		w.int(e.Devices)
	}
	w.int(b.OtherErrorDevices)
	w.uint(uint64(len(b.FailedDevices)))
	for _, d := range b.FailedDevices {
		w.str(d.SerialNumber)
		w.str(d.DeviceID)
		w.str(d.ProductKey)
		w.str(d.Status.String())
		w.str(d.ErrorCode)
		w.str(d.ErrorDescription)
	}
	w.int(b.FailedDevicesOmitted)
	return w.buf
}

type binWriter struct{ buf []byte }

func (w *binWriter) uint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *binWriter) int(v int)     { w.buf = binary.AppendVarint(w.buf, int64(v)) }
func (w *binWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *binWriter) bool(b bool) {
	if b {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

func (w *binWriter) time(t time.Time) {
	if t.IsZero() {
		w.buf = append(w.buf, 0)
		return
	}
	w.buf = append(w.buf, 1)
	w.buf = binary.AppendVarint(w.buf, t.Unix())
	w.uint(uint64(t.Nanosecond()))
}

// errTruncated is the error of a version 3 value that ends early.
var errTruncated = errors.New("binary record truncated or malformed")

// decodeBinaryRecord decodes a version 3 value.
func decodeBinaryRecord(value []byte) (storedRecordFields, error) {
	r := binReader{b: value[1:]}
	var s storedRecordFields
	s.CustomerID, s.TrackingID, s.Stamp = r.str(), r.str(), r.str()
	s.LastSuccess = r.time()
	s.Retired = r.bool()
	b := &partnercenter.Batch{}
	s.Batch = b
	b.TrackingID = r.str()
	status := r.bytes()
	b.RawStatus = r.str()
	b.StartedTime, b.CompletedTime = r.time(), r.time()
	if r.err != nil {
		return s, r.err
	}
	var err error
	if b.Status, err = statusByBytes(status); err != nil {
		return s, fmt.Errorf("batch status: %w", err)
	}
	for n := r.count(2); n > 0; n-- {
		name := r.bytes()
		v := r.int()
		if r.err != nil {
			break
		}
		st, err := statusByBytes(name)
		if err != nil {
			return s, fmt.Errorf("device counts: %w", err)
		}
		b.Devices[st] = v
	}
	if n := r.count(1); n > 0 {
		b.UnknownDeviceStatuses = make([]string, n)
		for i := range n {
			b.UnknownDeviceStatuses[i] = r.str()
		}
	}
	if n := r.count(3); n > 0 {
		b.Errors = make([]partnercenter.ErrorCount, n)
		for i := range b.Errors {
			b.Errors[i] = partnercenter.ErrorCount{Code: r.str(), Description: r.str(), Devices: r.int()}
		}
	}
	b.OtherErrorDevices = r.int()
	if n := r.count(6); n > 0 {
		b.FailedDevices = make([]partnercenter.Device, n)
		for i := range b.FailedDevices {
			d := &b.FailedDevices[i]
			d.SerialNumber, d.DeviceID, d.ProductKey = r.str(), r.str(), r.str()
			status := r.bytes()
			d.ErrorCode, d.ErrorDescription = r.str(), r.str()
			if r.err != nil {
				break
			}
			if d.Status, err = statusByBytes(status); err != nil {
				return s, fmt.Errorf("failed device %d: %w", i, err)
			}
		}
	}
	b.FailedDevicesOmitted = r.int()
	switch {
	case r.err != nil:
		return s, r.err
	case len(r.b) != 0:
		return s, fmt.Errorf("%d bytes after the binary record", len(r.b))
	}
	return s, nil
}

// storedRecordFields is what a value holds, whatever its version.
type storedRecordFields struct {
	Version                       int
	CustomerID, TrackingID, Stamp string
	LastSuccess                   time.Time
	Retired                       bool
	Batch                         *partnercenter.Batch
}

// binReader reads a version 3 value; the first fault sticks in err and
// makes every later read return zero values.
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) int() int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || v > math.MaxInt || v < math.MinInt {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

// bytes reads a string without copying it: valid while the value is.
func (r *binReader) bytes() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *binReader) str() string {
	b := r.bytes()
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

func (r *binReader) bool() bool {
	if r.err != nil {
		return false
	}
	if len(r.b) == 0 || r.b[0] > 1 {
		r.err = errTruncated
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

func (r *binReader) time() time.Time {
	if r.err != nil {
		return time.Time{}
	}
	if len(r.b) == 0 || r.b[0] > 1 {
		r.err = errTruncated
		return time.Time{}
	}
	set := r.b[0] == 1
	r.b = r.b[1:]
	if !set {
		return time.Time{}
	}
	sec := r.int()
	nsec := r.uint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.err = errTruncated
		return time.Time{}
	}
	return time.Unix(int64(sec), int64(nsec)).UTC()
}

// count reads a list's length; each item takes at least minBytes, so a
// count the rest of the value cannot hold is malformed (and allocates
// nothing).
func (r *binReader) count(minBytes int) int {
	n := r.uint()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/minBytes) {
		r.err = errTruncated
		return 0
	}
	return int(n)
}

// statusByBytes is statusByName without making a string.
func statusByBytes(name []byte) (partnercenter.Status, error) {
	for _, s := range partnercenter.Statuses {
		if s.String() == string(name) {
			return s, nil
		}
	}
	return partnercenter.StatusUnknown, fmt.Errorf("unknown status name %q", name)
}
