package deploy

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestKnobsScenario: each knob the prometheus-community exporter charts
// have, set in ci/knobs-values.yaml, lands where it should.
func TestKnobsScenario(t *testing.T) {
	r := mustRender(t, "knobs-values.yaml")
	p := pod(t, r)
	c := exporter(t, r)
	d := find[appsv1.Deployment](t, r, fullname)

	t.Run("image", func(t *testing.T) {
		// global.imageRegistry + repository, and the digest instead of a tag.
		want := "registry.example.com/tools/partnercenter_exporter@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		if c.Image != want {
			t.Errorf("image %q, want %q", c.Image, want)
		}
	})
	t.Run("commonLabels", func(t *testing.T) {
		for _, o := range r.objects {
			if o.source == "partnercenter-exporter/templates/extra-manifests.yaml" {
				continue
			}
			labels := reflectLabels(o.value)
			if labels["team"] != "endpoint-management" {
				t.Errorf("%s/%s labels %v lack commonLabels", o.kind, o.name, labels)
			}
		}
		if p.Labels["team"] != "endpoint-management" {
			t.Errorf("pod labels %v lack commonLabels", p.Labels)
		}
		if _, ok := d.Spec.Selector.MatchLabels["team"]; ok {
			t.Error("commonLabels in the selector, which cannot change")
		}
	})
	t.Run("serviceAccount", func(t *testing.T) {
		sa := find[corev1.ServiceAccount](t, r, "partnercenter")
		if sa.Annotations["example.com/owner"] != "endpoint-management" || p.Spec.ServiceAccountName != "partnercenter" {
			t.Errorf("ServiceAccount %v annotations %v, pod uses %q", sa.Name, sa.Annotations, p.Spec.ServiceAccountName)
		}
	})
	t.Run("extraEnv, extraArgs, extraVolumes, extraVolumeMounts", func(t *testing.T) {
		if !reflect.DeepEqual(c.Env, []corev1.EnvVar{{Name: "GOMAXPROCS", Value: "1"}}) {
			t.Errorf("env %+v", c.Env)
		}
		if !slices.Contains(c.Args, "--web.config.file=/etc/partnercenter_exporter-web/web-config.yml") {
			t.Errorf("args %q", c.Args)
		}
		if got := mounts(c)["/etc/partnercenter_exporter-web"]; got != (mount{"web-config", true}) {
			t.Errorf("web config mount %+v", got)
		}
		if v := volume(t, p, "web-config"); v.Secret == nil || v.Secret.SecretName != "pcx-web-config" {
			t.Errorf("web-config volume %+v", v.VolumeSource)
		}
	})
	t.Run("extraContainers", func(t *testing.T) {
		if len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Name != "sidecar" {
			t.Errorf("containers %+v", p.Spec.Containers)
		}
	})
	t.Run("extraManifests", func(t *testing.T) {
		cm := find[corev1.ConfigMap](t, r, fullname+"-extra")
		if cm.Namespace != namespace || cm.Data["note"] != "rendered with the release" {
			t.Errorf("extra ConfigMap %+v", cm)
		}
		if s := find[corev1.Secret](t, r, "pcx-web-config"); s.StringData["web-config.yml"] != "tls_server_config: {}" {
			t.Errorf("extra Secret %+v", s.StringData)
		}
	})
	t.Run("probes", func(t *testing.T) {
		if c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.LivenessProbe.PeriodSeconds != 20 ||
			c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.ReadinessProbe.PeriodSeconds != 5 {
			t.Errorf("liveness %+v readiness %+v", c.LivenessProbe, c.ReadinessProbe)
		}
	})
	t.Run("topologySpreadConstraints", func(t *testing.T) {
		tsc := p.Spec.TopologySpreadConstraints
		if len(tsc) != 1 || tsc[0].TopologyKey != "topology.kubernetes.io/zone" || tsc[0].WhenUnsatisfiable != corev1.ScheduleAnyway {
			t.Errorf("topologySpreadConstraints %+v", tsc)
		}
	})
	t.Run("podDisruptionBudget", func(t *testing.T) {
		pdb := find[policyv1.PodDisruptionBudget](t, r, fullname)
		if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) ||
			!reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
			t.Errorf("PodDisruptionBudget spec %+v", pdb.Spec)
		}
	})
	t.Run("revisionHistoryLimit and strategy", func(t *testing.T) {
		s := d.Spec.Strategy
		if deref(d.Spec.RevisionHistoryLimit) != 3 || s.Type != appsv1.RollingUpdateDeploymentStrategyType ||
			s.RollingUpdate == nil || *s.RollingUpdate.MaxUnavailable != intstr.FromInt32(0) || *s.RollingUpdate.MaxSurge != intstr.FromInt32(1) {
			t.Errorf("revisionHistoryLimit %d strategy %+v", deref(d.Spec.RevisionHistoryLimit), s)
		}
	})
	t.Run("serviceMonitor", func(t *testing.T) {
		sm := find[monitoringv1.ServiceMonitor](t, r, fullname)
		if sm.Namespace != "prometheus" || !reflect.DeepEqual(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
			t.Errorf("namespace %q namespaceSelector %+v", sm.Namespace, sm.Spec.NamespaceSelector)
		}
		e := sm.Spec.Endpoints[0]
		if deref(e.Scheme) != "https" || e.TLSConfig == nil || e.TLSConfig.CA.Secret == nil || e.TLSConfig.CA.Secret.Name != "pcx-tls" ||
			deref(e.TLSConfig.ServerName) != fullname+".monitoring.svc" {
			t.Errorf("scheme %v tlsConfig %+v", e.Scheme, e.TLSConfig)
		}
		if e.BasicAuth == nil || e.BasicAuth.Username.Name != "pcx-basic-auth" || e.BasicAuth.Password.Key != "password" {
			t.Errorf("basicAuth %+v", e.BasicAuth)
		}
		// The chart's job relabeling first, then the user's.
		if len(e.RelabelConfigs) != 2 || e.RelabelConfigs[0].TargetLabel != "job" || e.RelabelConfigs[1].TargetLabel != "cluster" {
			t.Errorf("relabelings %+v", e.RelabelConfigs)
		}
		if len(e.MetricRelabelConfigs) != 1 || e.MetricRelabelConfigs[0].Regex != "go_gc_.*" {
			t.Errorf("metricRelabelings %+v", e.MetricRelabelConfigs)
		}
	})
	t.Run("prometheusRule", func(t *testing.T) {
		pr := find[monitoringv1.PrometheusRule](t, r, fullname)
		if pr.Namespace != "prometheus" {
			t.Errorf("namespace %q", pr.Namespace)
		}
		rules := map[string]monitoringv1.Rule{}
		var groups []string
		for _, g := range pr.Spec.Groups {
			groups = append(groups, g.Name)
			for _, rl := range g.Rules {
				rules[rl.Alert+rl.Record] = rl
			}
		}
		if want := []string{"partnercenter.rules", "partnercenter.alerts", "partnercenter.additional"}; !reflect.DeepEqual(groups, want) {
			t.Errorf("groups %v, want %v", groups, want)
		}
		share := rules["PartnerCenterBatchHighErrorShare"]
		if share.Expr.String() != "partnercenter:batch_failed_devices:ratio > 0.25" || string(deref(share.For)) != "30m" ||
			share.Labels["severity"] != "critical" || share.Annotations["summary"] == "" {
			t.Errorf("overridden rule %+v", share)
		}
		if _, ok := rules["PartnerCenterThrottlingSustained"]; ok {
			t.Error("a rule with enabled: false is rendered")
		}
		if _, ok := rules["PartnerCenterAPIDown"]; !ok {
			t.Error("a rule without override is missing")
		}
		if extra := rules["PartnerCenterTooManyBatches"]; extra.Expr.String() != "count(partnercenter_batch_status) > 5000" {
			t.Errorf("additional rule %+v", extra)
		}
	})
}

// reflectLabels returns an object's metadata labels.
func reflectLabels(v any) map[string]string {
	return reflect.ValueOf(v).Elem().FieldByName("Labels").Interface().(map[string]string)
}

// TestSecurityContextOverrides: the pod and container security contexts
// are values, so that OpenShift's restricted SCC can assign the user and
// the fsGroup (null removes a default).
func TestSecurityContextOverrides(t *testing.T) {
	r := mustRenderWith(t, "refresh-token-values.yaml", map[string]any{
		"podSecurityContext": map[string]any{"runAsUser": nil, "runAsGroup": nil, "fsGroup": nil},
		"securityContext":    map[string]any{"runAsUser": nil, "runAsGroup": nil},
	})
	p := pod(t, r)
	psc := p.Spec.SecurityContext
	if psc.RunAsUser != nil || psc.RunAsGroup != nil || psc.FSGroup != nil || !deref(psc.RunAsNonRoot) || psc.SeccompProfile == nil {
		t.Errorf("pod securityContext %+v", psc)
	}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		sc := c.SecurityContext
		if sc.RunAsUser != nil || sc.RunAsGroup != nil || !deref(sc.ReadOnlyRootFilesystem) || !deref(sc.RunAsNonRoot) {
			t.Errorf("%s securityContext %+v", c.Name, sc)
		}
	}
}

// TestImageReference: registry, tag and digest make the reference the
// community charts make.
func TestImageReference(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"default":        {nil, "partnercenter_exporter:" + chartAppVersion(t)},
		"registry":       {map[string]any{"image": map[string]any{"registry": "ghcr.io/acme/"}}, "ghcr.io/acme/partnercenter_exporter:" + chartAppVersion(t)},
		"tag":            {map[string]any{"image": map[string]any{"tag": "0.9.0"}}, "partnercenter_exporter:0.9.0"},
		"global wins":    {map[string]any{"global": map[string]any{"imageRegistry": "mirror.local"}, "image": map[string]any{"registry": "ghcr.io"}}, "mirror.local/partnercenter_exporter:" + chartAppVersion(t)},
		"digest no tag":  {map[string]any{"image": map[string]any{"tag": "0.9.0", "digest": "sha256:ab"}}, "partnercenter_exporter@sha256:ab"},
		"unknown global": {map[string]any{"global": map[string]any{"storageClass": "fast"}}, "partnercenter_exporter:" + chartAppVersion(t)},
	} {
		t.Run(name, func(t *testing.T) {
			r := mustRenderWith(t, "default-values.yaml", tc.values)
			if got := exporter(t, r).Image; got != tc.want {
				t.Errorf("image %q, want %q", got, tc.want)
			}
		})
	}
	r := mustRenderWith(t, "refresh-token-values.yaml", map[string]any{"global": map[string]any{"imageRegistry": "mirror.local"}})
	if got := pod(t, r).Spec.InitContainers[0].Image; got != "mirror.local/busybox:1.37" {
		t.Errorf("init image %q, want global.imageRegistry in front", got)
	}
}

// TestServiceAccountNotCreated: serviceAccount.create=false uses the
// namespace's default account, or the one named.
func TestServiceAccountNotCreated(t *testing.T) {
	r := mustRenderWith(t, "default-values.yaml", map[string]any{"serviceAccount": map[string]any{"create": false}})
	for _, o := range r.objects {
		if o.kind == "ServiceAccount" {
			t.Errorf("a ServiceAccount %s with create=false", o.name)
		}
	}
	if sa := pod(t, r).Spec.ServiceAccountName; sa != "" {
		t.Errorf("serviceAccountName %q, want the default", sa)
	}
	r = mustRenderWith(t, "default-values.yaml", map[string]any{"serviceAccount": map[string]any{"create": false, "name": "shared"}})
	if sa := pod(t, r).Spec.ServiceAccountName; sa != "shared" {
		t.Errorf("serviceAccountName %q, want shared", sa)
	}
	// Workload identity needs the annotated account whatever create says.
	r = mustRenderWith(t, "workload-identity-values.yaml", map[string]any{"serviceAccount": map[string]any{"create": false}})
	if sa := find[corev1.ServiceAccount](t, r, fullname); !strings.HasPrefix(sa.Annotations["azure.workload.identity/client-id"], "5f8e") {
		t.Errorf("annotations %v", sa.Annotations)
	}
}

// chartAppVersion is Chart.yaml's appVersion.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return chrt.Metadata.AppVersion
}
