package deploy

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the testdata files generated from the chart")

// chartScrapeConfigFile is the chart's probe ScrapeConfig (ci/probe-values.yaml)
// as the Prometheus Operator hands it to Prometheus. The root module's
// TestPrometheusChartProbeEndToEnd runs a real Prometheus with it, so the
// end-to-end test exercises exactly what the chart renders.
const chartScrapeConfigFile = "testdata/chart-probe-scrape-config.yml"

const chartScrapeConfigHeader = `# GENERATED from the chart's probe ScrapeConfig (helm/partnercenter-exporter,
# ci/probe-values.yaml, release pcx in namespace monitoring), translated as
# the Prometheus Operator does. Do not edit: regenerate with
#   cd deploy && go test -run TestChartProbeScrapeConfigFile -update
# TestPrometheusChartProbeEndToEnd (e2e module) runs it in a real Prometheus.
`

// TestChartProbeScrapeConfigFile fails when the chart's ScrapeConfig and
// the checked-in translation the root end-to-end test runs disagree.
func TestChartProbeScrapeConfigFile(t *testing.T) {
	r := mustRender(t, "probe-values.yaml")
	sc := find[monitoringv1alpha1.ScrapeConfig](t, r, fullname+"-probe")
	out, err := yaml.Marshal(map[string]any{"scrape_configs": []any{operatorScrapeConfig(t, sc)}})
	if err != nil {
		t.Fatal(err)
	}
	want := chartScrapeConfigHeader + string(out)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(chartScrapeConfigFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(chartScrapeConfigFile)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	if string(got) != want {
		t.Errorf("%s differs from the chart's ScrapeConfig; regenerate it with -update.\n got:\n%s\nwant:\n%s", chartScrapeConfigFile, got, want)
	}
}

// operatorScrapeConfig translates a ScrapeConfig into the Prometheus
// scrape_config the Prometheus Operator generates from it: job_name
// scrapeConfig/<namespace>/<name>, the job label set by a relabeling in
// front of the object's own (after the operator's copy of the original
// job), honorLabels→honor_labels, metricsPath→metrics_path,
// httpSDConfigs→http_sd_configs, relabelings→relabel_configs, params.
// A field it does not know fails the test, so that a chart change cannot
// slip past the end-to-end test untranslated.
func operatorScrapeConfig(t *testing.T, sc *monitoringv1alpha1.ScrapeConfig) map[string]any {
	t.Helper()
	spec := asMap(t, sc.Spec)
	out := map[string]any{"job_name": fmt.Sprintf("scrapeConfig/%s/%s", sc.Namespace, sc.Name)}
	relabel := []any{map[string]any{"source_labels": []any{"job"}, "target_label": "__tmp_prometheus_job_name"}}
	for key, v := range spec {
		switch key {
		case "jobName":
			relabel = append(relabel, map[string]any{"target_label": "job", "replacement": v})
		case "honorLabels":
			out["honor_labels"] = v
		case "metricsPath":
			out["metrics_path"] = v
		case "scrapeInterval":
			out["scrape_interval"] = v
		case "scrapeTimeout":
			out["scrape_timeout"] = v
		case "params":
			out["params"] = v
		case "httpSDConfigs", "relabelings":
		default:
			t.Errorf("ScrapeConfig spec.%s is not translated: teach operatorScrapeConfig", key)
		}
	}
	var sds []any
	for i, sd := range list(t, spec["httpSDConfigs"]) {
		sds = append(sds, rename(t, fmt.Sprintf("spec.httpSDConfigs[%d]", i), sd, map[string]string{
			"url": "url", "refreshInterval": "refresh_interval",
		}))
	}
	if sds != nil {
		out["http_sd_configs"] = sds
	}
	for i, rc := range list(t, spec["relabelings"]) {
		m := rename(t, fmt.Sprintf("spec.relabelings[%d]", i), rc, map[string]string{
			"sourceLabels": "source_labels", "separator": "separator", "targetLabel": "target_label",
			"regex": "regex", "modulus": "modulus", "replacement": "replacement", "action": "action",
		})
		if a, ok := m["action"].(string); ok {
			m["action"] = strings.ToLower(a) // as the operator writes it
		}
		relabel = append(relabel, m)
	}
	out["relabel_configs"] = relabel
	return out
}

// asMap is v as its JSON object, the form the API server stores.
func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func list(t *testing.T, v any) []any {
	t.Helper()
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("%v is not a list", v)
	}
	return l
}

// rename maps the keys of one object to their Prometheus names; an
// unknown key fails the test.
func rename(t *testing.T, path string, v any, names map[string]string) map[string]any {
	t.Helper()
	in, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %v is not an object", path, v)
	}
	out := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		name, known := names[k]
		if !known {
			t.Errorf("%s.%s is not translated: teach operatorScrapeConfig", path, k)
			continue
		}
		out[name] = in[k]
	}
	return out
}
