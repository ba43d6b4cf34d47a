package partnercenter

import (
	"net/url"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/internal/httpguard"
)

// PlainHTTPAllowed reports whether credentials may be sent to u: always
// over https, and over plain http only to a loopback host (tests, local
// proxies), where nothing crosses the network. The configuration check,
// the client and the token sources share this one rule, so that a file
// that passes --config.check is never refused at startup.
func PlainHTTPAllowed(u *url.URL) bool {
	return httpguard.PlainHTTPAllowed(u)
}

// oneLine turns text from the other side into one line of at most maxLen
// bytes, as httpguard.OneLine does.
func oneLine(s string, maxLen int) string {
	return httpguard.OneLine(s, maxLen)
}
