package deploy

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

// clusterWith is a Kubernetes API, for the chart's lookup, that holds the
// given objects.
type clusterWith struct {
	client *dynamicfake.FakeDynamicClient
}

func (c clusterWith) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, false, err
	}
	resource := strings.ToLower(kind) + "s" // statefulsets: enough for the chart's lookup
	return c.client.Resource(gv.WithResource(resource)), true, nil
}

// TestProbeStorageChangeRefused: in probe mode the StatefulSet's
// volumeClaimTemplates are immutable, so an upgrade that changes
// storage.size (or storageClass, accessModes, storage.enabled) would be
// refused by the API server and leave the release failed. The chart
// compares with the StatefulSet in the cluster and refuses first, naming
// the steps that work.
func TestProbeStorageChangeRefused(t *testing.T) {
	// The StatefulSet as the first install made it.
	installed := find[appsv1.StatefulSet](t, mustRender(t, "probe-values.yaml"), fullname)
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(installed)
	if err != nil {
		t.Fatal(err)
	}
	live := &unstructured.Unstructured{Object: u}
	live.SetAPIVersion("apps/v1")
	live.SetKind("StatefulSet")
	upgrade := func(overrides map[string]any) error {
		client := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), live)
		_, err := renderChartWith(t, "probe-values.yaml", overrides, func(chrt *chart.Chart, top chartutil.Values) (map[string]string, error) {
			return engine.RenderWithClientProvider(chrt, top, clusterWith{client})
		})
		return err
	}
	if err := upgrade(nil); err != nil {
		t.Fatalf("an upgrade with the same storage values: %v", err)
	}
	if err := upgrade(map[string]any{"replicas": 5, "storage": map[string]any{"size": "1Gi"}}); err != nil {
		t.Errorf("an upgrade changing replicas only: %v", err)
	}
	for name, overrides := range map[string]map[string]any{
		"size":         {"storage": map[string]any{"size": "5Gi"}},
		"storageClass": {"storage": map[string]any{"storageClass": "fast"}},
		"accessModes":  {"storage": map[string]any{"accessModes": []any{"ReadWriteOncePod"}}},
		"disabled":     {"storage": map[string]any{"enabled": false}},
	} {
		t.Run(name, func(t *testing.T) {
			err := upgrade(overrides)
			if err == nil {
				t.Fatal("the upgrade renders; the API server would refuse the StatefulSet")
			}
			for _, want := range []string{
				"storage: the StatefulSet " + fullname + " has the volume claim template [data size=1Gi storageClass= accessModes=ReadWriteOnce]",
				"a StatefulSet's volumeClaimTemplates cannot change",
				"kubectl -n monitoring delete statefulset " + fullname + " --cascade=orphan",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	// Outside probe mode (a Deployment and a PVC) nothing is compared.
	client := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), live)
	_, err = renderChartWith(t, "storage-values.yaml", map[string]any{"storage": map[string]any{"size": "9Gi"}}, func(chrt *chart.Chart, top chartutil.Values) (map[string]string, error) {
		return engine.RenderWithClientProvider(chrt, top, clusterWith{client})
	})
	if err != nil {
		t.Errorf("Deployment mode: %v", err)
	}
}
