package analysis

import (
	"regexp"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// TestWithServiceNameTheTemplateSeesTheApexAndBuiltinsTheTargetsCanary: a
// renamed apex Service is .service, while the canary Service, which the
// built-in Gateway API queries read, keeps the target's name.
func TestWithServiceNameTheTemplateSeesTheApexAndBuiltinsTheTargetsCanary(t *testing.T) {
	gw := &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{}}
	ro := exampleRollout(gw)
	ro.Spec.Service.Name = "podinfo-web"
	got, err := Render(`{{ .service }} {{ service }} {{ .target }}`, ro, sluicev1.MetricCheck{Name: "m"})
	if err != nil || got != "podinfo-web podinfo-web podinfo" {
		t.Errorf("rendered %q (%v), want the apex podinfo-web as service and podinfo as target", got, err)
	}
	for flavor, want := range map[GatewayFlavor]string{
		GatewayEnvoy:   `shop_podinfo-canary_9898`,
		GatewayTraefik: `shop-podinfo-canary-http-9898@kubernetesgateway`,
	} {
		q, err := BuiltinQuery(ro, sluicev1.MetricCheck{Name: sluicev1.MetricRequestSuccessRate}, flavor)
		if err != nil || !strings.Contains(q, want) || strings.Contains(q, "podinfo-web") {
			t.Errorf("%s: query %q (%v), want the canary Service %s", flavor, q, err, want)
		}
	}
}

// TestTheBuiltinMetricsOfADaemonSetReadItsCanaryPodsOnly: on the kubernetes
// router the built-ins select the canary's pods by name. A DaemonSet's pods
// are <target>-<5 characters>; the primary's, <target>-primary-<5>, must not
// match (the Deployment pattern, <target>-<hash>-<id>, would take them).
func TestTheBuiltinMetricsOfADaemonSetReadItsCanaryPodsOnly(t *testing.T) {
	ro := exampleRollout(nil)
	ro.Spec.TargetRef.Kind = "DaemonSet"
	q, err := BuiltinQuery(ro, sluicev1.MetricCheck{Name: sluicev1.MetricRequestSuccessRate}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(q, `pod=~"`)
	pattern, _, _ := strings.Cut(rest, `"`)
	re := regexp.MustCompile("^(?:" + strings.ReplaceAll(pattern, `\\`, `\`) + ")$")
	for pod, want := range map[string]bool{"podinfo-x7k2p": true, "podinfo-primary-x7k2p": false, "podinfo-5d9c7b-x7k2p": false} {
		if got := re.MatchString(pod); got != want {
			t.Errorf("pattern %s matches pod %s: %v, want %v", pattern, pod, got, want)
		}
	}
}

// TestTheBuiltinsOfAGRPCRouteReadItsBackendAndRefuseASuccessRate: Traefik
// names a GRPCRoute's backend <namespace>-<service>-<port>-grpc, and the
// built-in latency reads that series. No gateway's request counter tells a
// failed gRPC call from a good one (Traefik counts them all as code 2,
// Envoy sees HTTP 200): the built-in success rate refuses, saying why,
// rather than pass a canary that fails every call.
func TestTheBuiltinsOfAGRPCRouteReadItsBackendAndRefuseASuccessRate(t *testing.T) {
	ro := exampleRollout(&sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{RouteKind: "GRPCRoute"}})
	q, err := BuiltinQuery(ro, sluicev1.MetricCheck{Name: sluicev1.MetricRequestDuration}, GatewayTraefik)
	if err != nil || !strings.Contains(q, `service="shop-podinfo-canary-9898-grpc@kubernetesgateway"`) {
		t.Errorf("request-duration %q (%v): want the GRPCRoute backend's series", q, err)
	}
	for _, gw := range []GatewayFlavor{GatewayTraefik, GatewayEnvoy, ""} {
		q, err := BuiltinQuery(ro, sluicev1.MetricCheck{Name: sluicev1.MetricRequestSuccessRate}, gw)
		if err == nil || !strings.Contains(err.Error(), "gRPC") || !strings.Contains(err.Error(), "templateRef") {
			t.Errorf("%q: request-success-rate %q, error %v: want a refusal that names gRPC and the way out", gw, q, err)
		}
	}
}
