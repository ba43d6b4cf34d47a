// Package config loads, defaults and validates the exporter's YAML
// configuration file (partnercenter.yml by default).
//
// The package does no network I/O. Load reads the configuration file and
// the client secret file; it only checks that token files exist and are
// readable, because the token source reads them again whenever it needs a
// token.
//
// Conventions the loader applies, so that callers need not repeat them:
//
//   - A key that is absent, empty or null takes its default; an explicit 0
//     (refresh_interval, max_failed_devices_per_batch) is kept.
//   - Customer IDs and batch tracking IDs are stored in lower case. The API
//     treats them case-insensitively, and lower case keeps metric labels
//     stable whatever spelling the file uses.
//   - base_url is stored without a trailing slash.
//   - Relative file paths are resolved against the configuration file's
//     directory and stored resolved.
//   - A batch tracking ID may appear only once in the whole file: a batch
//     belongs to exactly one customer, so a second listing is a copy-and-paste
//     mistake rather than a second batch.
//
// Every error names the file, the line and the field path, in the form
// "<file>:<line>: <path>: <message>"; Parse reports all problems it finds,
// one per line, in file order. YAML syntax errors are the exception: they
// keep yaml.v3's own wording (see syntaxError). Error messages never contain
// a secret.
package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/plural"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// Defaults. They are applied in one place, defaultConfig, except base_url,
// token_url and resource, which applyDerivedDefaults derives from cloud (and
// the token URL from tenant_id).
const (
	// DefaultBaseURL is the global Partner Center endpoint; see clouds for
	// the China cloud (operated by 21Vianet).
	DefaultBaseURL = "https://api.partnercenter.microsoft.com"
	// DefaultResource is the OAuth2 resource (audience) requested for
	// Partner Center tokens.
	DefaultResource = "https://api.partnercenter.microsoft.com"
	// DefaultTokenURLTemplate is the Microsoft Entra ID v1 token endpoint;
	// "{tenant_id}" is replaced with the path-escaped tenant_id.
	DefaultTokenURLTemplate = "https://login.microsoftonline.com/{tenant_id}/oauth2/token"
	// DefaultTokenURLV2Template is the v2 token endpoint, used by the
	// certificate and workload identity credentials, which request the
	// scope {resource}/.default.
	DefaultTokenURLV2Template = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
	// DefaultMaxFailedDevicesPerBatch is how many failed devices per batch
	// are kept for the failed-device pages.
	DefaultMaxFailedDevicesPerBatch = partnercenter.DefaultMaxFailedDevices
	// DefaultForgetUnprobedAfter is how long a batch /probe admitted
	// without its being listed stays known once probes of it stop.
	DefaultForgetUnprobedAfter = time.Hour
	// DefaultMaxAdmissionsPerMinute bounds how fast /probe admits batches
	// that are not listed.
	DefaultMaxAdmissionsPerMinute = 60
	// DefaultIntakeMaxBatches bounds the batches registered through the
	// intake API.
	DefaultIntakeMaxBatches = 50000
	// DefaultForgetRemovedBatchesAfter is how long what is known of a batch
	// outlives its removal from the configuration and the batch files.
	DefaultForgetRemovedBatchesAfter = 24 * time.Hour
)

// DefaultPartnerCenter holds the defaults of the partner_center block.
// Treat it as read-only.
var DefaultPartnerCenter = PartnerCenter{
	BaseURL:               DefaultBaseURL,
	APIVersion:            "v1",
	RequestTimeout:        30 * time.Second,
	MaxConcurrentRequests: 4,
	RefreshInterval:       time.Minute,
	MaxResponseSize:       256 << 20,
	MaxRetryAfter:         10 * time.Minute,
}

// Config is the whole configuration file.
type Config struct {
	// Cloud names the Partner Center instance: "public" or "china". It
	// sets the defaults of base_url, auth.token_url and auth.resource.
	Cloud         string        `yaml:"cloud"`
	PartnerCenter PartnerCenter `yaml:"partner_center"`
	Auth          Auth          `yaml:"auth"`
	// MaxFailedDevicesPerBatch caps how many failed devices per batch are
	// kept for the failed-device pages; 0 keeps none.
	MaxFailedDevicesPerBatch int `yaml:"max_failed_devices_per_batch"`
	// Retention retires a finished batch whose completion is longer ago;
	// 0 keeps every batch.
	Retention time.Duration `yaml:"retention"`
	// ForgetRemovedBatchesAfter is how long what is known of a batch (its
	// last read, in memory and in --storage.path) is kept once it is no
	// longer listed, so that a batch listed again soon after (a batch file
	// missing for a moment, a reload undone) is not read again; 0 forgets
	// it at once.
	ForgetRemovedBatchesAfter time.Duration `yaml:"forget_removed_batches_after"`
	// BatchFiles are globs of files listing batches, one per line; Load
	// resolves relative ones against the configuration file's directory.
	BatchFiles []string `yaml:"batch_files,omitempty"`
	// Probe shapes the /probe endpoint.
	Probe Probe `yaml:"probe"`
	// Intake shapes POST /api/v1/batches, through which upload pipelines
	// hand over their batches.
	Intake    Intake     `yaml:"intake"`
	Customers []Customer `yaml:"customers"`
}

// Intake shapes the batch intake API. It is off unless BearerTokenFiles
// names at least one file.
type Intake struct {
	// BearerTokenFiles each hold one token that a request may present as
	// "Authorization: Bearer <token>". They are read again when they
	// change, so a token can be rotated without a reload. Relative paths
	// are resolved against the configuration file's directory.
	BearerTokenFiles []string `yaml:"bearer_token_files,omitempty"`
	// MaxBatches bounds the batches registered through the intake.
	MaxBatches int `yaml:"max_batches"`
}

// Enabled reports whether the intake API is served.
func (i Intake) Enabled() bool { return len(i.BearerTokenFiles) > 0 }

// Probe shapes GET /probe, which reads the batches named in its URL.
type Probe struct {
	// AllowUnconfiguredCustomers lets /probe read batches of customers the
	// configuration does not list; otherwise they are refused with 403.
	// It implies AllowUnlistedBatches.
	AllowUnconfiguredCustomers bool `yaml:"allow_unconfigured_customers"`
	// AllowUnlistedBatches lets /probe read batches that neither the
	// configuration nor a batch file lists; otherwise they are refused
	// with 404, so that whoever reaches /probe cannot spend the API quota
	// on tracking IDs of their choosing.
	AllowUnlistedBatches bool `yaml:"allow_unlisted_batches"`
	// ForgetUnprobedAfter is how long an admitted unlisted batch stays
	// known once /probe stops naming it.
	ForgetUnprobedAfter time.Duration `yaml:"forget_unprobed_after"`
	// MaxAdmissionsPerMinute bounds how many unlisted batches /probe
	// admits per minute (with a burst of as many); beyond it /probe
	// answers 429.
	MaxAdmissionsPerMinute int `yaml:"max_admissions_per_minute"`
}

// UnlistedAllowed reports whether /probe may read batches that are not
// listed: allow_unconfigured_customers implies allow_unlisted_batches.
func (p Probe) UnlistedAllowed() bool {
	return p.AllowUnlistedBatches || p.AllowUnconfiguredCustomers
}

// PartnerCenter says where and how the API is called.
type PartnerCenter struct {
	// BaseURL has no trailing slash; requests go to
	// {BaseURL}/{APIVersion}/customers/{customer}/batchJobStatus/{batch}.
	BaseURL    string `yaml:"base_url"`
	APIVersion string `yaml:"api_version"`
	// RequestTimeout bounds one HTTP request.
	RequestTimeout        time.Duration `yaml:"request_timeout"`
	MaxConcurrentRequests int           `yaml:"max_concurrent_requests"`
	// RefreshInterval is how old the last read of an unfinished batch must
	// be before a scrape reads it again; 0 reads it on every scrape.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MaxResponseSize caps one response body, in bytes.
	MaxResponseSize int64 `yaml:"max_response_size"`
	// MaxRetryAfter caps how long a 429's Retry-After holds back every
	// request, so that a bogus or hostile value cannot silence the
	// exporter for days.
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
	// HTTPClient is the proxy and TLS setup of API and token requests.
	HTTPClient HTTPClient `yaml:"http_client,omitempty"`
}

// Auth holds the credentials for the Partner Center API. See Mode for how
// the credential fields combine.
type Auth struct {
	TenantID string `yaml:"tenant_id"`
	ClientID string `yaml:"client_id"`
	// ClientSecret is given inline or read from ClientSecretFile by Load.
	ClientSecret     Secret `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// RefreshTokenFile and AccessTokenFile are read by the token source at
	// run time, so that a rotated token is picked up without a reload.
	RefreshTokenFile string `yaml:"refresh_token_file"`
	AccessTokenFile  string `yaml:"access_token_file"`
	// ClientCertificateFile is a PEM file with the certificate (chain) and
	// its RSA key; the token source reads it at each token request.
	ClientCertificateFile string `yaml:"client_certificate_file"`
	// ClientCertificatePasswordFile holds the password of an encrypted
	// (PKCS#8) key in ClientCertificateFile; read with it.
	ClientCertificatePasswordFile string `yaml:"client_certificate_password_file"`
	// SendCertificateChain adds the chain (x5c) to the client assertion,
	// for subject name and issuer authentication.
	SendCertificateChain bool `yaml:"send_certificate_chain"`
	// FederatedTokenFile holds a Kubernetes service account token for
	// workload identity federation; it is read at each token request.
	// See applyEnvDefaults for the defaults the Azure Workload Identity
	// webhook's variables give it.
	FederatedTokenFile string `yaml:"federated_token_file"`
	TokenURL           string `yaml:"token_url"`
	Resource           string `yaml:"resource"`
}

// Customer is one customer tenant and the batches tracked for it.
type Customer struct {
	ID      string   `yaml:"id"`
	Name    string   `yaml:"name,omitempty"`
	Batches []string `yaml:"batches"`
}

// AuthMode is how the exporter obtains its access tokens.
type AuthMode int

// The authentication modes, chosen by which credential fields are set.
const (
	// AuthClientCredentials is App-only authentication: the client_credentials
	// grant with client_secret or client_secret_file.
	AuthClientCredentials AuthMode = iota
	// AuthRefreshToken is App+User authentication (the Secure Application
	// Model): the refresh_token grant, with or without a client secret.
	AuthRefreshToken
	// AuthAccessTokenFile uses a token obtained and renewed by something else.
	AuthAccessTokenFile
	// AuthClientCertificate is App-only authentication with a client
	// assertion signed by a certificate's key (v2 endpoint).
	AuthClientCertificate
	// AuthWorkloadIdentity is App-only authentication with a federated
	// token such as a Kubernetes service account token (v2 endpoint).
	AuthWorkloadIdentity
)

// String returns the mode's name as used in logs and the summary line.
func (m AuthMode) String() string {
	switch m {
	case AuthClientCredentials:
		return "client_credentials"
	case AuthRefreshToken:
		return "refresh_token"
	case AuthAccessTokenFile:
		return "access_token_file"
	case AuthClientCertificate:
		return "client_certificate"
	case AuthWorkloadIdentity:
		return "workload_identity"
	default:
		return fmt.Sprintf("AuthMode(%d)", int(m))
	}
}

// Mode tells which grant the credentials call for. It assumes a validated
// Auth, where access_token_file, client_certificate_file and
// federated_token_file each stand alone, and refresh_token_file wins over
// a client secret alone.
func (a Auth) Mode() AuthMode {
	switch {
	case a.AccessTokenFile != "":
		return AuthAccessTokenFile
	case a.ClientCertificateFile != "":
		return AuthClientCertificate
	case a.FederatedTokenFile != "":
		return AuthWorkloadIdentity
	case a.RefreshTokenFile != "":
		return AuthRefreshToken
	default:
		return AuthClientCredentials
	}
}

// maxConfigFileSize bounds the configuration file: even thousands of
// batches take well under a megabyte, and a wrong path (a log, /dev/zero)
// must not be read into memory whole.
const maxConfigFileSize = 16 << 20

// Load reads, defaults and validates the configuration file at path. Relative
// file paths inside it are resolved against path's directory.
func Load(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, filepath.Dir(path))
}

// readConfigFile reads at most one byte more than maxConfigFileSize, so
// that a file that grows while it is read is refused as well.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only: a close error loses nothing
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	if len(data) > maxConfigFileSize {
		return nil, &FieldError{File: path, Msg: fmt.Sprintf("config file is larger than %d MiB", maxConfigFileSize>>20)}
	}
	return data, nil
}

// Parse does what Load does on a file's content. filename is used in error
// messages only; relative file paths are resolved against baseDir (the
// current directory when baseDir is empty).
func Parse(data []byte, filename, baseDir string) (*Config, error) {
	root, perr := parseDocument(data)
	if perr != nil {
		perr.File = filename
		return nil, perr
	}
	c, found := decode(root)
	applyDerivedDefaults(c)
	resolvePaths(c, baseDir)
	v := validator{found}
	v.config(c)
	v.secretFiles(&c.Auth)
	if err := v.err(filename); err != nil {
		return nil, err
	}
	normalize(c)
	return c, nil
}

// defaultConfig is the configuration of an empty file: the single place
// where static defaults are applied. Decoding overwrites what the file sets.
func defaultConfig() *Config {
	pc := DefaultPartnerCenter
	pc.BaseURL = "" // derived from cloud unless the file sets it
	return &Config{
		Cloud:                     DefaultCloud,
		PartnerCenter:             pc,
		MaxFailedDevicesPerBatch:  DefaultMaxFailedDevicesPerBatch,
		ForgetRemovedBatchesAfter: DefaultForgetRemovedBatchesAfter,
		Probe: Probe{
			ForgetUnprobedAfter:    DefaultForgetUnprobedAfter,
			MaxAdmissionsPerMinute: DefaultMaxAdmissionsPerMinute,
		},
		Intake: Intake{MaxBatches: DefaultIntakeMaxBatches},
	}
}

// RedactedYAML returns the effective configuration (defaults filled in) as
// YAML, for display. Secrets show as "<secret>" and unset ones as "". When
// the client secret came from client_secret_file, only the file is shown,
// as in the file the operator wrote.
func (c *Config) RedactedYAML() ([]byte, error) {
	shown := *c
	if shown.Auth.ClientSecretFile != "" {
		shown.Auth.ClientSecret = ""
	}
	out, err := yaml.Marshal(&shown)
	if err != nil {
		return nil, fmt.Errorf("marshalling config: %w", err)
	}
	return out, nil
}

// Summary describes the configuration in one line for the startup and
// reload logs.
func (c *Config) Summary() string {
	return fmt.Sprintf("%s, %s, auth %s, base_url %s",
		plural.Count(len(c.Customers), "customer", "customers"),
		plural.Count(c.BatchCount(), "batch", "batches"),
		c.Auth.summary(), c.PartnerCenter.BaseURL)
}

// summary names the mode and, for workload identity, whose defaults may
// come from the environment, the effective identity and token file.
func (a Auth) summary() string {
	if a.Mode() != AuthWorkloadIdentity {
		return a.Mode().String()
	}
	return fmt.Sprintf("%s (tenant_id %s, client_id %s, federated_token_file %s)",
		a.Mode(), a.TenantID, a.ClientID, a.FederatedTokenFile)
}

// BatchCount returns the number of configured batches over all customers.
func (c *Config) BatchCount() int {
	n := 0
	for _, cust := range c.Customers {
		n += len(cust.Batches)
	}
	return n
}
