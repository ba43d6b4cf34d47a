package httpguard

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
)

func TestPlainHTTPAllowed(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{url: "https://api.partnercenter.microsoft.com", want: true},
		{url: "HTTPS://example.com", want: true},
		{url: "http://127.0.0.1:8080", want: true},
		{url: "http://[::1]:8080", want: true},
		{url: "http://LocalHost.:9000", want: true},
		{url: "http://example.com", want: false},
		{url: "http://127.0.0.1.example.com", want: false},
		{url: "ftp://127.0.0.1", want: false},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := PlainHTTPAllowed(u); got != tc.want {
			t.Errorf("PlainHTTPAllowed(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		in     string
		maxLen int
		want   string
	}{
		{in: "a\r\n\tb   c", maxLen: 100, want: "a b c"},
		{in: "abcdefghij", maxLen: 10, want: "abcdefghij"},
		{in: "abcdefghijk", maxLen: 10, want: "abcdefg..."},
		// The cut does not split the two bytes of "é".
		{in: "abcdeféghij", maxLen: 10, want: "abcdef..."},
		{in: "a\xffb", maxLen: 10, want: "a\uFFFDb"},
	} {
		if got := OneLine(tc.in, tc.maxLen); got != tc.want {
			t.Errorf("OneLine(%q, %d) = %q, want %q", tc.in, tc.maxLen, got, tc.want)
		}
	}
}

func TestWithoutRedirectsLeavesTheGivenClientAlone(t *testing.T) {
	hc := &http.Client{}
	c := WithoutRedirects(hc)
	if c == hc || hc.CheckRedirect != nil {
		t.Fatal("WithoutRedirects changed the client it was given")
	}
	if err := c.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want http.ErrUseLastResponse", err)
	}
	if WithoutRedirects(nil).CheckRedirect == nil {
		t.Error("WithoutRedirects(nil) follows redirects")
	}
}
