package deploy

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestHelmLint runs `helm lint` on the chart with each values file: it
// checks Chart.yaml, values.yaml and the rendered YAML, and with INFO
// findings aside (a missing icon) the chart must be clean.
func TestHelmLint(t *testing.T) {
	for _, vf := range valuesFiles {
		t.Run(vf, func(t *testing.T) {
			vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "ci", vf))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range lint.All(chartDir, vals, namespace, false).Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}
