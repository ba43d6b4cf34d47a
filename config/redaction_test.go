package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Values planted in testdata that must never appear in an error or output.
var plantedSecrets = []string{
	"s3cr3t-value",         // client_secret in the invalid-*.yml files
	"inline-s3cr3t",        // client_secret in good-minimal.yml
	"file-s3cr3t",          // testdata/secrets/client_secret
	"refresh-t0ken",        // testdata/secrets/refresh_token
	"access-t0ken",         // testdata/secrets/access_token
	"pr0xy-pass",           // the proxy_url password in good.yml
	"aGVhZGVyLXNlY3JldA==", // the proxy_connect_header value in good.yml
}

func TestSecretRedaction(t *testing.T) {
	tests := []struct {
		secret Secret
		want   string // the redacted text
	}{
		{"s3cr3t-value", "<secret>"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.want), func(t *testing.T) {
			s := tt.secret
			quoted := fmt.Sprintf("%q", tt.want)
			jsonText, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			yamlText, err := yaml.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			text, err := s.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var jsonValue string
			if err := json.Unmarshal(jsonText, &jsonValue); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{
				"String":           s.String(),
				"GoString":         s.GoString(),
				"%v":               fmt.Sprintf("%v", s),
				"%+v":              fmt.Sprintf("%+v", s),
				"%#v":              fmt.Sprintf("%#v", s),
				"%s":               fmt.Sprintf("%s", s),
				"%x":               fmt.Sprintf("%x", s),
				"%X":               fmt.Sprintf("%X", s),
				"%d":               fmt.Sprintf("%d", s),
				"%q":               fmt.Sprintf("%q", s),
				"pointer %v":       fmt.Sprintf("%v", &s),
				"Sprint":           fmt.Sprint(s),
				"json.Marshal":     jsonValue,
				"yaml.Marshal":     string(yamlText),
				"MarshalText":      string(text),
				"LogValue":         s.LogValue().String(),
				"%10s keeps width": fmt.Sprintf("%10s|", s),
			}
			want := map[string]string{
				"String":           tt.want,
				"GoString":         tt.want,
				"%v":               tt.want,
				"%+v":              tt.want,
				"%#v":              tt.want,
				"%s":               tt.want,
				"%x":               tt.want,
				"%X":               tt.want,
				"%d":               tt.want,
				"%q":               quoted,
				"pointer %v":       tt.want,
				"Sprint":           tt.want,
				"json.Marshal":     tt.want,
				"yaml.Marshal":     map[string]string{"<secret>": "<secret>\n", "": "\"\"\n"}[tt.want],
				"MarshalText":      tt.want,
				"LogValue":         tt.want,
				"%10s keeps width": fmt.Sprintf("%10s|", tt.want),
			}
			for how, w := range want {
				if got[how] != w {
					t.Errorf("%s: got %q, want %q", how, got[how], w)
				}
			}
			if s.Reveal() != string(tt.secret) {
				t.Errorf("Reveal did not return the value")
			}
		})
	}
}

func TestSecretInSlog(t *testing.T) {
	cfg, err := Load("testdata/good-minimal.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		newHandler func(*bytes.Buffer) slog.Handler
		want       string
	}{
		{
			name:       "text",
			newHandler: func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			want:       `level=INFO msg=loaded secret=<secret>`,
		},
		{
			name:       "json",
			newHandler: func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
			want:       `"level":"INFO","msg":"loaded","secret":"<secret>"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(tt.newHandler(&buf))
			logger.Info("loaded", "secret", cfg.Auth.ClientSecret)
			logger.Info("whole config", "config", cfg, "auth", cfg.Auth, "by value", *cfg)
			out := unescapeJSONHTML(buf.String())
			if !strings.Contains(out, tt.want) {
				t.Errorf("log output lacks %s:\n%s", tt.want, out)
			}
			// The whole struct is logged too (by fmt or JSON); it must show
			// the placeholder three times and the secret never.
			if n := strings.Count(out, "<secret>"); n != 4 {
				t.Errorf("<secret> appears %d times, want 4:\n%s", n, out)
			}
			assertNoSecret(t, out)
		})
	}
}

func TestConfigPrintingHidesSecrets(t *testing.T) {
	cfg, err := Load("testdata/good-minimal.yml")
	if err != nil {
		t.Fatal(err)
	}
	good, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{good, *good, good.PartnerCenter} {
			out := fmt.Sprintf(format, v)
			if !strings.Contains(out, "Proxy-Authorization") || !strings.Contains(out, "proxy.example.com") {
				t.Errorf("%s of %T lacks the proxy settings: %s", format, v, out)
			}
			assertNoSecret(t, out)
		}
		for _, v := range []any{cfg, *cfg, cfg.Auth} {
			out := fmt.Sprintf(format, v)
			if !strings.Contains(out, "<secret>") {
				t.Errorf("%s of %T lacks <secret>: %s", format, v, out)
			}
			assertNoSecret(t, out)
		}
	}
	jsonText, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if out := unescapeJSONHTML(string(jsonText)); !strings.Contains(out, `"ClientSecret":"<secret>"`) {
		t.Errorf("json lacks the redacted secret: %s", out)
	}
	assertNoSecret(t, string(jsonText))
	if jsonText, err = json.Marshal(good); err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, string(jsonText))
}

// unescapeJSONHTML undoes encoding/json's escaping of < and >, which it
// applies even to the output of a MarshalJSON method.
func unescapeJSONHTML(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(s)
}

func assertNoSecret(t *testing.T, out string) {
	t.Helper()
	for _, secret := range plantedSecrets {
		if strings.Contains(out, secret) {
			t.Errorf("output shows the secret %q", secret)
		}
	}
}

func TestRedactedYAML(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{
			// The secret came from client_secret_file: only the file shows.
			file: "testdata/good.yml",
			want: `cloud: china
partner_center:
    base_url: https://partner.partnercenterapi.microsoftonline.cn
    api_version: v1
    request_timeout: 45s
    max_concurrent_requests: 8
    refresh_interval: 0s
    max_response_size: 67108864
    max_retry_after: 2m0s
    http_client:
        proxy_url: http://exporter:xxxxx@proxy.example.com:3128
        no_proxy: internal.example.com
        proxy_connect_header:
            Proxy-Authorization:
                - <secret>
        tls_config:
            ca_file: testdata/secrets/ca.pem
            server_name: api.partnercenter.microsoft.com
            insecure_skip_verify: false
            min_version: TLS13
auth:
    tenant_id: contoso.onmicrosoft.com
    client_id: 5f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19
    client_secret: ""
    client_secret_file: testdata/secrets/client_secret
    refresh_token_file: testdata/secrets/refresh_token
    access_token_file: ""
    client_certificate_file: ""
    client_certificate_password_file: ""
    send_certificate_chain: false
    federated_token_file: ""
    token_url: https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/token
    resource: https://api.partnercenterapi.microsoftonline.cn
max_failed_devices_per_batch: 0
retention: 720h0m0s
forget_removed_batches_after: 2h0m0s
batch_files:
    - testdata/uploads/*.txt
probe:
    allow_unconfigured_customers: true
    allow_unlisted_batches: true
    forget_unprobed_after: 24h0m0s
    max_admissions_per_minute: 30
intake:
    bearer_token_files:
        - testdata/secrets/intake_token
    max_batches: 1000
customers:
    - id: a1b2c3d4-0001-4000-8000-000000000001
      name: Contoso
      batches:
        - b0000000-0001-4000-8000-00000000000a
        - b0000000-0001-4000-8000-00000000000b
    - id: a1b2c3d4-0002-4000-8000-000000000002
      batches: []
    - id: a1b2c3d4-0003-4000-8000-000000000003
      name: Fabrikam
      batches:
        - b0000000-0003-4000-8000-000000000001
`,
		},
		{
			file: "testdata/good-minimal.yml",
			want: `cloud: public
partner_center:
    base_url: https://api.partnercenter.microsoft.com
    api_version: v1
    request_timeout: 30s
    max_concurrent_requests: 4
    refresh_interval: 1m0s
    max_response_size: 268435456
    max_retry_after: 10m0s
auth:
    tenant_id: 0c9b5d2e-3f4a-4b6c-8d7e-9f0a1b2c3d4e
    client_id: 5f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19
    client_secret: <secret>
    client_secret_file: ""
    refresh_token_file: ""
    access_token_file: ""
    client_certificate_file: ""
    client_certificate_password_file: ""
    send_certificate_chain: false
    federated_token_file: ""
    token_url: https://login.microsoftonline.com/0c9b5d2e-3f4a-4b6c-8d7e-9f0a1b2c3d4e/oauth2/token
    resource: https://api.partnercenter.microsoft.com
max_failed_devices_per_batch: 10000
retention: 0s
forget_removed_batches_after: 24h0m0s
probe:
    allow_unconfigured_customers: false
    allow_unlisted_batches: false
    forget_unprobed_after: 1h0m0s
    max_admissions_per_minute: 60
intake:
    max_batches: 50000
customers: []
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			secretBefore := cfg.Auth.ClientSecret.Reveal()
			got, err := cfg.RedactedYAML()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("RedactedYAML:\n%s\nwant:\n%s", got, tt.want)
			}
			if cfg.Auth.ClientSecret.Reveal() != secretBefore {
				t.Errorf("RedactedYAML changed the config's secret")
			}
		})
	}
}
