package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
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
)

// Tests of the example dashboard and rules against the metrics the
// exporter exposes: every query names a series that exists.

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
