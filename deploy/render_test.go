package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "helm/partnercenter-exporter"
	releaseName = "pcx"
	namespace   = "monitoring"
	// fullname is the chart's resource name for releaseName.
	fullname = "pcx-partnercenter-exporter"
)

// object is one rendered Kubernetes object, decoded into its API type.
type object struct {
	source string // template file it came from
	kind   string
	name   string
	value  any
}

// release is everything a values file renders to.
type release struct {
	files   map[string]string // template path -> rendered text
	objects []object
}

// newObject returns a pointer to the API type of an apiVersion and kind;
// a kind the chart is not expected to render fails the test.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	case "monitoring.coreos.com/v1alpha1 ScrapeConfig":
		return &monitoringv1alpha1.ScrapeConfig{}, true
	}
	return nil, false
}

// renderChart renders the chart with a values file from ci/ (none for the
// chart's defaults alone) and the given overrides, as `helm template`
// would. An error is the chart's own: its values schema, a fail or a
// required message.
func renderChart(t *testing.T, valuesFile string, overrides map[string]any) (map[string]string, error) {
	t.Helper()
	return renderChartWith(t, valuesFile, overrides, func(chrt *chart.Chart, top chartutil.Values) (map[string]string, error) {
		return engine.Render(chrt, top)
	})
}

// renderChartWith is renderChart with the engine call of the caller's
// choosing (one that reaches a Kubernetes API for lookup).
func renderChartWith(t *testing.T, valuesFile string, overrides map[string]any, render func(*chart.Chart, chartutil.Values) (map[string]string, error)) (map[string]string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	vals := chartutil.Values{}
	if valuesFile != "" {
		if vals, err = chartutil.ReadValuesFile(filepath.Join(chartDir, "ci", valuesFile)); err != nil {
			t.Fatalf("reading %s: %v", valuesFile, err)
		}
	}
	vals = chartutil.CoalesceTables(overrides, vals)
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	// ToRenderValues checks the values against values.schema.json.
	top, err := chartutil.ToRenderValues(chrt, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return render(chrt, top)
}

// mustRender renders a values file that must render, and decodes every
// object in it.
func mustRender(t *testing.T, valuesFile string) release {
	t.Helper()
	return mustRenderWith(t, valuesFile, nil)
}

// mustRenderWith is mustRender with overrides of the values file.
func mustRenderWith(t *testing.T, valuesFile string, overrides map[string]any) release {
	t.Helper()
	files, err := renderChart(t, valuesFile, overrides)
	if err != nil {
		t.Fatalf("rendering with %s %v: %v", valuesFile, overrides, err)
	}
	return decodeRelease(t, files)
}

// decodeRelease decodes every object of the rendered templates.
func decodeRelease(t *testing.T, files map[string]string) release {
	t.Helper()
	r := release{files: files}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if path.Ext(name) != ".yaml" {
			continue // NOTES.txt and the helpers
		}
		for _, doc := range splitDocuments(t, name, files[name]) {
			r.objects = append(r.objects, decodeObject(t, name, doc))
		}
	}
	return r
}

// splitDocuments splits a rendered template into its YAML documents with
// a YAML reader, as kubectl and Helm do: a "---" with a comment after it,
// or at the very start, separates documents too. Empty documents (only
// comments or blank lines) are skipped.
func splitDocuments(t *testing.T, source, text string) []string {
	t.Helper()
	rd := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	var docs []string
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			t.Fatalf("%s: not YAML: %v\n%s", source, err, doc)
		}
		if v != nil {
			docs = append(docs, string(doc))
		}
	}
}

// decodeObject decodes one YAML document as the API server does: a
// duplicate key is an error (sigs.k8s.io/yaml's strict conversion), and
// so are a field its API type does not have and a field name in the
// wrong case (sigs.k8s.io/json's case-sensitive strict decoder), as for
// `kubectl apply --validate=strict`. encoding/json would match
// "containerport" to containerPort and keep the last of two equal keys.
func decodeObject(t *testing.T, source, doc string) object {
	t.Helper()
	o, err := decodeStrict(doc)
	if err != nil {
		t.Fatalf("%s: %v\n%s", source, err, doc)
	}
	o.source = source
	return o
}

func decodeStrict(doc string) (object, error) {
	data, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return object{}, fmt.Errorf("not strict YAML: %w", err)
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &meta); err != nil {
		return object{}, err
	}
	v, ok := newObject(meta.APIVersion, meta.Kind)
	if !ok {
		return object{}, fmt.Errorf("unexpected kind %q %q", meta.APIVersion, meta.Kind)
	}
	strictErrs, err := kjson.UnmarshalStrict(data, v)
	if err == nil {
		err = errors.Join(strictErrs...)
	}
	if err != nil {
		return object{}, fmt.Errorf("%s %s does not decode strictly: %w", meta.Kind, meta.Metadata.Name, err)
	}
	return object{kind: meta.Kind, name: meta.Metadata.Name, value: v}, nil
}

// find returns the one object of type T with the given name.
func find[T any](t *testing.T, r release, name string) *T {
	t.Helper()
	var found []*T
	for _, o := range r.objects {
		if v, ok := o.value.(*T); ok && o.name == name {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects %T named %q, want 1", len(found), *new(T), name)
	}
	return found[0]
}

// kinds lists "Kind/name" of every object, sorted.
func (r release) kinds() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, fmt.Sprintf("%s/%s", o.kind, o.name))
	}
	sort.Strings(out)
	return out
}
