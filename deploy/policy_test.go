package deploy

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// TestPodSecurityRestricted runs the pod of every values file through
// the Pod Security Admission checks of level "restricted", latest
// version, as a namespace labelled pod-security.kubernetes.io/enforce:
// restricted would.
func TestPodSecurityRestricted(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	for _, vf := range valuesFiles {
		t.Run(vf, func(t *testing.T) {
			p := pod(t, mustRender(t, vf))
			agg := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &p.ObjectMeta, &p.Spec))
			if !agg.Allowed {
				t.Errorf("restricted refuses the pod: %s: %s", agg.ForbiddenReason(), agg.ForbiddenDetail())
			}
		})
	}
	// The check itself refuses a pod that drops the defaults.
	p := pod(t, mustRenderWith(t, "default-values.yaml", map[string]any{"securityContext": map[string]any{"allowPrivilegeEscalation": true}}))
	if agg := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &p.ObjectMeta, &p.Spec)); agg.Allowed {
		t.Error("restricted allows allowPrivilegeEscalation: true; the check checks nothing")
	}
}

// TestReferencesResolve checks, for every values file, that what one
// object names another has: selectors match the pod's labels, named
// ports exist, every mount has a volume and every ConfigMap or Secret
// volume of the release's own names an object and keys it has, the
// ServiceMonitor reaches a pod through a Service, the NetworkPolicy
// admits the port the Service targets, and the ScrapeConfig's addresses
// are the Services' DNS names and ports.
func TestReferencesResolve(t *testing.T) {
	for _, vf := range valuesFiles {
		t.Run(vf, func(t *testing.T) {
			checkReferences(t, mustRender(t, vf))
		})
	}
}

func checkReferences(t *testing.T, r release) {
	t.Helper()
	p := pod(t, r)
	podLabels := labels.Set(p.Labels)
	selects := func(what string, sel *metav1.LabelSelector) {
		t.Helper()
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s.Empty() || !s.Matches(podLabels) {
			t.Errorf("%s selector %v does not select the pod (labels %v)", what, sel, p.Labels)
		}
	}
	switch w := workload(t, r).(type) {
	case *appsv1.Deployment:
		selects("Deployment", w.Spec.Selector)
	case *appsv1.StatefulSet:
		selects("StatefulSet", w.Spec.Selector)
		if hs := find[corev1.Service](t, r, w.Spec.ServiceName); hs.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("StatefulSet serviceName %s is not headless", w.Spec.ServiceName)
		}
		for _, ct := range w.Spec.VolumeClaimTemplates {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: ct.Name})
		}
	}

	// Named ports of the containers.
	ports := map[string]int32{}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			ports[cp.Name] = cp.ContainerPort
		}
	}
	portOf := func(what string, port intstr.IntOrString) int32 {
		t.Helper()
		if port.Type == intstr.Int {
			return port.IntVal
		}
		n, ok := ports[port.StrVal]
		if !ok {
			t.Errorf("%s names port %q, which no container has (%v)", what, port.StrVal, ports)
		}
		return n
	}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		for name, pr := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if pr != nil && pr.HTTPGet != nil {
				portOf(c.Name+" "+name+" probe", pr.HTTPGet.Port)
			}
		}
	}

	// Volumes and mounts.
	volumes := map[string]corev1.Volume{}
	for _, v := range p.Spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			t.Errorf("two volumes named %s", v.Name)
		}
		volumes[v.Name] = v
	}
	used := map[string]bool{}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("container %s mounts %s, which is no volume", c.Name, m.Name)
			}
			used[m.Name] = true
		}
	}
	for name, v := range volumes {
		if !used[name] {
			t.Errorf("volume %s is mounted nowhere", name)
		}
		switch {
		case v.ConfigMap != nil:
			if cm, ok := findOptional[corev1.ConfigMap](r, v.ConfigMap.Name); ok {
				for _, it := range v.ConfigMap.Items {
					if _, ok := cm.Data[it.Key]; !ok {
						t.Errorf("volume %s: ConfigMap %s has no key %s", name, cm.Name, it.Key)
					}
				}
			} else if v.ConfigMap.Name == fullname || v.ConfigMap.Name == fullname+"-batches" {
				t.Errorf("volume %s: the release renders no ConfigMap %s", name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if s, ok := findOptional[corev1.Secret](r, v.Secret.SecretName); ok {
				for _, it := range v.Secret.Items {
					if _, ok := s.Data[it.Key]; !ok {
						t.Errorf("volume %s: Secret %s has no key %s", name, s.Name, it.Key)
					}
				}
			} else if v.Secret.SecretName == fullname || v.Secret.SecretName == fullname+"-intake" {
				t.Errorf("volume %s: the release renders no Secret %s", name, v.Secret.SecretName)
			}
		case v.PersistentVolumeClaim != nil:
			if _, ok := findOptional[corev1.PersistentVolumeClaim](r, v.PersistentVolumeClaim.ClaimName); !ok && v.PersistentVolumeClaim.ClaimName == fullname {
				t.Errorf("volume %s: the release renders no claim %s", name, fullname)
			}
		}
	}
	if sa := p.Spec.ServiceAccountName; sa != "" {
		if _, ok := findOptional[corev1.ServiceAccount](r, sa); !ok && sa == fullname {
			t.Errorf("serviceAccountName %s: the release renders none", sa)
		}
	}

	// Services select the pod and target a named port it has.
	services := map[string]*corev1.Service{}
	for _, o := range r.objects {
		if s, ok := o.value.(*corev1.Service); ok {
			services[s.Name] = s
			selects("Service "+s.Name, &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
			for _, sp := range s.Spec.Ports {
				portOf("Service "+s.Name, sp.TargetPort)
			}
		}
		if pdb, ok := o.value.(*policyv1.PodDisruptionBudget); ok {
			selects("PodDisruptionBudget", pdb.Spec.Selector)
		}
		if np, ok := o.value.(*networkingv1.NetworkPolicy); ok {
			selects("NetworkPolicy", &np.Spec.PodSelector)
			checkNetworkPolicyAdmits(t, np, portOf)
		}
	}

	// ServiceMonitor -> Service (same namespace, or its namespaceSelector)
	// -> the pod, through a Service port by name.
	for _, o := range r.objects {
		sm, ok := o.value.(*monitoringv1.ServiceMonitor)
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		var via []*corev1.Service
		for _, s := range services {
			inNS := s.Namespace == sm.Namespace || slices.Contains(sm.Spec.NamespaceSelector.MatchNames, s.Namespace) || sm.Spec.NamespaceSelector.Any
			if inNS && sel.Matches(labels.Set(s.Labels)) {
				via = append(via, s)
			}
		}
		if len(via) != 1 {
			t.Fatalf("ServiceMonitor selects %d Services, want 1", len(via))
		}
		for _, e := range sm.Spec.Endpoints {
			found := false
			for _, sp := range via[0].Spec.Ports {
				found = found || sp.Name == e.Port
			}
			if !found {
				t.Errorf("ServiceMonitor endpoint port %q is no port of Service %s", e.Port, via[0].Name)
			}
		}
	}

	// ScrapeConfig: /sd on the Service's DNS name and port; probes on
	// <pod>.<headless Service DNS name>:<its port>.
	for _, o := range r.objects {
		sc, ok := o.value.(*monitoringv1alpha1.ScrapeConfig)
		if !ok {
			continue
		}
		sts, ok := workload(t, r).(*appsv1.StatefulSet)
		if !ok {
			t.Fatal("a ScrapeConfig without the StatefulSet of probe mode")
		}
		main := services[fullname]
		wantSD := fmt.Sprintf("http://%s.%s.svc:%d/sd", main.Name, main.Namespace, main.Spec.Ports[0].Port)
		if len(sc.Spec.HTTPSDConfigs) != 1 || string(sc.Spec.HTTPSDConfigs[0].URL) != wantSD {
			t.Errorf("ScrapeConfig http_sd %+v, want %s", sc.Spec.HTTPSDConfigs, wantSD)
		}
		hs := services[sts.Spec.ServiceName]
		for _, rc := range sc.Spec.RelabelConfigs {
			if rc.TargetLabel != "__address__" {
				continue
			}
			host, port, err := net.SplitHostPort(strings.ReplaceAll(deref(rc.Replacement), "${1}", "0"))
			if err != nil {
				t.Fatalf("address %q: %v", deref(rc.Replacement), err)
			}
			if want := fmt.Sprintf("%s-0.%s.%s.svc", sts.Name, hs.Name, hs.Namespace); host != want {
				t.Errorf("probe address host %s, want %s", host, want)
			}
			if want := strconv.Itoa(int(portOf("headless Service", hs.Spec.Ports[0].TargetPort))); port != want || strconv.Itoa(int(hs.Spec.Ports[0].Port)) != want {
				t.Errorf("probe address port %s, want %s (the pod's port, which the headless Service keeps)", port, want)
			}
		}
	}
}

// checkNetworkPolicyAdmits: the ingress rule allows the exporter's port.
func checkNetworkPolicyAdmits(t *testing.T, np *networkingv1.NetworkPolicy, portOf func(string, intstr.IntOrString) int32) {
	t.Helper()
	for _, in := range np.Spec.Ingress {
		for _, p := range in.Ports {
			if p.Port != nil && portOf("NetworkPolicy ingress", *p.Port) == 10046 {
				return
			}
		}
	}
	t.Errorf("NetworkPolicy ingress %+v does not admit port 10046", np.Spec.Ingress)
}

// workload returns the release's Deployment or StatefulSet.
func workload(t *testing.T, r release) any {
	t.Helper()
	for _, o := range r.objects {
		switch o.value.(type) {
		case *appsv1.Deployment, *appsv1.StatefulSet:
			return o.value
		}
	}
	t.Fatal("no workload")
	return nil
}

// findOptional returns the object of type T with the name, if any.
func findOptional[T any](r release, name string) (*T, bool) {
	for _, o := range r.objects {
		if v, ok := o.value.(*T); ok && o.name == name {
			return v, true
		}
	}
	return nil, false
}
