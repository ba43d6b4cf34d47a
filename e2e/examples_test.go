package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
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

// dashboard is the part of a Grafana dashboard JSON model the tests read.
type dashboard struct {
	UID        string           `json:"uid"`
	Title      string           `json:"title"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []dashboardVariable `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID         int                  `json:"id"`
	Type       string               `json:"type"`
	Title      string               `json:"title"`
	GridPos    *dashboardGridPos    `json:"gridPos"`
	Datasource *dashboardDatasource `json:"datasource"`
	Targets    []struct {
		RefID      string               `json:"refId"`
		Expr       string               `json:"expr"`
		Datasource *dashboardDatasource `json:"datasource"`
	} `json:"targets"`
	// Panels holds the panels of a collapsed row.
	Panels []dashboardPanel `json:"panels"`
}

type dashboardGridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

type dashboardDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardVariable struct {
	Name       string               `json:"name"`
	Type       string               `json:"type"`
	Query      json.RawMessage      `json:"query"`
	Datasource *dashboardDatasource `json:"datasource"`
}

// query returns a query variable's query, which Grafana stores as a
// string or as {"query": "..."}.
func (v dashboardVariable) query() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &obj); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %w", v.Name, err)
	}
	return obj.Query, nil
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(examplesDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", examplesDashboard, err)
	}
	return d
}

// allPanels flattens rows: a collapsed row keeps its panels inside it.
func (d dashboard) allPanels() []dashboardPanel {
	var out []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// dashboardGridWidth is the width of Grafana's grid.
const dashboardGridWidth = 24

func TestExampleDashboardModel(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both are needed for provisioning", d.UID, d.Title)
	}
	dsVar := ""
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" {
			var plugin string
			if err := json.Unmarshal(v.Query, &plugin); err != nil || plugin != "prometheus" {
				t.Errorf("datasource variable picks %s, want prometheus data sources", v.Query)
			}
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal(`no template variable "datasource" of type datasource`)
	}
	refersToVar := func(ds *dashboardDatasource) bool {
		return ds != nil && (ds.UID == "${"+dsVar+"}" || ds.UID == "$"+dsVar)
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && !refersToVar(v.Datasource) {
			t.Errorf("variable %s uses data source %+v, not $%s", v.Name, v.Datasource, dsVar)
		}
	}

	ids := map[int]string{}
	panels := d.allPanels()
	if len(panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	for _, p := range panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s has no id", name)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("%s has the id of panel %q", name, other)
		}
		ids[p.ID] = p.Title
		switch g := p.GridPos; {
		case g == nil:
			t.Errorf("%s has no gridPos", name)
		case g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > dashboardGridWidth:
			t.Errorf("%s has gridPos %+v outside the %d-column grid", name, *g, dashboardGridWidth)
		}
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s has no queries", name)
		}
		if !refersToVar(p.Datasource) {
			t.Errorf("%s uses data source %+v, not $%s", name, p.Datasource, dsVar)
		}
		for _, target := range p.Targets {
			if !refersToVar(target.Datasource) {
				t.Errorf("%s query %s uses data source %+v, not $%s", name, target.RefID, target.Datasource, dsVar)
			}
		}
	}
}

// exampleQuery is one PromQL expression found in the examples.
type exampleQuery struct {
	where string
	expr  string
}

// grafanaDurations are the built-in Grafana variables that stand for a
// duration; any valid duration parses the same.
var grafanaDurations = map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}

// grafanaVariable matches $name, ${name}, ${name:format} and [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// expandGrafanaVariables replaces dashboard variables by a label value and
// Grafana's duration variables by a duration; an unknown variable is an
// error, as it would be an empty string in Grafana.
func expandGrafanaVariables(expr string, declared map[string]bool) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		switch {
		case grafanaDurations[name]:
			return "5m"
		case declared[name]:
			return "value"
		}
		unknown = append(unknown, m)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("undeclared variables %v", unknown)
	}
	return out, nil
}

// labelValuesQuery matches Grafana's label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\((.+),\s*(\w+)\s*\)\s*$`)

func dashboardQueries(t *testing.T) []exampleQuery {
	t.Helper()
	d := readDashboard(t)
	declared := map[string]bool{}
	for _, v := range d.Templating.List {
		declared[v.Name] = true
	}
	var out []exampleQuery
	add := func(where, expr string) {
		expanded, err := expandGrafanaVariables(expr, declared)
		if err != nil {
			t.Errorf("%s: %v in %s", where, err, expr)
			return
		}
		out = append(out, exampleQuery{where: where, expr: expanded})
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := v.query()
		if err != nil {
			t.Error(err)
			continue
		}
		m := labelValuesQuery.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
			continue
		}
		add("dashboard variable "+v.Name, m[1])
	}
	for _, p := range d.allPanels() {
		for _, target := range p.Targets {
			add(fmt.Sprintf("dashboard panel %q query %s", p.Title, target.RefID), target.Expr)
		}
	}
	return out
}

// annotationQuery finds the PromQL that alert templates run: the format of
// `printf "..." ... | query` or the argument of `query "..."`.
var annotationQuery = regexp.MustCompile(`printf\s+("(?:[^"\\]|\\.)*")[^|}]*\|\s*query\b|\bquery\s+("(?:[^"\\]|\\.)*")`)

func rulesQueries(t *testing.T) (queries []exampleQuery, recorded map[string]bool) {
	t.Helper()
	var rules rulesFile
	readYAML(t, examplesRules, &rules)
	recorded = map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			name := "record " + r.Record
			if r.Alert != "" {
				name = "alert " + r.Alert
			} else {
				recorded[r.Record] = true
			}
			queries = append(queries, exampleQuery{where: "rules: " + name, expr: r.Expr})
			for _, key := range slices.Sorted(maps.Keys(r.Annotations)) {
				for _, m := range annotationQuery.FindAllStringSubmatch(r.Annotations[key], -1) {
					format, err := strconv.Unquote(m[1] + m[2])
					if err != nil {
						t.Errorf("rules: %s annotation %s: %v", name, key, err)
						continue
					}
					expr := strings.NewReplacer(`%q`, `"value"`, `%s`, `value`).Replace(format)
					queries = append(queries, exampleQuery{where: fmt.Sprintf("rules: %s annotation %s", name, key), expr: expr})
				}
			}
		}
	}
	return queries, recorded
}

// rulesTestQueries are the expressions and input series of the promtool
// tests: test data with a wrong metric name would test nothing.
func rulesTestQueries(t *testing.T) []exampleQuery {
	t.Helper()
	var tests rulesTestFile
	readYAML(t, filepath.Join(examplesRulesDir, examplesRulesTest), &tests)
	var out []exampleQuery
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			out = append(out, exampleQuery{where: "rules test " + tc.Name + " input series", expr: s.Series})
		}
		for _, e := range tc.PromQLExprTests {
			out = append(out, exampleQuery{where: "rules test " + tc.Name + " promql_expr_test", expr: e.Expr})
		}
	}
	return out
}

// selectorUse is a metric name used in a query with the labels it is
// filtered on.
type selectorUse struct {
	name   string
	labels []string
}

// parseSelectors parses expr with the PromQL parser and returns every
// metric selector in it.
func parseSelectors(expr string) ([]selectorUse, error) {
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var uses []selectorUse
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		use := selectorUse{name: vs.Name}
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name != model.MetricNameLabel:
				use.labels = append(use.labels, m.Name)
			case use.name == "" && m.Type == labels.MatchEqual:
				use.name = m.Value
			}
		}
		uses = append(uses, use)
		return nil
	})
	return uses, nil
}

// exposedMetrics is what a real scrape of the program in demo mode shows: each series name
// PromQL can select (histograms as _bucket, _sum and _count) with the
// label names its series carry.
func exposedMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	p := startDemoProgram(t)
	textParser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := textParser.TextToMetricFamilies(strings.NewReader(p.get(t, "/metrics")))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]map[string]bool{}
	for name, f := range families {
		labelNames := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labelNames[l.GetName()] = true
			}
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"] = maps.Clone(labelNames)
			out[name+"_bucket"]["le"] = true
			out[name+"_sum"], out[name+"_count"] = labelNames, labelNames
		case dto.MetricType_SUMMARY:
			out[name] = maps.Clone(labelNames)
			out[name]["quantile"] = true
			out[name+"_sum"], out[name+"_count"] = labelNames, labelNames
		default:
			out[name] = labelNames
		}
	}
	return out
}

// targetLabels are added by Prometheus to every scraped series.
var targetLabels = map[string]bool{"job": true, "instance": true}

// TestExampleQueriesUseExposedMetrics parses every PromQL expression of the
// dashboard, the rules (alert templates included) and the rule tests,
// and checks that each partnercenter_* metric, and each label it is
// filtered on, is one a real scrape of the exporter shows, and that each
// partnercenter:* series is a recording rule.
func TestExampleQueriesUseExposedMetrics(t *testing.T) {
	exposed := exposedMetrics(t)
	queries, recorded := rulesQueries(t)
	queries = append(queries, dashboardQueries(t)...)
	queries = append(queries, rulesTestQueries(t)...)

	used := map[string]bool{}
	for _, q := range queries {
		uses, err := parseSelectors(q.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
			continue
		}
		for _, u := range uses {
			used[u.name] = true
			checkSelector(t, q.where, u, exposed, recorded)
		}
	}
	for _, want := range []string{"partnercenter_batch_status", "partnercenter_up", "partnercenter:batch_failed_devices:ratio"} {
		if !used[want] {
			t.Errorf("no query uses %s: the expressions were not all found", want)
		}
	}
	for _, kind := range []string{"rules: record", "rules: alert", " annotation ", "dashboard variable", "dashboard panel", "input series", "promql_expr_test"} {
		if !slices.ContainsFunc(queries, func(q exampleQuery) bool { return strings.Contains(q.where, kind) }) {
			t.Errorf("no expression found in %q: the examples changed shape", kind)
		}
	}
	var unused []string
	for name := range exposed {
		if strings.HasPrefix(name, "partnercenter_") && !used[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	t.Logf("%d expressions checked; exposed but used by no example: %v", len(queries), unused)
}

func checkSelector(t *testing.T, where string, u selectorUse, exposed map[string]map[string]bool, recorded map[string]bool) {
	t.Helper()
	switch {
	case strings.HasPrefix(u.name, "partnercenter:"):
		if !recorded[u.name] {
			t.Errorf("%s: %s is no recording rule of %s", where, u.name, examplesRules)
		}
	case strings.HasPrefix(u.name, "partnercenter_"):
		labelNames, ok := exposed[u.name]
		if !ok {
			t.Errorf("%s: the exporter exposes no %s", where, u.name)
			return
		}
		for _, l := range u.labels {
			if !labelNames[l] && !targetLabels[l] {
				t.Errorf("%s: %s has no label %s", where, u.name, l)
			}
		}
	}
}

func TestExampleSelectorParsing(t *testing.T) {
	tests := []struct {
		expr    string
		want    []selectorUse
		wantErr bool
	}{
		{`sum by (x) (rate(a_total{code="429"}[5m]))`, []selectorUse{{name: "a_total", labels: []string{"code"}}}, false},
		{`{__name__="b", job="j"} or c offset 1h`, []selectorUse{{name: "b", labels: []string{"job"}}, {name: "c"}}, false},
		{`sum(rate(a[5m])`, nil, true},
	}
	for _, tt := range tests {
		got, err := parseSelectors(tt.expr)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseSelectors(%q) = %+v, %v; want %+v, error %t", tt.expr, got, err, tt.want, tt.wantErr)
		}
	}
	got, err := expandGrafanaVariables(`rate(a{x=~"$customer_id", y="${batch:regex}"}[$__rate_interval])`, map[string]bool{"customer_id": true, "batch": true})
	if want := `rate(a{x=~"value", y="value"}[5m])`; err != nil || got != want {
		t.Errorf("expandGrafanaVariables = %q, %v; want %q", got, err, want)
	}
	if _, err := expandGrafanaVariables(`a{x="$nope"}`, nil); err == nil || err.Error() != "undeclared variables [$nope]" {
		t.Errorf("undeclared variable: error %v", err)
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
