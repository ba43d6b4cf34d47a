package batchfiles

import (
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

const (
	custA  = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	custB  = "11111111-2222-4333-8444-555555555555"
	batch1 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	batch2 = "12345678-9abc-4def-8123-456789abcdef"
	batch3 = "fedcba98-7654-4321-8fed-cba987654321"
)

func TestParseLineForms(t *testing.T) {
	upperCust, upperBatch := strings.ToUpper(custA), strings.ToUpper(batch1)
	want := Batch{CustomerID: custA, TrackingID: batch1}
	for _, line := range []string{
		custA + " " + batch1,
		custA + "\t" + batch1,
		"  " + custA + " \t  " + batch1 + "  ",
		custA + "," + batch1,
		custA + " , " + batch1,
		upperCust + " " + upperBatch,
		"/customers/" + custA + "/batchJobStatus/" + batch1,
		"/customers/" + upperCust + "/batchJobStatus/" + upperBatch,
		"/Customers/" + custA + "/batchjobstatus/" + batch1,
		"/CUSTOMERS/" + custA + "/BATCHJOBSTATUS/" + batch1,
		"/v1/customers/" + custA + "/batchJobStatus/" + batch1,
		"/V1/customers/" + custA + "/BatchJobStatus/" + batch1,
		"/customers/" + custA + "/batchJobStatus/" + batch1 + "?api-version=1",
		"https://api.partnercenter.microsoft.com/v1/customers/" + custA + "/batchJobStatus/" + batch1,
		"HTTPS://proxy.example.net:8443/v1/customers/" + custA + "/batchJobStatus/" + batch1,
		"https://api.partnercenter.microsoft.com/v1/customers/" + custA + "/batchJobStatus/" + batch1 + "?x=1#frag",
		"https://api.partnercenter.microsoft.com/customers/" + custA + "/batchJobStatus/" + batch1,
		custA + " " + batch1 + " # uploaded by the Monday script",
		custA + " " + batch1 + "\t# tab before the comment",
		"/customers/" + custA + "/batchJobStatus/" + batch1 + " # a comment",
		custA + " " + batch1 + "\r",
	} {
		got, ok, err := ParseLine(line)
		if err != nil || !ok || got != want {
			t.Errorf("ParseLine(%q) = %+v, %v, %v; want %+v, true, nil", line, got, ok, err, want)
		}
	}
}

func TestParseLineNothing(t *testing.T) {
	for _, line := range []string{"", "   ", "\t", "\r", "# comment", "   # indented comment", "\t#", "#" + custA + " " + batch1} {
		got, ok, err := ParseLine(line)
		if err != nil || ok || got != (Batch{}) {
			t.Errorf("ParseLine(%q) = %+v, %v, %v; want nothing", line, got, ok, err)
		}
	}
}

func TestParseLineErrors(t *testing.T) {
	long := strings.Repeat("x", 200)
	loc := func(s string) string { return `not a batchJobStatus location: "` + s + `"` }
	for _, tc := range []struct{ line, want string }{
		{custA, `expected "<customer GUID> <batch GUID>" or a batchJobStatus location`},
		{custA + " " + batch1 + " " + batch2, `expected "<customer GUID> <batch GUID>" or a batchJobStatus location`},
		{custA + "," + batch1 + "," + batch2, `expected "<customer GUID> <batch GUID>" or a batchJobStatus location`},
		{custA + ",", `expected "<customer GUID> <batch GUID>" or a batchJobStatus location`},
		{"12ab " + batch1, `not a GUID: "12ab"`},
		{custA + " 12ab", `not a GUID: "12ab"`},
		{custA + " " + batch1 + "#no-space-before-hash", `not a GUID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee#no-space-before-hash"`},
		{"{" + custA + "} " + batch1, `not a GUID: "{0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d}"`},
		{"customer,batch", `not a GUID: "customer"`},
		{long + " " + batch1, `not a GUID: "` + long[:160] + `"…`},
		{"/customers/" + custA + "/batchJobStatus/12ab", `not a GUID: "12ab"`},
		{"/customers/" + custA + "/devices/" + batch1, loc("/customers/" + custA + "/devices/" + batch1)},
		{"/customers/" + custA + "/batchJobStatus/" + batch1 + "/", loc("/customers/" + custA + "/batchJobStatus/" + batch1 + "/")},
		{"/v2/customers/" + custA + "/batchJobStatus/" + batch1, loc("/v2/customers/" + custA + "/batchJobStatus/" + batch1)},
		{"/customers/x", `not a batchJobStatus location: "/customers/x"`},
		{custA + "/" + batch1, loc(custA + "/" + batch1)},
		{"http://h/v1/customers/" + custA + "/batchJobStatus/" + batch1, `location URL is not https: "http://h/v1/customers/` + custA + `/batchJobStatus/` + batch1 + `"`},
		{"ftp://h/x", `location URL is not https: "ftp://h/x"`},
		{"https:///v1/customers/x", `not a valid URL: "https:///v1/customers/x"`},
		{"https://h/%zz", `not a valid URL: "https://h/%zz"`},
		{"/customers/" + custA + "/batchJobStatus/" + batch1 + " extra", `expected "<customer GUID> <batch GUID>" or a batchJobStatus location`},
	} {
		_, ok, err := ParseLine(tc.line)
		if ok || err == nil || err.Error() != tc.want {
			t.Errorf("ParseLine(%q): ok=%v err=%v; want error %s", tc.line, ok, err, tc.want)
		}
	}
}

// FuzzIsGUID holds isGUID to partnercenter.ValidGUID, the exporter's
// definition of a customer or batch ID.
func FuzzIsGUID(f *testing.F) {
	for _, s := range []string{custA, strings.ToUpper(batch1), "", "12ab", custA + "0", custA[:35] + "g",
		"0b1c2d3e_4f50-4a6b-8c7d-9e0f1a2b3c4d", "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4\n", "{" + custA[1:35] + "}",
		"0b1c2d3e-4f50-4a6b-8c7d9-e0f1a2b3c4d", "ÿÿÿÿÿÿÿÿ-4f50-4a6b-8c7d-9e0f1a2b3c4d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isGUID(s), partnercenter.ValidGUID(s); got != want {
			t.Errorf("isGUID(%q) = %v, partnercenter.ValidGUID says %v", s, got, want)
		}
	})
}
