package batchfiles

import (
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/guid"
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
	const (
		form     = `expected "<customer GUID> <batch GUID>" or a batchJobStatus location`
		loc      = "not a batchJobStatus location (expected /customers/<customer GUID>/batchJobStatus/<batch GUID>)"
		customer = "customer ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"
		batch    = "batch tracking ID is not a GUID (expected the form 01234567-89ab-cdef-0123-456789abcdef)"
		https    = "location URL is not https"
		badURL   = "not a valid URL"
	)
	for _, tc := range []struct{ line, want string }{
		{custA, form},
		{custA + " " + batch1 + " " + batch2, form},
		{custA + "," + batch1 + "," + batch2, form},
		{custA + ",", form},
		{"12ab " + batch1, customer},
		{custA + " 12ab", batch},
		{custA + " " + batch1 + "#no-space-before-hash", batch},
		{"{" + custA + "} " + batch1, customer},
		{"customer,batch", customer},
		{long + " " + batch1, customer},
		{"/customers/" + custA + "/batchJobStatus/12ab", batch},
		{"/customers/12ab/batchJobStatus/" + batch1, customer},
		{"/customers/" + custA + "/devices/" + batch1, loc},
		{"/customers/" + custA + "/batchJobStatus/" + batch1 + "/", loc},
		{"/v2/customers/" + custA + "/batchJobStatus/" + batch1, loc},
		{"/customers/x", loc},
		{custA + "/" + batch1, loc},
		{"http://h/v1/customers/" + custA + "/batchJobStatus/" + batch1, https},
		{"ftp://h/x", https},
		{"https:///v1/customers/x", badURL},
		{"https://h/%zz", badURL},
		{"/customers/" + custA + "/batchJobStatus/" + batch1 + " extra", form},
	} {
		_, ok, err := ParseLine(tc.line)
		if ok || err == nil || err.Error() != tc.want {
			t.Errorf("ParseLine(%q): ok=%v err=%v; want error %s", tc.line, ok, err, tc.want)
		}
	}
}

// pemLike is a private key as a broad glob might match it: every line is
// invalid, and none of it may be repeated anywhere.
const pemLike = "-----BEGIN PRIVATE KEY-----\n" +
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7/secretpart+x\n" +
	"Zk9vYmFyL3NlY3JldC9rZXkvbWF0ZXJpYWw=/more/secret/segments/here\n" +
	"https://vault.example.net/v1/secret/data/token?key=hunter2hunter2\n" +
	"hunter2secret,anothersecretvalue\n" +
	"0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d s3cr3t-tail-value\n" +
	"-----END PRIVATE KEY-----\n"

// secretFragments returns every 12-byte run of the lines of text that is
// not a GUID fragment or the PEM armour, for asserting that none appears
// in an output.
func secretFragments(text string) []string {
	var frags []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, "-----") {
			continue
		}
		for _, field := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == ',' }) {
			if guid.Valid(field) {
				continue
			}
			for i := 0; i+12 <= len(field); i++ {
				frags = append(frags, field[i:i+12])
			}
		}
	}
	return frags
}

func TestParseLineErrorsRepeatNoContent(t *testing.T) {
	frags := secretFragments(pemLike)
	for line := range strings.SplitSeq(strings.TrimSuffix(pemLike, "\n"), "\n") {
		_, ok, err := ParseLine(line)
		if ok || err == nil {
			t.Fatalf("ParseLine(%q) = %v, %v; want an error", line, ok, err)
		}
		for _, f := range frags {
			if strings.Contains(err.Error(), f) {
				t.Errorf("the reason for a line repeats %q of it: %v", f, err)
			}
		}
	}
}
