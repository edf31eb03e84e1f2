package kubernetes_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis"
	"github.com/sluice-dev/sluice/pkg/analysis/kubernetes"
)

// These tests run checks of provider type kubernetes as the manager does
// (analysis.Run over a Rollout, its templates read from the API server)
// against a real kube-apiserver whose aggregator proxies
// external.metrics.k8s.io to the test adapter, and assert the metric
// statuses a user reads on the Rollout.

func TestKubernetesChecksShowWhatTheAdapterAnswersThroughTheAggregator(t *testing.T) {
	c := realCluster(t)
	ns := c.namespace(t, "shop-")
	c.adapter.set(ns, "queue_messages_ready", map[string]string{"queue=orders": "1500m", "queue=payments": "3"})
	c.adapter.set(ns, "queue_lag", map[string]string{"queue=orders": "1"})
	c.adapter.fail("queue_lag")

	cases := []struct {
		check, query, verdict, value string
		// message is what the status says (a part of it for errors, whose
		// end is the API server's wording).
		message string
	}{
		{check: "one-value-within-range", query: "queue_messages_ready{queue=orders}", verdict: analysis.VerdictPass, value: "1.5"},
		{check: "one-value-out-of-range", query: "queue_messages_ready{queue=payments}", verdict: analysis.VerdictFail, value: "3",
			message: "one-value-out-of-range = 3 is above the maximum 2"},
		{check: "several-values", query: "queue_messages_ready", verdict: analysis.VerdictError,
			message: "several-values: MetricTemplate several-values: external metric queue_messages_ready has 2 values in namespace " + ns +
				", want one (narrow the label selector)"},
		{check: "no-value", query: "queue_messages_ready{queue=refunds}", verdict: analysis.VerdictNoData,
			message: "no-value: no data (onNoData: fail)"},
		{check: "unknown-metric", query: "queue_messages_lost", verdict: analysis.VerdictError,
			message: "unknown-metric: MetricTemplate unknown-metric: external metric queue_messages_lost not found in namespace " + ns +
				" (is an external metrics adapter serving it?)"},
		{check: "failing-adapter", query: "queue_lag{queue=orders}", verdict: analysis.VerdictError,
			message: "failing-adapter: MetricTemplate failing-adapter: reading external metric queue_lag: "},
	}
	ro := rollout(ns)
	for _, tc := range cases {
		c.create(t, kubeTemplate(ns, tc.check, tc.query))
		ro.Spec.Analysis.Metrics = append(ro.Spec.Analysis.Metrics, check(tc.check, ns, 2))
	}
	got := run(t, c, c.manager, ro)
	for _, tc := range cases {
		ms := got[tc.check]
		t.Logf("%s: %s %q %q", tc.check, ms.Verdict, ms.Value, ms.Message)
		if ms.Verdict != tc.verdict || ms.Value != tc.value || !strings.HasPrefix(ms.Message, tc.message) {
			t.Errorf("%s: got %s %q %q, want %s %q %q...", tc.check, ms.Verdict, ms.Value, ms.Message, tc.verdict, tc.value, tc.message)
		}
	}
	if msg := got["failing-adapter"].Message; !strings.Contains(msg, errBackendDown.Error()) {
		t.Errorf("a failing adapter's error does not say why: %q", msg)
	}

	// Every query reached the adapter through the aggregator, as the
	// manager's identity, with the template's selector.
	want := map[string]bool{"queue_messages_ready queue=orders": true, "queue_messages_ready queue=payments": true,
		"queue_messages_ready ": true, "queue_messages_ready queue=refunds": true, "queue_messages_lost ": true, "queue_lag queue=orders": true}
	for _, r := range c.adapter.requests() {
		if r.Namespace != ns {
			continue
		}
		if r.User != managerUser {
			t.Errorf("the adapter was asked for %s as %q, want the manager's identity %q", r.Metric, r.User, managerUser)
		}
		delete(want, r.Metric+" "+r.Selector)
	}
	if len(want) > 0 {
		t.Errorf("the adapter was never asked for %v", want)
	}
}

func TestKubernetesChecksReadTheTemplatesNamespaceNotOneTheRolloutChooses(t *testing.T) {
	c := realCluster(t)
	shop, teamB := c.namespace(t, "shop-"), c.namespace(t, "team-b-")
	c.adapter.set(shop, "queue_messages_ready", map[string]string{"queue=orders": "1500m"})
	c.adapter.set(teamB, "queue_messages_ready", map[string]string{"queue=orders": "7"})
	const query = "queue_messages_ready{queue=orders}"
	cluster := &sluicev1.ClusterMetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "queue-depth-" + teamB},
		Spec: sluicev1.MetricTemplateSpec{Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderKubernetes}, Query: query}}
	sharedTpl := kubeTemplate(shop, "queue-depth", query)
	sharedTpl.Annotations = map[string]string{sluicev1.SharedWithAnnotation: teamB}
	c.create(t, cluster, sharedTpl)

	ro := rollout(teamB)
	viaCluster := check("cluster-template", "", 10)
	viaCluster.TemplateRef = &sluicev1.MetricTemplateReference{Kind: sluicev1.KindClusterMetricTemplate, Name: cluster.Name}
	viaShared := check("shared-template", shop, 10)
	viaShared.TemplateRef.Name = sharedTpl.Name
	ro.Spec.Analysis.Metrics = []sluicev1.MetricCheck{viaCluster, viaShared}

	got := run(t, c, c.manager, ro)
	if ms := got["cluster-template"]; ms.Verdict != analysis.VerdictPass || ms.Value != "7" {
		t.Errorf("a ClusterMetricTemplate read %s %q %q, want the Rollout's namespace's value 7", ms.Verdict, ms.Value, ms.Message)
	}
	if ms := got["shared-template"]; ms.Verdict != analysis.VerdictPass || ms.Value != "1.5" {
		t.Errorf("a shared MetricTemplate read %s %q %q, want its own namespace's value 1.5", ms.Verdict, ms.Value, ms.Message)
	}
}

func TestKubernetesChecksAreForbiddenWhereTheirIdentityMayNotGetExternalMetrics(t *testing.T) {
	c := realCluster(t)
	shop, teamB := c.namespace(t, "shop-"), c.namespace(t, "team-b-")
	for _, ns := range []string{shop, teamB} {
		c.adapter.set(ns, "queue_messages_ready", map[string]string{"queue=orders": "1500m"})
		c.create(t, kubeTemplate(ns, "queue-depth", "queue_messages_ready{queue=orders}"))
	}
	// An identity that may read external metrics in shop only: there its
	// Role grants list, the verb of reading one; in team-b only get.
	reader := "metrics-reader-" + shop
	for ns, verbs := range map[string][]string{shop: {"list"}, teamB: {"get"}} {
		c.create(t,
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "external-metrics-reader", Namespace: ns},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{"external.metrics.k8s.io"}, Resources: []string{"*"}, Verbs: verbs}}},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "external-metrics-reader", Namespace: ns},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "external-metrics-reader"},
				Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: reader}}})
	}
	if err := c.waitAllowed(t.Context(), reader, shop); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.userConfig(reader)
	if err != nil {
		t.Fatal(err)
	}

	inShop := rollout(shop, check("queue-depth", shop, 2))
	if ms := run(t, c, cfg, inShop)["queue-depth"]; ms.Verdict != analysis.VerdictPass || ms.Value != "1.5" {
		t.Errorf("where it may: %s %q %q, want Pass 1.5", ms.Verdict, ms.Value, ms.Message)
	}
	inTeamB := rollout(teamB, check("queue-depth", teamB, 2))
	ms := run(t, c, cfg, inTeamB)["queue-depth"]
	t.Logf("where it may not: %s %q %q", ms.Verdict, ms.Value, ms.Message)
	want := "queue-depth: MetricTemplate queue-depth: the manager may not read external metrics in namespace " + teamB +
		" (RBAC on external.metrics.k8s.io): "
	if ms.Verdict != analysis.VerdictError || ms.Value != "" || !strings.HasPrefix(ms.Message, want) ||
		!strings.Contains(ms.Message, `User "`+reader+`" cannot list resource "queue_messages_ready" in API group "external.metrics.k8s.io" in the namespace "`+teamB+`"`) {
		t.Errorf("where it may not: %s %q %q, want Error %q... naming the user and the metric", ms.Verdict, ms.Value, ms.Message, want)
	}
	for _, r := range c.adapter.requests() {
		if r.Namespace == teamB {
			t.Errorf("a forbidden query reached the adapter: %+v", r)
		}
	}
}

// run runs the Rollout's checks as the manager does, reading external
// metrics with the identity of cfg, and returns their statuses by name.
func run(t *testing.T, c *cluster, cfg *rest.Config, ro *sluicev1.Rollout) map[string]sluicev1.MetricStatus {
	t.Helper()
	kube, err := kubernetes.NewRESTClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := analysis.NewPrometheus(c.admin, analysis.PrometheusOptions{Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	res := analysis.Run(t.Context(), p, ro, time.Now())
	out := map[string]sluicev1.MetricStatus{}
	for _, ms := range res.Metrics {
		out[ms.Name] = ms
	}
	return out
}

// namespace creates a namespace named prefix and a random suffix, so that
// the tests may run again (-count) on the same API server.
func (c *cluster) namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	c.create(t, ns)
	return ns.Name
}

// kubeTemplate is a MetricTemplate of provider type kubernetes.
func kubeTemplate(ns, name, query string) *sluicev1.MetricTemplate {
	return &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: sluicev1.MetricTemplateSpec{Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderKubernetes}, Query: query}}
}

// check is a metric check using the MetricTemplate of its name in ns,
// passing up to max.
func check(name, ns string, maxValue float64) sluicev1.MetricCheck {
	return sluicev1.MetricCheck{Name: name, TemplateRef: &sluicev1.MetricTemplateReference{Name: name, Namespace: ns},
		ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(maxValue)}}
}

// rollout is a Rollout in ns with the checks.
func rollout(ns string, checks ...sluicev1.MetricCheck) *sluicev1.Rollout {
	return &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Analysis:  &sluicev1.Analysis{Metrics: checks},
		}}
}
