package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/partnercenter-exporter/partnercenter_exporter/config"
	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
	"github.com/partnercenter-exporter/partnercenter_exporter/partnercenter/partnercentertest"
)

// Paths of the examples, relative to the repository root.
const (
	examplesPrometheusConfig = "examples/prometheus/prometheus.yml"
	examplesPrometheusDocker = "examples/prometheus/prometheus.docker.yml"
	examplesPrometheusShards = "examples/prometheus/prometheus-hashmod.yml"
	examplesRulesDir         = "examples/prometheus/rules"
	examplesRules            = examplesRulesDir + "/partnercenter.rules.yml"
	examplesRulesTest        = "partnercenter.rules.test.yml" // in examplesRulesDir
	examplesAlertmanager     = "examples/alertmanager/alertmanager.yml"
	examplesDashboard        = "examples/grafana/partnercenter-dashboard.json"
	examplesCompose          = "examples/docker-compose.yml"
)

// requireTool returns the path of a command the test needs, or skips the
// test loudly: a skipped check is a check that did not run.
func requireTool(t *testing.T, command, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(command)
	if err != nil {
		t.Skipf("\n\n*** SKIPPED: %s is not installed, so this example check did NOT run. ***\n"+
			"*** Install the Debian package %q (make deps does it when it can). ***\n\n", command, debianPackage)
	}
	return path
}

// runTool runs a command in dir and fails the test with its output when
// it fails.
func runTool(t *testing.T, dir, command string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), command, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", filepath.Base(command), strings.Join(args, " "), dir, err, out)
	}
	t.Logf("%s %s: %s", filepath.Base(command), strings.Join(args, " "), strings.TrimSpace(string(out)))
}

func TestExamplePromtool(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	t.Run("check config", func(t *testing.T) {
		runTool(t, ".", promtool, "check", "config", examplesPrometheusConfig)
	})
	t.Run("check config docker", func(t *testing.T) {
		runTool(t, ".", promtool, "check", "config", examplesPrometheusDocker)
	})
	// promtool resolves rule_files against the configuration's directory,
	// so this also checks the sharded example finds the same rules.
	t.Run("check config hashmod", func(t *testing.T) {
		runTool(t, ".", promtool, "check", "config", examplesPrometheusShards)
	})
	t.Run("check rules", func(t *testing.T) {
		runTool(t, ".", promtool, "check", "rules", examplesRules)
	})
	t.Run("test rules", func(t *testing.T) {
		runTool(t, examplesRulesDir, promtool, "test", "rules", examplesRulesTest)
	})
}

// TestExampleHashmodShardsAlike checks the scrape configs of the sharded
// example are one config repeated with only N changed (job name, replica
// address, shard kept), and that the modulus is the number of replicas: a
// slip in one shard would lose or double some batches.
func TestExampleHashmodShardsAlike(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	readYAML(t, examplesPrometheusShards, &cfg)
	const replicas = 3
	// One per shard, then the replicas' own metrics.
	if len(cfg.ScrapeConfigs) != replicas+1 {
		t.Fatalf("%d scrape configs, want one per replica (%d) and one for the replicas' own metrics", len(cfg.ScrapeConfigs), replicas)
	}
	if own := cfg.ScrapeConfigs[replicas]; own["job_name"] != "partnercenter-exporters" || own["metrics_path"] != "/metrics" {
		t.Errorf("last scrape config %v, want partnercenter-exporters on /metrics", own)
	}
	var first string
	for n, sc := range cfg.ScrapeConfigs[:replicas] {
		out, err := yaml.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		text := string(out)
		name := fmt.Sprintf("partnercenter-%d", n)
		// job_name, the /sd URL and the __address__ replacement.
		if c := strings.Count(text, name); c != 3 {
			t.Errorf("scrape config %d names %s %d times, want 3", n, name, c)
		}
		if !strings.Contains(text, "modulus: "+strconv.Itoa(replicas)+"\n") {
			t.Errorf("scrape config %d: modulus is not %d", n, replicas)
		}
		text = strings.ReplaceAll(text, name, "partnercenter-N")
		text = strings.Replace(text, fmt.Sprintf("regex: \"%d\"", n), `regex: "N"`, 1)
		if n == 0 {
			first = text
		} else if text != first {
			t.Errorf("scrape config %d differs from scrape config 0 in more than N:\n%s\nvs\n%s", n, text, first)
		}
	}
}

func TestExampleAlertmanagerConfig(t *testing.T) {
	amtool := requireTool(t, "amtool", "prometheus-alertmanager")
	runTool(t, ".", amtool, "check-config", examplesAlertmanager)
}

// rulesFile is the part of a Prometheus rules file the tests read.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// rulesTestFile is the part of a promtool rules test file the tests read.
type rulesTestFile struct {
	Tests []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTests []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTests []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestExampleRuleTestsCoverEveryAlert checks the promtool tests have, for
// every alert, a case where it fires and one where it does not.
func TestExampleRuleTestsCoverEveryAlert(t *testing.T) {
	var rules rulesFile
	readYAML(t, examplesRules, &rules)
	var tests rulesTestFile
	readYAML(t, filepath.Join(examplesRulesDir, examplesRulesTest), &tests)

	firing, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !firing[r.Alert] || !silent[r.Alert] {
				t.Errorf("alert %s: tested firing %t, tested not firing %t", r.Alert, firing[r.Alert], silent[r.Alert])
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("alert %s has severity %q, which the Alertmanager example does not route", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts in the rules file")
	}
}

// TestExampleConfigs loads the example exporter configurations as the
// exporter would, with their credential files replaced by temporary
// files, and checks a misspelt key in them would be refused.
func TestExampleConfigs(t *testing.T) {
	// The webhook's variables would fill in what the examples leave out.
	for _, name := range []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID"} {
		t.Setenv(name, "")
	}
	tests := []struct {
		path       string
		wantMode   config.AuthMode
		withSecret bool
		caFile     string // a CA the example names, written as a test CA
	}{
		{"examples/partnercenter.yml", config.AuthClientCredentials, true, ""},
		{"examples/partnercenter-app-user.yml", config.AuthRefreshToken, true, ""},
		{"examples/partnercenter-proxy.yml", config.AuthClientCredentials, true, "corporate-ca.pem"},
		{"examples/partnercenter-certificate.yml", config.AuthClientCertificate, false, ""},
		{"examples/partnercenter-workload-identity.yml", config.AuthWorkloadIdentity, false, ""},
		{"examples/partnercenter-access-token.yml", config.AuthAccessTokenFile, false, ""},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			data, baseDir := withTemporaryCredentialFiles(t, tt.path)
			if tt.caFile != "" {
				if err := os.WriteFile(filepath.Join(baseDir, tt.caFile), testkit.NewCA(t, "example CA").PEM, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := config.Parse(data, tt.path, baseDir)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Auth.Mode(); got != tt.wantMode {
				t.Errorf("authentication mode %s, want %s", got, tt.wantMode)
			}
			if cfg.BatchCount() == 0 {
				t.Error("the example configures no batch")
			}
			if tt.withSecret && cfg.Auth.ClientSecret.Reveal() != "example-client-secret" {
				t.Error("the client secret was not read from client_secret_file")
			}

			typo := strings.Replace(string(data), "customers:", "customer:", 1)
			if _, err := config.Parse([]byte(typo), tt.path, baseDir); err == nil || !strings.Contains(err.Error(), "customer") {
				t.Errorf("a misspelt key was not refused: %v", err)
			}
		})
	}
}

// withTemporaryCredentialFiles returns the configuration at path, with
// absolute credential file paths pointing at temporary files, and a base
// directory holding the relative ones. Line numbers stay as in the file.
func withTemporaryCredentialFiles(t *testing.T, path string) ([]byte, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Auth map[string]any `yaml:"auth"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	baseDir, absDir := t.TempDir(), t.TempDir()
	text := string(data)
	for key, value := range doc.Auth {
		file, ok := value.(string)
		if !strings.HasSuffix(key, "_file") || !ok {
			continue
		}
		content := exampleCredential(t, key)
		target := filepath.Join(baseDir, file)
		if filepath.IsAbs(file) {
			target = filepath.Join(absDir, key)
			line := regexp.MustCompile(`(?m)^(\s*` + regexp.QuoteMeta(key) + `:\s*)` + regexp.QuoteMeta(file) + `\s*$`)
			if !line.MatchString(text) {
				t.Fatalf("cannot find %s: %s in %s", key, file, path)
			}
			text = line.ReplaceAllString(text, "${1}"+target)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []byte(text), baseDir
}

// exampleCredential is the content of a stand-in for the file at an
// auth key: a fresh certificate for client_certificate_file, which is
// parsed at load, else a line such as "example-client-secret".
func exampleCredential(t *testing.T, key string) string {
	t.Helper()
	if key == "client_certificate_file" {
		_, pemData, err := partnercentertest.GenerateClientCertificate("example")
		if err != nil {
			t.Fatal(err)
		}
		return string(pemData)
	}
	return "example-" + strings.ReplaceAll(strings.TrimSuffix(key, "_file"), "_", "-") + "\n"
}

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]struct {
		Build       map[string]string `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

// hostPath maps a path inside a service's container to the example file
// mounted there, relative to the compose file's directory.
func (c composeFile) hostPath(t *testing.T, service, containerPath string) string {
	t.Helper()
	best, bestTarget := "", ""
	for _, v := range c.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue // a named volume
		}
		target := parts[1]
		if (containerPath == target || strings.HasPrefix(containerPath, target+"/")) && len(target) > len(bestTarget) {
			best = filepath.Join(filepath.Dir(examplesCompose), parts[0], strings.TrimPrefix(containerPath, target))
			bestTarget = target
		}
	}
	if best == "" {
		t.Fatalf("service %s mounts nothing at %s", service, containerPath)
	}
	return best
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// TestExampleCompose checks what can be checked of the Compose stack
// without a container engine: every file it mounts or names exists, the
// exporter's arguments are ones the exporter accepts, and the Prometheus
// configuration it uses is the tested one with the Compose host names.
func TestExampleCompose(t *testing.T) {
	var compose composeFile
	readYAML(t, examplesCompose, &compose)
	for _, name := range []string{"exporter", "prometheus", "alertmanager", "grafana"} {
		if _, ok := compose.Services[name]; !ok {
			t.Fatalf("no service %s in %s", name, examplesCompose)
		}
	}

	exporter := compose.Services["exporter"]
	if _, err := os.Stat(filepath.Join(filepath.Dir(examplesCompose), exporter.Build["context"], exporter.Build["dockerfile"])); err != nil {
		t.Errorf("exporter build: %v", err)
	}
	// That the exporter accepts its command (--demo) is checked at the
	// root, by TestShippedCommandLines with the program's own parser.
	port := strings.TrimPrefix(exporterDefaultPort(t), ":")
	if !slices.Contains(exporter.Ports, "127.0.0.1:"+port+":"+port) {
		t.Errorf("exporter ports %v do not publish %s on 127.0.0.1", exporter.Ports, port)
	}
	// Prometheus runs with --web.enable-lifecycle and Grafana has its
	// default admin login: nothing is published beyond this host.
	for name, svc := range compose.Services {
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q on every interface, want 127.0.0.1:…", name, p)
			}
		}
	}

	files := map[string]string{
		"prometheus config":   compose.hostPath(t, "prometheus", flagValue(compose.Services["prometheus"].Command, "config.file")),
		"alertmanager config": compose.hostPath(t, "alertmanager", flagValue(compose.Services["alertmanager"].Command, "config.file")),
		"grafana home":        compose.hostPath(t, "grafana", compose.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]),
	}
	wantFiles := map[string]string{
		"prometheus config":   examplesPrometheusDocker,
		"alertmanager config": examplesAlertmanager,
		"grafana home":        examplesDashboard,
	}
	for what, got := range files {
		if filepath.Clean(got) != filepath.Clean(wantFiles[what]) {
			t.Errorf("%s is %s, want the tested %s", what, got, wantFiles[what])
		}
	}

	checkGrafanaProvisioning(t, compose)
	checkDockerPrometheusConfig(t, port)
}

// checkGrafanaProvisioning checks the dashboard provider reads the
// directory the dashboard is mounted in, and the data source's
// timeInterval is the scrape interval, as $__rate_interval needs.
func checkGrafanaProvisioning(t *testing.T, compose composeFile) {
	t.Helper()
	provisioning := compose.hostPath(t, "grafana", "/etc/grafana/provisioning")
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(provisioning, "dashboards", "partnercenter.yml"), &providers)
	if len(providers.Providers) != 1 {
		t.Fatalf("%d dashboard providers, want 1", len(providers.Providers))
	}
	// The home dashboard path was checked to be the dashboard's mount.
	home := compose.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if dir := providers.Providers[0].Options.Path; !strings.HasPrefix(home, strings.TrimSuffix(dir, "/")+"/") {
		t.Errorf("the dashboard provider reads %s, the dashboard is mounted at %s", dir, home)
	}

	var datasources struct {
		Datasources []struct {
			Type     string            `yaml:"type"`
			URL      string            `yaml:"url"`
			JSONData map[string]string `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(provisioning, "datasources", "prometheus.yml"), &datasources)
	var prom map[string]any
	readYAML(t, examplesPrometheusDocker, &prom)
	interval := prom["scrape_configs"].([]any)[0].(map[string]any)["scrape_interval"]
	for _, ds := range datasources.Datasources {
		if ds.Type == "prometheus" && ds.JSONData["timeInterval"] != interval {
			t.Errorf("data source %s timeInterval %q, Prometheus scrapes every %v", ds.URL, ds.JSONData["timeInterval"], interval)
		}
	}
}

// checkDockerPrometheusConfig checks prometheus.docker.yml is
// prometheus.yml with other targets, so that testing one tests both.
func checkDockerPrometheusConfig(t *testing.T, port string) {
	t.Helper()
	var local, docker map[string]any
	readYAML(t, examplesPrometheusConfig, &local)
	readYAML(t, examplesPrometheusDocker, &docker)
	localTargets, err := clearTargets(local)
	if err != nil {
		t.Fatal(err)
	}
	dockerTargets, err := clearTargets(docker)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(local, docker) {
		t.Errorf("%s and %s differ in more than their targets", examplesPrometheusConfig, examplesPrometheusDocker)
	}
	want := [][]string{{"localhost:" + port}, {"exporter:" + port}}
	if got := [][]string{localTargets, dockerTargets}; !reflect.DeepEqual(got, want) {
		t.Errorf("exporter targets %v, want %v", got, want)
	}
}

// clearTargets removes the targets of every static_configs entry and
// returns those of the scrape configs.
func clearTargets(cfg map[string]any) ([]string, error) {
	var scrapeTargets []string
	scrapes, _ := cfg["scrape_configs"].([]any)
	alerting, _ := cfg["alerting"].(map[string]any)
	managers, _ := alerting["alertmanagers"].([]any)
	for i, group := range [][]any{scrapes, managers} {
		for _, item := range group {
			m, ok := item.(map[string]any)
			if !ok {
				return nil, errors.New("a scrape config or alertmanager entry is not a mapping")
			}
			statics, _ := m["static_configs"].([]any)
			for _, s := range statics {
				sc, ok := s.(map[string]any)
				if !ok {
					return nil, errors.New("a static_configs entry is not a mapping")
				}
				if i == 0 {
					for _, target := range sc["targets"].([]any) {
						scrapeTargets = append(scrapeTargets, fmt.Sprint(target))
					}
				}
				delete(sc, "targets")
			}
		}
	}
	return scrapeTargets, nil
}

// TestPromtoolCheckMetrics runs the real `promtool check metrics` on a
// scrape of the running demo, which includes every kind of batch (failed,
// throttled, stuck, finished with errors). It must print nothing.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	p := startDemoProgram(t)
	exposition := p.get(t, "/metrics")
	for _, name := range []string{"partnercenter_batch_status", "partnercenter_batch_device_errors", "partnercenter_up"} {
		if !strings.Contains(exposition, "\n"+name+"{") && !strings.Contains(exposition, "\n"+name+" ") {
			t.Fatalf("demo scrape lacks %s; nothing worth checking", name)
		}
	}
	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
