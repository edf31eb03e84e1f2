package analysis

import (
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/common/model"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// GatewayFlavor is the Gateway API implementation whose metrics the
// built-in checks read when a Rollout routes through the Gateway API.
type GatewayFlavor string

// Gateway flavours with known metric names.
const (
	// GatewayEnvoy: Envoy-based gateways (Envoy cluster statistics).
	GatewayEnvoy GatewayFlavor = "envoy"
	// GatewayTraefik: Traefik's Kubernetes Gateway provider.
	GatewayTraefik GatewayFlavor = "traefik"
)

// DefaultMetricInterval is the query window of a check without interval.
const DefaultMetricInterval = time.Minute

// queryVars are the values a query template sees.
type queryVars struct {
	Namespace string // the Rollout's namespace
	Name      string // the Rollout's name
	Target    string // the target Deployment's name (the canary's workload)
	Service   string // the apex Service's name
	Interval  string // the check's window as a Prometheus duration, e.g. 1m
	// Port is the Services' port.
	Port int32
}

func varsFor(ro *sluicev1.Rollout, check sluicev1.MetricCheck) queryVars {
	d := DefaultMetricInterval
	if check.Interval != nil && check.Interval.Duration > 0 {
		d = check.Interval.Duration
	}
	return queryVars{
		Namespace: ro.Namespace,
		Name:      ro.Name,
		Target:    ro.Spec.TargetRef.Name,
		Service:   ro.Spec.ApexServiceName(),
		Interval:  model.Duration(d).String(),
		Port:      ro.Spec.Service.Port,
	}
}

// requestSource is where a router's request metrics live: a counter with a
// status-code label, a latency histogram, and the selector of the canary.
type requestSource struct {
	requests  string // counter name
	codeLabel string // label with the HTTP status code
	// noStatus, when set, says why the counter cannot tell a failed
	// request from a good one (gRPC): the success rate is refused.
	noStatus string
	buckets  string // histogram bucket series name
	toMillis string // expression suffix turning the quantile into ms
	selector string // label matchers for the canary, without braces
}

// sourceFor picks the canary's request metrics for the Rollout's router.
func sourceFor(ro *sluicev1.Rollout, v queryVars, gw GatewayFlavor) (requestSource, error) {
	r := ro.Spec.Routing
	switch {
	case r != nil && r.Istio != nil:
		return requestSource{
			requests: "istio_requests_total", codeLabel: "response_code",
			buckets:  "istio_request_duration_milliseconds_bucket",
			selector: fmt.Sprintf(`reporter="destination",destination_workload_namespace=%q,destination_workload=%q`, v.Namespace, v.Target),
		}, nil
	case r != nil && r.GatewayAPI != nil && r.GatewayAPI.RouteKind == "GRPCRoute" && gw == GatewayTraefik:
		// A GRPCRoute's backend is <namespace>-<service>-<port>-grpc. Its
		// latency histogram is right; its code label is not usable (see
		// noStatus).
		svc := fmt.Sprintf("%s-%s-canary-%d-grpc@kubernetesgateway", v.Namespace, v.Target, v.Port)
		return requestSource{
			requests: "traefik_service_requests_total", codeLabel: "code",
			buckets: "traefik_service_request_duration_seconds_bucket", toMillis: " * 1000",
			selector: fmt.Sprintf(`service=%q`, svc),
			// Seen on a real Traefik v3.6.12 (TestGRPCRouteThroughTraefik):
			// every call through a GRPCRoute, the successful ones too, is
			// counted with code 2 (Unknown). Traefik takes a gRPC call's
			// code from a grpc-status header, and a successful call sends
			// it in the trailers, which its metrics do not see. Code 2 is
			// also what it records when no backend answered.
			noStatus: "Traefik counts every gRPC call through a GRPCRoute, the successful ones too, with code 2 (Unknown): it reads grpc-status before the trailers that carry it arrive",
		}, nil
	case r != nil && r.GatewayAPI != nil && r.GatewayAPI.RouteKind == "GRPCRoute" && (gw == GatewayEnvoy || gw == ""):
		cluster := fmt.Sprintf("%s_%s-canary_%d(_.+)?", regexp.QuoteMeta(v.Namespace), regexp.QuoteMeta(v.Target), v.Port)
		return requestSource{
			requests: "envoy_cluster_upstream_rq", codeLabel: "envoy_response_code",
			buckets:  "envoy_cluster_upstream_rq_time_bucket",
			selector: fmt.Sprintf(`envoy_cluster_name=~%q`, cluster),
			// A failed gRPC call is an HTTP 200 with grpc-status in its
			// trailers; Envoy's upstream counter has the HTTP status only.
			noStatus: "Envoy's upstream request counter has HTTP status codes only, and a failed gRPC call is an HTTP 200",
		}, nil
	case r != nil && r.GatewayAPI != nil && gw == GatewayTraefik:
		// Traefik's Kubernetes Gateway provider names an HTTPRoute backend
		// <namespace>-<service>-http-<port>, and metrics carry the provider
		// suffix (as a real Traefik v3.6 exports it in the e2e tests). The
		// canary Service is named after the target, whatever the apex's name.
		svc := fmt.Sprintf("%s-%s-canary-http-%d@kubernetesgateway", v.Namespace, v.Target, v.Port)
		return requestSource{
			requests: "traefik_service_requests_total", codeLabel: "code",
			buckets: "traefik_service_request_duration_seconds_bucket", toMillis: " * 1000",
			selector: fmt.Sprintf(`service=%q`, svc),
		}, nil
	case r != nil && r.GatewayAPI != nil && (gw == GatewayEnvoy || gw == ""):
		// Envoy names clusters after the backend; the canary Service's
		// clusters are <namespace>_<target>-canary_<port>[_<suffix>].
		cluster := fmt.Sprintf("%s_%s-canary_%d(_.+)?", regexp.QuoteMeta(v.Namespace), regexp.QuoteMeta(v.Target), v.Port)
		return requestSource{
			requests: "envoy_cluster_upstream_rq", codeLabel: "envoy_response_code",
			buckets:  "envoy_cluster_upstream_rq_time_bucket",
			selector: fmt.Sprintf(`envoy_cluster_name=~%q`, cluster),
		}, nil
	case r != nil && r.GatewayAPI != nil:
		return requestSource{}, fmt.Errorf("no built-in metrics for the Gateway API flavour %q (known: envoy, traefik)", gw)
	default:
		// The kubernetes router: the application's own promhttp-style
		// metrics, from the canary's pods (<target>-<replicaset hash>-<pod id>;
		// the primary's pods are <target>-primary-<hash>-<id> and do not match).
		pods := regexp.QuoteMeta(v.Target) + "-[a-z0-9]+-[a-z0-9]+"
		if ro.Spec.TargetRef.Kind == "DaemonSet" {
			// A DaemonSet's pods are <target>-<5 characters>: the Deployment
			// pattern would match the primary's, <target>-primary-<5>.
			pods = regexp.QuoteMeta(v.Target) + "-[a-z0-9]{5}"
		}
		return requestSource{
			requests: "http_requests_total", codeLabel: "code",
			buckets: "http_request_duration_seconds_bucket", toMillis: " * 1000",
			selector: fmt.Sprintf(`namespace=%q,pod=~%q`, v.Namespace, pods),
		}, nil
	}
}

// BuiltinQuery returns the PromQL of a built-in metric for a Rollout.
//
// request-success-rate is 100 minus the percentage of 5xx answers; it is
// written so that a canary answering only 5xx gives 0 (not "no data"), and a
// canary without any request gives no data (not NaN), so that onNoData
// applies to quiet services. Only requests that carry the status-code label
// count: an app that names it otherwise (podinfo's `status`) gives no data,
// not a success rate of 100 % read from a 5xx selector that matches nothing.
// request-duration is the p99 in milliseconds, with NaN (no request in the
// window) filtered out to no data as well. With minRequests, either gives
// no data while the canary answered fewer requests over the window.
func BuiltinQuery(ro *sluicev1.Rollout, check sluicev1.MetricCheck, gw GatewayFlavor) (string, error) {
	v := varsFor(ro, check)
	src, err := sourceFor(ro, v, gw)
	if err != nil {
		return "", err
	}
	var q, counted string
	switch check.Name {
	case sluicev1.MetricRequestSuccessRate:
		if src.noStatus != "" {
			// Fail closed: a success rate read from it would pass a
			// canary that fails every call, or fail a good one.
			return "", fmt.Errorf("no built-in request-success-rate for gRPC on a GRPCRoute: %s; give the check a templateRef that reads the app's gRPC statuses (e.g. grpc_server_handled_total{grpc_code!=\"OK\"})", src.noStatus)
		}
		q = fmt.Sprintf(
			`100 * (1 - ((sum(rate(%[1]s{%[2]s,%[3]s=~"5.."}[%[4]s])) or on() vector(0)) / (sum(rate(%[1]s{%[2]s,%[3]s!=""}[%[4]s])) > 0)))`,
			src.requests, src.selector, src.codeLabel, v.Interval)
		// The rate's own requests: those with a status code.
		counted = fmt.Sprintf(`%s{%s,%s!=""}`, src.requests, src.selector, src.codeLabel)
	case sluicev1.MetricRequestDuration:
		q = fmt.Sprintf(`(histogram_quantile(0.99, sum by (le) (rate(%s{%s}[%s])))%s) >= 0`,
			src.buckets, src.selector, v.Interval, src.toMillis)
		counted = fmt.Sprintf(`%s{%s}`, src.requests, src.selector)
	default:
		return "", fmt.Errorf("%q is not a built-in metric (request-success-rate, request-duration): give it a templateRef", check.Name)
	}
	if check.MinRequests != nil {
		// The answer is kept only when the canary answered enough
		// requests over the same window; otherwise the result is empty,
		// which is no data, and the check's onNoData decides. One query
		// still: the guard costs no round trip.
		q = fmt.Sprintf(`%s and on() (sum(increase(%s[%s])) >= %d)`, q, counted, v.Interval, *check.MinRequests)
	}
	return q, nil
}
