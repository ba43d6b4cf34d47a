package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
)

// TestOneVersion: the repository's VERSION file is the one version. The
// chart's appVersion (its default image tag) equals it, `make docker`
// tags the image with it and passes it to the Dockerfile (whose go build
// line dockerfile_test.go runs), and the binary `make build` links says
// it on --version.
func TestOneVersion(t *testing.T) {
	data, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(data))
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`).MatchString(version) || string(data) != version+"\n" {
		t.Fatalf("VERSION is %q, want one semantic version and a newline", data)
	}
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if chrt.Metadata.AppVersion != version {
		t.Errorf("Chart.yaml appVersion %q, VERSION %q", chrt.Metadata.AppVersion, version)
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on this machine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// -n prints the recipes without running them; VERSION comes from the
	// file, not from the environment of whoever runs the test.
	cmd := exec.CommandContext(ctx, "make", "-n", "docker", "build")
	cmd.Dir = ".."
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VERSION=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n docker build: %v\n%s", err, out)
	}
	recipes := string(out)
	for _, want := range []string{
		"--build-arg VERSION=" + version + " ",
		"-t partnercenter_exporter:" + version + " ",
		"-X github.com/prometheus/common/version.Version=" + version + " ",
	} {
		if !strings.Contains(recipes, want) {
			t.Errorf("make -n docker build lacks %q:\n%s", want, recipes)
		}
	}
	// Link the binary with the Makefile's flags and ask it.
	ldflags := regexp.MustCompile(`-ldflags '([^']*)'`).FindStringSubmatch(recipes)
	if ldflags == nil {
		t.Fatalf("no -ldflags in the build recipe:\n%s", recipes)
	}
	bin := filepath.Join(t.TempDir(), "partnercenter_exporter")
	build := exec.CommandContext(ctx, "go", "build", "-ldflags", ldflags[1], "-o", bin, ".")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^partnercenter_exporter, version ` + regexp.QuoteMeta(version) + ` `).Match(out) {
		t.Errorf("--version says:\n%s\nwant version %s", out, version)
	}
}
