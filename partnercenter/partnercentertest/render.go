package partnercentertest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"
	"unicode"
)

// jsonAttributes is the ResourceAttributes object of every resource.
type jsonAttributes struct {
	ObjectType string `json:"objectType"`
}

// jsonBatch and jsonDevice render the camelCase JSON of the REST
// reference; nil pointers are sent as null.
type jsonBatch struct {
	BatchTrackingID *string        `json:"batchTrackingId"`
	Status          *string        `json:"status"`
	StartedTime     *string        `json:"startedTime"`
	CompletedTime   *string        `json:"completedTime"`
	DevicesStatus   []jsonDevice   `json:"devicesStatus"`
	Attributes      jsonAttributes `json:"attributes"`
}

type jsonDevice struct {
	DeviceID         *string        `json:"deviceId"`
	SerialNumber     *string        `json:"serialNumber"`
	ProductKey       *string        `json:"productKey"`
	Status           *string        `json:"status"`
	ErrorCode        *string        `json:"errorCode"`
	ErrorDescription *string        `json:"errorDescription"`
	Attributes       jsonAttributes `json:"attributes"`
}

// nullable maps "" to null.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// RenderJSON renders b as the service's JSON: camelCase members in the
// order of the REST reference's example, every empty string as null, and
// "attributes":{"objectType":...} on the batch and on each device.
func RenderJSON(b Batch) []byte {
	devices := make([]jsonDevice, len(b.Devices))
	for i, d := range b.Devices {
		devices[i] = jsonDevice{
			DeviceID:         nullable(d.DeviceID),
			SerialNumber:     nullable(d.SerialNumber),
			ProductKey:       nullable(d.ProductKey),
			Status:           nullable(d.Status),
			ErrorCode:        nullable(d.ErrorCode),
			ErrorDescription: nullable(d.ErrorDescription),
			Attributes:       jsonAttributes{ObjectType: "DeviceUploadDetails"},
		}
	}
	return marshalJSON(jsonBatch{
		BatchTrackingID: nullable(b.TrackingID),
		Status:          nullable(b.Status),
		StartedTime:     nullable(b.StartedTime),
		CompletedTime:   nullable(b.CompletedTime),
		DevicesStatus:   devices,
		Attributes:      jsonAttributes{ObjectType: "BatchUploadDetails"},
	})
}

// XML namespaces of the DataContract serialisation.
const (
	contractNamespace = "http://schemas.datacontract.org/2004/07/Microsoft.Partner.Providers.Contracts.V1"
	instanceNamespace = "http://www.w3.org/2001/XMLSchema-instance"
)

// RenderXML renders b as the service's DataContract XML: no XML
// declaration, PascalCase elements in the alphabetical order the
// DataContractSerializer uses (so Status comes after DevicesStatus), every
// empty string as an i:nil element, text escaped with xml.EscapeText.
func RenderXML(b Batch) []byte {
	var buf bytes.Buffer
	buf.WriteString(`<BatchUploadDetails xmlns="` + contractNamespace + `" xmlns:i="` + instanceNamespace + `">`)
	writeXMLElement(&buf, "BatchTrackingId", b.TrackingID)
	writeXMLElement(&buf, "CompletedTime", b.CompletedTime)
	if len(b.Devices) == 0 {
		buf.WriteString("<DevicesStatus/>")
	} else {
		buf.WriteString("<DevicesStatus>")
		for _, d := range b.Devices {
			buf.WriteString("<DeviceUploadDetails>")
			writeXMLElement(&buf, "DeviceId", d.DeviceID)
			writeXMLElement(&buf, "ErrorCode", d.ErrorCode)
			writeXMLElement(&buf, "ErrorDescription", d.ErrorDescription)
			writeXMLElement(&buf, "ProductKey", d.ProductKey)
			writeXMLElement(&buf, "SerialNumber", d.SerialNumber)
			writeXMLElement(&buf, "Status", d.Status)
			buf.WriteString("</DeviceUploadDetails>")
		}
		buf.WriteString("</DevicesStatus>")
	}
	writeXMLElement(&buf, "StartedTime", b.StartedTime)
	writeXMLElement(&buf, "Status", b.Status)
	buf.WriteString("</BatchUploadDetails>")
	return buf.Bytes()
}

func writeXMLElement(buf *bytes.Buffer, name, value string) {
	if value == "" {
		buf.WriteString("<" + name + ` i:nil="true"/>`)
		return
	}
	buf.WriteString("<" + name + ">")
	// Writing to a bytes.Buffer cannot fail.
	_ = xml.EscapeText(buf, []byte(value))
	buf.WriteString("</" + name + ">")
}

// pcErrorBody is a Partner Center REST error answer.
type pcErrorBody struct {
	Code        int      `json:"code"`
	Description string   `json:"description"`
	ErrorName   string   `json:"errorName"`
	IsRetryable bool     `json:"isRetryable"`
	Data        []string `json:"data"`
	Source      string   `json:"source"`
}

// ErrorBody renders a Partner Center error body:
//
//	{"code":600,"description":"The resource was not found.","errorName":"NotFound","isRetryable":false,"data":[],"source":"PartnerFD"}
//
// The Server answers 401 with code 401 and errorName "Unauthorized", an
// unknown batch with 404 and code 600 "NotFound", and a scripted non-200
// Response without a Body with code = the status, errorName = the status
// text without spaces (e.g. "TooManyRequests") and isRetryable true for
// 429 and 5xx.
func ErrorBody(code int, errorName, description string, retryable bool) []byte {
	return marshalJSON(pcErrorBody{
		Code:        code,
		Description: description,
		ErrorName:   errorName,
		IsRetryable: retryable,
		Data:        []string{},
		Source:      "PartnerFD",
	})
}

// defaultErrorBody is the error body of a scripted status without a Body.
func defaultErrorBody(status int) []byte {
	text := http.StatusText(status)
	if text == "" {
		text = "Error"
	}
	name := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, text)
	retryable := status == http.StatusTooManyRequests || status >= 500
	return ErrorBody(status, name, text+".", retryable)
}

// marshalJSON encodes v as JSON without HTML escaping, as the .NET
// service writes it. The values passed here cannot fail to encode.
func marshalJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte(`{}`)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
