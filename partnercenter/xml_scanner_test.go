package partnercenter

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// xmlCorpus are the XML bodies the scanner is compared on with the
// decoder it replaced: the test data, generated batches, and documents
// that exercise every construct of XML 1.0 the scanner reads or refuses.
func xmlCorpus(t testing.TB) [][]byte {
	t.Helper()
	var corpus [][]byte
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, body)
	}
	for _, n := range []int{0, 1, 7, 300} {
		body, err := io.ReadAll(newGeneratedBody(xmlBody, n, 3, 4))
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, body, body[:len(body)*2/3], body[:len(body)-1])
	}
	const dev = `<BatchUploadDetails><Status>finished</Status><DevicesStatus><DeviceUploadDetails><Status>%s</Status><ErrorCode>%s</ErrorCode><ErrorDescription>%s</ErrorDescription></DeviceUploadDetails></DevicesStatus></BatchUploadDetails>`
	fill := func(status, code, desc string) string {
		return strings.NewReplacer("%s", "").Replace(strings.Replace(strings.Replace(strings.Replace(dev, "%s", status, 1), "%s", code, 1), "%s", desc, 1))
	}
	for _, doc := range []string{
		``, ` `, `<`, `<>`, `< BatchUploadDetails/>`, `<BatchUploadDetails/>`, `<BatchUploadDetails></BatchUploadDetails >`,
		`<BatchUploadDetails></BatchUploadDetails x>`, `<BatchUploadDetails></>`, `</BatchUploadDetails>`,
		`<BatchUploadDetails><Status>finished</Status></BatchUploadDetails>`,
		`<a:BatchUploadDetails xmlns:a="x"><a:Status>finished</a:Status></a:BatchUploadDetails>`,
		`<a:BatchUploadDetails xmlns:a="x"><Status>finished</a:Status></a:BatchUploadDetails>`,
		`<a:BatchUploadDetails></BatchUploadDetails>`, `<a:b:c/>`, `<:x/>`, `<x:/>`, `<BatchUploadDetails><:Status>finished</:Status></BatchUploadDetails>`,
		`<1BatchUploadDetails/>`, `<BatchUploadDetails><Status a=b>finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status a>finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status a='1' b="2" >finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status a="<">finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status a="]]>&amp;&#65;">finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status a="&bad;">finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status / >finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status i:nil="true" xmlns:i="i">finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status nil="1">finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status nil=" true ">finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status x:nil="false" y:nil="true">finished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fin&#105;shed</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fin&#x69;shed</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>&#xZZ;</Status></BatchUploadDetails>`, `<BatchUploadDetails><Status>&#12a;</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>&#;</Status></BatchUploadDetails>`, `<BatchUploadDetails><Status>&;</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>& x</Status></BatchUploadDetails>`, `<BatchUploadDetails><Status>&amp</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>&#0;</Status></BatchUploadDetails>`, `<BatchUploadDetails><Status>&#xD800;</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>&#x110000;</Status></BatchUploadDetails>`, `<BatchUploadDetails><Status>&#xFFFE;</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>&lt;&gt;&amp;&apos;&quot;</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fini<!-- a comment -->shed</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fini<!-- a -- comment -->shed</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fini<!- x -->shed</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fini<!---->shed</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fini<!--->shed</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status><![CDATA[ finished ]]></Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status><![CDATA[fin]]]]><![CDATA[>ished]]]></Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status><![CDATA[fin`, `<BatchUploadDetails><Status><![CDAT[x]]></Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fin]]>ished</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fin]]ished]</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>fin>ished</Status></BatchUploadDetails>`,
		`<?xml version="1.0" encoding="utf-8"?><BatchUploadDetails/>`, `<?xml version="1.1"?><BatchUploadDetails/>`,
		`<?xml version='1.0' encoding='UTF-16'?><BatchUploadDetails/>`, `<?xml encoding="Utf-8"?><BatchUploadDetails/>`,
		`<?xml?><BatchUploadDetails/>`, `<??><BatchUploadDetails/>`, `<?pi data ? > ?><BatchUploadDetails/>`, `<?pi`,
		`<!DOCTYPE x [<!ENTITY a "b"> <!-- c > --> ]><BatchUploadDetails/>`, `<!DOCTYPE x "a>b" 'c>d'><BatchUploadDetails/>`,
		`<!><BatchUploadDetails/>`, `<!x<y>><BatchUploadDetails/>`, `<!x<!y>><BatchUploadDetails/>`, `<!x<!-y>><BatchUploadDetails/>`, `<!DOCTYPE`,
		"<BatchUploadDetails>\r\n<Status>\r\nfinished\r</Status>\r\n</BatchUploadDetails>\r\n",
		"<BatchUploadDetails>\n\n<Status>finished</Status>\n\n</BatchUploadDetails>\n<x/>",
		"<BatchUploadDetails>\n<Status>fin\n\nished\x00</Status></BatchUploadDetails>",
		"<BatchUploadDetails><Status>\xff\n\n&bad;</Status></BatchUploadDetails>",
		"<BatchUploadDetails><Status>\x01\xff</Status></BatchUploadDetails>",
		"<BatchUploadDetails><Status>\xe2\x82</Status></BatchUploadDetails>",
		"<BatchUploadDetails><Status>\xe2\x82&amp;</Status></BatchUploadDetails>",
		"<BatchUploadDetails><Status>\xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80</Status></BatchUploadDetails>",
		"<BatchUploadDetails><Status>\xef\xbf\xbf</Status></BatchUploadDetails>",
		"<BatchUploadDetails><St\xc3\xa4tus>x</St\xc3\xa4tus></BatchUploadDetails>",
		"<BatchUploadDetails><\xc3\x97x/></BatchUploadDetails>", "<BatchUploadDetails><x\xcc\x80/></BatchUploadDetails>",
		"<BatchUploadDetails><Status a=\"\xff\">finished</Status></BatchUploadDetails>",
		"<BatchUploadDetails>text</BatchUploadDetails>", "text<BatchUploadDetails/>", "<BatchUploadDetails/>text",
		"<BatchUploadDetails/><!-- end --><?pi?>  \n", "<BatchUploadDetails/></x>", "<BatchUploadDetails/><![CDATA[ ]]>",
		"<BatchUploadDetails/><![CDATA[x]]>", "<![CDATA[ ]]><BatchUploadDetails/>", "&amp;<BatchUploadDetails/>",
		fill("finished_with_errors", "806", "  Already\r\nassigned  "), fill(" Finished ", "", ""),
		fill("processing", " 12 ", "&#x20;&#x20;x"), fill("\u00a0finished\u00a0", "806", "\u00a0"),
		fill(strings.Repeat(" ", 5000)+"finished", strings.Repeat("9", 300), strings.Repeat("d", 5000)),
		fill("finished", "806", strings.Repeat("é", 3000)),
		`<BatchUploadDetails><DevicesStatus><DeviceUploadDetails><Attributes><Etag i:nil="true"/></Attributes><Status>finished</Status><Unknown><Status>x</Status></Unknown></DeviceUploadDetails><Other/></DevicesStatus></BatchUploadDetails>`,
		`<BatchUploadDetails><Status>finished<b>ignored</b>!</Status></BatchUploadDetails>`,
		`<BatchUploadDetails><Status i:nil="true"><b></Status></BatchUploadDetails>`,
		"<BatchUploadDetails>" + strings.Repeat("<a>", 63) + strings.Repeat("</a>", 63) + "</BatchUploadDetails>",
		"<BatchUploadDetails>" + strings.Repeat("<a>", 64) + strings.Repeat("</a>", 64) + "</BatchUploadDetails>",
		"<BatchUploadDetails>" + strings.Repeat("<a/>", 64) + "</BatchUploadDetails>",
	} {
		corpus = append(corpus, []byte(doc))
	}
	return corpus
}

// decodeXMLWith is Decode for an XML body with the given decoder.
func decodeXMLWith(r io.Reader, opts DecodeOptions, decode func(io.Reader, *batchBuilder) error) (*Batch, error) {
	br := bufio.NewReader(r)
	if _, err := skipBOMAndSpace(br); err != nil {
		return nil, err
	}
	b := newBatchBuilder(opts)
	if err := decode(br, b); err != nil {
		return nil, err
	}
	return &b.batch, nil
}

// assertSameAsEncodingXML decodes body with the scanner and with the
// encoding/xml decoder it replaced, and fails unless both give the same
// batch or the same error message.
func assertSameAsEncodingXML(t *testing.T, body []byte, opts DecodeOptions) {
	t.Helper()
	want, wantErr := decodeXMLWith(bytes.NewReader(body), opts, refDecodeXML)
	for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body))} {
		got, err := decodeXMLWith(r, opts, decodeXML)
		if errString(err) != errString(wantErr) {
			t.Fatalf("body %.300q:\nerror %v\nwant  %v", body, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("body %.300q:\nbatch %+v\nwant  %+v", body, got, want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestXMLScannerMatchesEncodingXML(t *testing.T) {
	for _, body := range xmlCorpus(t) {
		assertSameAsEncodingXML(t, body, DecodeOptions{})
		assertSameAsEncodingXML(t, body, DecodeOptions{MaxFailedDevices: 1})
	}
}

// FuzzXMLScannerMatchesEncodingXML compares the scanner with the
// encoding/xml decoder it replaced on any body, short of the scanner's own
// bounds (names of more than maxXMLName bytes), which encoding/xml does
// not have.
func FuzzXMLScannerMatchesEncodingXML(f *testing.F) {
	for _, body := range xmlCorpus(f) {
		if len(body) < 4096 {
			f.Add(body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := decodeXMLWith(bytes.NewReader(body), DecodeOptions{}, decodeXML); err != nil && strings.Contains(err.Error(), "XML name longer than") {
			return
		}
		assertSameAsEncodingXML(t, body, DecodeOptions{})
	})
}
