package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	configArg   = "--config.file=/etc/partnercenter_exporter/partnercenter.yml"
	storageArg  = "--storage.path=/var/lib/partnercenter_exporter/storage"
	dataDir     = "/var/lib/partnercenter_exporter"
	exampleRule = "../examples/prometheus/rules/partnercenter.rules.yml"
	exampleDash = "../examples/grafana/partnercenter-dashboard.json"
	batchDir    = "/etc/partnercenter_exporter-batches"
)

// valuesFiles are the scenarios under ci/, each rendered and checked.
var valuesFiles = []string{
	"default-values.yaml",
	"existing-secret-values.yaml",
	"refresh-token-values.yaml",
	"storage-values.yaml",
	"probe-values.yaml",
	"network-policy-values.yaml",
	"workload-identity-values.yaml",
	"operator-values.yaml",
	"knobs-values.yaml",
	"intake-values.yaml",
}

// mount is what a volumeMount says, with the source of its volume.
type mount struct {
	volume   string
	readOnly bool
}

func mounts(c corev1.Container) map[string]mount {
	out := map[string]mount{}
	for _, m := range c.VolumeMounts {
		out[m.MountPath] = mount{m.Name, m.ReadOnly}
	}
	return out
}

// pod returns the pod template of the release's one workload.
func pod(t *testing.T, r release) *corev1.PodTemplateSpec {
	t.Helper()
	var pods []*corev1.PodTemplateSpec
	for _, o := range r.objects {
		switch w := o.value.(type) {
		case *appsv1.Deployment:
			pods = append(pods, &w.Spec.Template)
		case *appsv1.StatefulSet:
			pods = append(pods, &w.Spec.Template)
		}
	}
	if len(pods) != 1 {
		t.Fatalf("%d workloads, want 1", len(pods))
	}
	return pods[0]
}

// exporter is the pod's exporter container: the first, before any of
// extraContainers.
func exporter(t *testing.T, r release) corev1.Container {
	t.Helper()
	p := pod(t, r)
	if len(p.Spec.Containers) == 0 || p.Spec.Containers[0].Name != "exporter" {
		t.Fatalf("containers: %+v, want the exporter first", p.Spec.Containers)
	}
	return p.Spec.Containers[0]
}

func volume(t *testing.T, p *corev1.PodTemplateSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range p.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

func TestEveryScenarioRendersSecurePod(t *testing.T) {
	for _, vf := range valuesFiles {
		t.Run(vf, func(t *testing.T) {
			r := mustRender(t, vf)
			p := pod(t, r)
			checkPodSecurity(t, p)
			checkProbes(t, exporter(t, r))
			checkService(t, find[corev1.Service](t, r, fullname))
			checkChecksum(t, r, p)
			for _, o := range r.objects {
				want := namespace
				if vf == "knobs-values.yaml" && (o.kind == "ServiceMonitor" || o.kind == "PrometheusRule") {
					want = "prometheus" // serviceMonitor.namespace, prometheusRule.namespace
				}
				if ns := reflect.ValueOf(o.value).Elem().FieldByName("Namespace").String(); ns != want {
					t.Errorf("%s/%s: namespace %q, want %q", o.kind, o.name, ns, want)
				}
			}
		})
	}
}

func checkPodSecurity(t *testing.T, p *corev1.PodTemplateSpec) {
	t.Helper()
	psc := p.Spec.SecurityContext
	if psc == nil || !deref(psc.RunAsNonRoot) || deref(psc.RunAsUser) != 65532 || deref(psc.FSGroup) != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext: %+v", psc)
	}
	if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; the exporter never calls the Kubernetes API")
	}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || !deref(sc.RunAsNonRoot) || deref(sc.RunAsUser) != 65532 || !deref(sc.ReadOnlyRootFilesystem) ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s securityContext: %+v", c.Name, sc)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("container %s resources: %+v, want CPU and memory requests and a memory limit", c.Name, c.Resources)
		}
	}
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 10046 {
		t.Errorf("ports: %+v, want http 10046", c.Ports)
	}
	for name, want := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"liveness": {c.LivenessProbe, "/-/healthy"}, "readiness": {c.ReadinessProbe, "/-/ready"}} {
		p := want.probe
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want.path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe: %+v, want GET %s on port http", name, p, want.path)
		}
	}
}

func checkService(t *testing.T, s *corev1.Service) {
	t.Helper()
	if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "http" || s.Spec.Ports[0].Port != 10046 || s.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("service ports: %+v, want http 10046 -> http", s.Spec.Ports)
	}
	want := map[string]string{"app.kubernetes.io/name": "partnercenter-exporter", "app.kubernetes.io/instance": releaseName}
	if !reflect.DeepEqual(s.Spec.Selector, want) {
		t.Errorf("service selector: %v, want %v", s.Spec.Selector, want)
	}
}

// checkChecksum: the pod's checksum/config annotation is the hash of the
// rendered ConfigMap, so any change of the configuration rolls the pods.
func checkChecksum(t *testing.T, r release, p *corev1.PodTemplateSpec) {
	t.Helper()
	sum := sha256.Sum256([]byte(r.files["partnercenter-exporter/templates/configmap.yaml"]))
	if got, want := p.Annotations["checksum/config"], hex.EncodeToString(sum[:]); got != want {
		t.Errorf("checksum/config = %q, want %q", got, want)
	}
}

// TestDefaultScenario: the chart's defaults render no object of the
// Prometheus Operator, whose CRDs a bare cluster does not have.
func TestDefaultScenario(t *testing.T) {
	r := mustRender(t, "default-values.yaml")
	want := []string{
		"ConfigMap/" + fullname, "ConfigMap/" + fullname + "-dashboard",
		"Deployment/" + fullname, "Secret/" + fullname, "Service/" + fullname,
		"ServiceAccount/" + fullname,
	}
	if got := r.kinds(); !reflect.DeepEqual(got, want) {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}
	c := exporter(t, r)
	if !reflect.DeepEqual(c.Args, []string{configArg}) {
		t.Errorf("args: %q", c.Args)
	}
	wantMounts := map[string]mount{
		"/etc/partnercenter_exporter":         {"config", true},
		"/run/secrets/partnercenter_exporter": {"client-secret", true},
	}
	if got := mounts(c); !reflect.DeepEqual(got, wantMounts) {
		t.Errorf("mounts: %v, want %v", got, wantMounts)
	}
	sec := find[corev1.Secret](t, r, fullname)
	if got := string(sec.Data["client_secret"]); got != "not-a-real-secret" || len(sec.Data) != 1 {
		t.Errorf("secret data: %q", sec.Data)
	}
	if d := find[appsv1.Deployment](t, r, fullname); d.Spec.Strategy.Type != "" || deref(d.Spec.RevisionHistoryLimit) != 10 {
		t.Errorf("strategy %q revisionHistoryLimit %d without storage, want the default rolling update and 10", d.Spec.Strategy.Type, deref(d.Spec.RevisionHistoryLimit))
	}
	if p := pod(t, r); p.Spec.ServiceAccountName != fullname {
		t.Errorf("serviceAccountName %q, want %q", p.Spec.ServiceAccountName, fullname)
	}
	if sa := find[corev1.ServiceAccount](t, r, fullname); sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount automounts its token")
	}
	if !strings.Contains(r.files["partnercenter-exporter/templates/NOTES.txt"], "--set serviceMonitor.enabled=true --set prometheusRule.enabled=true") {
		t.Errorf("NOTES.txt does not say how to turn on the operator objects:\n%s", r.files["partnercenter-exporter/templates/NOTES.txt"])
	}
}

func TestOperatorScenario(t *testing.T) {
	r := mustRender(t, "operator-values.yaml")
	checkServiceMonitor(t, find[monitoringv1.ServiceMonitor](t, r, fullname))
	checkSelectsMainServiceOnly(t, r)
	if pr := find[monitoringv1.PrometheusRule](t, r, fullname); pr.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v", pr.Labels)
	}
	if strings.Contains(r.files["partnercenter-exporter/templates/NOTES.txt"], "--set serviceMonitor.enabled=true") {
		t.Error("NOTES.txt asks to turn on what is on")
	}
}

func checkServiceMonitor(t *testing.T, sm *monitoringv1.ServiceMonitor) {
	t.Helper()
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("endpoints: %+v", sm.Spec.Endpoints)
	}
	e := sm.Spec.Endpoints[0]
	if e.Port != "http" || e.Path != "/metrics" || e.Interval != "60s" || e.ScrapeTimeout != "30s" || e.Params != nil || deref(e.Scheme) != "http" {
		t.Errorf("endpoint: port %q path %q interval %q timeout %q params %v", e.Port, e.Path, e.Interval, e.ScrapeTimeout, e.Params)
	}
	// The example rules alert on up{job="partnercenter"}.
	if len(e.RelabelConfigs) != 1 || e.RelabelConfigs[0].TargetLabel != "job" || deref(e.RelabelConfigs[0].Replacement) != "partnercenter" {
		t.Errorf("relabelings: %+v, want job=partnercenter", e.RelabelConfigs)
	}
}

func TestExistingSecretScenario(t *testing.T) {
	r := mustRender(t, "existing-secret-values.yaml")
	for _, o := range r.objects {
		if o.kind == "Secret" {
			t.Errorf("the chart made Secret %s beside an existing one", o.name)
		}
	}
	p := pod(t, r)
	v := volume(t, p, "client-secret")
	want := []corev1.KeyToPath{{Key: "secret", Path: "client_secret"}}
	if v.Secret == nil || v.Secret.SecretName != "partnercenter-credentials" || !reflect.DeepEqual(v.Secret.Items, want) {
		t.Errorf("client-secret volume: %+v", v.VolumeSource)
	}
	if _, ok := p.Annotations["checksum/secret"]; ok {
		t.Error("checksum/secret on an existing Secret the chart does not render")
	}
	checkBatchFiles(t, r, fullname+"-batches")
	cm := find[corev1.ConfigMap](t, r, fullname+"-batches")
	if got := cm.Data["fabrikam.txt"]; got != "/customers/0b7e5d3c-1a2f-4c6d-8e9f-0a1b2c3d4e5f/batchJobStatus/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9\n" {
		t.Errorf("fabrikam.txt: %q", got)
	}
	if len(cm.Data) != 2 {
		t.Errorf("batch ConfigMap keys: %v", slices.Sorted(maps.Keys(cm.Data)))
	}
	if got := find[corev1.ConfigMap](t, r, fullname).Data; len(got) != 1 {
		t.Errorf("the configuration's ConfigMap has keys beside partnercenter.yml: %v", slices.Sorted(maps.Keys(got)))
	}
}

// checkBatchFiles: the configuration names the batch directory, and the
// pod mounts the whole ConfigMap there (no items, no subPath), so that a
// key added later appears as a file and the kubelet updates them all.
func checkBatchFiles(t *testing.T, r release, configMap string) {
	t.Helper()
	if got := renderedConfig(t, r)["batch_files"]; !reflect.DeepEqual(got, []any{batchDir + "/*"}) {
		t.Errorf("batch_files: %v", got)
	}
	p := pod(t, r)
	v := volume(t, p, "batch-files")
	if v.ConfigMap == nil || v.ConfigMap.Name != configMap || v.ConfigMap.Items != nil {
		t.Errorf("batch-files volume: %+v, want all of ConfigMap %s", v.VolumeSource, configMap)
	}
	if got := mounts(exporter(t, r))[batchDir]; got != (mount{"batch-files", true}) {
		t.Errorf("batch mount: %+v", got)
	}
	for _, m := range exporter(t, r).VolumeMounts {
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath, which the kubelet never updates", m.MountPath)
		}
	}
	if items := volume(t, p, "config").ConfigMap.Items; !reflect.DeepEqual(items, []corev1.KeyToPath{{Key: "partnercenter.yml", Path: "partnercenter.yml"}}) {
		t.Errorf("config volume items: %+v", items)
	}
}

// renderedConfig is the configuration file of the rendered ConfigMap.
func renderedConfig(t *testing.T, r release) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(find[corev1.ConfigMap](t, r, fullname).Data["partnercenter.yml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRefreshTokenScenario(t *testing.T) {
	r := mustRender(t, "refresh-token-values.yaml")
	p := pod(t, r)
	c := exporter(t, r)
	// The exporter writes the rotated token next to the old one: its
	// volume must be writable.
	if got := mounts(c)[dataDir]; got != (mount{"data", false}) {
		t.Errorf("data mount: %+v, want the data volume, writable", got)
	}
	if v := volume(t, p, "data"); v.EmptyDir == nil {
		t.Errorf("data volume: %+v, want an emptyDir", v.VolumeSource)
	}
	checkInitContainer(t, p, fullname, "refresh_token")
	auth := renderedConfig(t, r)["auth"].(map[string]any)
	if auth["refresh_token_file"] != dataDir+"/auth/refresh_token" ||
		auth["client_secret_file"] != "/run/secrets/partnercenter_exporter/client_secret" {
		t.Errorf("auth: %v", auth)
	}
	sec := find[corev1.Secret](t, r, fullname)
	if string(sec.Data["refresh_token"]) != "not-a-real-refresh-token" || string(sec.Data["client_secret"]) != "not-a-real-secret" {
		t.Errorf("secret data: %q", sec.Data)
	}
}

// checkInitContainer: the token is copied from the Secret, mounted read-only
// in the init container alone, into the data volume.
func checkInitContainer(t *testing.T, p *corev1.PodTemplateSpec, secret, key string) {
	t.Helper()
	if len(p.Spec.InitContainers) != 1 {
		t.Fatalf("init containers: %+v", p.Spec.InitContainers)
	}
	ic := p.Spec.InitContainers[0]
	want := map[string]mount{"/run/secrets/refresh-token-seed": {"refresh-token-seed", true}, dataDir: {"data", false}}
	if got := mounts(ic); !reflect.DeepEqual(got, want) {
		t.Errorf("init container mounts: %v, want %v", got, want)
	}
	if len(ic.Env) != 1 || ic.Env[0].Value != dataDir+"/auth/refresh_token" {
		t.Errorf("init container env: %+v", ic.Env)
	}
	seed := volume(t, p, "refresh-token-seed")
	wantItems := []corev1.KeyToPath{{Key: key, Path: "refresh_token"}}
	if seed.Secret == nil || seed.Secret.SecretName != secret || !reflect.DeepEqual(seed.Secret.Items, wantItems) {
		t.Errorf("refresh-token-seed volume: %+v", seed.VolumeSource)
	}
}

func TestStorageScenario(t *testing.T) {
	r := mustRender(t, "storage-values.yaml")
	c := exporter(t, r)
	if !reflect.DeepEqual(c.Args, []string{configArg, storageArg}) {
		t.Errorf("args: %q", c.Args)
	}
	// A public client: no client secret is mounted or configured.
	want := map[string]mount{"/etc/partnercenter_exporter": {"config", true}, dataDir: {"data", false}}
	if got := mounts(c); !reflect.DeepEqual(got, want) {
		t.Errorf("mounts: %v, want %v", got, want)
	}
	if _, ok := renderedConfig(t, r)["auth"].(map[string]any)["client_secret_file"]; ok {
		t.Error("client_secret_file configured for a public client")
	}
	p := pod(t, r)
	if v := volume(t, p, "data"); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != fullname {
		t.Errorf("data volume: %+v, want the claim %s", v.VolumeSource, fullname)
	}
	checkInitContainer(t, p, "partnercenter-app-user", "token")
	pvc := find[corev1.PersistentVolumeClaim](t, r, fullname)
	if deref(pvc.Spec.StorageClassName) != "fast" || !pvc.Spec.Resources.Requests.Storage().Equal(resource.MustParse("2Gi")) ||
		!reflect.DeepEqual(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("claim spec: %+v", pvc.Spec)
	}
	if d := find[appsv1.Deployment](t, r, fullname); d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q, want Recreate: the running pod holds the store's lock", d.Spec.Strategy.Type)
	}
}

func TestProbeScenario(t *testing.T) {
	r := mustRender(t, "probe-values.yaml")
	sts := find[appsv1.StatefulSet](t, r, fullname)
	if deref(sts.Spec.Replicas) != 3 || sts.Spec.ServiceName != fullname+"-headless" {
		t.Errorf("statefulset: replicas %d service %q", deref(sts.Spec.Replicas), sts.Spec.ServiceName)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("volumeClaimTemplates: %+v", sts.Spec.VolumeClaimTemplates)
	}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == "data" {
			t.Error("a data volume in the pod hides the claim template of the same name")
		}
	}
	if got := mounts(exporter(t, r))[dataDir]; got != (mount{"data", false}) {
		t.Errorf("data mount: %+v", got)
	}
	if hs := find[corev1.Service](t, r, fullname+"-headless"); hs.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless service clusterIP %q", hs.Spec.ClusterIP)
	}
	for _, o := range r.objects {
		if o.kind == "PersistentVolumeClaim" {
			t.Error("a shared claim in probe mode; each shard has its own")
		}
	}
	checkScrapeConfig(t, find[monitoringv1alpha1.ScrapeConfig](t, r, fullname+"-probe"))
	checkSelectsMainServiceOnly(t, r)
	// The shards' own health, without reading every batch on every pod.
	sm := find[monitoringv1.ServiceMonitor](t, r, fullname)
	if got := sm.Spec.Endpoints[0].Params; !reflect.DeepEqual(got, map[string][]string{"collect[]": {"exporter"}}) {
		t.Errorf("ServiceMonitor params in probe mode: %v, want collect[]=exporter", got)
	}
}

// checkSelectsMainServiceOnly: the ServiceMonitor selects the Service and
// not the headless one, which would scrape every pod a second time.
func checkSelectsMainServiceOnly(t *testing.T, r release) {
	t.Helper()
	sm := find[monitoringv1.ServiceMonitor](t, r, fullname)
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	var selected []string
	for _, o := range r.objects {
		if s, ok := o.value.(*corev1.Service); ok && sel.Matches(labels.Set(s.Labels)) {
			selected = append(selected, s.Name)
		}
	}
	if !reflect.DeepEqual(selected, []string{fullname}) {
		t.Errorf("ServiceMonitor selects services %v, want [%s]", selected, fullname)
	}
}

func checkScrapeConfig(t *testing.T, sc *monitoringv1alpha1.ScrapeConfig) {
	t.Helper()
	s := sc.Spec
	wantURL := "http://" + fullname + ".monitoring.svc:10046/sd"
	if len(s.HTTPSDConfigs) != 1 || string(s.HTTPSDConfigs[0].URL) != wantURL {
		t.Errorf("httpSDConfigs: %+v, want %s", s.HTTPSDConfigs, wantURL)
	}
	if deref(s.MetricsPath) != "/probe" || deref(s.JobName) != "partnercenter" ||
		string(deref(s.ScrapeInterval)) != "60s" || string(deref(s.ScrapeTimeout)) != "30s" {
		t.Errorf("metricsPath %q jobName %q interval %v timeout %v", deref(s.MetricsPath), deref(s.JobName), s.ScrapeInterval, s.ScrapeTimeout)
	}
	if sc.Labels["prometheus"] != "main" {
		t.Errorf("labels: %v", sc.Labels)
	}
	byTarget := map[string]monitoringv1.RelabelConfig{}
	for _, rc := range s.RelabelConfigs {
		byTarget[rc.TargetLabel] = rc
	}
	for param, src := range map[string]string{"__param_customer_id": "customer_id", "__param_batch_tracking_id": "batch_tracking_id"} {
		if rc := byTarget[param]; len(rc.SourceLabels) != 1 || string(rc.SourceLabels[0]) != src {
			t.Errorf("%s from %v, want %s", param, rc.SourceLabels, src)
		}
	}
	if h := byTarget["__tmp_shard"]; h.Action != "hashmod" || h.Modulus != 3 {
		t.Errorf("shard relabeling: %+v, want hashmod over 3 replicas", h)
	}
	wantAddr := fullname + "-${1}." + fullname + "-headless.monitoring.svc:10046"
	if a := byTarget["__address__"]; deref(a.Replacement) != wantAddr || len(a.SourceLabels) != 1 || a.SourceLabels[0] != "__tmp_shard" {
		t.Errorf("address relabeling: %+v, want %s", a, wantAddr)
	}
	checkProbeTargetIdentity(t, s)
}

// checkProbeTargetIdentity: every target keeps customer_id and
// batch_tracking_id as target labels, so that the up and scrape_* series
// of the targets of one shard do not collapse into one; honorLabels
// keeps the scraped labels of the same values from becoming exported_…;
// customer_name, which /sd adds and /metrics does not, is dropped.
func checkProbeTargetIdentity(t *testing.T, s monitoringv1alpha1.ScrapeConfigSpec) {
	t.Helper()
	if !deref(s.HonorLabels) {
		t.Error("honorLabels is not true: the scraped customer_id and batch_tracking_id would become exported_…")
	}
	dropped := func(label string) bool {
		for _, rc := range s.RelabelConfigs {
			re := regexp.MustCompile("^(?:" + rc.Regex + ")$")
			switch strings.ToLower(rc.Action) {
			case "labeldrop":
				if re.MatchString(label) {
					return true
				}
			case "labelkeep":
				if !re.MatchString(label) {
					return true
				}
			}
		}
		return false
	}
	for label, want := range map[string]bool{"customer_id": false, "batch_tracking_id": false, "customer_name": true} {
		if got := dropped(label); got != want {
			t.Errorf("target label %s dropped: %t, want %t", label, got, want)
		}
	}
}

func TestNetworkPolicyScenario(t *testing.T) {
	r := mustRender(t, "network-policy-values.yaml")
	np := find[networkingv1.NetworkPolicy](t, r, fullname)
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) {
		t.Errorf("policyTypes: %v", np.Spec.PolicyTypes)
	}
	in := np.Spec.Ingress
	if len(in) != 1 || len(in[0].Ports) != 1 || in[0].Ports[0].Port.String() != "http" || len(in[0].From) != 1 ||
		in[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("ingress: %+v", in)
	}
	var egressPorts []string
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			egressPorts = append(egressPorts, string(*p.Protocol)+"/"+p.Port.String())
		}
	}
	// 3128: networkPolicy.extraEgress, to the proxy.
	if want := []string{"TCP/443", "UDP/53", "TCP/53", "TCP/3128"}; !reflect.DeepEqual(egressPorts, want) {
		t.Errorf("egress ports: %v, want %v", egressPorts, want)
	}
	if len(np.Spec.Egress) != 3 || len(np.Spec.Egress[0].To) != 0 || np.Spec.Egress[1].To[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" ||
		np.Spec.Egress[2].To[0].IPBlock == nil || np.Spec.Egress[2].To[0].IPBlock.CIDR != "10.0.0.12/32" {
		t.Errorf("egress peers: %+v", np.Spec.Egress)
	}
	if env := exporter(t, r).Env; len(env) != 1 || env[0].Name != "HTTPS_PROXY" || env[0].Value != "http://10.0.0.12:3128" {
		t.Errorf("env: %+v, want HTTPS_PROXY from extraEnv", env)
	}
	if sm := find[monitoringv1.ServiceMonitor](t, r, fullname); sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("servicemonitor labels: %v", sm.Labels)
	}
}

// TestChartFailsClearly: values that would give a broken release stop
// rendering with a message naming the value to change.
func TestChartFailsClearly(t *testing.T) {
	for name, tc := range map[string]struct {
		values    string
		overrides map[string]any
		want      string
	}{
		"no tenant":       {"default-values.yaml", map[string]any{"config": map[string]any{"auth": map[string]any{"tenant_id": ""}}}, "config.auth.tenant_id is required"},
		"no secret":       {"", map[string]any{"config": map[string]any{"auth": map[string]any{"tenant_id": "t", "client_id": "c"}}}, "set auth.clientSecret or auth.existingSecret.name"},
		"no token":        {"refresh-token-values.yaml", map[string]any{"auth": map[string]any{"refreshToken": ""}}, "set auth.refreshToken or auth.existingSecret.name"},
		"storage shared":  {"storage-values.yaml", map[string]any{"replicas": 2}, "storage.enabled needs replicas: 1 (got 2)"},
		"secret in file":  {"default-values.yaml", map[string]any{"config": map[string]any{"auth": map[string]any{"client_secret_file": "/x"}}}, "config.auth.client_secret_file: the chart takes credentials from the auth values"},
		"bad mode":        {"default-values.yaml", map[string]any{"auth": map[string]any{"mode": "password"}}, `at '/auth/mode': value must be one of 'clientCredentials', 'refreshToken'`},
		"bad batch file":  {"default-values.yaml", map[string]any{"batchFiles": map[string]any{"files": map[string]any{"../x": "y"}}}, `batchFiles.files: "../x" is not a plain file name`},
		"hidden batch":    {"default-values.yaml", map[string]any{"batchFiles": map[string]any{"files": map[string]any{".x": "y"}}}, `batchFiles.files: ".x" starts with a dot`},
		"old batch files": {"default-values.yaml", map[string]any{"batchFiles": map[string]any{"uploads.txt": "y"}}, "uploads.txt"},
		"two batch srcs":  {"default-values.yaml", map[string]any{"batchFiles": map[string]any{"files": map[string]any{"a.txt": "y"}, "existingConfigMap": "b"}}, "batchFiles: set files or existingConfigMap, not both"},
		"rolling storage": {"storage-values.yaml", map[string]any{"strategy": map[string]any{"type": "RollingUpdate"}}, "strategy: storage.enabled needs the Recreate strategy"},
		"unknown rule":    {"operator-values.yaml", map[string]any{"prometheusRule": map[string]any{"ruleOverrides": map[string]any{"PartnerCenterDwon": map[string]any{"for": "1h"}}}}, "prometheusRule.ruleOverrides.PartnerCenterDwon: no built-in rule"},
		"bad override":    {"operator-values.yaml", map[string]any{"prometheusRule": map[string]any{"ruleOverrides": map[string]any{"PartnerCenterAPIDown": map[string]any{"threshold": 3}}}}, "threshold"},
		// The CRDs' Duration pattern: one of each unit, largest first.
		"unit twice":      {"default-values.yaml", map[string]any{"serviceMonitor": map[string]any{"interval": "30s1m"}}, "/serviceMonitor/interval"},
		"empty duration":  {"default-values.yaml", map[string]any{"probe": map[string]any{"scrapeTimeout": ""}}, "/probe/scrapeTimeout"},
		"bad digest":      {"default-values.yaml", map[string]any{"image": map[string]any{"digest": "0123abc"}}, "/image/digest"},
		"misspelt value":  {"default-values.yaml", map[string]any{"serviceMonitor": map[string]any{"intervall": "1m"}}, "intervall"},
		"bad interval":    {"default-values.yaml", map[string]any{"probe": map[string]any{"interval": "1 minute"}}, "interval"},
		"claim in shards": {"probe-values.yaml", map[string]any{"storage": map[string]any{"existingClaim": "c"}}, "storage.existingClaim cannot be used in probe mode"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderChart(t, tc.values, tc.overrides)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRulesAreTheExamples: the PrometheusRule carries the example rules
// file unchanged, and every expression in it parses.
func TestRulesAreTheExamples(t *testing.T) {
	r := mustRender(t, "operator-values.yaml")
	rule := find[monitoringv1.PrometheusRule](t, r, fullname)
	var want monitoringv1.PrometheusRuleSpec
	data, err := os.ReadFile(exampleRule)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &want); err != nil {
		t.Fatalf("%s: %v", exampleRule, err)
	}
	if !reflect.DeepEqual(rule.Spec, want) {
		t.Errorf("PrometheusRule spec differs from %s", exampleRule)
	}
	n := 0
	p := parser.NewParser(parser.Options{})
	for _, g := range rule.Spec.Groups {
		for _, rl := range g.Rules {
			n++
			if _, err := p.ParseExpr(rl.Expr.String()); err != nil {
				t.Errorf("group %s, rule %s%s: %v", g.Name, rl.Record, rl.Alert, err)
			}
		}
	}
	if n < 10 {
		t.Errorf("%d rules rendered; the examples have more", n)
	}
}

func TestDashboardIsTheExample(t *testing.T) {
	r := mustRender(t, "default-values.yaml")
	cm := find[corev1.ConfigMap](t, r, fullname+"-dashboard")
	want, err := os.ReadFile(exampleDash)
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["partnercenter-dashboard.json"]; got != string(want) {
		t.Errorf("dashboard differs from %s", exampleDash)
	}
	if !json.Valid(want) {
		t.Errorf("%s is not JSON", exampleDash)
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("labels %v lack the Grafana sidecar's grafana_dashboard: \"1\"", cm.Labels)
	}
}

// TestChartFilesAreTheExamples: the chart's files/ are real copies of
// the example rules and dashboard (Argo CD and other tools that read a
// chart from git refuse symbolic links that leave the chart), and must
// stay equal to them. After editing an example, copy it:
//
//	cp examples/prometheus/rules/partnercenter.rules.yml examples/grafana/partnercenter-dashboard.json \
//	   deploy/helm/partnercenter-exporter/files/
func TestChartFilesAreTheExamples(t *testing.T) {
	for file, example := range map[string]string{
		"files/partnercenter.rules.yml":      exampleRule,
		"files/partnercenter-dashboard.json": exampleDash,
	} {
		p := filepath.Join(chartDir, file)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			t.Errorf("%s is not a regular file (%v): keep a copy of %s", p, fi.Mode().Type(), example)
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(example)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: copy the example over it", p, example)
		}
	}
	// No other link anywhere in the chart either.
	err := filepath.WalkDir(chartDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a symbolic link", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWorkloadIdentityScenario(t *testing.T) {
	r := mustRender(t, "workload-identity-values.yaml")
	want := []string{
		"ConfigMap/" + fullname, "ConfigMap/" + fullname + "-dashboard",
		"Deployment/" + fullname, "Service/" + fullname, "ServiceAccount/" + fullname,
	}
	if got := r.kinds(); !reflect.DeepEqual(got, want) {
		t.Errorf("objects:\n got %v\nwant %v (no Secret)", got, want)
	}
	sa := find[corev1.ServiceAccount](t, r, fullname)
	wantAnnotations := map[string]string{
		"azure.workload.identity/client-id": "5f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19",
		"azure.workload.identity/tenant-id": "contoso.onmicrosoft.com",
	}
	if !reflect.DeepEqual(sa.Annotations, wantAnnotations) {
		t.Errorf("ServiceAccount annotations %v, want %v", sa.Annotations, wantAnnotations)
	}
	p := pod(t, r)
	if p.Spec.ServiceAccountName != fullname || p.Labels["azure.workload.identity/use"] != "true" {
		t.Errorf("pod: serviceAccountName %q, labels %v", p.Spec.ServiceAccountName, p.Labels)
	}
	if _, ok := p.Annotations["checksum/secret"]; ok {
		t.Error("a checksum of a Secret that is not rendered")
	}
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			t.Errorf("a Secret volume %q in workload identity mode", v.Name)
		}
	}
	cm := find[corev1.ConfigMap](t, r, fullname)
	if strings.Contains(cm.Data["partnercenter.yml"], "client_secret") {
		t.Errorf("the configuration names a client secret:\n%s", cm.Data["partnercenter.yml"])
	}
}
