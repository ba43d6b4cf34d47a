package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// recordVersion is written into every value. The encoding below is the
// contract with files written by older or newer exporters, so any change to
// it must bump this number. A value of a version this exporter does not
// know is undecodable.
//
// Version 3 is binary (binary.go); versions 1 and 2 are JSON, still read,
// and rewritten as version 3 by the first Load that finds them. A version 2
// exporter reading a version 3 value finds it undecodable and deletes it:
// after a downgrade, batches are read from the API again.
//
// Version 2 added the stamp. Version 1 values, written before stamps
// existed, are still read: they come back with an empty Stamp, which the
// exporter takes to mean "read under the settings of the first start that
// loads it" (that start writes the stamp back). A version 1 exporter reading
// a version 2 value deletes it, as it would have to read it again anyway:
// it cannot tell whether the value was read under its settings.
const (
	recordVersion   = 3
	recordVersionV2 = 2
	recordVersionV1 = 1
)

// The structs below are the stored form of a Record. They are separate from
// partnercenter.Batch on purpose: renaming or reordering a field or an enum
// there must not silently change what old files mean. Statuses are stored
// by name, never by their numeric value.

type storedRecord struct {
	Version     int          `json:"v"`
	CustomerID  string       `json:"customer_id"`
	TrackingID  string       `json:"tracking_id"`
	Stamp       string       `json:"stamp,omitempty"`
	LastSuccess time.Time    `json:"last_success,omitzero"`
	Retired     bool         `json:"retired,omitempty"`
	Batch       *storedBatch `json:"batch"`
}

type storedBatch struct {
	TrackingID            string         `json:"tracking_id"`
	Status                string         `json:"status"`
	RawStatus             string         `json:"raw_status,omitempty"`
	StartedTime           time.Time      `json:"started_time,omitzero"`
	CompletedTime         time.Time      `json:"completed_time,omitzero"`
	Devices               map[string]int `json:"devices,omitempty"`
	UnknownDeviceStatuses []string       `json:"unknown_device_statuses,omitempty"`
	Errors                []storedError  `json:"errors,omitempty"`
	OtherErrorDevices     int            `json:"other_error_devices,omitempty"`
	FailedDevices         []storedDevice `json:"failed_devices,omitempty"`
	FailedDevicesOmitted  int            `json:"failed_devices_omitted,omitempty"`
}

type storedError struct {
	Code        string `json:"code"`
	Description string `json:"description,omitempty"`
	Devices     int    `json:"devices"`
}

type storedDevice struct {
	SerialNumber     string `json:"serial_number,omitempty"`
	DeviceID         string `json:"device_id,omitempty"`
	ProductKey       string `json:"product_key,omitempty"`
	Status           string `json:"status"`
	ErrorCode        string `json:"error_code,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// statusByName is the inverse of Status.String, built from the enum's own
// list so that a new status is stored without touching this package.
func statusByName(name string) (partnercenter.Status, error) {
	for _, s := range partnercenter.Statuses {
		if s.String() == name {
			return s, nil
		}
	}
	return partnercenter.StatusUnknown, fmt.Errorf("unknown status name %q", name)
}

// key is the bucket key of a batch. IDs are GUIDs whose case the service
// and configuration files do not keep consistently, so case is folded.
func key(customerID, trackingID string) []byte {
	return []byte(strings.ToLower(customerID) + "/" + strings.ToLower(trackingID))
}

func checkIDs(customerID, trackingID string) error {
	switch {
	case customerID == "" || trackingID == "":
		return errors.New("customer and tracking IDs must not be empty")
	case strings.Contains(customerID, "/"):
		// The key would be ambiguous: "a/b" + "c" and "a" + "b/c".
		return fmt.Errorf("customer ID %q contains '/'", customerID)
	}
	return nil
}

func encodeRecord(r Record) ([]byte, error) {
	if err := checkIDs(r.CustomerID, r.TrackingID); err != nil {
		return nil, err
	}
	if r.Batch == nil {
		return nil, errors.New("record has no batch")
	}
	return appendBinaryRecord(nil, r), nil
}

// decodeRecord also checks that the value belongs under k, so that a value
// written under the wrong key cannot be reported as another batch. legacy
// says the value is JSON (version 1 or 2), to be rewritten.
func decodeRecord(k, value []byte) (r Record, legacy bool, err error) {
	var s storedRecordFields
	if len(value) > 0 && value[0] == recordVersion {
		s, err = decodeBinaryRecord(value)
	} else {
		legacy = true
		s, err = decodeJSONRecord(value)
	}
	if err != nil {
		return Record{}, false, err
	}
	if string(key(s.CustomerID, s.TrackingID)) != string(k) {
		return Record{}, false, fmt.Errorf("record of %s/%s stored under another key", s.CustomerID, s.TrackingID)
	}
	return Record{
		CustomerID: s.CustomerID, TrackingID: s.TrackingID, Stamp: s.Stamp,
		Batch: s.Batch, LastSuccess: s.LastSuccess, Retired: s.Retired,
	}, legacy, nil
}

// decodeJSONRecord decodes a version 1 or 2 value.
func decodeJSONRecord(value []byte) (storedRecordFields, error) {
	var s storedRecord
	if err := json.Unmarshal(value, &s); err != nil {
		return storedRecordFields{}, err
	}
	switch {
	case s.Version != recordVersionV2 && s.Version != recordVersionV1:
		return storedRecordFields{}, fmt.Errorf("record version %d, this exporter reads %d and %d as JSON and %d", s.Version, recordVersionV1, recordVersionV2, recordVersion)
	case s.Version == recordVersionV1 && s.Stamp != "":
		return storedRecordFields{}, errors.New("record version 1 with a stamp")
	case s.Batch == nil:
		return storedRecordFields{}, errors.New("record has no batch")
	}
	batch, err := fromStoredBatch(s.Batch)
	if err != nil {
		return storedRecordFields{}, err
	}
	return storedRecordFields{
		Version: s.Version, CustomerID: s.CustomerID, TrackingID: s.TrackingID, Stamp: s.Stamp,
		LastSuccess: s.LastSuccess, Retired: s.Retired, Batch: batch,
	}, nil
}

func fromStoredBatch(s *storedBatch) (*partnercenter.Batch, error) {
	status, err := statusByName(s.Status)
	if err != nil {
		return nil, fmt.Errorf("batch status: %w", err)
	}
	b := &partnercenter.Batch{
		TrackingID:            s.TrackingID,
		Status:                status,
		RawStatus:             s.RawStatus,
		StartedTime:           s.StartedTime,
		CompletedTime:         s.CompletedTime,
		UnknownDeviceStatuses: s.UnknownDeviceStatuses,
		OtherErrorDevices:     s.OtherErrorDevices,
		FailedDevicesOmitted:  s.FailedDevicesOmitted,
	}
	for name, n := range s.Devices {
		st, err := statusByName(name)
		if err != nil {
			return nil, fmt.Errorf("device counts: %w", err)
		}
		b.Devices[st] = n
	}
	if len(s.Errors) > 0 {
		b.Errors = make([]partnercenter.ErrorCount, len(s.Errors))
		for i, e := range s.Errors {
			b.Errors[i] = partnercenter.ErrorCount(e)
		}
	}
	if b.FailedDevices, err = fromStoredDevices(s.FailedDevices); err != nil {
		return nil, err
	}
	return b, nil
}

func fromStoredDevices(stored []storedDevice) ([]partnercenter.Device, error) {
	if len(stored) == 0 {
		return nil, nil
	}
	devices := make([]partnercenter.Device, len(stored))
	for i, d := range stored {
		st, err := statusByName(d.Status)
		if err != nil {
			return nil, fmt.Errorf("failed device %d: %w", i, err)
		}
		devices[i] = partnercenter.Device{
			SerialNumber:     d.SerialNumber,
			DeviceID:         d.DeviceID,
			ProductKey:       d.ProductKey,
			Status:           st,
			ErrorCode:        d.ErrorCode,
			ErrorDescription: d.ErrorDescription,
		}
	}
	return devices, nil
}
