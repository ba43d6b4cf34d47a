package deploy

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var (
	buildOnce   sync.Once
	exporterBin string
	buildErr    error
	buildOutput []byte
)

// buildExporter builds the exporter of the parent module once per test
// run: the chart's configuration must pass that exporter's --config.check.
func buildExporter(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pcx-chart-exporter-")
		if err != nil {
			buildErr = err
			return
		}
		exporterBin = filepath.Join(dir, "partnercenter_exporter")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", exporterBin, ".")
		cmd.Dir = ".."
		buildOutput, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building the exporter: %v\n%s", buildErr, buildOutput)
	}
	return exporterBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if exporterBin != "" {
		_ = os.RemoveAll(filepath.Dir(exporterBin))
	}
	os.Exit(code)
}

// TestRenderedConfigPassesConfigCheck lays out, under a temporary root,
// the files the exporter container would see (the ConfigMap's items, the
// Secret's keys, the refresh token the init container copies) at the
// paths the pod mounts them, rewrites the configuration's absolute paths
// under that root, and runs the exporter's --config.check on it. A path in
// the configuration that no mount provides fails the check.
func TestRenderedConfigPassesConfigCheck(t *testing.T) {
	for _, vf := range valuesFiles {
		t.Run(vf, func(t *testing.T) {
			out := configCheck(t, mustRender(t, vf))
			if vf == "workload-identity-values.yaml" && !strings.Contains(out, "auth workload_identity") {
				t.Errorf("--config.check did not take the workload identity from the environment:\n%s", out)
			}
		})
	}
}

// configCheck runs the exporter's --config.check on the release's
// configuration, laid out as the exporter container would see it, and
// returns its output. The check does not read the intake's token files
// (the intake reads them when they change), so their presence under the
// pod's mounts is checked here.
func configCheck(t *testing.T, r release) string {
	t.Helper()
	bin := buildExporter(t)
	root := t.TempDir()
	layOutPod(t, r, root)
	cfgPath := filepath.Join(root, "etc/partnercenter_exporter/partnercenter.yml")
	rerootConfig(t, cfgPath, root)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.check", "--config.file="+cfgPath)
	cmd.Env = checkEnv(t, r, root)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK: ") {
		t.Errorf("--config.check: %v\n%s", err, out)
	}
	if intake, ok := renderedConfig(t, r)["intake"].(map[string]any); ok {
		for _, f := range intake["bearer_token_files"].([]any) {
			if _, err := os.Stat(filepath.Join(root, f.(string))); err != nil {
				t.Errorf("intake token file %s: no mount of the pod provides it: %v", f, err)
			}
		}
	}
	return string(out)
}

// existingSecretKeys are the keys of the Secrets that the ci/ scenarios
// name and the release does not render (the user's own).
var existingSecretKeys = map[string][]string{
	"partnercenter-intake": {"azure-devops", "github-actions"},
	"pipeline-tokens":      {"token", "next", "current"}, // intake_test.go
}

// layOutPod writes the files of the exporter container's mounts under root.
func layOutPod(t *testing.T, r release, root string) {
	t.Helper()
	p := pod(t, r)
	for _, m := range exporter(t, r).VolumeMounts {
		dir := filepath.Join(root, m.MountPath)
		mkdir(t, dir)
		v := podOrClaimVolume(p, m.Name)
		switch {
		case v.ConfigMap != nil:
			cm := find[corev1.ConfigMap](t, r, v.ConfigMap.Name)
			if v.ConfigMap.Items == nil {
				for key, content := range cm.Data {
					writeFile(t, filepath.Join(dir, key), content)
				}
			}
			for _, it := range v.ConfigMap.Items {
				writeFile(t, filepath.Join(dir, it.Path), cm.Data[it.Key])
			}
		case v.Secret != nil && v.Secret.Items == nil:
			// The whole Secret: every key is a file.
			keys := existingSecretKeys[v.Secret.SecretName]
			if s, ok := findOptional[corev1.Secret](r, v.Secret.SecretName); ok {
				keys = slices.Sorted(maps.Keys(s.Data))
			} else if keys == nil {
				t.Fatalf("volume %s: Secret %s is neither rendered nor in existingSecretKeys", v.Name, v.Secret.SecretName)
			}
			for _, key := range keys {
				writeFile(t, filepath.Join(dir, key), "fake-"+key+"\n")
			}
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				writeFile(t, filepath.Join(dir, it.Path), "fake-"+it.Key+"\n")
			}
		}
	}
	// What the init container does: copy the token into the data volume.
	for _, ic := range p.Spec.InitContainers {
		for _, e := range ic.Env {
			if e.Name == "TOKEN_FILE" {
				writeFile(t, filepath.Join(root, e.Value), "fake-refresh-token\n")
			}
		}
	}
}

// podOrClaimVolume returns the pod's volume of that name; a StatefulSet's
// claim template has none, and is an empty directory here.
func podOrClaimVolume(p *corev1.PodTemplateSpec, name string) corev1.Volume {
	for _, v := range p.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{Name: name}
}

// rerootConfig moves the absolute file paths of the configuration under
// root. Relative ones (batch_files) follow the file itself.
func rerootConfig(t *testing.T, cfgPath, root string) {
	t.Helper()
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	reroot := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Join(root, p)
		}
		return p
	}
	if auth, ok := cfg["auth"].(map[string]any); ok {
		for k, v := range auth {
			if s, ok := v.(string); ok && strings.HasSuffix(k, "_file") {
				auth[k] = reroot(s)
			}
		}
	}
	if intake, ok := cfg["intake"].(map[string]any); ok {
		for i, f := range intake["bearer_token_files"].([]any) {
			intake["bearer_token_files"].([]any)[i] = reroot(f.(string))
		}
	}
	if globs, ok := cfg["batch_files"].([]any); ok {
		for i, g := range globs {
			globs[i] = reroot(g.(string))
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The ConfigMap item is written fresh, not through a link.
	if err := os.Remove(cfgPath); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, string(out))
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	mkdir(t, filepath.Dir(name))
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkEnv is the environment of the check: in workload identity mode, the
// variables the Azure Workload Identity webhook would inject, with a
// federated token file under root.
func checkEnv(t *testing.T, r release, root string) []string {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH")}
	if pod(t, r).Labels["azure.workload.identity/use"] != "true" {
		return env
	}
	token := filepath.Join(root, "var/run/secrets/azure/tokens/azure-identity-token")
	writeFile(t, token, "a-projected-service-account-token\n")
	return append(env, "AZURE_FEDERATED_TOKEN_FILE="+token)
}
