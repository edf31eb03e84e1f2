package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chart/loader"
)

// appVersion is the chart's appVersion: the default image tag.
func appVersion(t *testing.T) string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch.Metadata.AppVersion
}

func container(d *appsv1.Deployment) corev1.Container { return d.Spec.Template.Spec.Containers[0] }

func TestDefaultValuesRenderAHardenedManagerAndNothingOptional(t *testing.T) {
	r := render(t, "")

	want := []string{"ServiceAccount/sluice", "ClusterRole/sluice-manager", "ClusterRoleBinding/sluice-manager",
		"Role/sluice-leader-election", "RoleBinding/sluice-leader-election",
		"Service/sluice-metrics", "Deployment/sluice-manager", "PodDisruptionBudget/sluice-manager",
		"ValidatingAdmissionPolicy/sluice-deletes-only-copies", "ValidatingAdmissionPolicyBinding/sluice-deletes-only-copies"}
	if got := r.kinds(); !equalSets(got, want) {
		t.Errorf("objects = %v, want %v", got, want)
	}
	d := r.manager()
	c := container(d)
	if wantImg := "ghcr.io/sluice-dev/sluice-manager:" + appVersion(t); c.Image != wantImg {
		t.Errorf("image = %s, want %s", c.Image, wantImg)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "sluice" {
		t.Errorf("serviceAccountName = %q, want sluice", d.Spec.Template.Spec.ServiceAccountName)
	}
	pod := d.Spec.Template.Spec.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and seccomp RuntimeDefault", pod)
	}
	expectHardenedContainer(t, c)
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.String() != "health" {
		t.Errorf("livenessProbe = %+v, want GET /healthz on the health port", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.String() != "health" {
		t.Errorf("readinessProbe = %+v, want GET /readyz on the health port", c.ReadinessProbe)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "health" && p.ContainerPort == 8081 }) {
		t.Errorf("ports = %+v, want health on 8081", c.Ports)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want requests and a memory limit", c.Resources)
	}
	expectArgs(t, c.Args, "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--log-level=info", "--gateway-flavor=envoy",
		"--max-concurrent-reconciles=64")
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--notify-secret") || strings.HasPrefix(a, "--event-webhook-url") || strings.HasPrefix(a, "--prometheus-address") ||
			strings.HasPrefix(a, "--webhook-egress-") {
			t.Errorf("default args have %s", a)
		}
	}
}

func TestByDefaultTwoManagersElectALeaderAndAlwaysOneStaysReady(t *testing.T) {
	r := render(t, "")
	d := r.manager()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	expectArgs(t, container(d).Args, "--leader-elect", "--leader-election-namespace="+releaseNS)
	// An update starts a new manager and waits for it to be ready (its
	// cache synced) before it stops an old one.
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable == nil ||
		ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge == nil || ru.MaxSurge.IntValue() < 1 {
		t.Errorf("strategy = %+v, want a rolling update with maxUnavailable 0 and a surge", d.Spec.Strategy)
	}
	pdb := &policyv1.PodDisruptionBudget{}
	r.into("PodDisruptionBudget", "-manager", pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget minAvailable %v maxUnavailable %v, want minAvailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	if pdb.Namespace != releaseNS {
		t.Errorf("PodDisruptionBudget in %q, want the release namespace %s", pdb.Namespace, releaseNS)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) || !equality.Semantic.DeepEqual(pdb.Spec.Selector, d.Spec.Selector) {
		t.Errorf("PodDisruptionBudget selects %v, want the manager's pods (%v)", pdb.Spec.Selector, d.Spec.Selector)
	}
}

func TestAPodDisruptionBudgetIsRenderedOnlyWithMoreThanOneReplica(t *testing.T) {
	// minAvailable 1 of one pod would block every node drain.
	if pdb := render(t, "replicas: 1").find("PodDisruptionBudget", ""); pdb != nil {
		t.Errorf("a PodDisruptionBudget was rendered for one replica")
	}
	if pdb := render(t, "replicas: 3").find("PodDisruptionBudget", "-manager"); pdb == nil {
		t.Errorf("no PodDisruptionBudget for three replicas")
	}
}

// expectHardenedContainer checks the container security context the issue asks for.
func expectHardenedContainer(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: runAsNonRoot is not true", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: capabilities = %+v, want drop ALL", c.Name, sc.Capabilities)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile = %+v, want RuntimeDefault", c.Name, sc.SeccompProfile)
	}
}

func expectArgs(t *testing.T, args []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("args %v lack %s", args, w)
		}
	}
}

func equalSets(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestLeaderElectionIsAlwaysOnWithANamespacedRole(t *testing.T) {
	for _, replicas := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			r := render(t, fmt.Sprintf("replicas: %d", replicas))
			expectArgs(t, container(r.manager()).Args, "--leader-elect", "--leader-election-namespace="+releaseNS)
			role := r.find("Role", "-leader-election")
			if role == nil {
				t.Fatalf("no leader election Role among %v", r.kinds())
			}
			if role.GetNamespace() != releaseNS {
				t.Errorf("Role namespace = %s, want the release's %s", role.GetNamespace(), releaseNS)
			}
			rb := r.find("RoleBinding", "-leader-election")
			if rb == nil || rb.GetNamespace() != releaseNS {
				t.Errorf("leader election RoleBinding missing or outside %s", releaseNS)
			}
		})
	}
}

func TestRouterRulesAreGrantedOnlyWhenTheirRouterIsEnabled(t *testing.T) {
	for _, tc := range []struct {
		name           string
		values         string
		gateway, istio bool
	}{
		{"no router", "", false, false},
		{"Gateway API", "routers: {gatewayAPI: {enabled: true}}", true, false},
		{"Istio", "routers: {istio: {enabled: true}}", false, true},
		{"both", "routers: {gatewayAPI: {enabled: true}, istio: {enabled: true}}", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs := grants(render(t, tc.values).clusterRole().Rules)
			if got := len(grantsFor(gs, "gateway.networking.k8s.io")) > 0; got != tc.gateway {
				t.Errorf("Gateway API rules present = %v, want %v", got, tc.gateway)
			}
			if got := len(grantsFor(gs, "networking.istio.io")) > 0; got != tc.istio {
				t.Errorf("Istio rules present = %v, want %v", got, tc.istio)
			}
		})
	}
}

func TestValuesAreWiredToTheManagerFlags(t *testing.T) {
	r := render(t, `
image: {tag: v9.9.9}
logLevel: debug
logDev: true
prometheus: {address: "http://prometheus.monitoring:9090", timeout: 20s}
gatewayFlavor: traefik
maxConcurrentReconciles: 32
notifications: {secret: sluice-notify, eventWebhookURL: "https://events.example.com/hook"}
webhookEgress: {allow: [127.0.0.1/32, "hooks.internal:8080"], deny: [10.0.0.0/8]}
extraArgs: ["--some-future-flag=1"]
metrics: {port: 9090}
healthPort: 9091
`)
	c := container(r.manager())
	if c.Image != "ghcr.io/sluice-dev/sluice-manager:v9.9.9" {
		t.Errorf("image = %s, want the tag from values", c.Image)
	}
	expectArgs(t, c.Args, "--log-level=debug", "--log-dev", "--prometheus-address=http://prometheus.monitoring:9090",
		"--prometheus-timeout=20s", "--gateway-flavor=traefik", "--max-concurrent-reconciles=32", "--notify-secret="+releaseNS+"/sluice-notify",
		"--event-webhook-url=https://events.example.com/hook", "--some-future-flag=1",
		"--webhook-egress-allow=127.0.0.1/32,hooks.internal:8080", "--webhook-egress-deny=10.0.0.0/8",
		"--metrics-bind-address=:9090", "--health-probe-bind-address=:9091")

	other := render(t, "notifications: {secret: ops/notify}")
	expectArgs(t, container(other.manager()).Args, "--notify-secret=ops/notify")
}

func TestServiceMonitorRendersOnlyWhenEnabled(t *testing.T) {
	if sm := render(t, "").find("ServiceMonitor", ""); sm != nil {
		t.Errorf("ServiceMonitor rendered by default")
	}
	r := render(t, "metrics: {serviceMonitor: {enabled: true, labels: {release: kube-prometheus}}}")
	sm := r.find("ServiceMonitor", "-manager")
	if sm == nil {
		t.Fatalf("no ServiceMonitor among %v", r.kinds())
	}
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "kube-prometheus" {
		t.Errorf("ServiceMonitor %s labels %v", sm.GetAPIVersion(), sm.GetLabels())
	}
	svc := &corev1.Service{}
	r.into("Service", "-metrics", svc)
	sel, _, _ := unstructuredStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the metrics Service has %v", k, v, svc.Labels)
		}
	}
	if _, err := tryRender("metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}"); err == nil ||
		!strings.Contains(err.Error(), "metrics.service.enabled") {
		t.Errorf("a ServiceMonitor without the Service rendered (err %v), want a failure naming metrics.service.enabled", err)
	}
}

func TestLoadtesterRendersOnlyWhenEnabled(t *testing.T) {
	if r := render(t, ""); r.find("Deployment", "-loadtester") != nil || r.find("Service", "-loadtester") != nil {
		t.Errorf("loadtester rendered by default: %v", r.kinds())
	}
	r := render(t, `
loadtester:
  enabled: true
  tokenSecret: loadtester-token
  allowedNamespaces: [shop, payments]
  maxRuns: 4
  maxRate: 200
  maxDuration: 5m
`)
	d := &appsv1.Deployment{}
	r.into("Deployment", "-loadtester", d)
	c := container(d)
	if want := "ghcr.io/sluice-dev/sluice-loadtester:" + appVersion(t); c.Image != want {
		t.Errorf("loadtester image = %s, want %s", c.Image, want)
	}
	expectHardenedContainer(t, c)
	expectArgs(t, c.Args, "--listen=:8080", "--token-file=/etc/loadtester/token", "--allowed-namespaces=shop,payments", "--max-runs=4",
		"--max-rate=200", "--max-duration=5m")
	if d.Spec.Template.Spec.AutomountServiceAccountToken == nil || *d.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Errorf("loadtester mounts a ServiceAccount token; it needs no API access")
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *d.Spec.Replicas != 1 {
		t.Errorf("loadtester strategy %s replicas %d, want Recreate with one replica (gate state is per pod)", d.Spec.Strategy.Type, *d.Spec.Replicas)
	}
	svc := &corev1.Service{}
	r.into("Service", "-loadtester", svc)
	if svc.Spec.Ports[0].Port != 80 || svc.Spec.Selector["app.kubernetes.io/component"] != "loadtester" {
		t.Errorf("loadtester Service = %+v", svc.Spec)
	}
}

// ltTokenHosts are the host names of the loadtester's Service in the
// release namespace: the only webhook hosts the manager sends its token to.
const ltTokenHosts = "sluice-loadtester,sluice-loadtester." + releaseNS + ",sluice-loadtester." + releaseNS + ".svc," +
	"sluice-loadtester." + releaseNS + ".svc.cluster.local"

// secretVolume returns the name of the Secret a pod's volume mounted at
// path comes from ("" when none) and whether the mount is read-only.
func secretVolume(pod corev1.PodSpec, path string) (secret string, readOnly bool) {
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName, m.ReadOnly
			}
		}
	}
	return "", false
}

func TestTheLoadtesterIsSecureByDefaultWithAGeneratedTokenTheManagerSends(t *testing.T) {
	r := render(t, "loadtester: {enabled: true}")
	sec := &corev1.Secret{}
	r.into("Secret", "-loadtester-token", sec)
	token := sec.Data["token"]
	if len(token) != 32 || strings.Trim(string(token), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		t.Errorf("generated token %q, want 32 letters and digits", token)
	}
	if sec.Namespace != releaseNS {
		t.Errorf("token Secret in %q, want the release namespace", sec.Namespace)
	}

	lt := &appsv1.Deployment{}
	r.into("Deployment", "-loadtester", lt)
	expectArgs(t, container(lt).Args, "--token-file=/etc/loadtester/token")
	if name, ro := secretVolume(lt.Spec.Template.Spec, "/etc/loadtester"); name != sec.Name || !ro {
		t.Errorf("loadtester mounts Secret %q (read-only %v) at /etc/loadtester, want %s read-only", name, ro, sec.Name)
	}
	for _, a := range container(lt).Args {
		if a == "--token-for-hooks" {
			t.Errorf("--token-for-hooks without loadtester.tokenForHooks")
		}
	}

	// Load runs need the token: the manager always sends it, to the
	// loadtester's Service only.
	m := r.manager()
	expectArgs(t, container(m).Args, "--webhook-token-file=/etc/sluice/loadtester-token/token", "--webhook-token-hosts="+ltTokenHosts)
	if name, ro := secretVolume(m.Spec.Template.Spec, "/etc/sluice/loadtester-token"); name != sec.Name || !ro {
		t.Errorf("manager mounts Secret %q (read-only %v), want %s read-only", name, ro, sec.Name)
	}

	hooks := render(t, "loadtester: {enabled: true, tokenForHooks: true}")
	hooks.into("Deployment", "-loadtester", lt)
	expectArgs(t, container(lt).Args, "--token-file=/etc/loadtester/token", "--token-for-hooks")
	expectArgs(t, container(hooks.manager()).Args, "--webhook-token-file=/etc/sluice/loadtester-token/token")
}

func TestTheGeneratedTokenIsKeptAcrossUpgrades(t *testing.T) {
	// A namespace of its own and no ClusterRole: other tests install the
	// chart's objects without Helm's ownership annotations, which Helm
	// refuses to take over.
	ns := "token-upgrade"
	ensureNamespace(t, ns)
	ctx := context.Background()
	first := &corev1.Secret{}
	renderOnServer(t, ns, "{rbac: {create: false}, loadtester: {enabled: true}}").into("Secret", "-loadtester-token", first)
	if len(first.Data["token"]) != 32 {
		t.Fatalf("first install's token %q, want 32 characters", first.Data["token"])
	}
	// Installed; a later upgrade renders the chart again.
	installed := first.DeepCopy()
	installed.Data = map[string][]byte{"token": []byte("kept-from-the-first-install")}
	// Owned by the release, as Helm leaves it.
	installed.Annotations = map[string]string{"meta.helm.sh/release-name": "sluice", "meta.helm.sh/release-namespace": ns}
	if err := admin.Create(ctx, installed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), installed) })
	again := &corev1.Secret{}
	renderOnServer(t, ns, "{rbac: {create: false}, loadtester: {enabled: true, tokenForHooks: true}}").into("Secret", "-loadtester-token", again)
	if got := string(again.Data["token"]); got != "kept-from-the-first-install" {
		t.Errorf("an upgrade renders token %q, want the installed one: a new token would lock out everyone who has it", got)
	}
}

func TestAGivenTokenSecretIsUsedAndNoneIsGenerated(t *testing.T) {
	r := render(t, "loadtester: {enabled: true, tokenSecret: my-token, tokenForHooks: true}")
	if s := r.find("Secret", ""); s != nil {
		t.Errorf("a Secret %s was generated though loadtester.tokenSecret is set", s.GetName())
	}
	lt := &appsv1.Deployment{}
	r.into("Deployment", "-loadtester", lt)
	if name, _ := secretVolume(lt.Spec.Template.Spec, "/etc/loadtester"); name != "my-token" {
		t.Errorf("loadtester mounts Secret %q, want my-token", name)
	}
	if name, _ := secretVolume(r.manager().Spec.Template.Spec, "/etc/sluice/loadtester-token"); name != "my-token" {
		t.Errorf("manager mounts Secret %q, want my-token", name)
	}
}

func TestWithoutTheLoadtesterTheManagerHasNoToken(t *testing.T) {
	r := render(t, "")
	if s := r.find("Secret", ""); s != nil {
		t.Errorf("Secret %s rendered without the loadtester", s.GetName())
	}
	m := r.manager()
	for _, a := range container(m).Args {
		if strings.HasPrefix(a, "--webhook-token") {
			t.Errorf("manager args have %s without the loadtester", a)
		}
	}
	if len(m.Spec.Template.Spec.Volumes) != 0 {
		t.Errorf("manager volumes %v without the loadtester", m.Spec.Template.Spec.Volumes)
	}
}

func TestTheTokenHostsFollowTheClusterDomainAndTheFullName(t *testing.T) {
	r := render(t, "fullnameOverride: sl\nclusterDomain: corp.internal\nloadtester: {enabled: true}")
	expectArgs(t, container(r.manager()).Args, "--webhook-token-hosts=sl-loadtester,sl-loadtester."+releaseNS+
		",sl-loadtester."+releaseNS+".svc,sl-loadtester."+releaseNS+".svc.corp.internal")
}

func TestGrafanaDashboardConfigMapCarriesTheShippedDashboard(t *testing.T) {
	if render(t, "").find("ConfigMap", "-dashboard") != nil {
		t.Errorf("dashboard ConfigMap rendered by default")
	}
	cm := &corev1.ConfigMap{}
	render(t, "grafanaDashboard: {enabled: true}").into("ConfigMap", "-dashboard", cm)
	if cm.Labels["grafana_dashboard"] != "1" || !strings.Contains(cm.Data["sluice.json"], "sluice_rollout_phase") {
		t.Errorf("dashboard ConfigMap labels %v, data %.80q", cm.Labels, cm.Data["sluice.json"])
	}
}

func TestClusterRoleGrantsWhatTheGeneratedRoleDoesAndNoMore(t *testing.T) {
	raw := readFile(t, repoRoot, "config", "rbac", "role.yaml")
	generated := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, generated); err != nil {
		t.Fatal(err)
	}
	r := render(t, "routers: {gatewayAPI: {enabled: true}, istio: {enabled: true}}")
	chart := grants(r.clusterRole().Rules)
	// Leases serve leader election only: the chart grants them in the
	// release namespace, not cluster-wide.
	var want []grant
	for _, g := range grants(generated.Rules) {
		if g.group != "coordination.k8s.io" {
			want = append(want, g)
		}
	}
	if !slices.Equal(chart, want) {
		t.Errorf("the chart's ClusterRole drifted from config/rbac/role.yaml (update templates/rbac.yaml):\n chart: %v\n  want: %v", chart, want)
	}
	role := &rbacv1.Role{}
	r.into("Role", "-leader-election", role)
	leases := grantsFor(grants(role.Rules), "coordination.k8s.io")
	if wantLeases := grantsFor(grants(generated.Rules), "coordination.k8s.io"); !slices.Equal(leases, wantLeases) {
		t.Errorf("leader election Role grants %v on leases, want %v", leases, wantLeases)
	}
}

// unstructuredStringMap reads a map[string]string at path.
func unstructuredStringMap(obj map[string]any, path ...string) (map[string]string, bool, error) {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[p]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, false, nil
	}
	out := map[string]string{}
	for k, v := range m {
		s, _ := v.(string)
		out[k] = s
	}
	return out, true, nil
}
