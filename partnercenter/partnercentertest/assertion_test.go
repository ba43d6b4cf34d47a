package partnercentertest_test

import (
	"crypto"
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
	sum := sha256.Sum256(cert.Raw)
	segment := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(data)
	}
	input := segment(map[string]string{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])}) +
		"." + segment(claims)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
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
	v2 := s.TokenURLV2()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"aud": v2, "iss": assertionClient, "sub": assertionClient, "jti": "j1",
			"nbf": start.Unix(), "iat": start.Unix(), "exp": start.Unix() + 600}
		if change != nil {
			change(c)
		}
		return c
	}
	form := func(assertion string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {assertionClient},
			"scope": {resource + "/.default"}, "client_assertion_type": {partnercentertest.ClientAssertionType},
			"client_assertion": {assertion}}
	}
	valid := signAssertion(t, cert, pemData, claims(nil))
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string // the start of error_description, or "" for a token
	}{
		{"valid", form(valid), http.StatusOK, ""},
		{"v1 resource on v2", func() url.Values { f := form(valid); f.Set("resource", resource); return f }(), 400, "AADSTS901002: The 'resource' request parameter is not supported."},
		{"scope without /.default", func() url.Values { f := form(valid); f.Set("scope", resource); return f }(), 400, "AADSTS1002012: The provided value for scope"},
		{"other assertion type", func() url.Values { f := form(valid); f.Set("client_assertion_type", "jwt"); return f }(), 400, "AADSTS700003:"},
		{"malformed", form("a.b"), 401, "AADSTS50027: JWT token is invalid or malformed"},
		{"tampered", form(valid[:len(valid)-4] + "AAAA"), 401, "AADSTS700027: Client assertion failed signature validation."},
		{"aud of v1", form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["aud"] = s.TokenURL() }))), 401, "AADSTS700212:"},
		{"other issuer", form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["iss"] = "someone" }))), 401, "AADSTS700021:"},
		{"expired", form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["exp"] = start.Unix() }))), 401, "AADSTS700024: Client assertion is not within its valid time range."},
		{"not yet valid", form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["nbf"] = start.Unix() + 3600 }))), 401, "AADSTS700024:"},
		{"lives 11 minutes", form(signAssertion(t, cert, pemData, claims(func(c map[string]any) { c["exp"] = start.Unix() + 660 }))), 401, "AADSTS700025:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postToken(t, v2, tt.form)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			var doc struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == "" && doc.AccessToken == "":
				t.Errorf("no access token: %s", r.body)
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
	r := postToken(t, s.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "client_id": {assertionClient},
		"client_secret": {partnercentertest.DefaultClientSecret}, "resource": {resource}})
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, `"error":"invalid_client"`) {
		t.Errorf("status %d body %s, want 401 invalid_client", r.status, r.body)
	}
}
