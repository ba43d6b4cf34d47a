package deploy

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestChangedBatchFileKeepsPodTemplate: a batch line added, or a batch
// file added, changes the batch ConfigMap and nothing of the pod
// template, so `helm upgrade` does not roll the pods; the exporter reads
// the change from the updated volume.
func TestChangedBatchFileKeepsPodTemplate(t *testing.T) {
	const line1 = "6f1c2a8e-3b4d-4e5f-9a01-23456789abcd 2f5a9c4e-7b1d-4a3f-8e6c-1d2b3a4c5e6f\n"
	const line2 = "6f1c2a8e-3b4d-4e5f-9a01-23456789abcd 8a1e4b7c-2d5f-4e8a-9b3c-6d7e8f9a0b1c\n"
	for _, vf := range []string{"default-values.yaml", "probe-values.yaml"} {
		t.Run(vf, func(t *testing.T) {
			render := func(files map[string]any) (release, *corev1.PodTemplateSpec) {
				r := mustRenderWith(t, vf, map[string]any{"batchFiles": map[string]any{"files": files}})
				return r, pod(t, r)
			}
			before, podBefore := render(map[string]any{"uploads.txt": line1})
			after, podAfter := render(map[string]any{"uploads.txt": line1 + line2, "more.txt": line2})
			if !reflect.DeepEqual(podBefore, podAfter) {
				t.Errorf("the pod template changed with a batch file:\n before %+v\n after  %+v", podBefore, podAfter)
			}
			b := find[corev1.ConfigMap](t, before, fullname+"-batches")
			a := find[corev1.ConfigMap](t, after, fullname+"-batches")
			if b.Data["uploads.txt"] != line1 || a.Data["uploads.txt"] != line1+line2 || a.Data["more.txt"] != line2 {
				t.Errorf("batch ConfigMap before %q after %q", b.Data, a.Data)
			}
			// The configuration does not change either, so its checksum
			// stays (a change of it does roll the pods).
			if find[corev1.ConfigMap](t, before, fullname).Data["partnercenter.yml"] != find[corev1.ConfigMap](t, after, fullname).Data["partnercenter.yml"] {
				t.Error("the configuration changed with a batch file")
			}
		})
	}
	// Whereas a configuration change rolls them.
	podBefore := pod(t, mustRender(t, "default-values.yaml"))
	podAfter := pod(t, mustRenderWith(t, "default-values.yaml", map[string]any{"config": map[string]any{"retention": "30d"}}))
	if podBefore.Annotations["checksum/config"] == podAfter.Annotations["checksum/config"] {
		t.Error("a configuration change leaves checksum/config as it was")
	}
}

// TestExistingBatchConfigMap: batchFiles.existingConfigMap mounts a
// ConfigMap the release does not own (a pipeline's `kubectl apply`), and
// the chart renders none of its own.
func TestExistingBatchConfigMap(t *testing.T) {
	r := mustRenderWith(t, "default-values.yaml", map[string]any{"batchFiles": map[string]any{"existingConfigMap": "upload-pipeline-batches"}})
	for _, o := range r.objects {
		if o.kind == "ConfigMap" && o.name == fullname+"-batches" {
			t.Error("the chart renders a batch ConfigMap beside the existing one")
		}
	}
	checkBatchFiles(t, r, "upload-pipeline-batches")
	// Without batch files there is no batch volume and no glob.
	r = mustRender(t, "default-values.yaml")
	if _, ok := renderedConfig(t, r)["batch_files"]; ok {
		t.Error("batch_files configured without batch files")
	}
	for _, v := range pod(t, r).Spec.Volumes {
		if v.Name == "batch-files" {
			t.Error("a batch-files volume without batch files")
		}
	}
}
