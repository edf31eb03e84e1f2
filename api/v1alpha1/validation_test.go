package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/internal/testenv"
)

var k8sClient client.Client

func TestMain(m *testing.M) {
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8sClient, err = client.New(env.Config, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// validSpec is a Rollout spec the API server accepts; each case changes it.
const validSpec = `
targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
service: {port: 9898}
routing: {gatewayAPI: {parentRefs: [{name: gw}]}}
strategy:
  canary: {steps: [{setWeight: 5}, {pause: {duration: 30s}}, {setWeight: 50}]}
analysis:
  interval: 30s
  threshold: 3
  metrics:
  - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}
  webhooks:
  - {name: load, type: rollout, url: "http://loadtester.shop/", timeout: 5s}
`

func rollout(t *testing.T, name, specYAML string, edit func(spec map[string]any)) *unstructured.Unstructured {
	t.Helper()
	spec := map[string]any{}
	if err := yaml.Unmarshal([]byte(specYAML), &spec); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(spec)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec":     spec,
	}}
	return u
}

// both applies two edits.
func both(a, b func(map[string]any)) func(map[string]any) {
	return func(spec map[string]any) { a(spec); b(spec) }
}

// TestIstioTCPAndAdoptedDestinationRulesAreAccepted: a TCP main port takes
// Istio weights (and the HTTP fields on the Gateway API router, which this
// rule is not about); adopted DestinationRules take no trafficPolicy.
func TestIstioTCPAndAdoptedDestinationRulesAreAccepted(t *testing.T) {
	for i, edit := range []func(map[string]any){
		both(set("service.appProtocol", "tcp"), set("routing", map[string]any{"istio": map[string]any{"hosts": []any{"db.example.com"}}})),
		both(set("service.appProtocol", "http"), both(set("service.portName", "tcp"), set("routing", map[string]any{"istio": map[string]any{"timeout": "10s"}}))),
		both(set("service.appProtocol", "tcp"), set("routing", map[string]any{"gatewayAPI": map[string]any{"timeouts": map[string]any{"request": "10s"}}})),
		set("routing", map[string]any{"istio": map[string]any{"corsPolicy": map[string]any{},
			"destinationRuleRefs": map[string]any{"primary": map[string]any{"name": "podinfo-primary"}, "canary": map[string]any{"name": "podinfo-canary"}}}}),
	} {
		ro := rollout(t, fmt.Sprintf("valid-tcp-%d", i), validSpec, edit)
		if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
			t.Errorf("case %d rejected: %v", i, err)
		}
	}
}

func set(path string, v any) func(map[string]any) {
	return func(spec map[string]any) {
		keys := strings.Split(path, ".")
		m := spec
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		if v == nil {
			delete(m, keys[len(keys)-1])
			return
		}
		m[keys[len(keys)-1]] = v
	}
}

func TestTheAPIServerAcceptsAValidRollout(t *testing.T) {
	ro := rollout(t, "valid", validSpec, nil)
	if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
		t.Fatalf("valid Rollout rejected: %v", err)
	}
	bg := rollout(t, "valid-bluegreen", `
targetRef: {kind: Deployment, name: podinfo}
service: {port: 80}
strategy: {blueGreen: {iterations: 3}}
`, nil)
	if err := k8sClient.Create(context.Background(), bg, client.DryRunAll); err != nil {
		t.Fatalf("blue/green Rollout on the kubernetes router rejected: %v", err)
	}
	for name, edit := range map[string]func(map[string]any){
		"canary": set("targetRef.kind", "DaemonSet"),
		"bluegreen": func(spec map[string]any) {
			set("targetRef.kind", "DaemonSet")(spec)
			set("routing", nil)(spec)
			set("strategy", map[string]any{"blueGreen": map[string]any{"iterations": 2}})(spec)
		},
	} {
		if err := k8sClient.Create(context.Background(), rollout(t, "valid-daemonset-"+name, validSpec, edit), client.DryRunAll); err != nil {
			t.Errorf("%s Rollout of a DaemonSet rejected: %v", name, err)
		}
	}
	named := rollout(t, "valid-service-name", validSpec, set("service", map[string]any{
		"port": 9898, "name": "podinfo-web",
		"apex":    map[string]any{"labels": map[string]any{"tier": "web"}, "annotations": map[string]any{"example.com/owner": "shop"}},
		"primary": map[string]any{"labels": map[string]any{"track": "stable"}},
		"canary":  map[string]any{"annotations": map[string]any{"example.com/track": "canary"}},
	}))
	if err := k8sClient.Create(context.Background(), named, client.DryRunAll); err != nil {
		t.Errorf("Rollout with service.name and Service metadata rejected: %v", err)
	}
	grpc := rollout(t, "valid-grpcroute", validSpec, func(spec map[string]any) {
		set("routing.gatewayAPI.routeKind", "GRPCRoute")(spec)
		// The built-in latency, and a success rate from a template.
		set("analysis.metrics", []any{
			map[string]any{"name": "request-duration", "thresholdRange": map[string]any{"max": 500}},
			map[string]any{"name": "request-success-rate", "templateRef": map[string]any{"name": "grpc-success"}, "thresholdRange": map[string]any{"min": 99}},
		})(spec)
		set("routing.gatewayAPI.filters", []any{map[string]any{"type": "RequestHeaderModifier", "requestHeaderModifier": map[string]any{"set": map[string]any{"x-a": "1"}}}})(spec)
	})
	if err := k8sClient.Create(context.Background(), grpc, client.DryRunAll); err != nil {
		t.Errorf("Rollout with a generated GRPCRoute rejected: %v", err)
	}
	grpcAB := rollout(t, "valid-grpcroute-ab", validSpec, func(spec map[string]any) {
		set("routing.gatewayAPI", map[string]any{"routeKind": "GRPCRoute", "grpcRouteRef": map[string]any{"name": "shop"}})(spec)
		set("analysis.metrics", []any{map[string]any{"name": "request-duration", "thresholdRange": map[string]any{"max": 500}}})(spec)
		set("strategy", map[string]any{"abTesting": map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]any{"prefix": "qa"}}}}}})(spec)
	})
	if err := k8sClient.Create(context.Background(), grpcAB, client.DryRunAll); err != nil {
		t.Errorf("Rollout adopting a GRPCRoute for A/B header matches rejected: %v", err)
	}
	discovery := rollout(t, "valid-port-discovery", validSpec, func(spec map[string]any) {
		set("service.portDiscovery", true)(spec)
		set("service.ports", []any{map[string]any{"name": "metrics", "port": 9797}})(spec)
	})
	if err := k8sClient.Create(context.Background(), discovery, client.DryRunAll); err != nil {
		t.Errorf("Rollout with portDiscovery and ports rejected: %v", err)
	}
	for _, ref := range []map[string]any{
		{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo",
			"primaryScalerReplicas": map[string]any{"minReplicas": 2, "maxReplicas": 20}},
		{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo",
			"primaryScalerReplicas": map[string]any{"minReplicas": 3},
			"primaryScalerQueries":  map[string]any{"rps": `sum(rate(http_requests_total{app="podinfo-primary"}[1m]))`}},
	} {
		ro := rollout(t, "valid-autoscaled-"+strings.ToLower(ref["kind"].(string)), validSpec, set("autoscalerRef", ref))
		if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
			t.Errorf("Rollout with autoscalerRef %v rejected: %v", ref, err)
		}
	}
}

// TestSessionAffinityCookieAttributesAreAcceptedAndDefaulted: the cookie's
// attributes are optional; the API server pins both versions and sets the
// cookie for the whole site unless told otherwise.
func TestSessionAffinityCookieAttributesAreAcceptedAndDefaulted(t *testing.T) {
	ro := rollout(t, "valid-affinity", validSpec, set("strategy.canary", map[string]any{"stepWeights": []any{10, 50},
		"sessionAffinity": map[string]any{"secure": true, "sameSite": "None", "domain": ".example.com", "path": "/shop"}}))
	if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
		t.Fatalf("session affinity with cookie attributes rejected: %v", err)
	}
	aff, _, _ := unstructured.NestedMap(ro.Object, "spec", "strategy", "canary", "sessionAffinity")
	if aff["pin"] != "Both" || aff["cookieName"] != "sluice-affinity" || aff["path"] != "/shop" {
		t.Errorf("sessionAffinity after defaulting = %v, want pin Both, the default cookie name and the path kept", aff)
	}
	bare := rollout(t, "valid-affinity-bare", validSpec, set("strategy.canary", map[string]any{"stepWeights": []any{10},
		"sessionAffinity": map[string]any{"pin": "CanaryOnly"}}))
	if err := k8sClient.Create(context.Background(), bare, client.DryRunAll); err != nil {
		t.Fatalf("session affinity pinning the canary only rejected: %v", err)
	}
	aff, _, _ = unstructured.NestedMap(bare.Object, "spec", "strategy", "canary", "sessionAffinity")
	if aff["path"] != "/" || aff["pin"] != "CanaryOnly" {
		t.Errorf("sessionAffinity after defaulting = %v, want path / and pin CanaryOnly", aff)
	}
}

// TestIstioPoliciesAreAcceptedAsIstioWritesThem: routing.istio.trafficPolicy
// and corsPolicy hold Istio's own shapes, kept field for field.
func TestIstioPoliciesAreAcceptedAsIstioWritesThem(t *testing.T) {
	policy := map[string]any{
		"loadBalancer":     map[string]any{"consistentHash": map[string]any{"httpCookie": map[string]any{"name": "user", "ttl": "0s"}}},
		"connectionPool":   map[string]any{"http": map[string]any{"http2MaxRequests": 100}},
		"outlierDetection": map[string]any{"consecutive5xxErrors": 5, "interval": "10s"},
		"tls":              map[string]any{"mode": "ISTIO_MUTUAL"},
	}
	cors := map[string]any{"allowOrigins": []any{map[string]any{"exact": "https://example.com"}}, "allowMethods": []any{"GET"}, "maxAge": "24h"}
	ro := rollout(t, "valid-istio-policies", validSpec, set("routing", map[string]any{"istio": map[string]any{
		"hosts": []any{"app.example.com"}, "trafficPolicy": policy, "corsPolicy": cors}}))
	if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
		t.Fatalf("Istio policies rejected: %v", err)
	}
	got, _, _ := unstructured.NestedMap(ro.Object, "spec", "routing", "istio", "trafficPolicy")
	if fmt.Sprint(got) != fmt.Sprint(policy) {
		t.Errorf("trafficPolicy stored as %v, want %v", got, policy)
	}
}

// TestACompareCheckIsAcceptedAndDefaulted: a compare check needs only its
// direction; the API server fills in the rest.
func TestACompareCheckIsAcceptedAndDefaulted(t *testing.T) {
	ro := rollout(t, "valid-compare", validSpec, set("analysis.metrics", []any{map[string]any{"name": "latency",
		"templateRef": map[string]any{"name": "latency"}, "thresholdRange": map[string]any{"max": 500},
		"compare": map[string]any{"direction": "increase"}}}))
	if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
		t.Fatalf("compare check rejected: %v", err)
	}
	metrics, _, _ := unstructured.NestedSlice(ro.Object, "spec", "analysis", "metrics")
	if len(metrics) != 1 {
		t.Fatalf("metrics = %v", metrics)
	}
	got, _, _ := unstructured.NestedMap(metrics[0].(map[string]any), "compare")
	want := map[string]any{"baseline": "primary", "direction": "increase", "tolerance": "10%",
		"minSamples": int64(5), "alpha": 0.05, "step": "30s"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("compare = %v, want %v", got, want)
	}
}

// TestABuiltinCheckWithMinRequestsIsAccepted: the guard is a count of
// requests on either built-in check, kept as written.
func TestABuiltinCheckWithMinRequestsIsAccepted(t *testing.T) {
	ro := rollout(t, "valid-min-requests", validSpec, set("analysis.metrics", []any{
		map[string]any{"name": "request-success-rate", "thresholdRange": map[string]any{"min": 99}, "minRequests": 100, "onNoData": "hold"},
		map[string]any{"name": "request-duration", "thresholdRange": map[string]any{"max": 500}, "minRequests": 1},
	}))
	if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
		t.Fatalf("built-in checks with minRequests rejected: %v", err)
	}
	metrics, _, _ := unstructured.NestedSlice(ro.Object, "spec", "analysis", "metrics")
	for i, want := range []int64{100, 1} {
		got, found, _ := unstructured.NestedInt64(metrics[i].(map[string]any), "minRequests")
		if !found || got != want {
			t.Errorf("metrics[%d].minRequests = %v (found %v), want %d", i, got, found, want)
		}
	}
}

func TestACanarySizedByItsWeightIsAccepted(t *testing.T) {
	ro := rollout(t, "valid-scale-with-weight", validSpec, set("strategy.canary.scaleWithWeight", true))
	if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
		t.Fatalf("a canary with scaleWithWeight rejected: %v", err)
	}
	if got, _, _ := unstructured.NestedBool(ro.Object, "spec", "strategy", "canary", "scaleWithWeight"); !got {
		t.Errorf("strategy.canary.scaleWithWeight not kept: %v", ro.Object["spec"])
	}

	floor := rollout(t, "valid-canary-floor", validSpec, func(spec map[string]any) {
		set("strategy.canary.scaleWithWeight", true)(spec)
		set("strategy.canary.minReplicas", 1)(spec)
	})
	if err := k8sClient.Create(context.Background(), floor, client.DryRunAll); err != nil {
		t.Fatalf("a canary sized by its weight with minReplicas: 1 rejected: %v", err)
	}
	if got, _, _ := unstructured.NestedInt64(floor.Object, "spec", "strategy", "canary", "minReplicas"); got != 1 {
		t.Errorf("strategy.canary.minReplicas = %d, want 1 kept", got)
	}
}

// TestTheScaleDownDelayDefaultsToTenSecondsAndZeroIsKept: a Rollout that
// does not say gets the drain; one that asks for none keeps its 0.
func TestTheScaleDownDelayDefaultsToTenSecondsAndZeroIsKept(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  any
		want int64
	}{
		{"unset", nil, 10},
		{"zero", 0, 0},
		{"an hour", 3600, 3600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := rollout(t, "delay-"+strings.ReplaceAll(tt.name, " ", "-"), validSpec, set("scaleDownDelaySeconds", tt.set))
			if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err != nil {
				t.Fatalf("rejected: %v", err)
			}
			got, found, err := unstructured.NestedInt64(ro.Object, "spec", "scaleDownDelaySeconds")
			if err != nil || !found || got != tt.want {
				t.Errorf("spec.scaleDownDelaySeconds = %d (found %v, %v), want %d", got, found, err, tt.want)
			}
		})
	}
}

func TestTheAPIServerRejectsInvalidRolloutsWithAClearMessage(t *testing.T) {
	tests := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"a target that is neither a Deployment nor a DaemonSet", set("targetRef.kind", "StatefulSet"),
			"targetRef.kind must be Deployment or DaemonSet"},
		{"an autoscaler for a DaemonSet", func(spec map[string]any) {
			set("targetRef.kind", "DaemonSet")(spec)
			set("autoscalerRef", map[string]any{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "x"})(spec)
		}, "autoscalerRef cannot go with a DaemonSet target"},
		{"a canary sized by its weight with session affinity", func(spec map[string]any) {
			set("strategy.canary.scaleWithWeight", true)(spec)
			set("strategy.canary.sessionAffinity", map[string]any{})(spec)
		}, "with sessionAffinity the users pinned to the canary are not its weight's share"},
		{"a canary sized by its weight with an autoscaler", func(spec map[string]any) {
			set("strategy.canary.scaleWithWeight", true)(spec)
			set("autoscalerRef", map[string]any{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "x"})(spec)
		}, "strategy.canary.scaleWithWeight sizes the canary by its weight: it cannot go with an autoscalerRef"},
		{"a DaemonSet canary sized by its weight", func(spec map[string]any) {
			set("strategy.canary.scaleWithWeight", true)(spec)
			set("targetRef.kind", "DaemonSet")(spec)
		}, "nor with a DaemonSet target, which has no replica count"},
		{"a canary floor without scaleWithWeight", set("strategy.canary.minReplicas", 3),
			"minReplicas is the fewest replicas of a canary sized by its weight: it goes with scaleWithWeight: true"},
		{"a canary floor of 0", func(spec map[string]any) {
			set("strategy.canary.scaleWithWeight", true)(spec)
			set("strategy.canary.minReplicas", 0)(spec)
		}, "should be greater than or equal to 1"},
		{"a weight above 100", set("strategy.canary.steps", []any{map[string]any{"setWeight": 150}}),
			"should be less than or equal to 100"},
		{"a negative weight", set("strategy.canary.steps", []any{map[string]any{"setWeight": -5}}),
			"should be greater than or equal to 0"},
		{"weights that do not increase", set("strategy.canary.steps", []any{map[string]any{"setWeight": 50}, map[string]any{"setWeight": 10}}),
			"the setWeight values of steps must increase"},
		{"a repeated weight", set("strategy.canary.steps", []any{map[string]any{"setWeight": 10}, map[string]any{"setWeight": 10}}),
			"the setWeight values of steps must increase"},
		{"stepWeights that do not increase", set("strategy.canary", map[string]any{"stepWeights": []any{20, 10}}),
			"stepWeights must increase"},
		{"steps together with stepWeight", set("strategy.canary.stepWeight", 10),
			"steps cannot be combined with stepWeight, stepWeights or maxWeight"},
		{"steps together with stepWeights", set("strategy.canary.stepWeights", []any{10, 20}),
			"steps cannot be combined with stepWeight, stepWeights or maxWeight"},
		{"stepWeight together with stepWeights", set("strategy.canary", map[string]any{"stepWeight": 10, "stepWeights": []any{10, 20}}),
			"stepWeight and stepWeights are alternatives"},
		{"a step both setWeight and pause", set("strategy.canary.steps", []any{map[string]any{"setWeight": 10, "pause": map[string]any{}}}),
			"a step is either setWeight or pause"},
		{"threshold zero", set("analysis.threshold", 0),
			"threshold must be at least 1"},
		{"a malformed interval", set("analysis.interval", "five minutes"),
			"must be a duration such as 30s, 5m or 1h30m"},
		{"an interval under a second", set("analysis.interval", "500ms"),
			"interval must be at least 1s"},
		{"a malformed pause duration", set("strategy.canary.steps", []any{map[string]any{"pause": map[string]any{"duration": "10 sec"}}}),
			"must be a duration such as 30s, 5m or 1h30m"},
		{"a malformed webhook timeout", set("analysis.webhooks", []any{map[string]any{"name": "x", "type": "rollout", "url": "http://a/", "timeout": "soon"}}),
			"must be a duration such as 30s, 5m or 1h30m"},
		{"a negative scaleDownDelaySeconds", set("scaleDownDelaySeconds", -1),
			"should be greater than or equal to 0"},
		{"a scaleDownDelaySeconds above an hour", set("scaleDownDelaySeconds", 3601),
			"should be less than or equal to 3600"},
		{"no strategy", set("strategy", map[string]any{}),
			"set exactly one strategy: canary, blueGreen or abTesting"},
		{"two strategies", set("strategy.blueGreen", map[string]any{"iterations": 2}),
			"set exactly one strategy: canary, blueGreen or abTesting"},
		{"a canary without a weighted router", set("routing", nil),
			"strategy.canary shifts traffic by weight and needs routing.gatewayAPI or routing.istio"},
		{"two routers", set("routing.istio", map[string]any{"hosts": []any{"a"}}),
			"set at most one router"},
		{"a metric that is neither built in nor templated", set("analysis.metrics", []any{map[string]any{"name": "p95", "thresholdRange": map[string]any{"max": 500}}}),
			"a metric without templateRef must be a built-in one"},
		{"a ClusterMetricTemplate reference with a namespace", set("analysis.metrics", []any{map[string]any{"name": "errors",
			"templateRef": map[string]any{"name": "errors", "kind": "ClusterMetricTemplate", "namespace": "platform"}, "thresholdRange": map[string]any{"max": 1}}}),
			"a ClusterMetricTemplate has no namespace"},
		{"a templateRef of another kind", set("analysis.metrics", []any{map[string]any{"name": "errors",
			"templateRef": map[string]any{"name": "errors", "kind": "AnalysisTemplate"}, "thresholdRange": map[string]any{"max": 1}}}),
			"supported values: \"MetricTemplate\", \"ClusterMetricTemplate\""},
		{"a threshold range with min above max", set("analysis.metrics", []any{map[string]any{"name": "request-duration", "thresholdRange": map[string]any{"min": 10, "max": 1}}}),
			"thresholdRange.min must not be above thresholdRange.max"},
		{"a metric with neither thresholdRange nor compare", set("analysis.metrics", []any{map[string]any{"name": "request-duration"}}),
			"a metric needs thresholdRange, compare or both"},
		{"a compare check without a templateRef", set("analysis.metrics", []any{map[string]any{"name": "request-duration",
			"compare": map[string]any{"direction": "increase"}}}),
			"compare needs a templateRef"},
		{"a compare check without a direction", set("analysis.metrics", []any{map[string]any{"name": "latency", "templateRef": map[string]any{"name": "latency"}, "compare": map[string]any{"tolerance": "10%"}}}),
			"spec.analysis.metrics[0].compare.direction: Required value"},
		{"a compare tolerance that is not a percentage", set("analysis.metrics", []any{map[string]any{"name": "latency", "templateRef": map[string]any{"name": "latency"}, "compare": map[string]any{"direction": "increase", "tolerance": "0.1"}}}),
			"tolerance must be a percentage such as 10% or 2.5%"},
		{"a compare tolerance above 1000%", set("analysis.metrics", []any{map[string]any{"name": "latency", "templateRef": map[string]any{"name": "latency"}, "compare": map[string]any{"direction": "increase", "tolerance": "1000.5%"}}}),
			"tolerance must be at most 1000%"},
		{"minRequests on a templated check", set("analysis.metrics", []any{map[string]any{"name": "errors",
			"templateRef": map[string]any{"name": "errors"}, "thresholdRange": map[string]any{"max": 1}, "minRequests": 100}}),
			"minRequests guards the built-in checks"},
		{"minRequests of 0", set("analysis.metrics", []any{map[string]any{"name": "request-success-rate",
			"thresholdRange": map[string]any{"min": 99}, "minRequests": 0}}),
			"minRequests in body should be greater than or equal to 1"},
		{"a compare minSamples under 3", set("analysis.metrics", []any{map[string]any{"name": "latency", "templateRef": map[string]any{"name": "latency"}, "compare": map[string]any{"direction": "increase", "minSamples": 2}}}),
			"minSamples must be between 3 and 10000"},
		{"a compare alpha of 1", set("analysis.metrics", []any{map[string]any{"name": "latency", "templateRef": map[string]any{"name": "latency"}, "compare": map[string]any{"direction": "increase", "alpha": 1}}}),
			"alpha must be above 0 and at most 0.5"},
		{"a compare step under a second", set("analysis.metrics", []any{map[string]any{"name": "latency", "templateRef": map[string]any{"name": "latency"}, "compare": map[string]any{"direction": "increase", "step": "500ms"}}}),
			"compare.step must be at least 1s"},
		{"a compare against another baseline", set("analysis.metrics", []any{map[string]any{"name": "latency", "templateRef": map[string]any{"name": "latency"}, "compare": map[string]any{"direction": "increase", "baseline": "previous"}}}),
			"supported values: \"primary\""},
		{"A/B testing without a weighted router", func(spec map[string]any) {
			set("routing", nil)(spec)
			set("strategy", map[string]any{"abTesting": map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]any{"exact": "1"}}}}}})(spec)
		}, "strategy.abTesting routes by request and needs routing.gatewayAPI or routing.istio"},
		{"mirroring without a weighted router", func(spec map[string]any) {
			set("routing", nil)(spec)
			set("strategy", map[string]any{"blueGreen": map[string]any{"mirror": true}})(spec)
		}, "strategy.blueGreen.mirror copies traffic and needs routing.gatewayAPI or routing.istio"},
		{"mirrorPercent without mirror", set("strategy", map[string]any{"blueGreen": map[string]any{"mirrorPercent": 50}}),
			"mirrorPercent goes with mirror: true"},
		{"a header match with two kinds of match", set("strategy", map[string]any{"abTesting": map[string]any{"match": []any{
			map[string]any{"headers": map[string]any{"x-canary": map[string]any{"exact": "1", "prefix": "1"}}}}}}),
			"set exactly one of exact, prefix or regex"},
		{"an unknown webhook type", set("analysis.webhooks", []any{map[string]any{"name": "x", "type": "pre-flight", "url": "http://a/"}}),
			"supported values"},
		{"a webhook URL that is not http", set("analysis.webhooks", []any{map[string]any{"name": "x", "type": "rollout", "url": "ftp://a/"}}),
			"url must be an absolute http or https URL"},
		{"a filter without the field of its type", set("routing", map[string]any{"gatewayAPI": map[string]any{"filters": []any{map[string]any{"type": "ExtensionRef"}}}}),
			"a filter sets exactly the field of its type"},
		{"filters on an adopted route", set("routing", map[string]any{"gatewayAPI": map[string]any{"httpRouteRef": map[string]any{"name": "r"},
			"timeouts": map[string]any{"request": "10s"}}}),
			"filters and timeouts go on a generated HTTPRoute"},
		{"a timeout in another format", set("routing", map[string]any{"gatewayAPI": map[string]any{"timeouts": map[string]any{"request": "10 seconds"}}}),
			"should match"},
		{"a port on a Gateway parent", set("routing", map[string]any{"gatewayAPI": map[string]any{"parentRefs": []any{map[string]any{"name": "gw", "port": 80}}}}),
			"port goes with kind: Service"},
		{"a parent of another kind", set("routing", map[string]any{"gatewayAPI": map[string]any{"parentRefs": []any{map[string]any{"kind": "Mesh", "name": "m"}}}}),
			"supported values"},
		{"a route kind the router does not know", set("routing.gatewayAPI.routeKind", "TCPRoute"),
			"supported values"},
		{"session affinity on a GRPCRoute", func(spec map[string]any) {
			set("routing.gatewayAPI.routeKind", "GRPCRoute")(spec)
			set("strategy.canary.sessionAffinity", map[string]any{"cookieName": "c"})(spec)
		}, "strategy.canary.sessionAffinity pins users with a cookie, which gRPC clients do not keep"},
		{"an A/B cookie match on a GRPCRoute", func(spec map[string]any) {
			set("routing.gatewayAPI.routeKind", "GRPCRoute")(spec)
			set("strategy", map[string]any{"abTesting": map[string]any{"match": []any{
				map[string]any{"headers": map[string]any{"x-canary": map[string]any{"exact": "1"}}},
				map[string]any{"cookies": map[string]any{"beta": "yes"}}}}})(spec)
		}, "with routing.gatewayAPI.routeKind: GRPCRoute, strategy.abTesting.match may match headers only"},
		{"an A/B URI match on a GRPCRoute", func(spec map[string]any) {
			set("routing.gatewayAPI.routeKind", "GRPCRoute")(spec)
			set("strategy", map[string]any{"abTesting": map[string]any{"match": []any{map[string]any{"uri": map[string]any{"prefix": "/shop.Orders/"}}}}})(spec)
		}, "strategy.abTesting.match may match headers only"},
		{"the built-in success rate on a GRPCRoute", func(spec map[string]any) {
			set("routing.gatewayAPI.routeKind", "GRPCRoute")(spec)
			set("analysis", map[string]any{"metrics": []any{map[string]any{"name": "request-success-rate", "thresholdRange": map[string]any{"min": 99}}}})(spec)
		}, "the built-in request-success-rate cannot judge gRPC"},
		{"metadata on an adopted HTTPRoute", set("routing.gatewayAPI", map[string]any{"httpRouteRef": map[string]any{"name": "r"},
			"metadata": map[string]any{"labels": map[string]any{"team": "shop"}}}),
			"metadata goes on the route Sluice generates"},
		{"metadata on an adopted VirtualService", set("routing", map[string]any{"istio": map[string]any{"virtualServiceRef": map[string]any{"name": "vs"},
			"metadata": map[string]any{"annotations": map[string]any{"a": "b"}}}}),
			"metadata goes on the VirtualService Sluice generates"},
		{"a route label Sluice sets itself", set("routing.gatewayAPI", map[string]any{"metadata": map[string]any{"labels": map[string]any{"sluice.dev/shifting": "true"}}}),
			"labels may not set app.kubernetes.io/managed-by or keys under sluice.dev/"},
		{"timeouts on a GRPCRoute", set("routing.gatewayAPI", map[string]any{"routeKind": "GRPCRoute", "timeouts": map[string]any{"request": "10s"}}),
			"timeouts are HTTPRoute timeouts: the Gateway API's GRPCRoute has none"},
		{"adopting a GRPCRoute without routeKind", set("routing.gatewayAPI", map[string]any{"grpcRouteRef": map[string]any{"name": "r"}}),
			"grpcRouteRef adopts a GRPCRoute: set routeKind: GRPCRoute with it"},
		{"adopting an HTTPRoute as a GRPCRoute", set("routing.gatewayAPI", map[string]any{"routeKind": "GRPCRoute", "httpRouteRef": map[string]any{"name": "r"}}),
			"httpRouteRef adopts an HTTPRoute"},
		{"filters on an adopted GRPCRoute", set("routing.gatewayAPI", map[string]any{"routeKind": "GRPCRoute", "grpcRouteRef": map[string]any{"name": "r"},
			"filters": []any{map[string]any{"type": "ExtensionRef", "extensionRef": map[string]any{"group": "", "kind": "K", "name": "n"}}}}),
			"filters go on a generated GRPCRoute"},
		{"an extra port that repeats the main port", set("service.ports", []any{map[string]any{"name": "grpc", "port": 9898}}),
			"service.ports may not repeat service.port"},
		{"an extra port named like the main port", set("service.ports", []any{map[string]any{"name": "http", "port": 9999}}),
			"service.ports may not repeat the name of the main port"},
		{"an extra port listed twice", set("service.ports", []any{map[string]any{"name": "a", "port": 9999}, map[string]any{"name": "b", "port": 9999}}),
			"service.ports may not list a port twice"},
		{"an extra port of an unknown protocol", set("service.ports", []any{map[string]any{"name": "a", "port": 9999, "protocol": "QUIC"}}),
			"supported values"},
		{"an appProtocol with a space", set("service.appProtocol", "h2 c"),
			"appProtocol must be a name such as http, h2c or kubernetes.io/h2c"},
		{"a service name that is not a DNS-1035 label", set("service.name", "Podinfo_web"),
			"service.name must be a DNS-1035 label"},
		{"a service name starting with a digit", set("service.name", "1podinfo"),
			"service.name must be a DNS-1035 label"},
		{"a service name that is the primary Service's", set("service.name", "podinfo-primary"),
			"service.name may not be the name of the -primary or -canary Service"},
		{"a Service label Sluice sets itself", set("service.apex", map[string]any{"labels": map[string]any{"app.kubernetes.io/managed-by": "me"}}),
			"labels may not set app.kubernetes.io/managed-by or keys under sluice.dev/"},
		{"a Service annotation under sluice.dev/", set("service.canary", map[string]any{"annotations": map[string]any{"sluice.dev/route": "x"}}),
			"annotations may not set keys under sluice.dev/"},
		{"an autoscaler of another kind", set("autoscalerRef", map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}),
			"autoscalerRef must be a HorizontalPodAutoscaler with apiVersion autoscaling/v2 or a ScaledObject with apiVersion keda.sh/v1alpha1"},
		{"an HPA of an older apiVersion", set("autoscalerRef", map[string]any{"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "name": "x"}),
			"autoscalerRef must be a HorizontalPodAutoscaler with apiVersion autoscaling/v2"},
		{"a ScaledObject with the HPA's apiVersion", set("autoscalerRef", map[string]any{"apiVersion": "autoscaling/v2", "kind": "ScaledObject", "name": "x"}),
			"or a ScaledObject with apiVersion keda.sh/v1alpha1"},
		{"trigger queries for an HPA", set("autoscalerRef", map[string]any{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "x",
			"primaryScalerQueries": map[string]any{"rps": "sum(rate(x[1m]))"}}),
			"primaryScalerQueries rewrites the queries of KEDA triggers and goes with kind ScaledObject"},
		{"a primary scaler minimum of zero", set("autoscalerRef", map[string]any{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "x",
			"primaryScalerReplicas": map[string]any{"minReplicas": 0}}),
			"primaryScalerReplicas.minReplicas must be at least 1"},
		{"a primary scaler minimum above its maximum", set("autoscalerRef", map[string]any{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "x",
			"primaryScalerReplicas": map[string]any{"minReplicas": 5, "maxReplicas": 2}}),
			"primaryScalerReplicas.minReplicas must not be above maxReplicas"},
		{"a SameSite=None affinity cookie that is not Secure", set("strategy.canary", map[string]any{"stepWeights": []any{10},
			"sessionAffinity": map[string]any{"sameSite": "None"}}),
			"sameSite: None needs secure: true"},
		{"an unknown SameSite", set("strategy.canary", map[string]any{"stepWeights": []any{10},
			"sessionAffinity": map[string]any{"sameSite": "Loose"}}),
			`supported values: "Strict", "Lax", "None"`},
		{"an unknown pin", set("strategy.canary", map[string]any{"stepWeights": []any{10},
			"sessionAffinity": map[string]any{"pin": "PrimaryOnly"}}),
			`supported values: "Both", "CanaryOnly"`},
		{"a cookie path that does not start with a slash", set("strategy.canary", map[string]any{"stepWeights": []any{10},
			"sessionAffinity": map[string]any{"path": "shop"}}),
			"sessionAffinity.path"},
		{"a cookie domain with a semicolon", set("strategy.canary", map[string]any{"stepWeights": []any{10},
			"sessionAffinity": map[string]any{"domain": "example.com; Secure"}}),
			"sessionAffinity.domain"},
		{"an HTTP timeout on an Istio TCP port", both(set("service.appProtocol", "tcp"), set("routing", map[string]any{"istio": map[string]any{"timeout": "10s"}})),
			"the main port is TCP"},
		{"a CORS policy on an Istio port named tcp-db", both(set("service.portName", "tcp-db"), set("routing", map[string]any{"istio": map[string]any{"corsPolicy": map[string]any{}}})),
			"match, retries, timeout, headers, rewrite and corsPolicy act on HTTP requests"},
		{"A/B testing on an Istio TCP port", both(set("service.appProtocol", "TCP"), both(set("routing", map[string]any{"istio": map[string]any{}}),
			set("strategy", map[string]any{"abTesting": map[string]any{"match": []any{map[string]any{"headers": map[string]any{"x": map[string]any{"exact": "1"}}}}}}))),
			"strategy.abTesting, blueGreen.mirror and canary.sessionAffinity act on HTTP requests"},
		{"session affinity on an Istio mysql port", both(set("service.appProtocol", "mysql"), both(set("routing", map[string]any{"istio": map[string]any{}}),
			set("strategy.canary", map[string]any{"stepWeights": []any{10}, "sessionAffinity": map[string]any{}}))),
			"strategy.abTesting, blueGreen.mirror and canary.sessionAffinity act on HTTP requests"},
		{"a trafficPolicy beside adopted DestinationRules", set("routing", map[string]any{"istio": map[string]any{
			"trafficPolicy": map[string]any{}, "destinationRuleRefs": map[string]any{"primary": map[string]any{"name": "a"}, "canary": map[string]any{"name": "b"}}}}),
			"adopted ones (destinationRuleRefs) keep their own"},
		{"one DestinationRule adopted for both versions", set("routing", map[string]any{"istio": map[string]any{
			"destinationRuleRefs": map[string]any{"primary": map[string]any{"name": "a"}, "canary": map[string]any{"name": "a"}}}}),
			"destinationRuleRefs.primary and .canary must be two DestinationRules"},
		{"adopting only the primary's DestinationRule", set("routing", map[string]any{"istio": map[string]any{
			"destinationRuleRefs": map[string]any{"primary": map[string]any{"name": "a"}}}}),
			"canary: Required value"},
		{"an Istio traffic policy that is not an object", set("routing", map[string]any{"istio": map[string]any{
			"hosts": []any{"app.example.com"}, "trafficPolicy": "ROUND_ROBIN"}}),
			"routing.istio.trafficPolicy"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro := rollout(t, fmt.Sprintf("invalid-%d", i), validSpec, tt.edit)
			err := k8sClient.Create(context.Background(), ro, client.DryRunAll)
			if err == nil {
				t.Fatalf("the API server accepted it, want a rejection saying %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("rejected with\n  %v\nwant the message to say %q", err, tt.want)
			}
		})
	}
}

// TestTheServiceNameCannotChange: a renamed apex Service would leave the old
// one behind, so the API server refuses the change, and adding or removing
// a name alike.
func TestTheServiceNameCannotChange(t *testing.T) {
	ctx := context.Background()
	ro := rollout(t, "service-name-fixed", validSpec, set("service.name", "podinfo-web"))
	if err := k8sClient.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = k8sClient.Delete(ctx, ro) }()
	for _, name := range []any{"podinfo-www", nil} {
		edited := ro.DeepCopy()
		set("service.name", name)(edited.Object["spec"].(map[string]any))
		err := k8sClient.Update(ctx, edited, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "service.name cannot change") {
			t.Errorf("service.name podinfo-web -> %v: got %v, want a refusal saying service.name cannot change", name, err)
		}
	}
	edited := ro.DeepCopy()
	set("service.apex", map[string]any{"labels": map[string]any{"tier": "web"}})(edited.Object["spec"].(map[string]any))
	if err := k8sClient.Update(ctx, edited, client.DryRunAll); err != nil {
		t.Errorf("changing the apex Service's labels was refused: %v", err)
	}
}

// TestTheTargetKindCannotChange: the primary is of the target's kind, so a
// Rollout cannot move from a Deployment to a DaemonSet; nor to another
// Deployment, whose primary, Services and routes would be a second set
// beside the first (TestTheTargetOfARolloutCannotBeRenamed).
func TestTheTargetKindCannotChange(t *testing.T) {
	ctx := context.Background()
	ro := rollout(t, "target-kind-fixed", validSpec, nil)
	if err := k8sClient.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = k8sClient.Delete(ctx, ro) }()
	edited := ro.DeepCopy()
	set("targetRef.kind", "DaemonSet")(edited.Object["spec"].(map[string]any))
	if err := k8sClient.Update(ctx, edited, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "targetRef.kind cannot change") {
		t.Errorf("targetRef.kind Deployment -> DaemonSet: got %v, want a refusal saying targetRef.kind cannot change", err)
	}
	edited = ro.DeepCopy()
	set("targetRef.name", "podinfo2")(edited.Object["spec"].(map[string]any))
	if err := k8sClient.Update(ctx, edited, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "targetRef.name cannot change") {
		t.Errorf("targetRef.name podinfo -> podinfo2: got %v, want a refusal saying targetRef.name cannot change", err)
	}
}

// TestTheRouterAndAnAdoptedRouteChangeOnlyWhenTheyCanBeLeft: another
// router, route kind or adopted route is refused unless the stored status
// is at rest (Succeeded; Initialized with no canary still draining; Failed
// once its rollback has drained and the target was seen at zero), and
// taken there; an adopted route, once set, is never let go by an edit. The
// rest of routing changes at any time.
func TestTheRouterAndAnAdoptedRouteChangeOnlyWhenTheyCanBeLeft(t *testing.T) {
	ctx := context.Background()
	const moving, adopted = "routing cannot move to another router or route", "an adopted route (httpRouteRef, grpcRouteRef, virtualServiceRef) cannot be let go"
	const since = "2026-12-05T10:00:00Z"
	stored := []struct {
		name   string
		status map[string]any
		atRest bool
	}{
		{"Progressing", map[string]any{"phase": "Progressing", "canaryWeight": int64(20)}, false},
		// The rollback is recorded before the route moves back.
		{"Failed", map[string]any{"phase": "Failed", "canaryWeight": int64(0)}, false},
		{"Failed, draining", map[string]any{"phase": "Failed", "canaryWeight": int64(0), "canaryDrainingSince": since}, false},
		{"Failed, drained", map[string]any{"phase": "Failed", "canaryWeight": int64(0), "canaryDrainingSince": since, "targetScaledDown": true}, true},
		// An abort during a promotion: the canary serves while the primary is restored.
		{"Failed, canary serving", map[string]any{"phase": "Failed", "canaryWeight": int64(100), "canaryDrainingSince": since, "targetScaledDown": true}, false},
		{"Initialized", map[string]any{"phase": "Initialized", "canaryWeight": int64(0)}, true},
		// The target set back to the stable revision mid-run: the route moves after the record.
		{"Initialized, cancelled canary draining", map[string]any{"phase": "Initialized", "canaryWeight": int64(0), "canaryDrainingSince": since}, false},
		{"Initialized, drained", map[string]any{"phase": "Initialized", "canaryWeight": int64(0), "canaryDrainingSince": since, "targetScaledDown": true}, true},
		{"Succeeded", map[string]any{"phase": "Succeeded", "canaryWeight": int64(0), "canaryDrainingSince": since}, true},
	}
	edits := []struct {
		name   string
		from   func(map[string]any)
		edit   func(map[string]any)
		midRun string // the refusal mid-run ("" accepted)
		atRest string // the refusal at rest ("" accepted)
	}{
		{"generated HTTPRoute to Istio", nil, set("routing", map[string]any{"istio": map[string]any{}}), moving, ""},
		{"HTTPRoute to GRPCRoute", nil, set("routing.gatewayAPI.routeKind", "GRPCRoute"), moving, ""},
		{"generated HTTPRoute to an adopted one", nil, set("routing.gatewayAPI", map[string]any{"httpRouteRef": map[string]any{"name": "shop"}}), moving, ""},
		{"hostnames of the same route", nil, set("routing.gatewayAPI.hostnames", []any{"shop.example.com"}), "", ""},
		{"httpRouteRef removed", set("routing.gatewayAPI", map[string]any{"httpRouteRef": map[string]any{"name": "shop"}}),
			set("routing.gatewayAPI", map[string]any{"parentRefs": []any{map[string]any{"name": "gw"}}}), adopted, adopted},
		{"httpRouteRef renamed", set("routing.gatewayAPI", map[string]any{"httpRouteRef": map[string]any{"name": "shop"}}),
			set("routing.gatewayAPI.httpRouteRef.name", "shop-v2"), adopted, adopted},
		{"grpcRouteRef removed", set("routing.gatewayAPI", map[string]any{"routeKind": "GRPCRoute", "grpcRouteRef": map[string]any{"name": "shop"}}),
			set("routing.gatewayAPI", map[string]any{"routeKind": "GRPCRoute", "parentRefs": []any{map[string]any{"name": "gw"}}}), adopted, adopted},
	}
	// No built-in success rate: it cannot judge a GRPCRoute's calls.
	noMetrics := func(from func(map[string]any)) func(map[string]any) {
		return func(spec map[string]any) {
			set("analysis.metrics", nil)(spec)
			if from != nil {
				from(spec)
			}
		}
	}
	for i, e := range edits {
		for j, st := range stored {
			t.Run(e.name+"/"+st.name, func(t *testing.T) {
				ro := rollout(t, fmt.Sprintf("router-change-%d-%d", i, j), validSpec, noMetrics(e.from))
				if err := k8sClient.Create(ctx, ro); err != nil {
					t.Fatal(err)
				}
				defer func() { _ = k8sClient.Delete(ctx, ro) }()
				ro.Object["status"] = st.status
				if err := k8sClient.Status().Update(ctx, ro); err != nil {
					t.Fatal(err)
				}
				want := e.midRun
				if st.atRest {
					want = e.atRest
				}
				edited := ro.DeepCopy()
				e.edit(edited.Object["spec"].(map[string]any))
				err := k8sClient.Update(ctx, edited, client.DryRunAll)
				switch {
				case want == "" && err != nil:
					t.Errorf("refused: %v", err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("got %v, want a refusal saying %q", err, want)
				}
			})
		}
	}
}
