package batchfiles

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// BenchmarkParseFile50k parses a 50,000-line batch file that mixes the
// line forms, a few comments and invalid lines: a year of uploads by a
// large partner, read again on every change and every re-scan.
func BenchmarkParseFile50k(b *testing.B) {
	const lines = 50_000
	data := batchFile(lines)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		entries, _, err := ParseFile(bytes.NewReader(data), "uploads.txt")
		if err != nil || len(entries) == 0 {
			b.Fatal(len(entries), err)
		}
	}
	b.ReportMetric(float64(lines)*float64(b.N)/time.Since(start).Seconds(), "lines/s")
}

func batchFile(lines int) []byte {
	var buf bytes.Buffer
	for i := range lines {
		cust := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i%50)
		tid := fmt.Sprintf("%08x-1111-4111-8111-111111111111", i)
		switch i % 10 {
		case 0:
			fmt.Fprintf(&buf, "# batch %d\n", i)
		case 1:
			fmt.Fprintf(&buf, "%s not-a-guid\n", cust)
		case 2, 3, 4:
			fmt.Fprintf(&buf, "/customers/%s/batchJobStatus/%s\r\n", cust, tid)
		case 5:
			fmt.Fprintf(&buf, "https://api.partnercenter.microsoft.com/v1/customers/%s/batchJobStatus/%s\n", cust, tid)
		default:
			fmt.Fprintf(&buf, "%s %s\n", cust, tid)
		}
	}
	return buf.Bytes()
}
