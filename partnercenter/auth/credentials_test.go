package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// Names in this file start with "cred" so that they cannot clash with the
// other test files of the package.

const credClientID = "0b9c8d7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e"

// credFake starts the fake Partner Center for one test.
func credFake(t *testing.T) *partnercentertest.Server {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

// credWrite replaces the file's content.
func credWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// credTokenError returns the OAuth error code of err, failing the test if
// err is no *partnercenter.TokenError.
func credTokenError(t *testing.T, err error) string {
	t.Helper()
	var te *partnercenter.TokenError
	if !errors.As(err, &te) {
		t.Fatalf("got error %v, want a *partnercenter.TokenError", err)
	}
	return te.Code
}

func TestCredClientSecretFileRotated(t *testing.T) {
	srv := credFake(t)
	srv.SetCredentials(credClientID, "first-secret")
	file := filepath.Join(t.TempDir(), "client_secret")
	credWrite(t, file, "first-secret\n")
	src := NewClientCredentialsSource(ClientCredentials{
		TokenURL: srv.TokenURL(), ClientID: credClientID, Resource: tokenTestResource, ClientSecretFile: file,
	}, nil, nil)
	ctx := context.Background()
	first, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}

	srv.SetCredentials(credClientID, "second-secret")
	credWrite(t, file, "second-secret\n")
	src.Invalidate(first)
	if _, err := src.Token(ctx); err != nil {
		t.Fatalf("after rotating the secret file: %v", err)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	src.Invalidate(srv.LastAccessToken())
	_, err = src.Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "reading client secret: open "+file+": no such file or directory") {
		t.Fatalf("after deleting the secret file: %v, want it named", err)
	}
	if strings.Contains(err.Error(), "second-secret") {
		t.Errorf("the error shows the secret: %v", err)
	}
}

// credCertificate creates a certificate and writes its PEM file.
func credCertificate(t *testing.T) (*x509.Certificate, string, []byte) {
	t.Helper()
	cert, pemData, err := partnercentertest.GenerateClientCertificate("partnercenter_exporter test")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "client.pem")
	credWrite(t, file, string(pemData))
	return cert, file, pemData
}

func credCertificateSource(srv *partnercentertest.Server, file string, now func() time.Time) *cachingTokenSource {
	return newCertificateSource(CertificateConfig{
		ClientAssertionConfig: ClientAssertionConfig{TokenURL: srv.TokenURLV2(), ClientID: credClientID, Resource: tokenTestResource},
		CertificateFile:       file,
	}, nil, nil, now)
}

func TestCredCertificate(t *testing.T) {
	srv := credFake(t)
	cert, file, _ := credCertificate(t)
	srv.SetClientCertificate(credClientID, cert)
	token, err := credCertificateSource(srv, file, time.Now).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if token != srv.LastAccessToken() {
		t.Errorf("got token %q, want the one issued, %q", token, srv.LastAccessToken())
	}
}

func TestCredCertificateRefused(t *testing.T) {
	tests := []struct {
		name   string
		now    func() time.Time
		other  bool // register another certificate than the one used
		aadsts string
	}{
		{"certificate not registered", time.Now, true, "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."},
		{"expired assertion", func() time.Time { return time.Now().Add(-11 * time.Minute) }, false, "AADSTS700024: Client assertion is not within its valid time range."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := credFake(t)
			cert, file, _ := credCertificate(t)
			if tt.other {
				cert, _, _ = credCertificate(t)
			}
			srv.SetClientCertificate(credClientID, cert)
			_, err := credCertificateSource(srv, file, tt.now).Token(context.Background())
			if code := credTokenError(t, err); code != "invalid_client" {
				t.Errorf("got error code %q, want invalid_client", code)
			}
			if !strings.Contains(err.Error(), "token endpoint answered 401 invalid_client: "+tt.aadsts) {
				t.Errorf("got %v, want %s", err, tt.aadsts)
			}
		})
	}
}

func TestCredCertificateFileDeleted(t *testing.T) {
	srv := credFake(t)
	cert, file, pemData := credCertificate(t)
	srv.SetClientCertificate(credClientID, cert)
	src := credCertificateSource(srv, file, time.Now)
	token, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	src.Invalidate(token)
	_, err = src.Token(context.Background())
	want := "reading client certificate: open " + file + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if strings.Contains(err.Error(), string(pemData[40:80])) {
		t.Error("the error shows the certificate file")
	}
}

// credDecodeSegment decodes one base64url JSON part of a JWT.
func credDecodeSegment(t *testing.T, segment string, v any) {
	t.Helper()
	data, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func TestCredCertificateAssertion(t *testing.T) {
	leaf, file, _ := credCertificate(t)
	cert, err := ReadClientCertificate(file, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	const aud = "https://login.example/tenant/oauth2/v2.0/token"
	jwt, err := cert.assertion(credClientID, aud, true, now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion has %d parts, want 3", len(parts))
	}
	var header assertionHeader
	credDecodeSegment(t, parts[0], &header)
	sum := sha256.Sum256(leaf.Raw)
	wantHeader := assertionHeader{
		Alg: "PS256", Typ: "JWT", X5tS256: base64.RawURLEncoding.EncodeToString(sum[:]),
		X5c: []string{base64.StdEncoding.EncodeToString(leaf.Raw)},
	}
	if !reflect.DeepEqual(header, wantHeader) {
		t.Errorf("header %+v, want %+v", header, wantHeader)
	}
	var claims assertionClaims
	credDecodeSegment(t, parts[1], &claims)
	if claims.ID == "" {
		t.Error("no jti")
	}
	claims.ID = ""
	wantClaims := assertionClaims{
		Audience: aud, Issuer: credClientID, Subject: credClientID,
		NotBefore: now.Unix(), IssuedAt: now.Unix(), Expiry: now.Add(10 * time.Minute).Unix(),
	}
	if claims != wantClaims {
		t.Errorf("claims %+v, want %+v", claims, wantClaims)
	}
	signature, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPSS(leaf.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], signature, pssOptions); err != nil {
		t.Errorf("signature: %v", err)
	}

	withoutChain, err := cert.assertion(credClientID, aud, false, now)
	if err != nil {
		t.Fatal(err)
	}
	header = assertionHeader{}
	credDecodeSegment(t, strings.Split(withoutChain, ".")[0], &header)
	if header.X5c != nil {
		t.Errorf("x5c sent without send_certificate_chain: %d certificates", len(header.X5c))
	}
}

func TestCredParseClientCertificate(t *testing.T) {
	leaf, file, pemData := credCertificate(t)
	certPEM, keyPEM := credSplitPEM(t, pemData)
	rsaKey, err := ReadClientCertificate(file, "")
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey.Key)})
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	_, otherPEM := credSplitPEM(t, credPEM(t))
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})

	tests := []struct {
		name, data, wantErr string
	}{
		{"PKCS#8, key first", keyPEM + certPEM, ""},
		{"PKCS#1", certPEM + string(pkcs1), ""},
		{"SEC1 EC key", certPEM + string(sec1), "the private key is a *ecdsa.PrivateKey; Microsoft Entra ID accepts only RSA keys for certificate credentials"},
		{"encrypted key without password", certPEM + string(encrypted), "the private key is encrypted and no password file is set"},
		{"no key", certPEM, "no PEM block PRIVATE KEY or RSA PRIVATE KEY found"},
		{"no certificate", keyPEM, "no PEM block CERTIFICATE found"},
		{"two keys", certPEM + keyPEM + keyPEM, "more than one private key"},
		{"key of another certificate", certPEM + otherPEM, "the private key does not belong to the first certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseClientCertificate([]byte(tt.data), nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr == "":
				if !c.Chain[0].Equal(leaf) {
					t.Error("the chain does not start with the certificate")
				}
			case err == nil || err.Error() != tt.wantErr:
				t.Errorf("got error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func credPEM(t *testing.T) []byte {
	t.Helper()
	_, pemData, err := partnercentertest.GenerateClientCertificate("other")
	if err != nil {
		t.Fatal(err)
	}
	return pemData
}

// credSplitPEM returns the certificate and the key block of a PEM file.
func credSplitPEM(t *testing.T, data []byte) (certPEM, keyPEM string) {
	t.Helper()
	i := strings.Index(string(data), "-----BEGIN PRIVATE KEY-----")
	if i < 0 {
		t.Fatal("no key in the generated PEM")
	}
	return string(data[:i]), string(data[i:])
}

func TestCredFederatedToken(t *testing.T) {
	srv := credFake(t)
	srv.SetFederatedToken(credClientID, "sa-token-1")
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	credWrite(t, file, "sa-token-1")
	src := NewFederatedTokenSource(FederatedTokenConfig{
		ClientAssertionConfig: ClientAssertionConfig{TokenURL: srv.TokenURLV2(), ClientID: credClientID, Resource: tokenTestResource},
		TokenFile:             file,
	}, nil, nil)
	ctx := context.Background()
	first, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The kubelet rotates the token; the old one is no longer accepted.
	srv.SetFederatedToken(credClientID, "sa-token-2")
	credWrite(t, file, "sa-token-2")
	src.Invalidate(first)
	second, err := src.Token(ctx)
	if err != nil {
		t.Fatalf("after rotating the token file: %v", err)
	}

	credWrite(t, file, "sa-token-stale")
	src.Invalidate(second)
	_, err = src.Token(ctx)
	if code := credTokenError(t, err); code != "invalid_client" {
		t.Errorf("got error code %q, want invalid_client", code)
	}
	if !strings.Contains(err.Error(), "AADSTS700213: No matching federated identity record found for presented assertion.") ||
		strings.Contains(err.Error(), "sa-token") {
		t.Errorf("got %v, want AADSTS700213 without the token", err)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	_, err = src.Token(ctx)
	if want := "reading federated token: open " + file + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
