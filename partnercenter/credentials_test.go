package partnercenter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
// err is no *TokenError.
func credTokenError(t *testing.T, err error) string {
	t.Helper()
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("got error %v, want a *TokenError", err)
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
