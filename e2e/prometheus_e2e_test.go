package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/partnercenter-exporter/partnercenter_exporter/internal/testkit"
)

const (
	// e2eScrapeInterval replaces the examples' one minute, so that the
	// test sees scrapes and rule evaluations within seconds.
	e2eScrapeInterval = "2s"
	// e2eScrapeTimeout leaves the exporter 1s after its 0.5s offset.
	e2eScrapeTimeout = "1500ms"
	// e2eLiveTimeout bounds everything after the build: starting both
	// programs, waiting for results, stopping them.
	e2eLiveTimeout = 90 * time.Second
	// e2eBuildTimeout bounds the go build, which compiles everything when
	// the build cache is cold.
	e2eBuildTimeout = 5 * time.Minute
)

// TestPrometheusEndToEnd runs the exporter binary in demo mode and a real
// Prometheus server with the example configuration and rules pointed at
// it, and asks Prometheus' HTTP API for the exporter's series, a
// recording rule's result and a firing alert.
func TestPrometheusEndToEnd(t *testing.T) {
	prometheusBin := requireTool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	exporterBin := buildExporterBinary(t, dir)

	ctx, cancel := context.WithTimeout(t.Context(), e2eLiveTimeout)
	defer cancel()

	exporterAddr := testkit.FreeLoopbackAddr(t)
	exporter := testkit.StartLogged(t, dir, "exporter", exporterBin, "--demo", "--web.listen-address="+exporterAddr)
	e2eWait(ctx, t, "exporter ready", []*testkit.Process{exporter}, func() (bool, error) {
		_, status, err := testkit.Fetch("http://" + exporterAddr + "/-/ready")
		return err == nil && status == http.StatusOK, nil
	})

	promAddr := testkit.FreeLoopbackAddr(t)
	configFile := writePrometheusConfig(t, dir, exporterAddr, testkit.FreeLoopbackAddr(t))
	prom := testkit.StartLogged(t, dir, "prometheus", prometheusBin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn")
	api := prometheusAPI{base: "http://" + promAddr}
	both := []*testkit.Process{exporter, prom}

	e2eWait(ctx, t, "the exporter target up", both, func() (bool, error) {
		return api.targetUp("partnercenter")
	})
	// Every configured batch but the missing one, five statuses each.
	e2eWait(ctx, t, "35 partnercenter_batch_status series", both, func() (bool, error) {
		r, err := api.query("partnercenter_batch_status")
		return len(r) == 35, err
	})
	// Three customers, five statuses each.
	e2eWait(ctx, t, "15 partnercenter:customer_batches:count series", both, func() (bool, error) {
		r, err := api.query("partnercenter:customer_batches:count")
		return len(r) == 15, err
	})
	// 44 of the 250 devices of the old Fabrikam batch failed.
	e2eWait(ctx, t, "the failed-device ratio of "+demoErrorsBatch, both, func() (bool, error) {
		r, err := api.query(`partnercenter:batch_failed_devices:ratio{batch_tracking_id="` + demoErrorsBatch + `"}`)
		return len(r) == 1 && r[0].value() == "0.176", err
	})
	// The alert without "for" fires at the first evaluation, for the one
	// batch that had finished with errors when the demo started.
	e2eWait(ctx, t, "PartnerCenterBatchFinishedWithErrors firing", both, func() (bool, error) {
		r, err := api.query(`ALERTS{alertname="PartnerCenterBatchFinishedWithErrors",alertstate="firing"}`)
		var batches []string
		for _, s := range r {
			batches = append(batches, s.Metric["batch_tracking_id"])
		}
		return slices.Equal(batches, []string{demoErrorsBatch}), err
	})

	if code := exporter.Terminate(ctx, t); code != 0 {
		t.Errorf("exporter exited with %d after SIGTERM, want 0\n%s", code, exporter.Output())
	}
	prom.Terminate(ctx, t)
}

// buildExporterBinary builds the exporter as the Dockerfile does (static,
// trimmed paths), which shares the build cache with that test.
func buildExporterBinary(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), e2eBuildTimeout)
	defer cancel()
	bin := filepath.Join(dir, "partnercenter_exporter")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writePrometheusConfig copies the example Prometheus configuration and
// its rules into dir, with the intervals shortened and the targets moved
// to the test's loopback ports, and returns the configuration's path.
func writePrometheusConfig(t *testing.T, dir, exporterAddr, alertmanagerAddr string) string {
	t.Helper()
	var cfg map[string]any
	readYAML(t, examplesPrometheusConfig, &cfg)
	if err := rewritePrometheusConfig(cfg, exporterAddr, alertmanagerAddr); err != nil {
		t.Fatalf("%s: %v", examplesPrometheusConfig, err)
	}
	return writeExampleCopy(t, dir, examplesPrometheusConfig, cfg)
}

// writeExampleCopy writes cfg, a rewritten copy of the example
// configuration at example, into dir together with the rules it names,
// and returns the copy's path.
func writeExampleCopy(t *testing.T, dir, example string, cfg map[string]any) string {
	t.Helper()
	// rule_files stay as written: relative to the configuration file, so
	// the rules go to the same place relative to the copy.
	rules, _ := cfg["rule_files"].([]any)
	if len(rules) == 0 {
		t.Fatalf("%s has no rule_files", example)
	}
	for _, r := range rules {
		rel := fmt.Sprint(r)
		src := filepath.Join(filepath.Dir(example), rel)
		if err := copyContextFile(src, filepath.Join(dir, rel)); err != nil {
			t.Fatalf("rule file %s: %v", rel, err)
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func rewritePrometheusConfig(cfg map[string]any, exporterAddr, alertmanagerAddr string) error {
	if err := shortenGlobalIntervals(cfg); err != nil {
		return err
	}
	jobs := 0
	scrapes, _ := cfg["scrape_configs"].([]any)
	for _, s := range scrapes {
		job, ok := s.(map[string]any)
		if !ok || job["job_name"] != "partnercenter" {
			continue
		}
		jobs++
		job["scrape_interval"], job["scrape_timeout"] = e2eScrapeInterval, e2eScrapeTimeout
		job["static_configs"] = []any{map[string]any{"targets": []any{exporterAddr}}}
	}
	if jobs != 1 {
		return fmt.Errorf("%d scrape configs with job_name partnercenter, want 1", jobs)
	}
	return redirectAlerts(cfg, alertmanagerAddr)
}

func shortenGlobalIntervals(cfg map[string]any) error {
	global, ok := cfg["global"].(map[string]any)
	if !ok {
		return errors.New("no global block")
	}
	global["scrape_interval"], global["evaluation_interval"] = e2eScrapeInterval, e2eScrapeInterval
	return nil
}

// redirectAlerts sends alerts to a loopback port nothing listens on, never
// to a real Alertmanager that might run on this machine.
func redirectAlerts(cfg map[string]any, alertmanagerAddr string) error {
	alerting, ok := cfg["alerting"].(map[string]any)
	if !ok {
		return errors.New("no alerting block")
	}
	alerting["alertmanagers"] = []any{map[string]any{"static_configs": []any{map[string]any{"targets": []any{alertmanagerAddr}}}}}
	return nil
}

// e2eWait polls cond every 200ms until it holds; it fails the test when
// ctx ends or one of the processes exits first.
func e2eWait(ctx context.Context, t *testing.T, what string, procs []*testkit.Process, cond func() (bool, error)) {
	t.Helper()
	for {
		ok, err := cond()
		if ok {
			return
		}
		for _, p := range procs {
			select {
			case <-p.Exited():
				t.Fatalf("%s exited while waiting for %s\n%s", p.Name, what, p.Output())
			default:
			}
		}
		select {
		case <-ctx.Done():
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "--- %s log:\n%s\n", p.Name, p.Output())
			}
			t.Fatalf("no %s within %s (last error: %v)\n%s", what, e2eLiveTimeout, err, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// prometheusAPI is a client of the Prometheus HTTP API.
type prometheusAPI struct {
	base string
}

// promSample is one element of an instant vector result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() string {
	v, _ := s.Value[1].(string)
	return v
}

// get decodes the data field of a successful API answer into v.
func (a prometheusAPI) get(path string, v any) error {
	body, status, err := testkit.Fetch(a.base + path)
	if err != nil {
		return err
	}
	var answer struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		return fmt.Errorf("GET %s: %d %q: %w", path, status, body, err)
	}
	if answer.Status != "success" {
		return fmt.Errorf("GET %s: %d %s: %s", path, status, answer.Status, answer.Error)
	}
	return json.Unmarshal(answer.Data, v)
}

func (a prometheusAPI) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if err := a.get("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, data.ResultType)
	}
	return data.Result, nil
}

// promTarget is one active target of the targets API.
type promTarget struct {
	Labels     map[string]string `json:"labels"`
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
}

func (a prometheusAPI) activeTargets() ([]promTarget, error) {
	var data struct {
		ActiveTargets []promTarget `json:"activeTargets"`
	}
	err := a.get("/api/v1/targets?state=active", &data)
	return data.ActiveTargets, err
}

// targetUp reports whether the job's only active target is up; a target
// that is down reports why.
func (a prometheusAPI) targetUp(job string) (bool, error) {
	targets, err := a.activeTargets()
	if err != nil {
		return false, err
	}
	var health []string
	for _, target := range targets {
		if target.Labels["job"] != job {
			continue
		}
		if target.Health == "up" {
			return len(targets) == 1, nil
		}
		health = append(health, target.Health+" "+target.LastError)
	}
	return false, fmt.Errorf("job %s targets: %s", job, strings.Join(health, "; "))
}
