package partnercenter

import (
	"net"
	"net/url"
	"strings"
)

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
