package partnercentertest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The token endpoint checks a client assertion as Entra ID does: a
// federated token must be one registered for the client; otherwise the
// assertion must be a JWT signed by the certificate registered for the
// client, for this endpoint, issued by the client, and short-lived.

const (
	// ClientAssertionType is the only client_assertion_type accepted.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// maxAssertionLifetime is the longest exp - nbf (and exp - iat)
	// accepted.
	maxAssertionLifetime = 10 * time.Minute
	// assertionClockSkew is how far in the future nbf and iat may be.
	assertionClockSkew = 5 * time.Minute
)

// SetClientCertificate registers cert as the one certificate whose key may
// sign client assertions for clientID; nil removes it.
func (s *Server) SetClientCertificate(clientID string, cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setOrDelete(s.auth.certificates, strings.ToLower(clientID), cert, cert == nil)
}

// SetFederatedToken makes token the one federated token (such as a
// Kubernetes service account token) accepted as the client assertion of
// clientID; "" removes it.
func (s *Server) SetFederatedToken(clientID, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setOrDelete(s.auth.federatedTokens, strings.ToLower(clientID), token, token == "")
}

func setOrDelete[V any](m map[string]V, key string, v V, remove bool) {
	if remove {
		delete(m, key)
		return
	}
	m[key] = v
}

// TokenURLV2 is the v2 token endpoint of the Server's tenant, the one the
// certificate and federated credentials use.
func (s *Server) TokenURLV2() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.URL + "/" + s.auth.tenant + "/oauth2/v2.0/token"
}

// assertionFailure is why a client assertion was refused: the AADSTS code
// and message of a 401 invalid_client.
type assertionFailure struct {
	aadsts  int
	message string
}

func (f *assertionFailure) Error() string { return f.message }

func refuse(aadsts int, format string, args ...any) *assertionFailure {
	return &assertionFailure{aadsts: aadsts, message: fmt.Sprintf("AADSTS%d: ", aadsts) + fmt.Sprintf(format, args...)}
}

// checkAssertion validates the client of a request that carries a client
// assertion. It must be called with s.mu held.
func (s *Server) checkAssertion(req tokenRequest) (answer, bool) {
	if a, ok := s.checkClientID(req); !ok {
		return a, false
	}
	if req.assertionType != ClientAssertionType {
		return s.aadError(http.StatusBadRequest, "invalid_request", 700003, fmt.Sprintf(
			"AADSTS700003: client_assertion_type must be '%s'.", ClientAssertionType)), false
	}
	err := s.verifyAssertion(req)
	if f := (*assertionFailure)(nil); errors.As(err, &f) {
		return s.aadError(http.StatusUnauthorized, "invalid_client", f.aadsts, f.message), false
	}
	return answer{}, true
}

// verifyAssertion returns nil for an accepted assertion. It must be
// called with s.mu held.
func (s *Server) verifyAssertion(req tokenRequest) error {
	client := strings.ToLower(req.clientID)
	if token, ok := s.auth.federatedTokens[client]; ok && equalSecret(req.assertion, token) {
		return nil
	}
	cert := s.auth.certificates[client]
	if cert == nil {
		if _, federated := s.auth.federatedTokens[client]; federated {
			return refuse(700213, "No matching federated identity record found for presented assertion.")
		}
		return refuse(7000215, "No certificate or federated credential is registered on application '%s'.", req.clientID)
	}
	return verifySignedAssertion(req, cert, s.now())
}

// assertionMethods are the signing algorithms Entra ID accepts for a
// client assertion.
var assertionMethods = []string{jwt.SigningMethodPS256.Alg(), jwt.SigningMethodRS256.Alg()}

// verifySignedAssertion checks a JWT client assertion with
// github.com/golang-jwt/jwt rather than a parser of the package's own, so
// that the exporter's reading of RFC 7523 is not checked by a second copy
// of the same reading: the signature by cert's key with an accepted
// algorithm, x5t#S256 naming cert, aud the token endpoint, iss and sub the
// client, exp and nbf present, and the clock within them. What the library
// does not check is checked after it: a jti, exp without clock skew, and a
// lifetime of at most maxAssertionLifetime. The refusal is the AADSTS code
// Entra ID gives for the first of these checks that fails.
func verifySignedAssertion(req tokenRequest, cert *x509.Certificate, now time.Time) error {
	var claims jwt.RegisteredClaims
	parser := jwt.NewParser(
		jwt.WithTimeFunc(func() time.Time { return now }),
		// The leeway is for nbf; exp gets none, below.
		jwt.WithLeeway(assertionClockSkew),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithAudience(req.endpoint),
		jwt.WithIssuer(req.clientID),
		jwt.WithSubject(req.clientID),
	)
	_, err := parser.ParseWithClaims(req.assertion, &claims, func(t *jwt.Token) (any, error) {
		return assertionKey(t, cert)
	})
	var refused *assertionFailure
	switch {
	case errors.As(err, &refused):
		return refused
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(50027, "JWT token is invalid or malformed: %v.", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(700027, "Client assertion failed signature validation.")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse(700212, "The audience '%s' of the client assertion is not the token endpoint '%s'.", strings.Join(claims.Audience, " "), req.endpoint)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidSubject):
		return refuse(700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
	case claims.ID == "":
		return refuse(50027, "JWT token is invalid or malformed: no jti.")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuse(50027, "JWT token is invalid or malformed: exp and nbf are required.")
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), err == nil && !now.Before(claims.ExpiresAt.Time):
		return refuse(700024, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.",
			now.UTC().Format(aadTimeFormat), claims.NotBefore.UTC().Format(aadTimeFormat), claims.ExpiresAt.UTC().Format(aadTimeFormat))
	case err != nil:
		return refuse(50027, "JWT token is invalid or malformed: %v.", err)
	}
	exp := claims.ExpiresAt.Time
	if exp.Sub(claims.NotBefore.Time) > maxAssertionLifetime || (claims.IssuedAt != nil && exp.Sub(claims.IssuedAt.Time) > maxAssertionLifetime) {
		return refuse(700025, "Client assertion is valid for more than %s.", maxAssertionLifetime)
	}
	return nil
}

// assertionKey is the key the assertion's signature is checked with:
// cert's, if the header names cert and an accepted algorithm.
func assertionKey(t *jwt.Token, cert *x509.Certificate) (any, error) {
	if alg := t.Method.Alg(); !slices.Contains(assertionMethods, alg) {
		return nil, refuse(5002730, "Invalid JWT token. Unsupported signing algorithm '%s'.", alg)
	}
	sum := sha256.Sum256(cert.Raw)
	if x5t, _ := t.Header["x5t#S256"].(string); x5t != base64.RawURLEncoding.EncodeToString(sum[:]) {
		return nil, refuse(700027, "The certificate with identifier used to sign the client assertion is not registered on application.")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, refuse(700027, "The registered certificate has no RSA key.")
	}
	return pub, nil
}

// GenerateClientCertificate returns a new self-signed certificate with a
// 2048-bit RSA key, valid for a day, and the PEM file (certificate, then
// PKCS#8 key) a client reads it from.
func GenerateClientCertificate(commonName string) (*x509.Certificate, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	file := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	file = append(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	return cert, file, nil
}
