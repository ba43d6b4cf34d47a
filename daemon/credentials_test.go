package daemon

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// credFake is a fake with one processing batch, faultA of customer1, and
// no credential the exporter's tests use by default.
func credFake(t *testing.T) *partnercentertest.Server {
	t.Helper()
	srv := partnercentertest.NewServer()
	t.Cleanup(srv.Close)
	srv.SetBatch(testkit.Customer1, faultA, processing(faultA))
	return srv
}

// credConfig writes a configuration for faultA against srv's v2 token
// endpoint with the given auth lines and returns its path.
func credConfig(t *testing.T, srv *partnercentertest.Server, dir string, auth ...string) string {
	t.Helper()
	text := fmt.Sprintf("partner_center:\n  base_url: %s\n  refresh_interval: 0s\n  request_timeout: 2s\n"+
		"auth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: %s\n  token_url: %s\n  %s\n"+
		"customers:\n  - id: %s\n    batches:\n      - %s\n",
		srv.URL, testkit.ClientID, srv.TokenURLV2(), strings.Join(auth, "\n  "), testkit.Customer1, faultA)
	path := filepath.Join(dir, "partnercenter.yml")
	credWriteFile(t, path, text)
	return path
}

func credWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// credCertificate writes a new certificate file into dir and returns the
// certificate and the file's content.
func credCertificate(t *testing.T, dir string) (*x509.Certificate, []byte) {
	t.Helper()
	cert, pemData, err := partnercentertest.GenerateClientCertificate("partnercenter_exporter test")
	if err != nil {
		t.Fatal(err)
	}
	credWriteFile(t, filepath.Join(dir, "client.pem"), string(pemData))
	return cert, pemData
}

// credScrape scrapes exp, checks partnercenter_up and returns the page.
func credScrape(t *testing.T, exp *testExporter, wantUp float64) string {
	t.Helper()
	body, m := exp.scrape(t, faultScrapeTimeout)
	checkMetrics(t, m, []metricWant{{"partnercenter_up", "", wantUp}})
	return body
}

func TestConfigCheckCredentials(t *testing.T) {
	srv := credFake(t)
	dir := t.TempDir()
	credCertificate(t, dir)
	credWriteFile(t, filepath.Join(dir, "token"), "sa-token\n")
	tests := []struct {
		auth, mode string
	}{
		{"client_certificate_file: client.pem", "client_certificate"},
		{"federated_token_file: token", "workload_identity (tenant_id contoso.onmicrosoft.com, client_id " + testkit.ClientID +
			", federated_token_file " + filepath.Join(dir, "token") + ")"},
	}
	for _, tt := range tests {
		path := credConfig(t, srv, dir, tt.auth)
		var stdout, stderr bytes.Buffer
		code := CheckConfig(path, &stdout, &stderr)
		want := path + ": OK: 1 customer, 1 batch, auth " + tt.mode + ", base_url " + srv.URL + "\n"
		if code != 0 || stdout.String() != want {
			t.Errorf("--config.check with %s: code %d stdout %q stderr %q, want 0 and %q", tt.auth, code, stdout.String(), stderr.String(), want)
		}
	}

	// A missing file is named with its line, before any token request.
	path := credConfig(t, srv, dir, "client_certificate_file: gone.pem")
	var stdout, stderr bytes.Buffer
	code := CheckConfig(path, &stdout, &stderr)
	want := path + `:9: auth.client_certificate_file: cannot read "` + filepath.Join(dir, "gone.pem") + `": no such file or directory` + "\n"
	if code != 1 || stderr.String() != want {
		t.Errorf("--config.check with a missing certificate: code %d stderr %q, want 1 and %q", code, stderr.String(), want)
	}
}

// TestWorkloadIdentityRotation replaces the federated token file, as the
// kubelet does, and checks that the next token request presents the new
// token without a reload.
func TestWorkloadIdentityRotation(t *testing.T) {
	srv := credFake(t)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	srv.SetFederatedToken(testkit.ClientID, "sa-token-1")
	credWriteFile(t, token, "sa-token-1\n")
	exp := startExporter(t, credConfig(t, srv, dir, "federated_token_file: token"))
	credScrape(t, exp, 1)

	srv.SetFederatedToken(testkit.ClientID, "sa-token-2")
	credWriteFile(t, token, "sa-token-2\n")
	srv.ExpireTokens()
	_, m := exp.scrape(t, faultScrapeTimeout)
	checkMetrics(t, m, append(tokenCounts(2, 0), metricWant{"partnercenter_up", "", 1}))
}
