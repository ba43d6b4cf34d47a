package deploy

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"sigs.k8s.io/yaml"
)

// TestHelmLint runs `helm lint --strict` on the chart with each values
// file: it checks Chart.yaml, values.yaml and the rendered YAML. Not even
// an INFO finding (a missing icon) is allowed.
func TestHelmLint(t *testing.T) {
	for _, vf := range valuesFiles {
		t.Run(vf, func(t *testing.T) {
			vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "ci", vf))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range lint.All(chartDir, vals, namespace, true).Messages {
				t.Errorf("helm lint --strict: %s", m)
			}
		})
	}
}

// TestChartMetadata: what Artifact Hub and `helm search` show, and the
// Kubernetes versions the chart installs on.
func TestChartMetadata(t *testing.T) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	md := chrt.Metadata
	if len(md.Maintainers) == 0 || md.Maintainers[0].Name == "" || md.Icon == "" || md.KubeVersion == "" || md.Home == "" {
		t.Errorf("Chart.yaml lacks maintainers, icon, kubeVersion or home: %+v", md)
	}
	for _, v := range []string{"1.25.0", "1.37.0", "1.30.4-eks-a737599"} {
		if !chartutil.IsCompatibleRange(md.KubeVersion, v) {
			t.Errorf("kubeVersion %q refuses %s", md.KubeVersion, v)
		}
	}
	if chartutil.IsCompatibleRange(md.KubeVersion, "1.24.9") {
		t.Errorf("kubeVersion %q admits 1.24", md.KubeVersion)
	}
	// Artifact Hub's annotations whose value is YAML must parse as its lists.
	for _, key := range []string{"artifacthub.io/links", "artifacthub.io/changes"} {
		var entries []map[string]string
		if err := yaml.UnmarshalStrict([]byte(md.Annotations[key]), &entries); err != nil || len(entries) == 0 {
			t.Errorf("annotation %s: %v (%d entries)", key, err, len(entries))
		}
		for _, e := range entries {
			if key == "artifacthub.io/changes" && (e["kind"] == "" || e["description"] == "") {
				t.Errorf("%s entry %v lacks kind or description", key, e)
			}
			if key == "artifacthub.io/links" && (e["name"] == "" || e["url"] == "") {
				t.Errorf("%s entry %v lacks name or url", key, e)
			}
		}
	}
	for _, key := range []string{"artifacthub.io/category", "artifacthub.io/operator", "artifacthub.io/prerelease"} {
		if md.Annotations[key] == "" {
			t.Errorf("no annotation %s", key)
		}
	}
}
