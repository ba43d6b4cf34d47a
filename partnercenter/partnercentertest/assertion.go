package partnercentertest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
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
	jwt, err := parseJWT(req.assertion)
	if err != nil {
		return refuse(50027, "JWT token is invalid or malformed: %v.", err)
	}
	if err := jwt.verifySignature(cert); err != nil {
		return err
	}
	return jwt.claims.check(req, s.now())
}

// jwtHeader and jwtClaims are the parts of an assertion that are checked.
type jwtHeader struct {
	Alg     string `json:"alg"`
	X5tS256 string `json:"x5t#S256"`
}

type jwtClaims struct {
	Aud string `json:"aud"`
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Jti string `json:"jti"`
	Nbf *int64 `json:"nbf"`
	Iat *int64 `json:"iat"`
	Exp *int64 `json:"exp"`
}

type parsedJWT struct {
	header       jwtHeader
	claims       jwtClaims
	signingInput string
	signature    []byte
}

func parseJWT(s string) (parsedJWT, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return parsedJWT{}, errors.New("not three dot-separated parts")
	}
	var j parsedJWT
	if err := decodeJWTPart(parts[0], &j.header); err != nil {
		return parsedJWT{}, fmt.Errorf("header: %w", err)
	}
	if err := decodeJWTPart(parts[1], &j.claims); err != nil {
		return parsedJWT{}, fmt.Errorf("claims: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return parsedJWT{}, fmt.Errorf("signature: %w", err)
	}
	j.signingInput, j.signature = parts[0]+"."+parts[1], sig
	return j, nil
}

func decodeJWTPart(part string, v any) error {
	data, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// verifySignature checks that cert is the one the header names and that
// its key made the signature, with PS256 or RS256 as Entra ID accepts.
func (j parsedJWT) verifySignature(cert *x509.Certificate) error {
	sum := sha256.Sum256(cert.Raw)
	if j.header.X5tS256 != base64.RawURLEncoding.EncodeToString(sum[:]) {
		return refuse(700027, "The certificate with identifier used to sign the client assertion is not registered on application.")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return refuse(700027, "The registered certificate has no RSA key.")
	}
	digest := sha256.Sum256([]byte(j.signingInput))
	var err error
	switch j.header.Alg {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], j.signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], j.signature)
	default:
		return refuse(5002730, "Invalid JWT token. Unsupported signing algorithm '%s'.", j.header.Alg)
	}
	if err != nil {
		return refuse(700027, "Client assertion failed signature validation.")
	}
	return nil
}

// check validates the claims against the request and the clock.
func (c jwtClaims) check(req tokenRequest, now time.Time) error {
	switch {
	case c.Aud != req.endpoint:
		return refuse(700212, "The audience '%s' of the client assertion is not the token endpoint '%s'.", c.Aud, req.endpoint)
	case c.Iss != req.clientID || c.Sub != req.clientID:
		return refuse(700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
	case c.Jti == "":
		return refuse(50027, "JWT token is invalid or malformed: no jti.")
	case c.Exp == nil || c.Nbf == nil:
		return refuse(50027, "JWT token is invalid or malformed: exp and nbf are required.")
	}
	exp, nbf := time.Unix(*c.Exp, 0), time.Unix(*c.Nbf, 0)
	if !now.Before(exp) || nbf.After(now.Add(assertionClockSkew)) {
		return refuse(700024, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.",
			now.UTC().Format(aadTimeFormat), nbf.UTC().Format(aadTimeFormat), exp.UTC().Format(aadTimeFormat))
	}
	if exp.Sub(nbf) > maxAssertionLifetime || (c.Iat != nil && exp.Sub(time.Unix(*c.Iat, 0)) > maxAssertionLifetime) {
		return refuse(700025, "Client assertion is valid for more than %s.", maxAssertionLifetime)
	}
	return nil
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
