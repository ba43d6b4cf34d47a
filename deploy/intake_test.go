package deploy

import (
	"maps"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

const intakeDir = "/run/secrets/partnercenter_exporter-intake"

// intakeOn is storage and the intake with the given intake values, over
// default-values.yaml.
func intakeOn(intake map[string]any) map[string]any {
	in := map[string]any{"enabled": true}
	maps.Copy(in, intake)
	return map[string]any{"storage": map[string]any{"enabled": true}, "intake": in}
}

// checkIntakeMount: the token Secret is mounted whole (no items, no
// subPath) and read-only, so that the kubelet updates a rotated token in
// place, and the configuration names a file of it for each key.
func checkIntakeMount(t *testing.T, r release, secret string, keys []string, maxBatches int) {
	t.Helper()
	v := volume(t, pod(t, r), "intake-tokens")
	if v.Secret == nil || v.Secret.SecretName != secret || v.Secret.Items != nil || deref(v.Secret.DefaultMode) != 0o440 {
		t.Errorf("intake-tokens volume: %+v, want all of Secret %s, mode 0440", v.VolumeSource, secret)
	}
	c := exporter(t, r)
	if got := mounts(c)[intakeDir]; got != (mount{"intake-tokens", true}) {
		t.Errorf("intake mount: %+v, want intake-tokens read-only", got)
	}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath, which the kubelet never updates", m.MountPath)
		}
	}
	var files []any
	for _, k := range keys {
		files = append(files, intakeDir+"/"+k)
	}
	want := map[string]any{"bearer_token_files": files, "max_batches": float64(maxBatches)}
	if got := renderedConfig(t, r)["intake"]; !reflect.DeepEqual(got, want) {
		t.Errorf("config intake: %v, want %v", got, want)
	}
}

func TestIntakeScenario(t *testing.T) {
	r := mustRender(t, "intake-values.yaml")
	checkIntakeMount(t, r, "partnercenter-intake", []string{"azure-devops", "github-actions"}, 20000)
	if c := exporter(t, r); !reflect.DeepEqual(c.Args, []string{configArg, storageArg}) {
		t.Errorf("args: %q, want --storage.path, which the intake needs", c.Args)
	}
	want := []string{
		"ConfigMap/" + fullname, "ConfigMap/" + fullname + "-dashboard",
		"Deployment/" + fullname, "NetworkPolicy/" + fullname, "PersistentVolumeClaim/" + fullname,
		"Service/" + fullname, "ServiceAccount/" + fullname,
	}
	if got := r.kinds(); !reflect.DeepEqual(got, want) {
		t.Errorf("objects:\n got %v\nwant %v (no Secret: both are existing ones)", got, want)
	}
	if notes := r.files["partnercenter-exporter/templates/NOTES.txt"]; !strings.Contains(notes, "http://"+fullname+".monitoring.svc:10046/api/v1/batches") {
		t.Errorf("NOTES.txt does not name the intake's URL:\n%s", notes)
	}
}

// TestIntakeOffByDefault: without intake.enabled nothing of it renders,
// even with tokens set.
func TestIntakeOffByDefault(t *testing.T) {
	r := mustRenderWith(t, "storage-values.yaml", map[string]any{"intake": map[string]any{"tokens": []any{"t1"}}})
	if _, ok := renderedConfig(t, r)["intake"]; ok {
		t.Error("config has an intake section with intake.enabled false")
	}
	for _, v := range pod(t, r).Spec.Volumes {
		if v.Name == "intake-tokens" {
			t.Error("an intake-tokens volume with intake.enabled false")
		}
	}
	if _, ok := findOptional[corev1.Secret](r, fullname+"-intake"); ok {
		t.Error("an intake Secret with intake.enabled false")
	}
}

// TestIntakeSecrets: the token keys, and the files the configuration
// names, for each way of giving the tokens.
func TestIntakeSecrets(t *testing.T) {
	for name, tc := range map[string]struct {
		intake   map[string]any
		secret   string
		data     map[string]string // of the chart-made Secret; nil: none
		keys     []string
		maxBatch int
	}{
		"existing, default key": {map[string]any{"existingSecret": "pipeline-tokens"}, "pipeline-tokens", nil, []string{"token"}, 50000},
		"existing, keys":        {map[string]any{"existingSecret": "pipeline-tokens", "secretKeys": []any{"next", "current"}}, "pipeline-tokens", nil, []string{"next", "current"}, 50000},
		"token list":            {map[string]any{"tokens": []any{"first-token", "second-token"}, "maxBatches": 10}, fullname + "-intake", map[string]string{"token-1": "first-token", "token-2": "second-token"}, []string{"token-1", "token-2"}, 10},
		"token map":             {map[string]any{"tokens": map[string]any{"github": "gh-token", "azure-devops": "ado-token"}}, fullname + "-intake", map[string]string{"azure-devops": "ado-token", "github": "gh-token"}, []string{"azure-devops", "github"}, 50000},
	} {
		t.Run(name, func(t *testing.T) {
			r := mustRenderWith(t, "default-values.yaml", intakeOn(tc.intake))
			checkIntakeMount(t, r, tc.secret, tc.keys, tc.maxBatch)
			s, ok := findOptional[corev1.Secret](r, fullname+"-intake")
			if ok != (tc.data != nil) {
				t.Fatalf("chart-made intake Secret: %t, want %t", ok, tc.data != nil)
			}
			if ok {
				got := map[string]string{}
				for k, v := range s.Data {
					got[k] = string(v)
				}
				if !reflect.DeepEqual(got, tc.data) || s.Type != corev1.SecretTypeOpaque {
					t.Errorf("intake Secret %s data %q, want %q", s.Type, got, tc.data)
				}
			}
			// The credentials' Secret keeps its own key alone.
			if cs := find[corev1.Secret](t, r, fullname); len(cs.Data) != 1 || cs.Data["client_secret"] == nil {
				t.Errorf("credentials Secret keys %v", cs.Data)
			}
			// A token is in the Secret alone (base64): not in the
			// configuration, the pod, NOTES.txt or any other object.
			for _, token := range tc.data {
				for file, text := range r.files {
					if strings.Contains(text, token) {
						t.Errorf("%s holds a token", file)
					}
				}
			}
			checkReferences(t, r)
			configCheck(t, r)
		})
	}
}

// TestIntakeTokenChangeRollsNoPod: a rotated token changes the Secret and
// not the pod template (it carries no checksum of the intake Secret; the
// exporter re-reads the mounted file), while a change of the intake's
// settings changes the configuration and its checksum, which rolls the
// pods.
func TestIntakeTokenChangeRollsNoPod(t *testing.T) {
	render := func(intake map[string]any) (*corev1.PodTemplateSpec, *corev1.Secret) {
		r := mustRenderWith(t, "default-values.yaml", intakeOn(intake))
		return pod(t, r), find[corev1.Secret](t, r, fullname+"-intake")
	}
	for name, tokens := range map[string][2]any{
		"list": {[]any{"old-token"}, []any{"new-token"}},
		"map":  {map[string]any{"ci": "old-token"}, map[string]any{"ci": "new-token"}},
	} {
		t.Run(name, func(t *testing.T) {
			p1, s1 := render(map[string]any{"tokens": tokens[0]})
			p2, s2 := render(map[string]any{"tokens": tokens[1]})
			if reflect.DeepEqual(s1.Data, s2.Data) {
				t.Fatal("the Secret did not change with the token")
			}
			if !reflect.DeepEqual(p1, p2) {
				t.Errorf("a changed token changed the pod template:\n%v\n%v", p1.Annotations, p2.Annotations)
			}
		})
	}
	base, _ := render(map[string]any{"tokens": []any{"a-token"}})
	for name, intake := range map[string]map[string]any{
		"maxBatches": {"tokens": []any{"a-token"}, "maxBatches": 100},
		"a token":    {"tokens": []any{"a-token", "another-token"}},
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := render(intake)
			if p.Annotations["checksum/config"] == base.Annotations["checksum/config"] {
				t.Errorf("checksum/config unchanged by intake %v", intake)
			}
		})
	}
	// An existing Secret has no checksum either way.
	r := mustRenderWith(t, "default-values.yaml", intakeOn(map[string]any{"existingSecret": "pipeline-tokens"}))
	for k := range pod(t, r).Annotations {
		if strings.Contains(k, "intake") {
			t.Errorf("pod annotation %s", k)
		}
	}
}

// peer is a pod that tries to reach the exporter.
type peer struct {
	namespace string
	nsLabels  map[string]string
	podLabels map[string]string
}

// admits reports whether the NetworkPolicy's ingress rules let the peer
// reach the exporter's http port (10046, by name or number), as the
// NetworkPolicy API defines peers: a namespaceSelector selects namespaces
// by their labels, none means the policy's own; a podSelector selects
// pods in them, none means all; an empty from means every source.
func admits(t *testing.T, np *networkingv1.NetworkPolicy, p peer) bool {
	t.Helper()
	matches := func(sel *metav1.LabelSelector, set map[string]string) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		return s.Matches(labels.Set(set))
	}
	for _, rule := range np.Spec.Ingress {
		port := len(rule.Ports) == 0
		for _, rp := range rule.Ports {
			port = port || rp.Port == nil || rp.Port.String() == "http" || rp.Port.IntValue() == 10046
		}
		if !port {
			continue
		}
		if len(rule.From) == 0 {
			return true
		}
		for _, f := range rule.From {
			if f.IPBlock != nil {
				continue
			}
			inNS := p.namespace == np.Namespace
			if f.NamespaceSelector != nil {
				inNS = matches(f.NamespaceSelector, p.nsLabels)
			}
			if inNS && (f.PodSelector == nil || matches(f.PodSelector, p.podLabels)) {
				return true
			}
		}
	}
	return false
}

func nsPeer(ns string, podLabels map[string]string) peer {
	return peer{ns, map[string]string{"kubernetes.io/metadata.name": ns}, podLabels}
}

func TestIntakeNetworkPolicy(t *testing.T) {
	agent := nsPeer("build-agents", map[string]string{"app": "azure-pipelines-agent"})
	ingress := nsPeer("ingress-nginx", map[string]string{"app.kubernetes.io/name": "ingress-nginx"})
	otherInIngressNS := nsPeer("ingress-nginx", map[string]string{"app": "default-backend"})
	stranger := nsPeer("default", map[string]string{"app": "web"})
	prometheus := nsPeer("monitoring", map[string]string{"app.kubernetes.io/name": "prometheus"})

	r := mustRender(t, "intake-values.yaml")
	np := find[networkingv1.NetworkPolicy](t, r, fullname)
	for name, tc := range map[string]struct {
		p    peer
		want bool
	}{
		"build agent":              {agent, true},
		"ingress controller":       {ingress, true},
		"other ingress-ns pod":     {otherInIngressNS, false},
		"stranger":                 {stranger, false},
		"prometheus (ingressFrom)": {prometheus, true},
	} {
		if got := admits(t, np, tc.p); got != tc.want {
			t.Errorf("%s: admitted %t, want %t (ingress %+v)", name, got, tc.want, np.Spec.Ingress)
		}
	}
	if len(np.Spec.Ingress) != 2 || len(np.Spec.Ingress[1].Ports) != 1 || np.Spec.Ingress[1].Ports[0].Port.String() != "http" {
		t.Errorf("ingress: %+v, want the ingressFrom rule and the intake's, on port http", np.Spec.Ingress)
	}

	// The intake's peers get in only with the intake on.
	from := map[string]any{"networkPolicy": map[string]any{"from": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "build-agents"}}}}}}
	off := mustRenderWith(t, "network-policy-values.yaml", map[string]any{"intake": from})
	if np := find[networkingv1.NetworkPolicy](t, off, fullname); admits(t, np, agent) || len(np.Spec.Ingress) != 1 {
		t.Errorf("intake off: ingress %+v admits the intake's peers", np.Spec.Ingress)
	}
	// No peers named: no rule of its own.
	r = mustRenderWith(t, "intake-values.yaml", map[string]any{"intake": map[string]any{"networkPolicy": map[string]any{"from": []any{}}}})
	if np := find[networkingv1.NetworkPolicy](t, r, fullname); admits(t, np, agent) || len(np.Spec.Ingress) != 1 {
		t.Errorf("intake.networkPolicy.from empty: ingress %+v", np.Spec.Ingress)
	}
	// networkPolicy off: no NetworkPolicy, whatever intake.networkPolicy says.
	r = mustRenderWith(t, "intake-values.yaml", map[string]any{"networkPolicy": map[string]any{"enabled": false}})
	if _, ok := findOptional[networkingv1.NetworkPolicy](r, fullname); ok {
		t.Error("a NetworkPolicy with networkPolicy.enabled false")
	}
}

// TestIntakeProbeModeOneShard: probe mode with one shard keeps one store,
// which every request reaches: the intake is allowed there.
func TestIntakeProbeModeOneShard(t *testing.T) {
	r := mustRenderWith(t, "probe-values.yaml", map[string]any{"replicas": 1, "intake": map[string]any{"enabled": true, "existingSecret": "pipeline-tokens"}})
	checkIntakeMount(t, r, "pipeline-tokens", []string{"token"}, 50000)
	checkReferences(t, r)
}

// TestIntakeFailsClearly: intake values that would give a broken release
// stop rendering with a message naming the value to change.
func TestIntakeFailsClearly(t *testing.T) {
	for name, tc := range map[string]struct {
		values    string
		overrides map[string]any
		want      string
	}{
		"no storage":         {"default-values.yaml", map[string]any{"intake": map[string]any{"enabled": true, "tokens": []any{"a-token"}}}, "intake.enabled needs storage.enabled: the exporter keeps the batches registered through the intake in --storage.path"},
		"shards":             {"probe-values.yaml", map[string]any{"intake": map[string]any{"enabled": true, "tokens": []any{"a-token"}}}, "intake.enabled in probe mode needs replicas: 1 (got 3): each shard keeps its own store"},
		"no tokens":          {"default-values.yaml", intakeOn(nil), "intake.enabled needs its bearer tokens: set intake.existingSecret"},
		"both":               {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{"a-token"}, "existingSecret": "s"}), "intake: set tokens or existingSecret, not both"},
		"keys without name":  {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{"a-token"}, "secretKeys": []any{"k"}}), "intake.secretKeys names keys of intake.existingSecret, which is not set"},
		"config intake":      {"default-values.yaml", map[string]any{"config": map[string]any{"intake": map[string]any{"max_batches": 5}}}, "config.intake: the chart renders it from the intake values"},
		"empty token":        {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{""}}), "/intake/tokens/0"},
		"two-line token":     {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{"a\nb"}}), "/intake/tokens/0"},
		"hidden key":         {"default-values.yaml", intakeOn(map[string]any{"tokens": map[string]any{".token": "a-token"}}), "'.token' does not match pattern"},
		"path key":           {"default-values.yaml", intakeOn(map[string]any{"existingSecret": "s", "secretKeys": []any{"../token"}}), "/intake/secretKeys/0"},
		"no batches":         {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{"a-token"}, "maxBatches": 0}), "/intake/maxBatches"},
		"misspelt":           {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{"a-token"}, "existingsecret": "s"}), "existingsecret"},
		"bad peer":           {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{"a-token"}, "networkPolicy": map[string]any{"from": []any{map[string]any{"namespaceSelectors": map[string]any{}}}}}), "namespaceSelectors"},
		"empty peer":         {"default-values.yaml", intakeOn(map[string]any{"tokens": []any{"a-token"}, "networkPolicy": map[string]any{"from": []any{map[string]any{}}}}), "/intake/networkPolicy/from/0"},
		"tokens wrong type":  {"default-values.yaml", intakeOn(map[string]any{"tokens": "a-token"}), "/intake/tokens"},
		"storage turned off": {"intake-values.yaml", map[string]any{"storage": map[string]any{"enabled": false}}, "intake.enabled needs storage.enabled"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderChart(t, tc.values, tc.overrides)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
