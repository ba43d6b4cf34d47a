package daemon

import (
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// exposure collects every text the exporter lets out (pages, metrics,
// logs, error answers) under a name, so that a test can check none of
// them carries a secret. Other suites add to it with add or visit.
type exposure struct {
	mu    sync.Mutex
	texts []exposedText
}

type exposedText struct{ where, text string }

func (e *exposure) add(where, text string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.texts = append(e.texts, exposedText{where, text})
}

// visit fetches every page of exp for the given batches, whatever its
// status, and adds each answer.
func (e *exposure) visit(t *testing.T, exp *testExporter, ids ...string) {
	t.Helper()
	pages := []string{"/metrics", "/config", "/", "/batches", "/batches?format=json", "/batches?format=csv"}
	for _, id := range ids {
		for _, format := range []string{"html", "json", "csv"} {
			pages = append(pages, "/batches/"+id+"?format="+format)
		}
	}
	for _, page := range pages {
		body, status, err := testkit.Fetch(exp.url + page)
		if err != nil {
			t.Fatalf("GET %s: %v", page, err)
		}
		e.add(page+" ("+http.StatusText(status)+")", body)
	}
}

// check fails the test for every text that contains one of secrets.
func (e *exposure) check(t *testing.T, secrets ...string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, secret := range secrets {
		if secret == "" {
			t.Fatal("an empty secret would match everything")
		}
		for _, x := range e.texts {
			if i := strings.Index(x.text, secret); i >= 0 {
				t.Errorf("%s shows a secret: ...%s...", x.where, excerpt(x.text, i))
			}
		}
	}
}

// excerpt shows where a secret was found without printing it whole.
func excerpt(text string, at int) string {
	return text[max(at-40, 0):at] + "<secret>"
}

// issuedTokens lists the access tokens the fake handed out, as seen in the
// Authorization headers it received.
func issuedTokens(srv *partnercentertest.Server) []string {
	var tokens []string
	for _, r := range srv.Requests() {
		if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tokens = append(tokens, token)
		}
	}
	return tokens
}

// TestNoSecretAnywhere runs the exporter through token failures (one of
// which echoes the secret back), a successful run with failing batches and
// an expired token, and checks every page, every metric, every log line
// and every error text for the client secret and the access tokens.
func TestNoSecretAnywhere(t *testing.T) {
	srv := newFaultFake(t)
	ids := []string{faultA, faultB, faultC}
	srv.SetBatch(testkit.Customer1, faultA, partnercentertest.Batch{
		TrackingID: faultA, Status: "finished_with_errors",
		Devices: partnercentertest.GenerateDevices(10, 3, map[string]int{"808": 2}),
	})
	srv.SetBatch(testkit.Customer1, faultB, processing(faultB))
	srv.SetResponses(testkit.Customer1, faultC, processing(faultC), partnercentertest.Response{Status: http.StatusInternalServerError})
	exp, path := faultExporter(t, srv, []string{"refresh_interval: 0s"}, ids...)
	var seen exposure
	// A refused token request is remembered for a backoff; the same secret
	// written anew ends it, so that each phase sends its own request.
	secretFile := filepath.Join(filepath.Dir(path), "client_secret")
	secret := readFile(t, secretFile)

	phases := []struct {
		name  string
		setup func()
	}{
		{"invalid_client echoing the secret", func() {
			srv.FailTokenRequests(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided: "+testkit.ClientSecret)
		}},
		{"400 echoing the secret", func() {
			srv.FailTokenRequests(http.StatusBadRequest, "invalid_request "+testkit.ClientSecret, "bad request for "+testkit.ClientSecret)
		}},
		{"malformed token answer", func() {
			srv.FailTokenRequests(0, "", "")
			srv.SetTokenResponses(partnercentertest.Response{Body: []byte(`{"access_token":"` + partnercentertest.AccessTokenPrefix + testkit.ClientSecret)})
		}},
		{"success", func() { srv.SetTokenResponses() }},
		{"expired token", srv.ExpireTokens},
	}
	for _, p := range phases {
		p.setup()
		replaceFile(t, secretFile, secret)
		body, _ := exp.scrape(t, faultScrapeTimeout)
		seen.add("/metrics after "+p.name, body)
		seen.visit(t, exp, ids...)
	}
	seen.add("log", exp.logs.String())

	tokens := issuedTokens(srv)
	if len(tokens) < 2 {
		t.Fatalf("the fake saw %d bearer tokens, want at least 2 (before and after expiry)", len(tokens))
	}
	seen.check(t, append(tokens, testkit.ClientSecret, partnercentertest.AccessTokenPrefix, srv.LastAccessToken())...)

	// The scan is only worth something if the texts hold what it passed.
	for _, want := range []string{"invalid_client", "token endpoint answered 400", "decoding token response", "HTTP 500", "reading batch failed", "<redacted>"} {
		if !strings.Contains(exp.logs.String(), want) {
			t.Errorf("the log lacks %q: the scan did not see that failure", want)
		}
	}
}

// credentialRun is one run of TestNoCredentialMaterialAnywhere: how to set
// up the credential, then a phase in which the token endpoint refuses it,
// then its file deleted.
type credentialRun struct {
	name string
	// setup registers the credential with srv, writes its file into dir
	// and returns the auth line and the texts that must never be shown.
	setup func(t *testing.T, srv *partnercentertest.Server, dir string) (auth string, secrets []string)
	// refuse makes the token endpoint refuse the credential; the log must
	// then hold refusal.
	refuse  func(t *testing.T, srv *partnercentertest.Server, dir string)
	refusal string
	file    string
}

// pemBodyLines are the base64 lines of the PEM blocks of type blockType.
func pemBodyLines(t *testing.T, data []byte, blockType string) []string {
	t.Helper()
	var lines []string
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == blockType {
			body := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes})
			all := strings.Split(strings.TrimSpace(string(body)), "\n")
			lines = append(lines, all[1:len(all)-1]...)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("no %s block", blockType)
	}
	return lines
}

const credKeyPassword = "key-password-that-must-not-leak"

var credentialRuns = []credentialRun{
	{
		name: "client_certificate",
		setup: func(t *testing.T, srv *partnercentertest.Server, dir string) (string, []string) {
			cert, pemData := credCertificate(t, dir)
			srv.SetClientCertificate(testkit.ClientID, cert)
			encrypted, err := partnercentertest.EncryptClientKey(pemData, credKeyPassword)
			if err != nil {
				t.Fatal(err)
			}
			credWriteFile(t, filepath.Join(dir, "client.pem"), string(encrypted))
			credWriteFile(t, filepath.Join(dir, "password"), credKeyPassword+"\n")
			secrets := append(pemBodyLines(t, pemData, "PRIVATE KEY"), pemBodyLines(t, encrypted, "ENCRYPTED PRIVATE KEY")...)
			return "client_certificate_file: client.pem\n  client_certificate_password_file: password\n  send_certificate_chain: true",
				append(secrets, credKeyPassword)
		},
		refuse: func(t *testing.T, srv *partnercentertest.Server, dir string) {
			other, _, err := partnercentertest.GenerateClientCertificate("another")
			if err != nil {
				t.Fatal(err)
			}
			srv.SetClientCertificate(testkit.ClientID, other)
		},
		refusal: "401 invalid_client: AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.",
		file:    "client.pem",
	},
	{
		name: "workload_identity",
		setup: func(t *testing.T, srv *partnercentertest.Server, dir string) (string, []string) {
			srv.SetFederatedToken(testkit.ClientID, "sa-token-first-must-not-leak")
			credWriteFile(t, filepath.Join(dir, "token"), "sa-token-first-must-not-leak\n")
			return "federated_token_file: token", []string{"sa-token-first-must-not-leak", "sa-token-stale-must-not-leak"}
		},
		refuse: func(t *testing.T, srv *partnercentertest.Server, dir string) {
			credWriteFile(t, filepath.Join(dir, "token"), "sa-token-stale-must-not-leak")
		},
		refusal: "401 invalid_client: AADSTS700213: No matching federated identity record found for presented assertion.",
		file:    "token",
	},
}

// TestNoCredentialMaterialAnywhere runs the exporter with each assertion
// credential through success, a refused credential and a deleted file,
// and scans every page, metric, log line and error text for the private
// key, the federated tokens and the access tokens.
func TestNoCredentialMaterialAnywhere(t *testing.T) {
	for _, run := range credentialRuns {
		t.Run(run.name, func(t *testing.T) {
			srv := credFake(t)
			dir := t.TempDir()
			auth, secrets := run.setup(t, srv, dir)
			exp := startExporter(t, credConfig(t, srv, dir, auth))
			var seen exposure

			seen.add("/metrics, success", credScrape(t, exp, 1))
			seen.visit(t, exp, faultA)
			run.refuse(t, srv, dir)
			srv.ExpireTokens()
			seen.add("/metrics, refused", credScrape(t, exp, 0))
			if err := os.Remove(filepath.Join(dir, run.file)); err != nil {
				t.Fatal(err)
			}
			seen.add("/metrics, file deleted", credScrape(t, exp, 0))
			seen.visit(t, exp, faultA)
			logs := exp.logs.String()
			seen.add("log", logs)

			seen.check(t, append(append(secrets, issuedTokens(srv)...), partnercentertest.AccessTokenPrefix)...)
			for _, want := range []string{run.refusal, "open " + filepath.Join(dir, run.file) + ": no such file or directory"} {
				if !strings.Contains(logs, want) {
					t.Errorf("the log lacks %q: the scan did not see that failure", want)
				}
			}
		})
	}
}
