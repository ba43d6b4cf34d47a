package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// The certificate and workload identity sources use the Microsoft identity
// platform v2 token endpoint (https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token)
// with a scope instead of v1's resource, as Microsoft documents client
// assertions for it.

const (
	// ClientAssertionType is the client_assertion_type of a signed JWT.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// assertionLifetime is how long a client assertion is valid; Entra ID
	// refuses longer ones, and each is used for one request only.
	assertionLifetime = 10 * time.Minute
	// maxCertificateFileBytes bounds a certificate file: a chain and a key
	// are a few kilobytes.
	maxCertificateFileBytes = 1 << 20
)

// ClientAssertionConfig are the settings shared by the sources that
// authenticate the application with a client assertion.
type ClientAssertionConfig struct {
	// TokenURL is the v2 token endpoint; it is also the assertion's aud.
	TokenURL string
	ClientID string
	// Resource is the API the token is for, e.g.
	// https://api.partnercenter.microsoft.com; the v2 endpoint is asked
	// for the scope {Resource}/.default.
	Resource string
}

// scope is the v2 endpoint's name for all the app's permissions on the
// resource.
func (c ClientAssertionConfig) scope() string {
	return strings.TrimRight(c.Resource, "/") + "/.default"
}

// CertificateConfig is a client certificate credential.
type CertificateConfig struct {
	ClientAssertionConfig
	// CertificateFile is a PEM file with the certificate, its chain and
	// its RSA private key. It is read at each token request, so that a
	// renewed certificate is used without a reload.
	CertificateFile string
	// PasswordFile holds the password of an encrypted (PKCS#8 PBES2)
	// private key; it is read with CertificateFile.
	PasswordFile string
	// SendCertificateChain adds the chain to the assertion (x5c), for
	// subject name and issuer authentication.
	SendCertificateChain bool
}

// FederatedTokenConfig is a workload identity federation credential.
type FederatedTokenConfig struct {
	ClientAssertionConfig
	// TokenFile holds a token of another identity provider, such as a
	// Kubernetes service account token. It is read at each token request,
	// because the kubelet replaces it before it expires.
	TokenFile string
}

// NewCertificateSource returns a TokenSource that signs a client assertion
// with the certificate's key for each token request. hc and obs are as
// for NewClientCredentialsSource.
func NewCertificateSource(c CertificateConfig, hc *http.Client, obs partnercenter.Observer) partnercenter.TokenSource {
	return newCertificateSource(c, hc, obs, time.Now)
}

func newCertificateSource(c CertificateConfig, hc *http.Client, obs partnercenter.Observer, now func() time.Time) *cachingTokenSource {
	assert := func() (string, error) {
		cert, err := ReadClientCertificate(c.CertificateFile, c.PasswordFile)
		if err != nil {
			return "", err
		}
		return cert.assertion(c.ClientID, c.TokenURL, c.SendCertificateChain, now())
	}
	return newAssertionSource(c.ClientAssertionConfig, assert, []string{c.CertificateFile, c.PasswordFile}, hc, obs, now)
}

// NewFederatedTokenSource returns a TokenSource that presents the token in
// c.TokenFile as the client assertion. hc and obs are as for
// NewClientCredentialsSource.
func NewFederatedTokenSource(c FederatedTokenConfig, hc *http.Client, obs partnercenter.Observer) partnercenter.TokenSource {
	return newFederatedTokenSource(c, hc, obs, time.Now)
}

func newFederatedTokenSource(c FederatedTokenConfig, hc *http.Client, obs partnercenter.Observer, now func() time.Time) *cachingTokenSource {
	assert := func() (string, error) {
		token, _, err := readTokenFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("reading federated token: %w", err)
		}
		return token, nil
	}
	return newAssertionSource(c.ClientAssertionConfig, assert, []string{c.TokenFile}, hc, obs, now)
}

// newAssertionSource: assert reads its credential from the files inputs
// names.
func newAssertionSource(c ClientAssertionConfig, assert func() (string, error), inputs []string, hc *http.Client, obs partnercenter.Observer, now func() time.Time) *cachingTokenSource {
	hc = tokenHTTPClient(hc)
	grant := assertionGrant{cfg: c, assert: assert, endpoint: tokenEndpoint{url: c.TokenURL, hc: hc}}
	return newCachingTokenSource(grant.fetch, inputs, hc, obs, now)
}

// assertionGrant is the client credentials grant with a client assertion
// in place of a secret.
type assertionGrant struct {
	cfg      ClientAssertionConfig
	assert   func() (string, error)
	endpoint tokenEndpoint
}

func (g assertionGrant) fetch(ctx context.Context) (issuedToken, error) {
	assertion, err := g.assert()
	if err != nil {
		return issuedToken{}, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {g.cfg.ClientID},
		"scope":                 {g.cfg.scope()},
		"client_assertion_type": {ClientAssertionType},
		"client_assertion":      {assertion},
	}
	answer, err := g.endpoint.request(ctx, form, assertion)
	if err != nil {
		return issuedToken{}, err
	}
	return answer.issuedToken, nil
}

// ClientCertificate is a certificate chain, leaf first, and the leaf's key.
type ClientCertificate struct {
	Chain []*x509.Certificate
	Key   *rsa.PrivateKey
}

// ReadClientCertificate reads and parses a certificate file, with the
// password in passwordFile ("" for none). Errors name the files, never
// their content.
func ReadClientCertificate(path, passwordFile string) (*ClientCertificate, error) {
	data, err := readBounded(path, maxCertificateFileBytes)
	if err != nil {
		return nil, fmt.Errorf("reading client certificate: %w", err)
	}
	var password []byte
	if passwordFile != "" {
		if password, err = readBounded(passwordFile, maxTokenFileBytes); err != nil {
			return nil, fmt.Errorf("reading client certificate password: %w", err)
		}
		password = bytes.TrimRight(password, "\r\n")
	}
	cert, err := ParseClientCertificate(data, password)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", path, err)
	}
	return cert, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// ParseClientCertificate reads PEM data holding one or more certificates
// (the first is the one the key belongs to) and one RSA private key in
// PKCS#1 or PKCS#8 form, or PKCS#8 encrypted with PBES2 and password.
// Entra ID signs and checks certificate assertions with RSA only (PS256 or
// RS256), so an EC key is refused here rather than by the token endpoint.
func ParseClientCertificate(data, password []byte) (*ClientCertificate, error) {
	var c ClientCertificate
	var key crypto.PrivateKey
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", len(c.Chain)+1, err)
			}
			c.Chain = append(c.Chain, cert)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			if key != nil {
				return nil, errors.New("more than one private key")
			}
			var err error
			if key, err = parsePrivateKey(block, password); err != nil {
				return nil, err
			}
		}
	}
	return c.complete(key)
}

// complete checks that the key is an RSA key that belongs to the leaf.
func (c *ClientCertificate) complete(key crypto.PrivateKey) (*ClientCertificate, error) {
	switch {
	case len(c.Chain) == 0:
		return nil, errors.New("no PEM block CERTIFICATE found")
	case key == nil:
		return nil, errors.New("no PEM block PRIVATE KEY or RSA PRIVATE KEY found")
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is a %T; Microsoft Entra ID accepts only RSA keys for certificate credentials", key)
	}
	if !rsaKey.PublicKey.Equal(c.Chain[0].PublicKey) {
		return nil, errors.New("the private key does not belong to the first certificate")
	}
	c.Key = rsaKey
	return c, nil
}

func parsePrivateKey(block *pem.Block, password []byte) (crypto.PrivateKey, error) {
	if block.Headers["Proc-Type"] != "" {
		// x509.DecryptPEMBlock is deprecated: the format is insecure.
		return nil, errors.New("the private key uses legacy PEM encryption (Proc-Type), which is not supported: convert it with openssl pkcs8 -topk8 -v2 aes-256-cbc")
	}
	der := block.Bytes
	if block.Type == "ENCRYPTED PRIVATE KEY" {
		if password == nil {
			return nil, errors.New("the private key is encrypted and no password file is set")
		}
		plain, err := decryptPKCS8(der, password)
		if err != nil {
			return nil, err
		}
		key, err := x509.ParsePKCS8PrivateKey(plain)
		if err != nil {
			// A wrong password can leave valid padding by chance.
			return nil, errWrongPassword
		}
		return key, nil
	}
	var key crypto.PrivateKey
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	default:
		key, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return key, nil
}

// Thumbprint is the base64url SHA-256 of the leaf's DER form, the x5t#S256
// header by which Entra ID finds the certificate registered on the app.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// assertionHeader is the JOSE header of a certificate assertion.
type assertionHeader struct {
	Alg     string   `json:"alg"`
	Typ     string   `json:"typ"`
	X5tS256 string   `json:"x5t#S256"`
	X5c     []string `json:"x5c,omitempty"`
}

// assertionClaims are the claims of a client assertion (RFC 7523).
type assertionClaims struct {
	Audience  string `json:"aud"`
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	ID        string `json:"jti"`
	NotBefore int64  `json:"nbf"`
	IssuedAt  int64  `json:"iat"`
	Expiry    int64  `json:"exp"`
}

// pssOptions are PS256's: the salt is as long as the hash (RFC 7518 3.5).
var pssOptions = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}

// assertion signs a JWT for the token endpoint at aud with PS256, the
// algorithm MSAL uses for Entra ID.
func (c *ClientCertificate) assertion(clientID, aud string, sendChain bool, now time.Time) (string, error) {
	header := assertionHeader{Alg: "PS256", Typ: "JWT", X5tS256: Thumbprint(c.Chain[0])}
	if sendChain {
		for _, cert := range c.Chain {
			header.X5c = append(header.X5c, base64.StdEncoding.EncodeToString(cert.Raw))
		}
	}
	claims := assertionClaims{
		Audience: aud, Issuer: clientID, Subject: clientID, ID: rand.Text(),
		NotBefore: now.Unix(), IssuedAt: now.Unix(), Expiry: now.Add(assertionLifetime).Unix(),
	}
	signingInput := jwtSegment(header) + "." + jwtSegment(claims)
	digest := sha256.Sum256([]byte(signingInput))
	signature, err := rsa.SignPSS(rand.Reader, c.Key, crypto.SHA256, digest[:], pssOptions)
	if err != nil {
		return "", fmt.Errorf("signing client assertion: %w", err)
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(signature), nil
}

// jwtSegment is v as base64url JSON. The values are plain structs of
// strings and numbers, which always marshal.
func jwtSegment(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(data)
}
