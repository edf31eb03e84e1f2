package istio

import (
	"errors"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/runtime"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

func raw(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }

// TestTrafficPolicyIsReadInIstiosOwnShape: the fields and values of Istio's
// DestinationRule documentation, durations such as 1m30s included.
func TestTrafficPolicyIsReadInIstiosOwnShape(t *testing.T) {
	cfg := &sluicev1.IstioRouting{TrafficPolicy: raw(`{
		"loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "path": "/", "ttl": "3600s"}}},
		"connectionPool": {"tcp": {"maxConnections": 100}, "http": {"http2MaxRequests": 1000, "maxRequestsPerConnection": 10}},
		"outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "1m30s"},
		"tls": {"mode": "ISTIO_MUTUAL"}}`)}
	p, err := policiesOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp := p.traffic
	if tp.GetLoadBalancer().GetConsistentHash().GetHttpCookie().GetName() != "user" ||
		tp.GetConnectionPool().GetHttp().GetHttp2MaxRequests() != 1000 ||
		tp.GetOutlierDetection().GetConsecutive_5XxErrors().GetValue() != 5 ||
		tp.GetOutlierDetection().GetInterval().AsDuration().Seconds() != 10 ||
		tp.GetOutlierDetection().GetBaseEjectionTime().AsDuration().Seconds() != 90 ||
		tp.GetTls().GetMode() != networking.ClientTLSSettings_ISTIO_MUTUAL {
		t.Errorf("traffic policy read as %v", tp)
	}
	if dr := destinationRuleSpec("web-canary", p); dr.Host != "web-canary" || dr.TrafficPolicy != tp {
		t.Errorf("DestinationRule spec = %v, want host web-canary with the policy", dr)
	}
}

func TestNoPolicyLeavesTheDestinationRuleBare(t *testing.T) {
	p, err := policiesOf(&sluicev1.IstioRouting{})
	if err != nil || p.traffic != nil || p.cors != nil {
		t.Fatalf("policies of an empty spec = %+v, %v; want none", p, err)
	}
	if dr := destinationRuleSpec("web-primary", p); dr.TrafficPolicy != nil || dr.Host != "web-primary" {
		t.Errorf("DestinationRule spec = %v", dr)
	}
}

func TestAPolicyIstioWouldRefuseStallsTheRolloutNamingTheField(t *testing.T) {
	tests := []struct {
		name, reason, field string
		cfg                 *sluicev1.IstioRouting
	}{
		{"a misspelt field", "InvalidTrafficPolicy", "routing.istio.trafficPolicy",
			&sluicev1.IstioRouting{TrafficPolicy: raw(`{"loadBalancer": {"simpel": "ROUND_ROBIN"}}`)}},
		{"an unknown TLS mode", "InvalidTrafficPolicy", "routing.istio.trafficPolicy",
			&sluicev1.IstioRouting{TrafficPolicy: raw(`{"tls": {"mode": "MUTUAL_ISH"}}`)}},
		{"a malformed duration", "InvalidTrafficPolicy", "routing.istio.trafficPolicy",
			&sluicev1.IstioRouting{TrafficPolicy: raw(`{"outlierDetection": {"interval": "ten seconds"}}`)}},
		{"a CORS origin that is a plain string", "InvalidCorsPolicy", "routing.istio.corsPolicy",
			&sluicev1.IstioRouting{CorsPolicy: raw(`{"allowOrigins": ["https://example.com"]}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policiesOf(tt.cfg)
			var stalled *traffic.StalledError
			if !errors.As(err, &stalled) {
				t.Fatalf("error = %v, want a StalledError", err)
			}
			if stalled.Reason != tt.reason || !strings.HasPrefix(stalled.Message, tt.field+": ") {
				t.Errorf("stalled %s: %q, want reason %s and a message starting with %s", stalled.Reason, stalled.Message, tt.reason, tt.field)
			}
		})
	}
}

func TestCorsPolicyIsSetOnTheGeneratedRouteOnly(t *testing.T) {
	cfg := &sluicev1.IstioRouting{CorsPolicy: raw(`{"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET", "POST"], "allowCredentials": true, "maxAge": "24h"}`)}
	p, err := policiesOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	route := generatedHTTP(h, cfg, p)
	cors := route.GetCorsPolicy()
	if cors.GetAllowOrigins()[0].GetExact() != "https://example.com" || len(cors.GetAllowMethods()) != 2 ||
		!cors.GetAllowCredentials().GetValue() || cors.GetMaxAge().AsDuration().Hours() != 24 {
		t.Errorf("corsPolicy of the generated route = %v", cors)
	}
	spec := &sluicev1.RolloutSpec{Strategy: sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{StepWeights: []int32{10}}}}
	shifted := buildHTTP([]*networking.HTTPRoute{route}, h, spec, traffic.Route{Weights: traffic.ForCanary(30)})
	if shifted[0].GetCorsPolicy() == nil || shifted[0].Route[1].Weight != 30 {
		t.Errorf("shifting the weights dropped the corsPolicy: %v", shifted[0])
	}
}
