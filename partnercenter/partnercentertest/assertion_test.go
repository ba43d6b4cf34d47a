package partnercentertest_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

const assertionClient = "0b9c8d7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e"

// signAssertion signs claims as PS256 with the key in pemData, naming
// cert in x5t#S256.
func signAssertion(t *testing.T, cert *x509.Certificate, pemData []byte, claims map[string]any) string {
	t.Helper()
	return signAssertionWith(t, pemData, map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": x5tS256(cert)}, claims)
}

func x5tS256(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signAssertionWith signs claims under header with the algorithm header
// names: PS256 or RS256 with the key in pemData, HS256 with a made-up
// secret, or none.
func signAssertionWith(t *testing.T, pemData []byte, header, claims map[string]any) string {
	t.Helper()
	var key *rsa.PrivateKey
	for block, rest := pem.Decode(pemData); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "PRIVATE KEY" {
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			key = k.(*rsa.PrivateKey)
		}
	}
	segment := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(data)
	}
	input := segment(header) + "." + segment(claims)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch header["alg"] {
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	case "HS256":
		mac := hmac.New(sha256.New, []byte("not a certificate"))
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	case "none":
	default:
		t.Fatalf("no signer for alg %v", header["alg"])
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestClientAssertion(t *testing.T) {
	s, _ := newServer(t)
	cert, pemData, err := partnercentertest.GenerateClientCertificate("test")
	if err != nil {
		t.Fatal(err)
	}
	s.SetClientCertificate(assertionClient, cert)
	other, _, err := partnercentertest.GenerateClientCertificate("other")
	if err != nil {
		t.Fatal(err)
	}
	v2 := s.TokenURLV2()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{
			"aud": v2, "iss": assertionClient, "sub": assertionClient, "jti": "j1",
			"nbf": start.Unix(), "iat": start.Unix(), "exp": start.Unix() + 600,
		}
		if change != nil {
			change(c)
		}
		return c
	}
	form := func(assertion string) url.Values {
		return url.Values{
			"grant_type": {"client_credentials"}, "client_id": {assertionClient},
			"scope": {resource + "/.default"}, "client_assertion_type": {partnercentertest.ClientAssertionType},
			"client_assertion": {assertion},
		}
	}
	valid := signAssertion(t, cert, pemData, claims(nil))
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string // the start of error_description, or "" for a token
	}{
		{name: "valid", form: form(valid), status: http.StatusOK, want: ""},
		{name: "v1 resource on v2", form: func() url.Values { f := form(valid); f.Set("resource", resource); return f }(), status: 400, want: "AADSTS901002: The 'resource' request parameter is not supported."},
		{name: "scope without /.default", form: func() url.Values { f := form(valid); f.Set("scope", resource); return f }(), status: 400, want: "AADSTS1002012: The provided value for scope"},
		{name: "other assertion type", form: func() url.Values { f := form(valid); f.Set("client_assertion_type", "jwt"); return f }(), status: 400, want: "AADSTS700003:"},
		{name: "malformed", form: form("a.b"), status: 401, want: "AADSTS50027: JWT token is invalid or malformed"},
		{name: "tampered", form: form(valid[:len(valid)-4] + "AAAA"), status: 401, want: "AADSTS700027: Client assertion failed signature validation."},
		{name: "aud of v1", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["aud"] = s.TokenURL() }))), status: 401, want: "AADSTS700212:"},
		{name: "other issuer", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["iss"] = "someone" }))), status: 401, want: "AADSTS700021:"},
		{name: "other subject", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["sub"] = "someone" }))), status: 401, want: "AADSTS700021:"},
		{name: "no jti", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { delete(c, "jti") }))), status: 401, want: "AADSTS50027: JWT token is invalid or malformed: no jti."},
		{name: "no exp", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { delete(c, "exp") }))), status: 401, want: "AADSTS50027: JWT token is invalid or malformed: exp and nbf are required."},
		{name: "no nbf", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { delete(c, "nbf") }))), status: 401, want: "AADSTS50027: JWT token is invalid or malformed: exp and nbf are required."},
		{name: "expired", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["exp"] = start.Unix() }))), status: 401, want: "AADSTS700024: Client assertion is not within its valid time range."},
		{name: "expired beyond the skew", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["nbf"], c["exp"] = start.Unix()-900, start.Unix()-600 }))), status: 401, want: "AADSTS700024:"},
		{name: "not yet valid", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["nbf"] = start.Unix() + 3600 }))), status: 401, want: "AADSTS700024:"},
		{name: "nbf within the skew", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["nbf"] = start.Unix() + 240 }))), status: http.StatusOK, want: ""},
		{name: "lives 11 minutes", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["exp"] = start.Unix() + 660 }))), status: 401, want: "AADSTS700025:"},
		{name: "issued 11 minutes before exp", form: form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["iat"] = start.Unix() - 60 }))), status: 401, want: "AADSTS700025:"},
		{name: "RS256", form: form(signAssertionWith(t, pemData, map[string]any{"alg": "RS256", "x5t#S256": x5tS256(cert)}, claims(nil))), status: http.StatusOK, want: ""},
		{name: "HS256", form: form(signAssertionWith(t, pemData, map[string]any{"alg": "HS256", "x5t#S256": x5tS256(cert)}, claims(nil))), status: 401, want: "AADSTS5002730: Invalid JWT token. Unsupported signing algorithm 'HS256'."},
		{name: "alg none", form: form(signAssertionWith(t, pemData, map[string]any{"alg": "none", "x5t#S256": x5tS256(cert)}, claims(nil))), status: 401, want: "AADSTS5002730: Invalid JWT token. Unsupported signing algorithm 'none'."},
		{name: "other certificate", form: form(signAssertionWith(t, pemData, map[string]any{"alg": "PS256", "x5t#S256": x5tS256(other)}, claims(nil))), status: 401, want: "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."},
		{name: "no x5t#S256", form: form(signAssertionWith(t, pemData, map[string]any{"alg": "PS256"}, claims(nil))), status: 401, want: "AADSTS700027: The certificate with identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postToken(t, v2, tt.form)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			var doc struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal([]byte(r.Body), &doc); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == "" && doc.AccessToken == "":
				t.Errorf("no access token: %s", r.Body)
			case tt.want != "" && !strings.HasPrefix(doc.Description, tt.want):
				t.Errorf("error_description %q, want it to start with %q", doc.Description, tt.want)
			case tt.status == http.StatusUnauthorized && doc.Error != "invalid_client":
				t.Errorf("error %q, want invalid_client", doc.Error)
			}
		})
	}
}

// TestCertificateClientHasNoSecret checks that an app known only by its
// certificate cannot use the secret of the app SetCredentials named.
func TestCertificateClientHasNoSecret(t *testing.T) {
	s, _ := newServer(t)
	cert, _, err := partnercentertest.GenerateClientCertificate("test")
	if err != nil {
		t.Fatal(err)
	}
	s.SetClientCertificate(assertionClient, cert)
	r := postToken(t, s.TokenURL(), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {assertionClient},
		"client_secret": {partnercentertest.DefaultClientSecret}, "resource": {resource},
	})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, `"error":"invalid_client"`) {
		t.Errorf("status %d body %s, want 401 invalid_client", r.Status, r.Body)
	}
}
