package partnercenter

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirectHostLen bounds the host named in a redirect error.
const maxRedirectHostLen = 256

// withoutRedirects returns a copy of hc (nil means a zero http.Client)
// that hands back a 3xx instead of following it. A redirect would re-send
// the bearer token or the token request's secret to wherever the Location
// points, so the package refuses it whatever client it is given. hc itself
// is left as it is, as the caller may use it for other things.
func withoutRedirects(hc *http.Client) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}
	return &c
}

// isRedirect reports whether status is a 3xx.
func isRedirect(status int) bool {
	return status >= 300 && status < 400
}

// redirectNotFollowed says where a 3xx pointed, naming the host only: the
// rest of the Location could carry a query with something secret in it.
func redirectNotFollowed(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil || loc.Host == "" {
		return "redirect not followed"
	}
	return "redirect to " + oneLine(loc.Host, maxRedirectHostLen) + " not followed"
}

// PlainHTTPAllowed reports whether credentials may be sent to u: always
// over https, and over plain http only to a loopback host (tests, local
// proxies), where nothing crosses the network. The configuration check and
// the client share this one rule, so that a file that passes
// --config.check is never refused at startup.
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
