package test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestEveryRenderedObjectIsAcceptedByTheAPIServer(t *testing.T) {
	ctx := context.Background()
	// The release's and those the values name.
	for _, ns := range []string{releaseNS, "team-a", "team-b", "ops"} {
		ensureNamespace(t, ns)
	}
	for _, tc := range []struct{ name, values string }{
		{"defaults", ""},
		{"everything on", `
replicas: 3
shards: [team-a, team-b]
routers: {gatewayAPI: {enabled: true}, istio: {enabled: true}}
prometheus: {address: "http://prometheus.monitoring:9090"}
notifications: {secret: ops/notify, eventWebhookURL: "https://events.example.com/hook"}
metrics: {serviceMonitor: {enabled: true}}
loadtester: {enabled: true, tokenSecret: loadtester-token, persistence: {existingClaim: gates}}
grafanaDashboard: {enabled: true}
networkPolicy: {enabled: true, metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], loadtesterFrom: [{namespaceSelector: {matchLabels: {team: release}}}]}
serviceAccount: {annotations: {example.com/role: sluice}}
podAnnotations: {example.com/a: b}
tolerations: [{key: dedicated, operator: Exists}]
`},
		{"one Sluice per tenant", `
watchNamespaces: [team-a, team-b]
routers: {gatewayAPI: {enabled: true}, istio: {enabled: true}}
notifications: {secret: ops/notify}
`},
		{"loadtester with a generated token", `
loadtester: {enabled: true, tokenForHooks: true, allowedNamespaces: [shop], maxRate: 100, maxDuration: 2m}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, o := range render(t, tc.values).objects {
				// The test API server has no Prometheus Operator CRDs: the
				// ServiceMonitor is checked by TestServiceMonitorRendersOnlyWhenEnabled.
				if o.GetKind() == "ServiceMonitor" {
					continue
				}
				if err := admin.Create(ctx, o.DeepCopy(), client.DryRunAll); err != nil {
					t.Errorf("server-side dry-run create of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
		})
	}
}

// ensureNamespace creates a namespace unless it exists.
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
