package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/auth"
)

const (
	tenantID = "0c9b5d2e-3f4a-4b6c-8d7e-9f0a1b2c3d4e"
	clientID = "5f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19"
)

// validAuth is an auth block that passes validation, for tests about
// other parts of the file.
const validAuth = "auth:\n  tenant_id: " + tenantID + "\n  client_id: " + clientID + "\n  client_secret: s3cr3t-value\n"

func TestLoadGood(t *testing.T) {
	tests := []struct {
		file string
		want *Config
	}{
		{
			file: "testdata/good.yml",
			want: &Config{
				Cloud: "china",
				PartnerCenter: PartnerCenter{
					BaseURL:               "https://partner.partnercenterapi.microsoftonline.cn",
					APIVersion:            "v1",
					RequestTimeout:        45 * time.Second,
					MaxConcurrentRequests: 8,
					RefreshInterval:       0,
					MaxResponseSize:       64 << 20,
					MaxRetryAfter:         2 * time.Minute,
					HTTPClient:            goodHTTPClient(t),
				},
				Auth: Auth{
					TenantID:         "contoso.onmicrosoft.com",
					ClientID:         clientID,
					ClientSecret:     "file-s3cr3t",
					ClientSecretFile: filepath.Join("testdata", "secrets", "client_secret"),
					RefreshTokenFile: filepath.Join("testdata", "secrets", "refresh_token"),
					TokenURL:         "https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/token",
					Resource:         "https://api.partnercenterapi.microsoftonline.cn",
				},
				MaxFailedDevicesPerBatch:  0,
				Retention:                 30 * 24 * time.Hour,
				ForgetRemovedBatchesAfter: 2 * time.Hour,
				BatchFiles:                []string{"testdata/uploads/*.txt"},
				Probe: Probe{
					AllowUnconfiguredCustomers: true, AllowUnlistedBatches: true,
					ForgetUnprobedAfter: 24 * time.Hour, MaxAdmissionsPerMinute: 30,
				},
				Intake: Intake{BearerTokenFiles: []string{filepath.Join("testdata", "secrets", "intake_token")}, MaxBatches: 1000},
				Customers: []Customer{
					{
						ID:      "a1b2c3d4-0001-4000-8000-000000000001",
						Name:    "Contoso",
						Batches: []string{"b0000000-0001-4000-8000-00000000000a", "b0000000-0001-4000-8000-00000000000b"},
					},
					{ID: "a1b2c3d4-0002-4000-8000-000000000002"},
					{
						ID:      "a1b2c3d4-0003-4000-8000-000000000003",
						Name:    "Fabrikam",
						Batches: []string{"b0000000-0003-4000-8000-000000000001"},
					},
				},
			},
		},
		{
			file: "testdata/good-minimal.yml",
			want: &Config{
				Cloud: "public",
				PartnerCenter: PartnerCenter{
					BaseURL:               "https://api.partnercenter.microsoft.com",
					APIVersion:            "v1",
					RequestTimeout:        30 * time.Second,
					MaxConcurrentRequests: 4,
					RefreshInterval:       time.Minute,
					MaxResponseSize:       256 << 20,
					MaxRetryAfter:         10 * time.Minute,
				},
				Auth: Auth{
					TenantID:     tenantID,
					ClientID:     clientID,
					ClientSecret: "inline-s3cr3t",
					TokenURL:     "https://login.microsoftonline.com/" + tenantID + "/oauth2/token",
					Resource:     "https://api.partnercenter.microsoft.com",
				},
				MaxFailedDevicesPerBatch:  10000,
				ForgetRemovedBatchesAfter: 24 * time.Hour,
				Probe:                     Probe{ForgetUnprobedAfter: time.Hour, MaxAdmissionsPerMinute: 60},
				Intake:                    Intake{MaxBatches: 50000},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Load(tt.file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load:\n got  %#v\n want %#v", got, tt.want)
			}
			// Secrets print redacted in the message above, so compare them apart.
			if got.Auth.ClientSecret.Reveal() != tt.want.Auth.ClientSecret.Reveal() {
				t.Errorf("client secret differs from the expected one")
			}
		})
	}
}

// TestLoadBadConfigs maps every testdata/invalid-*.yml file to its exact
// error.
func TestLoadBadConfigs(t *testing.T) {
	tests := map[string]string{
		"invalid-empty.yml":         `invalid-empty.yml: no configuration`,
		"invalid-comments-only.yml": `invalid-comments-only.yml: no configuration`,
		"invalid-syntax.yml":        `invalid-syntax.yml: yaml: line 5: did not find expected ',' or ']'`,
		"invalid-two-documents.yml": `invalid-two-documents.yml:5: more than one YAML document`,
		"invalid-not-a-mapping.yml": `invalid-not-a-mapping.yml:1: expected a mapping, got a list`,
		"invalid-merge-key.yml":     `invalid-merge-key.yml:9: customers[1].<<: merge keys are not supported`,
		"invalid-repeated-key.yml":  `invalid-repeated-key.yml:3: partner_center.request_timeout: repeated key, first set at line 2`,

		"invalid-unknown-top.yml":            `invalid-unknown-top.yml:5: max_failed_device_per_batch: unknown field (did you mean max_failed_devices_per_batch?)`,
		"invalid-unknown-partner-center.yml": `invalid-unknown-partner-center.yml:2: partner_center.request_timout: unknown field (did you mean request_timeout?)`,
		"invalid-unknown-auth.yml":           `invalid-unknown-auth.yml:5: auth.client_secret_fil: unknown field (did you mean client_secret_file?)`,
		"invalid-unknown-customer.yml":       `invalid-unknown-customer.yml:9: customers[1].batch: unknown field (did you mean batches?)`,

		"invalid-cloud.yml":                   `invalid-cloud.yml:1: cloud: "usgov" is not supported: Partner Center documents no US Government endpoint (its US Government instance uses https://api.partnercenter.microsoft.com): use cloud: public, or set base_url, token_url and resource`,
		"invalid-http-client-unknown.yml":     `invalid-http-client-unknown.yml:3: partner_center.http_client.proxy_ulr: unknown field (did you mean proxy_url?)`,
		"invalid-http-client-tls-unknown.yml": `invalid-http-client-tls-unknown.yml:4: partner_center.http_client.tls_config.ca_fil: unknown field (did you mean ca_file?)`,
		"invalid-http-client-credentials.yml": `invalid-http-client-credentials.yml:3: partner_center.http_client.basic_auth: not supported here: the exporter authenticates with the credentials under auth`,
		"invalid-http-client-insecure.yml":    `invalid-http-client-insecure.yml:4: partner_center.http_client.tls_config.insecure_skip_verify: not supported: it would send the client secret and tokens to any server; add the server's or the proxy's CA with ca_file instead`,
		"invalid-http-client-proxy-both.yml":  `invalid-http-client-proxy-both.yml:4: partner_center.http_client.proxy_from_environment: if proxy_from_environment is configured, proxy_url must not be configured`,
		"invalid-http-client-ca-missing.yml":  `invalid-http-client-ca-missing.yml:4: partner_center.http_client.tls_config.ca_file: cannot read "testdata/secrets/no-such-ca.pem": no such file or directory`,

		"invalid-type-section.yml":      `invalid-type-section.yml:1: partner_center: expected a mapping, got a string`,
		"invalid-type-int.yml":          `invalid-type-int.yml:2: partner_center.max_concurrent_requests: "four" is not an integer`,
		"invalid-type-duration.yml":     `invalid-type-duration.yml:2: partner_center.request_timeout: "5 parsecs" is not a duration such as 30s or 1m30s`,
		"invalid-type-size.yml":         `invalid-type-size.yml:2: partner_center.max_response_size: "lots" is not a size such as 1048576 or 64MiB`,
		"invalid-type-batches.yml":      `invalid-type-batches.yml:7: customers[0].batches: expected a list, got a string`,
		"invalid-type-customers.yml":    `invalid-type-customers.yml:6: customers: expected a list, got a mapping`,
		"invalid-type-secret.yml":       `invalid-type-secret.yml:4: auth.client_secret: expected a single value, got a list`,
		"invalid-empty-batch-entry.yml": `invalid-empty-batch-entry.yml:9: customers[0].batches[1]: empty entry`,

		"invalid-customer-id.yml":            `invalid-customer-id.yml:6: customers[0].id: "contoso" is not a GUID`,
		"invalid-customer-id-missing.yml":    `invalid-customer-id-missing.yml:6: customers[0].id: missing`,
		"invalid-customer-duplicate.yml":     `invalid-customer-duplicate.yml:8: customers[2].id: "A1B2C3D4-0001-4000-8000-000000000001" is already used by customers[0].id (line 6)`,
		"invalid-batch-id.yml":               `invalid-batch-id.yml:14: customers[1].batches[3]: "12ab" is not a GUID`,
		"invalid-batch-duplicate.yml":        `invalid-batch-duplicate.yml:10: customers[0].batches[2]: "B0000000-0001-4000-8000-000000000001" is already listed at customers[0].batches[0] (line 8)`,
		"invalid-batch-duplicate-across.yml": `invalid-batch-duplicate-across.yml:9: customers[1].batches[0]: "b0000000-0001-4000-8000-000000000001" is already listed at customers[0].batches[0] (line 7)`,

		"invalid-base-url-http.yml":        `invalid-base-url-http.yml:2: partner_center.base_url: must use https (http is allowed only for loopback hosts)`,
		"invalid-base-url-relative.yml":    `invalid-base-url-relative.yml:2: partner_center.base_url: must be an absolute URL such as https://host`,
		"invalid-base-url-unparseable.yml": `invalid-base-url-unparseable.yml:2: partner_center.base_url: not a valid URL`,
		"invalid-base-url-query.yml":       `invalid-base-url-query.yml:2: partner_center.base_url: must not have a query`,
		"invalid-base-url-fragment.yml":    `invalid-base-url-fragment.yml:2: partner_center.base_url: must not have a fragment`,
		"invalid-base-url-userinfo.yml":    `invalid-base-url-userinfo.yml:2: partner_center.base_url: must not contain a user name or password`,
		"invalid-api-version.yml":          `invalid-api-version.yml:2: partner_center.api_version: "1.0" is not an API version such as v1`,
		"invalid-request-timeout.yml":      `invalid-request-timeout.yml:2: partner_center.request_timeout: must be greater than 0, got 0s`,
		"invalid-refresh-interval.yml":     `invalid-refresh-interval.yml:2: partner_center.refresh_interval: must not be negative, got -1m0s`,
		"invalid-max-concurrent-low.yml":   `invalid-max-concurrent-low.yml:2: partner_center.max_concurrent_requests: must be between 1 and 64, got 0`,
		"invalid-max-concurrent-high.yml":  `invalid-max-concurrent-high.yml:2: partner_center.max_concurrent_requests: must be between 1 and 64, got 65`,
		"invalid-max-response-size.yml":    `invalid-max-response-size.yml:2: partner_center.max_response_size: must be greater than 0, got 0`,
		"invalid-max-retry-after.yml":      `invalid-max-retry-after.yml:2: partner_center.max_retry_after: must be greater than 0, got -5s`,
		"invalid-retention.yml":            `invalid-retention.yml:5: retention: "30 days" is not a duration such as 30d, 12h or 1w`,
		"invalid-forget-removed.yml":       `invalid-forget-removed.yml:5: forget_removed_batches_after: "-1h" is not a duration such as 30d, 12h or 1w`,
		"invalid-batch-files.yml": "invalid-batch-files.yml:6: batch_files[0]: \"testdata/uploads/[a-\" is not a valid glob pattern\n" +
			"invalid-batch-files.yml:7: batch_files[1]: empty entry",
		"invalid-probe.yml":     `invalid-probe.yml:6: probe.allow_unconfigured_customer: unknown field (did you mean allow_unconfigured_customers?)`,
		"invalid-type-bool.yml": `invalid-type-bool.yml:6: probe.allow_unconfigured_customers: "yes" is not true or false`,
		"invalid-probe-admission.yml": `invalid-probe-admission.yml:7: probe.forget_unprobed_after: must be greater than 0, got 0s
invalid-probe-admission.yml:8: probe.max_admissions_per_minute: must be at least 1, got 0`,
		"invalid-intake.yml": `invalid-intake.yml:6: intake.bearer_token_files[0]: empty entry
invalid-intake.yml:7: intake.max_batches: must be at least 1, got 0`,
		"invalid-probe-forget.yml":       `invalid-probe-forget.yml:6: probe.forget_unprobed_after: "an hour" is not a duration such as 30d, 12h or 1w`,
		"invalid-type-batch-files.yml":   `invalid-type-batch-files.yml:5: batch_files: expected a list, got a string`,
		"invalid-max-failed-devices.yml": `invalid-max-failed-devices.yml:5: max_failed_devices_per_batch: must not be negative, got -1`,

		"invalid-two-client-secrets.yml":      `invalid-two-client-secrets.yml:5: auth.client_secret_file: more than one credential source: client_secret, client_secret_file (use one of them)`,
		"invalid-access-token-and-secret.yml": `invalid-access-token-and-secret.yml:3: auth.client_secret: more than one credential source: access_token_file, client_secret (access_token_file must be used alone)`,
		"invalid-access-token-and-others.yml": `invalid-access-token-and-others.yml:6: auth.refresh_token_file: more than one credential source: client_secret_file, access_token_file, refresh_token_file (access_token_file must be used alone)`,
		"invalid-no-credentials.yml":          `invalid-no-credentials.yml:1: auth: no credential source: set client_secret or client_secret_file, refresh_token_file (alone or with a client secret), access_token_file, client_certificate_file or federated_token_file`,
		"invalid-no-auth.yml": `invalid-no-auth.yml:1: auth: no credential source: set client_secret or client_secret_file, refresh_token_file (alone or with a client secret), access_token_file, client_certificate_file or federated_token_file
invalid-no-auth.yml:1: auth.client_id: missing (required unless access_token_file is set)
invalid-no-auth.yml:1: auth.tenant_id: missing (required unless token_url or access_token_file is set)`,
		"invalid-client-id-missing.yml":          `invalid-client-id-missing.yml:1: auth.client_id: missing (required unless access_token_file is set)`,
		"invalid-client-id.yml":                  `invalid-client-id.yml:3: auth.client_id: "my-app" is not a GUID`,
		"invalid-tenant-missing.yml":             `invalid-tenant-missing.yml:1: auth.tenant_id: missing (required unless token_url or access_token_file is set)`,
		"invalid-tenant.yml":                     `invalid-tenant.yml:2: auth.tenant_id: "contoso" is neither a GUID nor a domain name`,
		"invalid-token-url-http.yml":             `invalid-token-url-http.yml:5: auth.token_url: must use https (http is allowed only for loopback hosts)`,
		"invalid-secret-file-missing.yml":        `invalid-secret-file-missing.yml:4: auth.client_secret_file: cannot read "testdata/secrets/no-such-file": no such file or directory`,
		"invalid-secret-file-empty.yml":          `invalid-secret-file-empty.yml:4: auth.client_secret_file: "testdata/secrets/empty" is empty`,
		"invalid-secret-file-directory.yml":      `invalid-secret-file-directory.yml:4: auth.client_secret_file: "testdata/secrets" is a directory`,
		"invalid-refresh-token-file-missing.yml": `invalid-refresh-token-file-missing.yml:4: auth.refresh_token_file: cannot read "testdata/secrets/no-such-file": no such file or directory`,
		"invalid-access-token-file-missing.yml":  `invalid-access-token-file-missing.yml:2: auth.access_token_file: cannot read "/nonexistent/access_token": no such file or directory`,

		// Every kind of problem at once, reported in file order.
		"invalid-many.yml": `invalid-many.yml:3: partner_center.base_url: must use https (http is allowed only for loopback hosts)
invalid-many.yml:4: partner_center.request_timout: unknown field (did you mean request_timeout?)
invalid-many.yml:5: partner_center.max_concurrent_requests: "four" is not an integer
invalid-many.yml:8: auth.client_id: "my-app" is not a GUID
invalid-many.yml:10: auth.client_secret_file: more than one credential source: client_secret, client_secret_file (use one of them)
invalid-many.yml:13: customers[0].batches[1]: "nope" is not a GUID
invalid-many.yml:14: customers[1].id: "a1b2c3d4-0001-4000-8000-000000000001" is already used by customers[0].id (line 12)
invalid-many.yml:15: customers[1].batches[0]: "b0000000-0001-4000-8000-000000000001" is already listed at customers[0].batches[0] (line 13)`,
	}

	files, err := filepath.Glob("testdata/invalid-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if _, ok := tests[filepath.Base(file)]; !ok {
			t.Errorf("%s has no expected error in this table", file)
		}
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			// Messages are written with the bare file name; Load sees the path.
			want = "testdata/" + strings.ReplaceAll(want, "\n", "\ntestdata/")
			_, err := Load(filepath.Join("testdata", name))
			if err == nil {
				t.Fatalf("Load succeeded, want error:\n%s", want)
			}
			if err.Error() != want {
				t.Errorf("Load error:\n got  %s\n want %s", err, want)
			}
			for _, secret := range plantedSecrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the secret %q", secret)
				}
			}
		})
	}
}

func TestLoadErrorIsFieldError(t *testing.T) {
	_, err := Load("testdata/invalid-batch-id.yml")
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	want := FieldError{File: "testdata/invalid-batch-id.yml", Line: 14, Path: "customers[1].batches[3]", Msg: `"12ab" is not a GUID`}
	if *fe != want {
		t.Errorf("got %+v, want %+v", *fe, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.yml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v does not wrap os.ErrNotExist", err)
	}
	if want := "reading config file: open testdata/no-such-file.yml: no such file or directory"; err.Error() != want {
		t.Errorf("error:\n got  %s\n want %s", err, want)
	}
}

func TestLoadRefusesAnOversizedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: one byte past the limit costs no disk space.
	if err := f.Truncate(16<<20 + 1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if want := path + ": config file is larger than 16 MiB"; err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %q", err, want)
	}
}

// TestMisspeltKeyAtEveryLevel guards against a decoder that is strict at
// the top level only (yaml.v3 KnownFields is lost under custom unmarshalers).
func TestMisspeltKeyAtEveryLevel(t *testing.T) {
	customers := "customers:\n  - id: a1b2c3d4-0001-4000-8000-000000000001\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"top", validAuth + "custommers: []\n", "t.yml:5: custommers: unknown field (did you mean customers?)"},
		{"partner_center", "partner_center:\n  baseurl: https://x.example\n" + validAuth, "t.yml:2: partner_center.baseurl: unknown field (did you mean base_url?)"},
		{"max_retry_after", "partner_center:\n  max_retry_afer: 1m\n" + validAuth, "t.yml:2: partner_center.max_retry_afer: unknown field (did you mean max_retry_after?)"},
		{"auth", validAuth + "  tennant_id: x\n", "t.yml:5: auth.tennant_id: unknown field (did you mean tenant_id?)"},
		{
			"http_client", "partner_center:\n  http_client:\n    proxy_ulr: http://p.example.com\n" + validAuth,
			"t.yml:3: partner_center.http_client.proxy_ulr: unknown field (did you mean proxy_url?)",
		},
		{
			"tls_config", "partner_center:\n  http_client:\n    tls_config:\n      ca_fil: ca.pem\n" + validAuth,
			"t.yml:4: partner_center.http_client.tls_config.ca_fil: unknown field (did you mean ca_file?)",
		},
		{"customer", validAuth + customers + "    naem: Contoso\n", "t.yml:7: customers[0].naem: unknown field (did you mean name?)"},
		{"unrelated key gets no suggestion", validAuth + "shoe_size: 9\n", "t.yml:5: shoe_size: unknown field"},
		{"short key gets no suggestion", validAuth + customers + "    x: 1\n", "t.yml:7: customers[0].x: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "t.yml", "")
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse error:\n got  %v\n want %s", err, tt.want)
			}
		})
	}
}

// TestParseGood covers valid files not in testdata: each case checks the
// fields it is about.
func TestParseGood(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "access token file alone",
			yaml: "auth:\n  access_token_file: secrets/access_token\n",
			check: func(t *testing.T, c *Config) {
				want := Auth{AccessTokenFile: filepath.Join("testdata", "secrets", "access_token"), Resource: DefaultResource}
				if c.Auth != want || c.Auth.Mode() != AuthAccessTokenFile {
					t.Errorf("auth = %+v, mode %v", c.Auth, c.Auth.Mode())
				}
			},
		},
		{
			name: "refresh token as a public client",
			yaml: "auth:\n  tenant_id: " + tenantID + "\n  client_id: " + clientID + "\n  refresh_token_file: secrets/refresh_token\n",
			check: func(t *testing.T, c *Config) {
				if c.Auth.Mode() != AuthRefreshToken || c.Auth.ClientSecret != "" {
					t.Errorf("mode %v, secret set: %t", c.Auth.Mode(), c.Auth.ClientSecret != "")
				}
			},
		},
		{
			name: "refresh token with an inline client secret",
			yaml: validAuth + "  refresh_token_file: secrets/refresh_token\n",
			check: func(t *testing.T, c *Config) {
				if c.Auth.Mode() != AuthRefreshToken || c.Auth.ClientSecret.Reveal() != "s3cr3t-value" {
					t.Errorf("mode %v, secret as configured: %t", c.Auth.Mode(), c.Auth.ClientSecret.Reveal() == "s3cr3t-value")
				}
			},
		},
		{
			name: "token_url instead of tenant_id",
			yaml: "auth:\n  client_id: " + clientID + "\n  client_secret: x\n  token_url: https://login.example.com/t/oauth2/token?api-version=1.0\n",
			check: func(t *testing.T, c *Config) {
				if c.Auth.TokenURL != "https://login.example.com/t/oauth2/token?api-version=1.0" || c.Auth.TenantID != "" {
					t.Errorf("auth = %+v", c.Auth)
				}
			},
		},
		{
			name: "tenant_id is path-escaped into the default token_url",
			yaml: "auth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: " + clientID + "\n  client_secret: x\n",
			check: func(t *testing.T, c *Config) {
				if want := "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/token"; c.Auth.TokenURL != want {
					t.Errorf("token_url = %q, want %q", c.Auth.TokenURL, want)
				}
			},
		},
		{
			name:  "http to a loopback IPv4 address",
			yaml:  "partner_center:\n  base_url: http://127.0.0.2:8080/\n" + validAuth,
			check: wantBaseURL("http://127.0.0.2:8080"),
		},
		{
			name:  "http to the loopback IPv6 address with a path prefix",
			yaml:  "partner_center:\n  base_url: http://[::1]:9000/pc//\n" + validAuth,
			check: wantBaseURL("http://[::1]:9000/pc"),
		},
		{
			name:  "http to localhost",
			yaml:  "partner_center:\n  base_url: HTTP://LocalHost:8080\n" + validAuth,
			check: wantBaseURL("HTTP://LocalHost:8080"),
		},
		{
			name:  "http to LOCALHOST with the trailing dot of a fully qualified name",
			yaml:  "partner_center:\n  base_url: http://LOCALHOST.:1234\n" + validAuth,
			check: wantBaseURL("http://LOCALHOST.:1234"),
		},
		{
			name: "token_url over http to LOCALHOST",
			yaml: "auth:\n  client_id: " + clientID + "\n  client_secret: x\n  token_url: http://LOCALHOST:1234/t/oauth2/token\n",
			check: func(t *testing.T, c *Config) {
				if c.Auth.TokenURL != "http://LOCALHOST:1234/t/oauth2/token" {
					t.Errorf("token_url = %q", c.Auth.TokenURL)
				}
			},
		},
		{
			name: "sizes and durations in their other forms",
			yaml: "partner_center:\n  max_response_size: 1GB\n  request_timeout: 1m30s\n  refresh_interval: 250ms\n" + validAuth,
			check: func(t *testing.T, c *Config) {
				pc := c.PartnerCenter
				if pc.MaxResponseSize != 1<<30 || pc.RequestTimeout != 90*time.Second || pc.RefreshInterval != 250*time.Millisecond {
					t.Errorf("partner_center = %+v", pc)
				}
			},
		},
		{
			name:  "size as a plain number of bytes",
			yaml:  "partner_center:\n  max_response_size: 1048576\n" + validAuth,
			check: func(t *testing.T, c *Config) { wantInt(t, c.PartnerCenter.MaxResponseSize, 1<<20) },
		},
		{
			name: "empty and null values take the default",
			yaml: "partner_center:\n  base_url: ''\n  api_version: ~\n  request_timeout:\nmax_failed_devices_per_batch: null\ncustomers:\n" + validAuth,
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c.PartnerCenter, DefaultPartnerCenter) || c.MaxFailedDevicesPerBatch != DefaultMaxFailedDevicesPerBatch || c.Customers != nil {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "aliases are followed",
			yaml: validAuth + "customers:\n  - id: a1b2c3d4-0001-4000-8000-000000000001\n    batches: &same\n      - b0000000-0001-4000-8000-000000000001\n" +
				"  - id: a1b2c3d4-0002-4000-8000-000000000002\n    name: &name Fabrikam\n  - id: a1b2c3d4-0003-4000-8000-000000000003\n    name: *name\n",
			check: func(t *testing.T, c *Config) {
				want := []Customer{
					{ID: "a1b2c3d4-0001-4000-8000-000000000001", Batches: []string{"b0000000-0001-4000-8000-000000000001"}},
					{ID: "a1b2c3d4-0002-4000-8000-000000000002", Name: "Fabrikam"},
					{ID: "a1b2c3d4-0003-4000-8000-000000000003", Name: "Fabrikam"},
				}
				if !reflect.DeepEqual(c.Customers, want) {
					t.Errorf("customers = %+v", c.Customers)
				}
			},
		},
		{
			name:  "an empty customer list",
			yaml:  validAuth + "customers: []\n",
			check: func(t *testing.T, c *Config) { wantInt(t, len(c.Customers), 0) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), "t.yml", "testdata")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func wantBaseURL(want string) func(*testing.T, *Config) {
	return func(t *testing.T, c *Config) {
		t.Helper()
		if c.PartnerCenter.BaseURL != want {
			t.Errorf("base_url = %q, want %q", c.PartnerCenter.BaseURL, want)
		}
	}
}

func wantInt[T int | int64](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}

// TestSecretFilePaths checks that relative credential files are found next
// to the configuration file, not in the working directory.
func TestSecretFilePaths(t *testing.T) {
	secretFile, err := filepath.Abs("testdata/secrets/client_secret")
	if err != nil {
		t.Fatal(err)
	}
	relative := []byte("auth:\n  tenant_id: " + tenantID + "\n  client_id: " + clientID + "\n  client_secret_file: secrets/client_secret\n")
	absolute := bytes.Replace(relative, []byte("secrets/client_secret"), []byte(secretFile), 1)
	emptyDir := t.TempDir()

	tests := []struct {
		name     string
		data     []byte
		baseDir  string
		wantFile string
		wantErr  string
	}{
		{name: "relative to baseDir", data: relative, baseDir: "testdata", wantFile: filepath.Join("testdata", "secrets", "client_secret")},
		{
			name: "relative, file not in baseDir", data: relative, baseDir: emptyDir,
			wantErr: fmt.Sprintf("t.yml:4: auth.client_secret_file: cannot read %q: no such file or directory", filepath.Join(emptyDir, "secrets", "client_secret")),
		},
		{name: "absolute path ignores baseDir", data: absolute, baseDir: emptyDir, wantFile: secretFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.data, "t.yml", tt.baseDir)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Parse error:\n got  %v\n want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Auth.ClientSecretFile != tt.wantFile {
				t.Errorf("client_secret_file = %q, want %q", c.Auth.ClientSecretFile, tt.wantFile)
			}
			// The CRLF the file ends with is trimmed.
			if c.Auth.ClientSecret.Reveal() != "file-s3cr3t" {
				t.Errorf("client secret not read as expected (%d bytes)", len(c.Auth.ClientSecret.Reveal()))
			}
		})
	}
}

func TestAuthMode(t *testing.T) {
	tests := []struct {
		auth     Auth
		want     AuthMode
		wantName string
	}{
		{Auth{ClientSecret: "x"}, AuthClientCredentials, "client_credentials"},
		{Auth{ClientSecretFile: "f"}, AuthClientCredentials, "client_credentials"},
		{Auth{RefreshTokenFile: "f"}, AuthRefreshToken, "refresh_token"},
		{Auth{RefreshTokenFile: "f", ClientSecret: "x"}, AuthRefreshToken, "refresh_token"},
		{Auth{AccessTokenFile: "f"}, AuthAccessTokenFile, "access_token_file"},
	}
	for _, tt := range tests {
		if got := tt.auth.Mode(); got != tt.want || got.String() != tt.wantName {
			t.Errorf("%+v: Mode() = %v (%d), want %s", tt.auth, got, got, tt.wantName)
		}
	}
	if got := AuthMode(7).String(); got != "AuthMode(7)" {
		t.Errorf("AuthMode(7).String() = %q", got)
	}
}

func TestSummaryAndBatches(t *testing.T) {
	good, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := Load("testdata/good-minimal.yml")
	if err != nil {
		t.Fatal(err)
	}
	one := &Config{
		Auth:      Auth{AccessTokenFile: "f"},
		Customers: []Customer{{ID: "c", Batches: []string{"b"}}},
		PartnerCenter: PartnerCenter{
			BaseURL: "http://127.0.0.1:1234",
		},
	}
	tests := []struct {
		name        string
		cfg         *Config
		wantSummary string
		wantBatches int
	}{
		{
			name:        "good",
			cfg:         good,
			wantSummary: "3 customers, 3 batches, auth refresh_token, base_url https://partner.partnercenterapi.microsoftonline.cn",
			wantBatches: 3,
		},
		{
			name:        "minimal",
			cfg:         minimal,
			wantSummary: "0 customers, 0 batches, auth client_credentials, base_url https://api.partnercenter.microsoft.com",
			wantBatches: 0,
		},
		{
			name:        "singular",
			cfg:         one,
			wantSummary: "1 customer, 1 batch, auth access_token_file, base_url http://127.0.0.1:1234",
			wantBatches: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.Summary(); got != tt.wantSummary {
				t.Errorf("Summary:\n got  %s\n want %s", got, tt.wantSummary)
			}
			if got := tt.cfg.BatchCount(); got != tt.wantBatches {
				t.Errorf("BatchCount = %d, want %d", got, tt.wantBatches)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"request_timout", "request_timeout", 1},
		{"client_secert", "client_secret", 1},
		{"ab", "ba", 1},
		{"abc", "ca", 3},
		{"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestLoopbackRuleMatchesClient makes sure that a base_url accepted here
// is accepted by partnercenter.NewClient too, and one refused here is
// refused there, each with its usual message.
func TestLoopbackRuleMatchesClient(t *testing.T) {
	tests := []struct {
		url, configErr, clientErr string
	}{
		{url: "http://LOCALHOST:1234"},
		{
			url:       "http://example.com",
			configErr: "t.yml:2: partner_center.base_url: must use https (http is allowed only for loopback hosts)",
			clientErr: `base URL "http://example.com": must be https (plain http only on a loopback address)`,
		},
	}
	tokens := auth.NewAccessTokenFileSource("/nonexistent", nil)
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := Parse([]byte("partner_center:\n  base_url: "+tt.url+"\n"+validAuth), "t.yml", "")
			if got := errorText(err); got != tt.configErr {
				t.Errorf("config error = %q, want %q", got, tt.configErr)
			}
			_, err = partnercenter.NewClient(partnercenter.ClientConfig{BaseURL: tt.url, Tokens: tokens})
			if got := errorText(err); got != tt.clientErr {
				t.Errorf("client error = %q, want %q", got, tt.clientErr)
			}
		})
	}
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
