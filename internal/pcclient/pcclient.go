// Package pcclient builds the Partner Center client that the daemon and
// the wait command share from the configuration: one transport, the
// token source of the configured credential, the read settings' stamp.
package pcclient

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/auth"
)

// New builds a Partner Center client from the configuration. httpc is
// the transport API and token requests share (see NewHTTPClient); hold is
// the 429 hold of the partner tenant, nil for one of the client's own.
func New(cfg *config.Config, httpc *http.Client, obs partnercenter.Observer, hold *partnercenter.Hold) (*partnercenter.Client, error) {
	// Token requests are shared by many callers and may outlive the one
	// that started them, so they get their own bound.
	tokenHTTP := &http.Client{Transport: httpc.Transport, Timeout: cfg.PartnerCenter.RequestTimeout}
	tokens, err := tokenSource(cfg.Auth, tokenHTTP, obs)
	if err != nil {
		return nil, err
	}
	return partnercenter.NewClient(partnercenter.ClientConfig{
		BaseURL:         cfg.PartnerCenter.BaseURL,
		APIVersion:      cfg.PartnerCenter.APIVersion,
		HTTPClient:      httpc,
		RequestTimeout:  cfg.PartnerCenter.RequestTimeout,
		Tokens:          tokens,
		UserAgent:       UserAgent(),
		MaxResponseSize: cfg.PartnerCenter.MaxResponseSize,
		MaxRetryAfter:   cfg.PartnerCenter.MaxRetryAfter,
		Decode:          partnercenter.DecodeOptions{MaxFailedDevices: cfg.MaxFailedDevicesPerBatch},
		Observer:        obs,
		Hold:            hold,
		ReadStamp:       ReadStamp(cfg),
	})
}

// UserAgent is what every request of the exporter says it is.
func UserAgent() string {
	v := version.Version
	if v == "" {
		v = "unknown" // A build without the Makefile's -ldflags.
	}
	return "partnercenter_exporter/" + v
}

func tokenSource(a config.Auth, httpc *http.Client, obs partnercenter.Observer) (partnercenter.TokenSource, error) {
	secret := a.ClientSecret.Reveal
	assertion := auth.ClientAssertionConfig{TokenURL: a.TokenURL, ClientID: a.ClientID, Resource: a.Resource}
	switch a.Mode() {
	case config.AuthClientCredentials:
		return auth.NewClientCredentialsSource(auth.ClientCredentials{
			TokenURL: a.TokenURL, ClientID: a.ClientID, Resource: a.Resource, ClientSecret: secret,
			ClientSecretFile: a.ClientSecretFile,
		}, httpc, obs), nil
	case config.AuthRefreshToken:
		if a.ClientSecret.Reveal() == "" {
			secret = nil // A public client sends no secret.
		}
		return auth.NewRefreshTokenSource(auth.RefreshTokenConfig{
			TokenURL: a.TokenURL, ClientID: a.ClientID, Resource: a.Resource, ClientSecret: secret,
			ClientSecretFile: a.ClientSecretFile, RefreshTokenFile: a.RefreshTokenFile,
		}, httpc, obs), nil
	case config.AuthAccessTokenFile:
		return auth.NewAccessTokenFileSource(a.AccessTokenFile, obs), nil
	case config.AuthClientCertificate:
		return auth.NewCertificateSource(auth.CertificateConfig{
			ClientAssertionConfig: assertion,
			CertificateFile:       a.ClientCertificateFile, PasswordFile: a.ClientCertificatePasswordFile,
			SendCertificateChain: a.SendCertificateChain,
		}, httpc, obs), nil
	case config.AuthWorkloadIdentity:
		return auth.NewFederatedTokenSource(auth.FederatedTokenConfig{
			ClientAssertionConfig: assertion, TokenFile: a.FederatedTokenFile,
		}, httpc, obs), nil
	}
	return nil, errors.New("no credentials configured")
}

// DefaultHTTPClient is the client of an empty http_client block: no
// proxy, not even one from the environment, and the system's CAs.
func DefaultHTTPClient() *http.Client {
	c, err := NewHTTPClient(config.HTTPClient{})
	if err != nil {
		panic(err) // empty settings name no file that could fail to load
	}
	return c
}

// NewHTTPClient builds the one transport API and token requests share.
// prometheus/common supplies the proxy and TLS setup; the transport itself
// stays a clone of Go's default rather than NewRoundTripperFromConfig's,
// which turns off gzip for our large batch bodies and hides the
// *http.Transport. Each request is bounded by its own context, so the
// client has no timeout.
func NewHTTPClient(hc config.HTTPClient) (*http.Client, error) {
	tlsConfig, err := promconfig.NewTLSConfig(&hc.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("http_client.tls_config: %w", err)
	}
	// Proxy() caches its function in the struct: call it on this copy, so
	// that the live config stays comparable across reloads.
	proxy := hc.ProxyConfig
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = proxy.Proxy()
	t.ProxyConnectHeader = proxy.GetProxyConnectHeader()
	t.TLSClientConfig = tlsConfig
	// One idle connection for every request that may run at once, so that
	// a round of max_concurrent_requests reads reuses its connections
	// instead of dialling (and handshaking TLS) again; idle ones close
	// after the transport's IdleConnTimeout.
	t.MaxIdleConnsPerHost = config.MaxConcurrentRequestsLimit
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}, nil
}

// ReadStamp names the settings that shape what a read returns: which API
// (base URL and version), which partner and identity (tenant, client ID
// and kind of credential) and how many failed devices are kept. A read is
// stored with the stamp of the client that made it; a stored read whose
// stamp is not the current client's is read again, after a reload and
// after a restart alike. Secrets are not part of it: rotating one changes
// nothing that is read. It is a short hash, stored with every record.
func ReadStamp(cfg *config.Config) string {
	parts := []string{
		cfg.PartnerCenter.BaseURL, cfg.PartnerCenter.APIVersion,
		cfg.Auth.TenantID, cfg.Auth.ClientID, cfg.Auth.Mode().String(),
		strconv.Itoa(cfg.MaxFailedDevicesPerBatch),
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8])
}
