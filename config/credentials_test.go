package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

const credClientID = "5f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19"

// credDir returns a directory with a client certificate file client.pem,
// a federated token file token and a client secret file secret.
func credDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, pemData, err := partnercentertest.GenerateClientCertificate("config test")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"client.pem": string(pemData), "token": "sa-token\n", "secret": "s3cret\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// credParse parses an auth block (lines indented by two spaces) followed
// by one customer.
func credParse(t *testing.T, dir string, auth ...string) (*Config, error) {
	t.Helper()
	text := "auth:\n  " + strings.Join(auth, "\n  ") + "\ncustomers:\n  - id: 6f1c2a8e-3b4d-4e5f-9a01-23456789abcd\n"
	return Parse([]byte(text), "creds.yml", dir)
}

func TestCertificateConfig(t *testing.T) {
	dir := credDir(t)
	cfg, err := credParse(t, dir, "tenant_id: contoso.onmicrosoft.com", "client_id: "+credClientID,
		"client_certificate_file: client.pem", "send_certificate_chain: true")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Auth
	if a.Mode() != AuthClientCertificate || a.ClientCertificateFile != filepath.Join(dir, "client.pem") || !a.SendCertificateChain {
		t.Errorf("got mode %s, file %q, chain %v", a.Mode(), a.ClientCertificateFile, a.SendCertificateChain)
	}
	if want := "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"; a.TokenURL != want {
		t.Errorf("token_url %q, want the v2 endpoint %q", a.TokenURL, want)
	}
}

func TestCredentialErrors(t *testing.T) {
	dir := credDir(t)
	noKey := filepath.Join(dir, "cert-only.pem")
	pemData, err := os.ReadFile(filepath.Join(dir, "client.pem"))
	if err != nil {
		t.Fatal(err)
	}
	certOnly, _, _ := strings.Cut(string(pemData), "-----BEGIN PRIVATE KEY-----")
	if err := os.WriteFile(noKey, []byte(certOnly), 0o600); err != nil {
		t.Fatal(err)
	}
	ids := []string{"tenant_id: contoso.onmicrosoft.com", "client_id: " + credClientID}
	tests := []struct {
		name string
		auth []string
		want string
	}{
		{
			"certificate and secret file",
			[]string{"client_secret_file: secret", "client_certificate_file: client.pem"},
			"creds.yml:5: auth.client_certificate_file: more than one credential source: client_secret_file, client_certificate_file (client_certificate_file must be used alone)",
		},
		{
			"federated token and certificate",
			[]string{"federated_token_file: token", "client_certificate_file: client.pem"},
			"creds.yml:5: auth.client_certificate_file: more than one credential source: federated_token_file, client_certificate_file (federated_token_file must be used alone)",
		},
		{
			"federated token and refresh token",
			[]string{"refresh_token_file: token", "federated_token_file: token"},
			"creds.yml:5: auth.federated_token_file: more than one credential source: refresh_token_file, federated_token_file (federated_token_file must be used alone)",
		},
		{
			"chain without certificate",
			[]string{"client_secret_file: secret", "send_certificate_chain: true"},
			"creds.yml:5: auth.send_certificate_chain: applies only with client_certificate_file",
		},
		{
			"certificate file missing",
			[]string{"client_certificate_file: missing.pem"},
			`creds.yml:4: auth.client_certificate_file: cannot read "` + filepath.Join(dir, "missing.pem") + `": no such file or directory`,
		},
		{
			"certificate without key",
			[]string{"client_certificate_file: cert-only.pem"},
			"creds.yml:4: auth.client_certificate_file: client certificate " + noKey + ": no PEM block PRIVATE KEY or RSA PRIVATE KEY found",
		},
		{
			"federated token file missing",
			[]string{"federated_token_file: missing"},
			`creds.yml:4: auth.federated_token_file: cannot read "` + filepath.Join(dir, "missing") + `": no such file or directory`,
		},
		{
			"send_certificate_chain not a boolean",
			[]string{"client_certificate_file: client.pem", "send_certificate_chain: maybe"},
			`creds.yml:5: auth.send_certificate_chain: "maybe" is not true or false`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := credParse(t, dir, append(ids, tt.auth...)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got error\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestWorkloadIdentityEnvironment(t *testing.T) {
	dir := credDir(t)
	token := filepath.Join(dir, "token")
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", token)
	t.Setenv("AZURE_CLIENT_ID", credClientID)
	t.Setenv("AZURE_TENANT_ID", "0c9b5d2e-3f4a-4b6c-8d7e-9f0a1b2c3d4e")

	cfg, err := Parse([]byte("customers:\n  - id: 6f1c2a8e-3b4d-4e5f-9a01-23456789abcd\n"), "creds.yml", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Auth{
		TenantID: "0c9b5d2e-3f4a-4b6c-8d7e-9f0a1b2c3d4e", ClientID: credClientID, FederatedTokenFile: token,
		TokenURL: "https://login.microsoftonline.com/0c9b5d2e-3f4a-4b6c-8d7e-9f0a1b2c3d4e/oauth2/v2.0/token",
		Resource: DefaultResource,
	}
	if cfg.Auth != want || cfg.Auth.Mode() != AuthWorkloadIdentity {
		t.Errorf("auth %+v (%s), want %+v", cfg.Auth, cfg.Auth.Mode(), want)
	}
	shown, err := cfg.RedactedYAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(shown), "federated_token_file: "+token+"\n") || strings.Contains(string(shown), "sa-token") {
		t.Errorf("--config.check does not show the effective file, or shows the token:\n%s", shown)
	}

	// A credential in the file wins, and the variables then name nothing.
	cfg, err = credParse(t, dir, "tenant_id: contoso.onmicrosoft.com", "client_id: 11111111-2222-3333-4444-555555555555", "client_secret_file: secret")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Mode() != AuthClientCredentials || cfg.Auth.FederatedTokenFile != "" || cfg.Auth.ClientID != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("the environment overrode the file: %+v", cfg.Auth)
	}
}

func TestCertificatePasswordFile(t *testing.T) {
	dir := credDir(t)
	pemData, err := os.ReadFile(filepath.Join(dir, "client.pem"))
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := partnercentertest.EncryptClientKey(pemData, "pw")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"encrypted.pem": string(encrypted), "pw": "pw\n", "wrong": "nope\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{"tenant_id: contoso.onmicrosoft.com", "client_id: " + credClientID}
	cfg, err := credParse(t, dir, append(ids, "client_certificate_file: encrypted.pem", "client_certificate_password_file: pw")...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.ClientCertificatePasswordFile != filepath.Join(dir, "pw") {
		t.Errorf("password file %q, want it resolved in %s", cfg.Auth.ClientCertificatePasswordFile, dir)
	}

	tests := []struct {
		name string
		auth []string
		want string
	}{
		{
			"wrong password",
			[]string{"client_certificate_file: encrypted.pem", "client_certificate_password_file: wrong"},
			"creds.yml:4: auth.client_certificate_file: client certificate " + filepath.Join(dir, "encrypted.pem") +
				": cannot decrypt the private key: wrong password, or the key is damaged",
		},
		{
			"no password",
			[]string{"client_certificate_file: encrypted.pem"},
			"creds.yml:4: auth.client_certificate_file: client certificate " + filepath.Join(dir, "encrypted.pem") +
				": the private key is encrypted and no password file is set",
		},
		{
			"password file missing",
			[]string{"client_certificate_file: encrypted.pem", "client_certificate_password_file: gone"},
			`creds.yml:5: auth.client_certificate_password_file: cannot read "` + filepath.Join(dir, "gone") + `": no such file or directory`,
		},
		{
			"password without certificate",
			[]string{"client_secret_file: secret", "client_certificate_password_file: pw"},
			"creds.yml:5: auth.client_certificate_password_file: applies only with client_certificate_file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := credParse(t, dir, append(ids, tt.auth...)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got error\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

func TestClientAssertionsUseTheCloudsV2Endpoint(t *testing.T) {
	dir := credDir(t)
	text := "cloud: china\nauth:\n  tenant_id: contoso.partner.onmschina.cn\n  client_id: " + credClientID +
		"\n  client_certificate_file: client.pem\ncustomers:\n  - id: 6f1c2a8e-3b4d-4e5f-9a01-23456789abcd\n"
	cfg, err := Parse([]byte(text), "creds.yml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://login.chinacloudapi.cn/contoso.partner.onmschina.cn/oauth2/v2.0/token"; cfg.Auth.TokenURL != want {
		t.Errorf("token_url %q, want %q", cfg.Auth.TokenURL, want)
	}
	if cfg.PartnerCenter.BaseURL != ChinaBaseURL || cfg.Auth.Resource != ChinaBaseURL {
		t.Errorf("base_url %q, resource %q, want both %q", cfg.PartnerCenter.BaseURL, cfg.Auth.Resource, ChinaBaseURL)
	}
}
