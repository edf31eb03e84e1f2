package analysis

import (
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
