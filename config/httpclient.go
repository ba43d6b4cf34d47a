package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"
)

// HTTPClient is partner_center.http_client: how the exporter reaches both
// the API and the token endpoint. It holds the subset of Prometheus'
// HTTP client settings that concern the network; credentials live under
// auth, and redirects are never followed.
type HTTPClient struct {
	promconfig.ProxyConfig `yaml:",inline"`
	TLSConfig              promconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// IsZero reports whether no setting is made, so that the default
// transport can be shared.
func (hc HTTPClient) IsZero() bool {
	return reflect.DeepEqual(hc, HTTPClient{})
}

// Common returns the settings as prometheus/common's type, with redirects
// off as the exporter always has them.
func (hc HTTPClient) Common() promconfig.HTTPClientConfig {
	return promconfig.HTTPClientConfig{ProxyConfig: hc.ProxyConfig, TLSConfig: hc.TLSConfig}
}

// Reasons for refusing keys prometheus/common would accept.
const (
	credentialsRefusal = "not supported here: the exporter authenticates with the credentials under auth"
	redirectsRefusal   = "not supported: the exporter never follows redirects, so that tokens stay with the host they are meant for"
	insecureRefusal    = "not supported: it would send the client secret and tokens to any server; " +
		"add the server's or the proxy's CA with ca_file instead"
)

// tlsVersions are the versions min_version accepts: the ones Go still
// offers a client by default.
var tlsVersions = map[string]promconfig.TLSVersion{
	"TLS12": promconfig.TLSVersions["TLS12"],
	"TLS13": promconfig.TLSVersions["TLS13"],
}

func (d *decoder) httpClient(n *yaml.Node, path string, hc *HTTPClient) {
	fields := map[string]fieldDecoder{
		"proxy_url":              d.proxyURL(&hc.ProxyURL),
		"no_proxy":               d.str(&hc.NoProxy),
		"proxy_from_environment": d.boolean(&hc.ProxyFromEnvironment),
		"proxy_connect_header":   func(p string, v *yaml.Node) { d.proxyHeader(v, p, &hc.ProxyConnectHeader) },
		"tls_config":             func(p string, v *yaml.Node) { d.tlsConfig(v, p, &hc.TLSConfig) },
		"follow_redirects":       d.onlyFalse(redirectsRefusal),
	}
	for _, key := range []string{"authorization", "basic_auth", "oauth2", "bearer_token", "bearer_token_file"} {
		fields[key] = d.refuse(credentialsRefusal)
	}
	d.mapping(n, path, fields)
}

func (d *decoder) tlsConfig(n *yaml.Node, path string, tc *promconfig.TLSConfig) {
	d.mapping(n, path, map[string]fieldDecoder{
		"ca_file":              d.str(&tc.CAFile),
		"cert_file":            d.str(&tc.CertFile),
		"key_file":             d.str(&tc.KeyFile),
		"server_name":          d.str(&tc.ServerName),
		"min_version":          d.tlsVersion(&tc.MinVersion),
		"insecure_skip_verify": d.onlyFalse(insecureRefusal),
	})
}

// refuse rejects a key the exporter knows but will not take, pointing at
// the key rather than at its (maybe multi-line) value.
func (d *decoder) refuse(msg string) fieldDecoder {
	return func(path string, _ *yaml.Node) {
		d.fail(d.pos[path], path, "%s", msg)
		d.invalid[path] = true
	}
}

// onlyFalse accepts false, what the exporter always does, so that a block
// copied from a Prometheus configuration need not be edited, and refuses
// true.
func (d *decoder) onlyFalse(msg string) fieldDecoder {
	return func(path string, n *yaml.Node) {
		var v bool
		if d.boolean(&v)(path, n); v {
			d.refuse(msg)(path, n)
		}
	}
}

// proxyURL parses the URL; its messages never show it, as it may carry a
// password.
func (d *decoder) proxyURL(dst *promconfig.URL) fieldDecoder {
	return func(path string, n *yaml.Node) {
		var raw string
		if d.str(&raw)(path, n); d.invalid[path] {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			d.failValue(n, path, "not a valid URL")
			return
		}
		dst.URL = u
	}
}

func (d *decoder) tlsVersion(dst *promconfig.TLSVersion) fieldDecoder {
	return func(path string, n *yaml.Node) {
		var s string
		if d.str(&s)(path, n); d.invalid[path] {
			return
		}
		v, ok := tlsVersions[s]
		if !ok {
			d.failValue(n, path, "%q is not a TLS version: use TLS12 or TLS13", s)
			return
		}
		*dst = v
	}
}

// proxyHeader decodes header names mapped to lists of values. The values
// are secrets (a proxy's credentials travel in them) and are never shown.
func (d *decoder) proxyHeader(n *yaml.Node, path string, dst *promconfig.ProxyHeader) {
	if !d.expectKind(n, path, yaml.MappingNode) {
		return
	}
	h := promconfig.ProxyHeader{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
		keyPath := joinPath(path, key.Value)
		switch _, seen := h[key.Value]; {
		case key.Kind != yaml.ScalarNode || !headerNamePattern.MatchString(key.Value):
			d.fail(key.Line, path, "header names must be HTTP tokens such as Proxy-Authorization")
			continue
		case seen:
			d.fail(key.Line, keyPath, "repeated key, first set at line %d", d.pos[keyPath])
			continue
		}
		d.pos[keyPath] = key.Line
		var values []string
		d.strings(value, keyPath, &values)
		h[key.Value] = make([]promconfig.Secret, len(values))
		for j, v := range values {
			if strings.ContainsAny(v, "\r\n") {
				d.failValue(value.Content[j], indexPath(keyPath, j), "header values must not contain line breaks")
			}
			h[key.Value][j] = promconfig.Secret(v)
		}
	}
	*dst = h
}

// headerNamePattern is RFC 9110's token.
var headerNamePattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// httpClient checks the settings with prometheus/common's own rules, then
// what they point at. Messages never repeat the proxy URL.
func (v validator) httpClient(hc HTTPClient) {
	const path = "partner_center.http_client"
	if v.anyUnusableUnder(path) {
		return // the rules below would only repeat the decoding errors
	}
	if u := hc.ProxyURL.URL; u != nil {
		v.proxyURL(path+".proxy_url", u)
	}
	common := hc.Common()
	if err := common.Validate(); err != nil {
		v.report(path+"."+proxyConflictKey(hc.ProxyConfig), "%v", err)
	}
	v.tlsFiles(path+".tls_config", hc.TLSConfig)
}

// anyUnusableUnder reports whether a value at path or below could not be
// decoded.
func (v validator) anyUnusableUnder(path string) bool {
	for p := range v.invalid {
		if p == path || strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// proxyConflictKey names the key ProxyConfig.Validate's complaint is
// about: every rule it has pairs proxy_url with one of these.
func proxyConflictKey(pc promconfig.ProxyConfig) string {
	switch {
	case pc.ProxyFromEnvironment:
		return "proxy_from_environment"
	case len(pc.ProxyConnectHeader) > 0:
		return "proxy_connect_header"
	default:
		return "no_proxy"
	}
}

func (v validator) proxyURL(path string, u *url.URL) {
	switch {
	case u.Scheme == "" || u.Host == "":
		v.report(path, "must be an absolute URL such as http://proxy.example.com:3128")
	case !slices.Contains([]string{"http", "https", "socks5", "socks5h"}, u.Scheme):
		v.report(path, "scheme must be http, https, socks5 or socks5h")
	}
}

// tlsFiles checks that the files can be read, then that they hold a CA and
// a matching certificate and key, as prometheus/common would load them.
func (v validator) tlsFiles(path string, tc promconfig.TLSConfig) {
	readable := true
	for _, f := range []struct{ key, name string }{
		{"ca_file", tc.CAFile}, {"cert_file", tc.CertFile}, {"key_file", tc.KeyFile},
	} {
		if f.name == "" || v.unusable(path+"."+f.key) {
			continue
		}
		if err := checkReadable(f.name); err != nil {
			v.report(path+"."+f.key, "%v", err)
			readable = false
		}
	}
	if err := tc.Validate(); err != nil {
		v.report(path, "%v", err)
		return
	}
	if readable {
		if _, err := promconfig.NewTLSConfig(&tc); err != nil {
			v.report(path, "%v", err)
		}
	}
}

// httpClientView is what fmt and JSON show of an HTTPClient: the proxy URL
// without its password and the connect header names without their values.
type httpClientView struct {
	ProxyURL             string               `json:"proxy_url,omitempty"`
	NoProxy              string               `json:"no_proxy,omitempty"`
	ProxyFromEnvironment bool                 `json:"proxy_from_environment,omitempty"`
	ProxyConnectHeader   []string             `json:"proxy_connect_header,omitempty"`
	TLSConfig            promconfig.TLSConfig `json:"tls_config"`
}

func (hc HTTPClient) view() httpClientView {
	v := httpClientView{NoProxy: hc.NoProxy, ProxyFromEnvironment: hc.ProxyFromEnvironment, TLSConfig: hc.TLSConfig}
	if hc.ProxyURL.URL != nil {
		v.ProxyURL = hc.ProxyURL.Redacted()
	}
	for name := range hc.ProxyConnectHeader {
		v.ProxyConnectHeader = append(v.ProxyConnectHeader, name)
	}
	slices.Sort(v.ProxyConnectHeader)
	return v
}

// Format implements fmt.Formatter: prometheus/common's URL prints its
// password and its Secret has no String method, so fmt sees the view.
func (hc HTTPClient) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "%+v", hc.view())
}

// MarshalJSON implements json.Marshaler; prometheus/common's URL would
// marshal its password.
func (hc HTTPClient) MarshalJSON() ([]byte, error) {
	return json.Marshal(hc.view())
}
