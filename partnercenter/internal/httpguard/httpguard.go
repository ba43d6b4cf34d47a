// Package httpguard holds the rules that the Partner Center client and its
// token sources share about where a credential may go and how much of a
// server's words reach an error: no redirect is followed, plain http only
// on loopback, and text from the other side is cut to one short line.
package httpguard

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRedirectHostLen bounds the host named in a redirect error.
const maxRedirectHostLen = 256

// WithoutRedirects returns a copy of hc (nil means a zero http.Client)
// that hands back a 3xx instead of following it. A redirect would re-send
// the bearer token or the token request's secret to wherever the Location
// points, so it is refused whatever client is given. hc itself is left as
// it is, as the caller may use it for other things.
func WithoutRedirects(hc *http.Client) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}
	return &c
}

// IsRedirect reports whether status is a 3xx.
func IsRedirect(status int) bool {
	return status >= 300 && status < 400
}

// RedirectNotFollowed says where a 3xx pointed, naming the host only: the
// rest of the Location could carry a query with something secret in it.
func RedirectNotFollowed(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil || loc.Host == "" {
		return "redirect not followed"
	}
	return "redirect to " + OneLine(loc.Host, maxRedirectHostLen) + " not followed"
}

// PlainHTTPAllowed reports whether credentials may be sent to u: always
// over https, and over plain http only to a loopback host (tests, local
// proxies), where nothing crosses the network.
func PlainHTTPAllowed(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "https":
		return true
	case "http":
		return isLoopbackHost(u.Hostname())
	}
	return false
}

// isLoopbackHost accepts "localhost" in any case, with or without the
// trailing dot of a fully qualified name, and any loopback IP address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// OneLine turns control characters and runs of white space into single
// spaces and cuts the result to at most maxLen bytes on a rune boundary,
// marking the cut with "...".
func OneLine(s string, maxLen int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxLen {
		return s
	}
	const ellipsis = "..."
	return CutAtRune(s, maxLen-len(ellipsis)) + ellipsis
}

// CutAtRune returns the longest prefix of s that is at most n bytes long
// and does not end inside a UTF-8 sequence.
func CutAtRune(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
