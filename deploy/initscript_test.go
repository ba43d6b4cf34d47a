package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefreshTokenCopy runs the init container's script with the host's
// sh against temporary directories: the first start copies the token, a
// restart keeps the token the exporter rotated, and a new token in the
// Secret replaces it.
func TestRefreshTokenCopy(t *testing.T) {
	if _, err := exec.LookPath("cmp"); err != nil {
		t.Skip("no cmp on this machine")
	}
	r := mustRender(t, "storage-values.yaml")
	ic := pod(t, r).Spec.InitContainers[0]
	if len(ic.Command) != 3 || ic.Command[0] != "sh" {
		t.Fatalf("command: %q", ic.Command)
	}
	root := t.TempDir()
	seedDir := filepath.Join(root, "seed")
	script := strings.ReplaceAll(ic.Command[2], "/run/secrets/refresh-token-seed", seedDir)
	token := filepath.Join(root, "data/auth/refresh_token")
	start := func() {
		t.Helper()
		cmd := exec.Command("sh", ic.Command[1], script)
		cmd.Env = append(os.Environ(), "TOKEN_FILE="+token)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("init script: %v\n%s", err, out)
		}
	}
	want := func(content string) {
		t.Helper()
		got, err := os.ReadFile(token)
		if err != nil || string(got) != content {
			t.Fatalf("token file %q (%v), want %q", got, err, content)
		}
		if fi, err := os.Stat(token); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v (%v), want 0600", fi.Mode(), err)
		}
	}

	writeFile(t, filepath.Join(seedDir, "refresh_token"), "consented")
	start()
	want("consented")

	writeFile(t, token, "rotated") // the exporter's write-back
	start()
	want("rotated")

	writeFile(t, filepath.Join(seedDir, "refresh_token"), "consented again")
	start()
	want("consented again")
}
