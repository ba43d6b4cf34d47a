package auth

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

func TestCredEncryptedKey(t *testing.T) {
	_, _, pemData := credCertificate(t)
	certPEM, _ := credSplitPEM(t, pemData)
	encryptedPEM, err := partnercentertest.EncryptClientKey(pemData, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	encrypted := string(encryptedPEM)
	legacy := certPEM + "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
	tests := []struct {
		name, data, password, wantErr string
	}{
		{"right password", encrypted, "correct horse", ""},
		{"wrong password", encrypted, "battery staple", "cannot decrypt the private key: wrong password, or the key is damaged"},
		{"legacy PEM encryption", legacy, "correct horse", "the private key uses legacy PEM encryption (Proc-Type), which is not supported: convert it with openssl pkcs8 -topk8 -v2 aes-256-cbc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseClientCertificate([]byte(tt.data), []byte(tt.password))
			if (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr)) {
				t.Errorf("got error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestCredEncryptedKeyFromOpenSSL reads keys as OpenSSL encrypts them,
// with both PBKDF2 functions it may use.
func TestCredEncryptedKeyFromOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	_, _, pemData := credCertificate(t)
	certPEM, keyPEM := credSplitPEM(t, pemData)
	dir := t.TempDir()
	plainFile := filepath.Join(dir, "key.pem")
	credWrite(t, plainFile, keyPEM)
	for _, args := range [][]string{
		{"-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256"},
		{"-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out := filepath.Join(dir, "encrypted.pem")
			cmd := exec.Command(openssl, append([]string{"pkcs8", "-topk8", "-in", plainFile, "-out", out, "-passout", "pass:s3cret pass"}, args...)...)
			if output, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("openssl: %v\n%s", err, output)
			}
			encrypted, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			passwordFile := filepath.Join(dir, "password")
			credWrite(t, passwordFile, "s3cret pass\n")
			certFile := filepath.Join(dir, "client.pem")
			credWrite(t, certFile, certPEM+string(encrypted))
			if _, err := ReadClientCertificate(certFile, passwordFile); err != nil {
				t.Fatal(err)
			}
		})
	}
}
