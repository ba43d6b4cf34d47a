package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter"
)

// This file is in the external test package so that it relies only on
// the documented API and shares no helpers with the in-package tests.

const fuzzFilename = "fuzz.yml"

// fuzzSecretFiles are created in the base directory the fuzzed files are
// parsed against, under the names the examples and config/testdata use,
// so that valid seeds parse successfully. Their content must never appear
// in an error message or in RedactedYAML.
var fuzzSecretFiles = map[string]string{
	"client_secret":         "fuzz-client-s3cr3t-from-file",
	"refresh_token":         "fuzz-refresh-t0ken-from-file",
	"access_token":          "fuzz-access-t0ken-from-file",
	"secrets/client_secret": "fuzz-client-s3cr3t-in-secrets",
	"secrets/refresh_token": "fuzz-refresh-t0ken-in-secrets",
	"secrets/access_token":  "fuzz-access-t0ken-in-secrets",
}

// fuzzBaseDir creates the secret files once per process: Parse only reads
// them, so every input can share one directory.
func fuzzBaseDir(f *testing.F) string {
	dir := f.TempDir()
	for name, content := range fuzzSecretFiles {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "empty"), nil, 0o600); err != nil {
		f.Fatal(err)
	}
	return dir
}

// FuzzConfigParse checks that Parse never panics, that every error is a
// FieldError naming the file, that no secret leaks into errors or the
// redacted configuration, and that an accepted configuration is in the
// canonical form the package documents.
func FuzzConfigParse(f *testing.F) {
	const auth = "auth:\n  tenant_id: contoso.onmicrosoft.com\n  client_id: 5f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19\n  client_secret_file: client_secret\n"
	f.Add([]byte(auth + "customers:\n  - id: 6F1C2A8E-3B4D-4E5F-9A01-23456789ABCD\n    batches: [2F5A9C4E-7B1D-4A3F-8E6C-1D2B3A4C5E6F]\n"))
	f.Add([]byte(auth + "partner_center:\n  base_url: http://[::1]:9000/pc//\n  max_response_size: 1GB\n"))
	f.Add([]byte("auth:\n  access_token_file: secrets/access_token\ncustomers: []\n"))
	f.Add([]byte("auth: [oops\n"))
	f.Add([]byte("---\na: 1\n---\nb: 2\n"))
	dir := fuzzBaseDir(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if reason := unsafeFileReference(data, dir); reason != "" {
			t.Skip(reason)
		}
		cfg, err := config.Parse(data, fuzzFilename, dir)
		again, againErr := config.Parse(data, fuzzFilename, dir)
		if errString(err) != errString(againErr) || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("parsing the same file twice differs:\n%v\n%v", err, againErr)
		}
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a configuration along with the error %v", err)
			}
			checkParseError(t, err)
			return
		}
		checkConfig(t, cfg)
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// checkParseError asserts the documented error form: one or more
// *FieldError joined with errors.Join, each starting with the file name
// (syntax errors too: only their wording after "<file>: " is yaml.v3's).
func checkParseError(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, fuzzFilename+":") {
		t.Fatalf("error does not start with %q: %q", fuzzFilename, msg)
	}
	if _, ok := errors.AsType[*config.FieldError](err); !ok {
		t.Fatalf("error %q holds no *config.FieldError", msg)
	}
	var walk func(error)
	walk = func(e error) {
		if joined, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range joined.Unwrap() {
				walk(inner)
			}
			return
		}
		var fe *config.FieldError
		switch {
		case !errors.As(e, &fe):
			t.Fatalf("error %q (%T) is not a *config.FieldError", e, e)
		case fe.File != fuzzFilename || !strings.HasPrefix(e.Error(), fuzzFilename+":"):
			t.Fatalf("FieldError %q does not name the file", e)
		}
	}
	walk(err)
	for _, secret := range fuzzSecretFiles {
		if strings.Contains(msg, secret) {
			t.Fatalf("error message reveals the content of a secret file:\n%s", msg)
		}
	}
}

// checkConfig asserts what the package comment promises of a valid
// configuration.
func checkConfig(t *testing.T, cfg *config.Config) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cfg.Customers {
		if !partnercenter.ValidGUID(c.ID) || c.ID != strings.ToLower(c.ID) || seen[c.ID] {
			t.Fatalf("customer ID %q is not a unique lower-case GUID", c.ID)
		}
		seen[c.ID] = true
		for _, b := range c.Batches {
			if !partnercenter.ValidGUID(b) || b != strings.ToLower(b) || seen[b] {
				t.Fatalf("batch ID %q is not a unique lower-case GUID", b)
			}
			seen[b] = true
		}
	}
	pc := cfg.PartnerCenter
	switch {
	case strings.HasSuffix(pc.BaseURL, "/"):
		t.Fatalf("base_url %q ends with a slash", pc.BaseURL)
	case pc.RequestTimeout <= 0 || pc.RefreshInterval < 0 || pc.MaxResponseSize <= 0 ||
		pc.MaxConcurrentRequests < 1 || cfg.MaxFailedDevicesPerBatch < 0:
		t.Fatalf("out-of-range limits accepted: %+v, max_failed_devices_per_batch %d", pc, cfg.MaxFailedDevicesPerBatch)
	case cfg.Auth.Mode() == config.AuthClientCredentials && cfg.Auth.ClientSecret == "":
		t.Fatalf("client_credentials mode without a client secret")
	}
	for _, p := range []string{cfg.Auth.ClientSecretFile, cfg.Auth.RefreshTokenFile, cfg.Auth.AccessTokenFile} {
		if p != "" && !filepath.IsAbs(p) {
			t.Fatalf("file path %q was not resolved against the base directory", p)
		}
	}

	out, err := cfg.RedactedYAML()
	if err != nil {
		t.Fatalf("RedactedYAML: %v", err)
	}
	for _, secret := range fuzzSecretFiles {
		if strings.Contains(string(out), secret) {
			t.Fatalf("RedactedYAML reveals the content of a secret file:\n%s", out)
		}
	}
	var shown struct {
		Auth struct {
			ClientSecret string `yaml:"client_secret"`
		} `yaml:"auth"`
	}
	if err := yaml.Unmarshal(out, &shown); err != nil {
		t.Fatalf("RedactedYAML output is not YAML: %v\n%s", err, out)
	}
	if s := shown.Auth.ClientSecret; s != "" && s != "<secret>" {
		t.Fatalf("RedactedYAML shows client_secret %q", s)
	}
}

// unsafeFileReference returns why data must not be parsed in a test: a
// *_file value naming something whose read could block or that is not a
// plain file (/dev/stdin, a FIFO, /proc/kmsg). Parse would read it in
// good faith; a test must stay bounded in time whatever the fuzzer writes.
// Files that do not exist are fine: Parse reports them.
func unsafeFileReference(data []byte, dir string) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return "" // Parse fails before it reads any file
	}
	var reason string
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || reason != "" || depth > 100 {
			return
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, value := n.Content[i], n.Content[i+1]
				if value.Kind == yaml.AliasNode {
					value = value.Alias
				}
				if strings.HasSuffix(key.Value, "_file") && value != nil && value.Kind == yaml.ScalarNode {
					reason = unsafePath(value.Value, dir)
				}
			}
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(&root, 0)
	return reason
}

func unsafePath(name, dir string) string {
	if name == "" {
		return ""
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	if _, err := os.Lstat(name); err != nil {
		return "" // missing: Parse reports it without reading anything
	}
	// Check the path as written and as resolved: /dev/stdin resolves to
	// something like "pipe:[123]", which is no path at all.
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return "file value " + name + " is a symbolic link that does not resolve to a path"
	}
	for _, p := range []string{name, real} {
		for _, prefix := range []string{"/dev/", "/proc/", "/sys/"} {
			if strings.HasPrefix(p+"/", prefix) {
				return "file value " + p + " is under " + prefix
			}
		}
	}
	if info, err := os.Stat(real); err == nil && !info.Mode().IsRegular() && !info.IsDir() {
		return "file value " + real + " is not a regular file"
	}
	return ""
}
