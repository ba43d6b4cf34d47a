package config

import (
	"crypto/tls"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	promconfig "github.com/prometheus/common/config"
)

// goodHTTPClient is the http_client block of testdata/good.yml, decoded.
func goodHTTPClient(t *testing.T) HTTPClient {
	t.Helper()
	proxy, err := url.Parse("http://exporter:pr0xy-pass@proxy.example.com:3128")
	if err != nil {
		t.Fatal(err)
	}
	return HTTPClient{
		ProxyConfig: promconfig.ProxyConfig{
			ProxyURL: promconfig.URL{URL: proxy},
			NoProxy:  "internal.example.com",
			ProxyConnectHeader: promconfig.ProxyHeader{
				"Proxy-Authorization": {"Basic aGVhZGVyLXNlY3JldA=="},
			},
		},
		TLSConfig: promconfig.TLSConfig{
			CAFile:     filepath.Join("testdata", "secrets", "ca.pem"),
			ServerName: "api.partnercenter.microsoft.com",
			MinVersion: tls.VersionTLS13,
		},
	}
}

// httpClientYAML wraps lines (indented for http_client) into a valid file.
func httpClientYAML(lines ...string) string {
	return "partner_center:\n  http_client:\n" + strings.Join(lines, "\n") + "\n" + validAuth
}

func TestHTTPClientRefused(t *testing.T) {
	const creds = "not supported here: the exporter authenticates with the credentials under auth"
	tests := []struct{ name, yaml, want string }{
		{
			"authorization", httpClientYAML("    authorization:", "      credentials: x"),
			"t.yml:3: partner_center.http_client.authorization: " + creds,
		},
		{
			"oauth2", httpClientYAML("    oauth2:", "      client_id: x"),
			"t.yml:3: partner_center.http_client.oauth2: " + creds,
		},
		{
			"bearer_token", httpClientYAML("    bearer_token: s3cr3t-bearer"),
			"t.yml:3: partner_center.http_client.bearer_token: " + creds,
		},
		{
			"bearer_token_file", httpClientYAML("    bearer_token_file: token"),
			"t.yml:3: partner_center.http_client.bearer_token_file: " + creds,
		},
		{
			"follow_redirects", httpClientYAML("    follow_redirects: true"),
			"t.yml:3: partner_center.http_client.follow_redirects: not supported: the exporter never follows redirects, so that tokens stay with the host they are meant for",
		},
		{
			"follow_redirects not a bool", httpClientYAML("    follow_redirects: no"),
			`t.yml:3: partner_center.http_client.follow_redirects: "no" is not true or false`,
		},
		{
			"other common keys are unknown", httpClientYAML("    enable_http2: true"),
			"t.yml:3: partner_center.http_client.enable_http2: unknown field",
		},
		{
			"inline CA is unknown", httpClientYAML("    tls_config:", "      ca: pem"),
			"t.yml:4: partner_center.http_client.tls_config.ca: unknown field",
		},
		{
			"old TLS", httpClientYAML("    tls_config:", "      min_version: TLS10"),
			`t.yml:4: partner_center.http_client.tls_config.min_version: "TLS10" is not a TLS version: use TLS12 or TLS13`,
		},
		{
			"proxy_url not a URL", httpClientYAML("    proxy_url: 'http://a b:c'"),
			"t.yml:3: partner_center.http_client.proxy_url: not a valid URL",
		},
		{
			"proxy_url relative", httpClientYAML("    proxy_url: proxy.example.com:3128"),
			"t.yml:3: partner_center.http_client.proxy_url: must be an absolute URL such as http://proxy.example.com:3128",
		},
		{
			"proxy_url scheme", httpClientYAML("    proxy_url: ftp://u:pw@proxy.example.com"),
			"t.yml:3: partner_center.http_client.proxy_url: scheme must be http, https, socks5 or socks5h",
		},
		{
			"proxy_from_environment not a bool", httpClientYAML("    proxy_from_environment: yes"),
			`t.yml:3: partner_center.http_client.proxy_from_environment: "yes" is not true or false`,
		},
		{
			"no_proxy without proxy_url", httpClientYAML("    no_proxy: example.com"),
			"t.yml:3: partner_center.http_client.no_proxy: if no_proxy is configured, proxy_url must also be configured",
		},
		{
			"connect header without proxy", httpClientYAML("    proxy_connect_header:", "      X-A: [v]"),
			"t.yml:3: partner_center.http_client.proxy_connect_header: if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
		},
		{
			"connect header not a list", httpClientYAML("    proxy_url: http://p.example.com", "    proxy_connect_header:", "      X-A: s3cr3t-header"),
			"t.yml:5: partner_center.http_client.proxy_connect_header.X-A: expected a list, got a string",
		},
		{
			"connect header name", httpClientYAML("    proxy_url: http://p.example.com", "    proxy_connect_header:", "      'X A': [v]"),
			"t.yml:5: partner_center.http_client.proxy_connect_header: header names must be HTTP tokens such as Proxy-Authorization",
		},
		{
			"connect header repeated", httpClientYAML("    proxy_url: http://p.example.com", "    proxy_connect_header:", "      X-A: [v]", "      X-A: [w]"),
			"t.yml:6: partner_center.http_client.proxy_connect_header.X-A: repeated key, first set at line 5",
		},
		{
			"connect header line break", httpClientYAML("    proxy_url: http://p.example.com", "    proxy_connect_header:", "      X-A: [\"s3cr3t\\r\\nX-B: 1\"]"),
			"t.yml:5: partner_center.http_client.proxy_connect_header.X-A[0]: header values must not contain line breaks",
		},
		{
			"cert without key", httpClientYAML("    tls_config:", "      cert_file: secrets/ca.pem"),
			"t.yml:3: partner_center.http_client.tls_config: exactly one of key or key_file must be configured when a client certificate is configured",
		},
		{
			"CA file is no certificate", httpClientYAML("    tls_config:", "      ca_file: secrets/client_secret"),
			"t.yml:3: partner_center.http_client.tls_config: unable to use specified CA cert file testdata/secrets/client_secret",
		},
		{
			"CA file is a directory", httpClientYAML("    tls_config:", "      ca_file: secrets"),
			`t.yml:4: partner_center.http_client.tls_config.ca_file: "testdata/secrets" is a directory`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "t.yml", "testdata")
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse error:\n got  %v\n want %s", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") || err != nil && strings.Contains(err.Error(), "pw@") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestHTTPClientGood(t *testing.T) {
	dir := t.TempDir()
	writeTestCA(t, filepath.Join(dir, "ca.pem"))
	yml := httpClientYAML("    proxy_from_environment: true", "    follow_redirects: false", "    proxy_connect_header:", "      Proxy-Authorization: [a, b]",
		"    tls_config:", "      ca_file: ca.pem", "      min_version: TLS12", "      insecure_skip_verify: false")
	c, err := Parse([]byte(yml), "t.yml", dir)
	if err != nil {
		t.Fatal(err)
	}
	hc := c.PartnerCenter.HTTPClient
	if want := filepath.Join(dir, "ca.pem"); hc.TLSConfig.CAFile != want {
		t.Errorf("ca_file = %q, want %q (relative to the config file)", hc.TLSConfig.CAFile, want)
	}
	if !hc.ProxyFromEnvironment || hc.TLSConfig.MinVersion != tls.VersionTLS12 {
		t.Errorf("http_client = %+v", hc)
	}
	if got := hc.GetProxyConnectHeader()["Proxy-Authorization"]; strings.Join(got, ",") != "a,b" {
		t.Errorf("connect header = %q", got)
	}
	if hc.IsZero() || !(HTTPClient{}).IsZero() {
		t.Error("IsZero is wrong")
	}
	if common := hc.Common(); common.FollowRedirects || common.BasicAuth != nil {
		t.Errorf("Common() = %+v", common)
	}
}

// writeTestCA copies the committed test CA, a valid PEM certificate.
func writeTestCA(t *testing.T, path string) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join("testdata", "secrets", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		t.Fatal(err)
	}
}
