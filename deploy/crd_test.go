package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// operatorModule is the Prometheus Operator release whose CRDs the
// operator objects are validated against: its module ships them under
// example/prometheus-operator-crd, generated with controller-gen from the
// same monitoring API types. It is the newest release the module proxy
// serves (v0.95.2, the version of the Go types above, is refused there),
// and the ScrapeConfig CRD has been there since v0.65.
const operatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

// crdSchema is one served version of a CRD, ready to validate with.
type crdSchema struct {
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
	cel        *cel.Validator
	props      apiextensionsv1.JSONSchemaProps
}

var (
	crdOnce    sync.Once
	crdSchemas map[string]crdSchema // "group/version Kind"
	crdErr     error
)

// operatorCRDs downloads (or finds in the module cache) the operator's
// module and loads its CRDs.
func operatorCRDs(t *testing.T) map[string]crdSchema {
	t.Helper()
	crdOnce.Do(func() { crdSchemas, crdErr = loadOperatorCRDs() })
	if crdErr != nil {
		t.Fatalf("the Prometheus Operator CRDs: %v", crdErr)
	}
	return crdSchemas
}

func loadOperatorCRDs() (map[string]crdSchema, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", operatorModule).Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); jerr != nil || mod.Error != "" || err != nil {
		return nil, fmt.Errorf("go mod download %s: %s: %w", operatorModule, mod.Error, errors.Join(err, jerr))
	}
	files, err := filepath.Glob(filepath.Join(mod.Dir, "example/prometheus-operator-crd/*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("CRDs in %s: %w", mod.Dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s", mod.Dir)
	}
	schemas := map[string]crdSchema{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				return nil, fmt.Errorf("%s %s: %w", f, v.Name, err)
			}
			structural, err := structuralschema.NewStructural(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", f, v.Name, err)
			}
			validator, _, err := validation.NewSchemaValidator(&internal)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", f, v.Name, err)
			}
			key := crd.Spec.Group + "/" + v.Name + " " + crd.Spec.Names.Kind
			schemas[key] = crdSchema{structural, validator, cel.NewValidator(structural, true, celconfig.PerCallLimit), *v.Schema.OpenAPIV3Schema}
		}
	}
	return schemas, nil
}

// validateAgainstCRD validates an object as the API server does for a
// custom resource: no field the schema would prune, the OpenAPI schema
// (types, patterns, enums, required), and the CEL rules.
func validateAgainstCRD(s crdSchema, obj map[string]any) []string {
	var problems []string
	pruned := deepCopyJSON(obj)
	unknown := pruning.PruneWithOptions(pruned, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, path := range unknown {
		problems = append(problems, "unknown field "+path)
	}
	for _, e := range validation.ValidateCustomResource(nil, obj, s.validator) {
		problems = append(problems, e.Error())
	}
	if s.cel != nil {
		errs, _ := s.cel.Validate(context.Background(), nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		for _, e := range errs {
			problems = append(problems, e.Error())
		}
	}
	return problems
}

func deepCopyJSON(v map[string]any) map[string]any {
	data, _ := json.Marshal(v)
	var out map[string]any
	_ = kjson.UnmarshalCaseSensitivePreserveInts(data, &out)
	return out
}

// operatorObjects returns the rendered operator objects of a release as
// the API server receives them: JSON objects, integers as int64.
func operatorObjects(t *testing.T, r release) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for name, text := range r.files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range splitDocuments(t, name, text) {
			data, err := yaml.YAMLToJSONStrict([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &obj); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(obj["apiVersion"].(string), "monitoring.coreos.com/") {
				out[fmt.Sprintf("%s %s", obj["apiVersion"], obj["kind"])] = obj
			}
		}
	}
	return out
}

// TestOperatorObjectsPassCRDs validates the ServiceMonitor,
// PrometheusRule and ScrapeConfig of every values file against the
// operator's CRDs, OpenAPI and CEL, as the API server would.
func TestOperatorObjectsPassCRDs(t *testing.T) {
	crds := operatorCRDs(t)
	seen := map[string]bool{}
	for _, vf := range valuesFiles {
		t.Run(vf, func(t *testing.T) {
			for key, obj := range operatorObjects(t, mustRender(t, vf)) {
				s, ok := crds[key]
				if !ok {
					t.Errorf("no CRD serves %s", key)
					continue
				}
				seen[key] = true
				for _, p := range validateAgainstCRD(s, obj) {
					t.Errorf("%s: %s", key, p)
				}
			}
		})
	}
	for _, key := range []string{"monitoring.coreos.com/v1 ServiceMonitor", "monitoring.coreos.com/v1 PrometheusRule", "monitoring.coreos.com/v1alpha1 ScrapeConfig"} {
		if !seen[key] {
			t.Errorf("no values file renders a %s", key)
		}
	}
	// The validation refuses what the API server refuses.
	sm := operatorObjects(t, mustRender(t, "operator-values.yaml"))["monitoring.coreos.com/v1 ServiceMonitor"]
	sm["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["interval"] = "30s1m"
	sm["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["scrapeTimout"] = "10s"
	problems := strings.Join(validateAgainstCRD(crds["monitoring.coreos.com/v1 ServiceMonitor"], sm), "\n")
	for _, want := range []string{"spec.endpoints[0].interval", "unknown field spec.endpoints[0].scrapeTimout"} {
		if !strings.Contains(problems, want) {
			t.Errorf("the CRD validation does not refuse %s:\n%s", want, problems)
		}
	}
}

// TestDurationPatternIsTheCRDs: values.schema.json's duration pattern is
// the CRDs' own, so that a value the API server would refuse stops at
// helm install instead.
func TestDurationPatternIsTheCRDs(t *testing.T) {
	crds := operatorCRDs(t)
	endpoint := crds["monitoring.coreos.com/v1 ServiceMonitor"].props.Properties["spec"].Properties["endpoints"].Items.Schema
	want := endpoint.Properties["interval"].Pattern
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Properties map[string]struct{ Pattern string }
		}
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"serviceMonitor.interval", "serviceMonitor.scrapeTimeout", "probe.interval", "probe.scrapeTimeout", "probe.sdRefreshInterval"} {
		top, field, _ := strings.Cut(path, ".")
		if got := schema.Properties[top].Properties[field].Pattern; got != want {
			t.Errorf("values.schema.json %s pattern %q, the CRD's %q", path, got, want)
		}
	}
}
