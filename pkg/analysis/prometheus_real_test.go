package analysis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/promtest"
	"github.com/sluice-dev/sluice/pkg/analysis"
)

// window is the query window of the checks against the real Prometheus:
// several 1s scrapes, so rate() has samples soon after start.
var window = &metav1.Duration{Duration: 10 * time.Second}

// realEnv is one Prometheus scraping one exporter, shared by the tests of
// this file (starting Prometheus and waiting for its first scrapes is the
// slow part).
type realEnv struct {
	prom *promtest.Server
	exp  *promtest.Exporter
}

func startReal(t *testing.T) *realEnv {
	t.Helper()
	exp := promtest.NewExporter(t)
	prom := promtest.Start(t, exp.Addr)
	return &realEnv{prom: prom, exp: exp}
}

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := sluicev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func reader(t *testing.T, objs ...client.Object) client.Reader {
	return fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(objs...).Build()
}

func rolloutIn(ns string, routing *sluicev1.Routing) *sluicev1.Rollout {
	return &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   sluicev1.ServiceSpec{Port: 9898},
			Routing:   routing,
		},
	}
}

func check(name string) sluicev1.MetricCheck {
	return sluicev1.MetricCheck{Name: name, Interval: window}
}

func templated(name, template string) sluicev1.MetricCheck {
	c := check(name)
	c.TemplateRef = &sluicev1.MetricTemplateReference{Name: template}
	return c
}

func template(ns, name, query string, mut ...func(*sluicev1.MetricTemplate)) *sluicev1.MetricTemplate {
	mt := &sluicev1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       sluicev1.MetricTemplateSpec{Query: query},
	}
	for _, m := range mut {
		m(mt)
	}
	return mt
}

func TestBuiltinMetricsReadEachRoutersCanaryFromARealPrometheus(t *testing.T) {
	env := startReal(t)
	ms := func(d int) time.Duration { return time.Duration(d) * time.Millisecond }
	// The canary of each router and, beside it, a healthy primary that the
	// queries must leave out.
	env.exp.Set(promtest.HTTPApp("shop", "podinfo-7d9f8b6c5-x2x4z"), promtest.Traffic{RPS: 100, ErrorRatio: 0.10, Latency: ms(20)})
	env.exp.Set(promtest.HTTPApp("shop", "podinfo-primary-5c6d7f8b9-abcde"), promtest.Traffic{RPS: 100, Latency: ms(3)})
	env.exp.Set(promtest.Istio("shop", "podinfo"), promtest.Traffic{RPS: 100, ErrorRatio: 0.20, Latency: ms(40)})
	env.exp.Set(promtest.Istio("shop", "podinfo-primary"), promtest.Traffic{RPS: 100, Latency: ms(3)})
	env.exp.Set(promtest.Traefik("shop-podinfo-canary-http-9898@kubernetesgateway"), promtest.Traffic{RPS: 100, ErrorRatio: 0.30, Latency: ms(70)})
	env.exp.Set(promtest.Traefik("shop-podinfo-primary-http-9898@kubernetesgateway"), promtest.Traffic{RPS: 100, Latency: ms(3)})
	env.exp.Set(promtest.Envoy("shop_podinfo-canary_9898_e3b0c44298"), promtest.Traffic{RPS: 100, ErrorRatio: 0.40, Latency: ms(200)})
	env.exp.Set(promtest.Envoy("shop_podinfo-primary_9898_e3b0c44298"), promtest.Traffic{RPS: 100, Latency: ms(3)})
	env.prom.WaitFor(t, `rate(envoy_cluster_upstream_rq[10s]) > 0`, 30*time.Second)

	gw := &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{}}
	tests := []struct {
		router      string
		routing     *sluicev1.Routing
		gateway     analysis.GatewayFlavor
		successRate float64
		// p99 falls in the histogram bucket (low, high] holding the latency.
		low, high float64
	}{
		{"kubernetes (the app's http metrics)", nil, "", 90, 10, 25},
		{"istio", &sluicev1.Routing{Istio: &sluicev1.IstioRouting{}}, "", 80, 25, 50},
		{"gateway API on traefik", gw, analysis.GatewayTraefik, 70, 50, 100},
		{"gateway API on envoy", gw, analysis.GatewayEnvoy, 60, 100, 250},
	}
	for _, tt := range tests {
		t.Run(tt.router, func(t *testing.T) {
			p, err := analysis.NewPrometheus(reader(t), analysis.PrometheusOptions{Address: env.prom.URL, Gateway: tt.gateway})
			if err != nil {
				t.Fatal(err)
			}
			ro := rolloutIn("shop", tt.routing)
			sr, err := p.Query(context.Background(), ro, check(sluicev1.MetricRequestSuccessRate))
			if err != nil {
				t.Fatalf("request-success-rate: %v", err)
			}
			if sr < tt.successRate-0.5 || sr > tt.successRate+0.5 {
				t.Errorf("request-success-rate = %v, want %v (the canary's, not the primary's 100)", sr, tt.successRate)
			}
			d, err := p.Query(context.Background(), ro, check(sluicev1.MetricRequestDuration))
			if err != nil {
				t.Fatalf("request-duration: %v", err)
			}
			if d <= tt.low || d > tt.high {
				t.Errorf("request-duration = %vms, want the p99 in the bucket (%v, %v] ms", d, tt.low, tt.high)
			}
		})
	}
}

func TestTheSuccessRateOfACanaryAnsweringOnly5xxIsZeroNotNoData(t *testing.T) {
	env := startReal(t)
	env.exp.Set(promtest.HTTPApp("shop", "podinfo-7d9f8b6c5-x2x4z"), promtest.Traffic{RPS: 50, ErrorRatio: 1, Latency: time.Millisecond})
	env.prom.WaitFor(t, `rate(http_requests_total[10s]) > 0`, 30*time.Second)
	p, err := analysis.NewPrometheus(reader(t), analysis.PrometheusOptions{Address: env.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Query(context.Background(), rolloutIn("shop", nil), check(sluicev1.MetricRequestSuccessRate))
	if err != nil || v != 0 {
		t.Errorf("request-success-rate = %v, %v; want 0", v, err)
	}
}

// TestTheSuccessRateOfAnAppWithoutACodeLabelIsNoDataNot100: an app whose
// request counter names the status code otherwise (podinfo's `status`)
// has no 5xx series under the expected label; the built-in must not read
// that as "no errors, 100 %" but as no data, which onNoData then decides.
func TestTheSuccessRateOfAnAppWithoutACodeLabelIsNoDataNot100(t *testing.T) {
	env := startReal(t)
	app := promtest.HTTPApp("shop", "podinfo-7d9f8b6c5-x2x4z")
	app.CodeLabel = "status"
	env.exp.Set(app, promtest.Traffic{RPS: 50, ErrorRatio: 0.5, Latency: time.Millisecond})
	env.prom.WaitFor(t, `rate(http_requests_total{status=~"5.."}[10s]) > 0`, 30*time.Second)
	p, err := analysis.NewPrometheus(reader(t), analysis.PrometheusOptions{Address: env.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Query(context.Background(), rolloutIn("shop", nil), check(sluicev1.MetricRequestSuccessRate))
	if !errors.Is(err, analysis.ErrNoData) {
		t.Errorf("request-success-rate = %v, %v; want no data: half of the app's answers are 5xx under a label the query does not read", v, err)
	}
}

func TestAQueryMustReturnExactlyOneNumber(t *testing.T) {
	env := startReal(t)
	env.exp.Set(promtest.HTTPApp("shop", "podinfo-7d9f8b6c5-aaaaa"), promtest.Traffic{RPS: 10, Latency: time.Millisecond})
	env.exp.Set(promtest.HTTPApp("shop", "podinfo-7d9f8b6c5-bbbbb"), promtest.Traffic{RPS: 10, Latency: time.Millisecond})
	// Quiet: series exist, but no request is ever served.
	env.exp.Set(promtest.HTTPApp("quiet", "podinfo-7d9f8b6c5-ccccc"), promtest.Traffic{})
	env.prom.WaitFor(t, `rate(http_requests_total{namespace="shop"}[10s]) > 0`, 30*time.Second)

	objs := []client.Object{
		template("shop", "two-series", `sum by (pod) (rate(http_requests_total{namespace="{{ .namespace }}"}[{{ .interval }}]))`),
		template("shop", "nan", `vector(0) / vector(0)`),
		template("shop", "inf", `vector(1) / vector(0)`),
		template("shop", "scalar", `scalar(vector(1))`),
		template("shop", "matrix", `http_requests_total{namespace="shop"}[10s]`),
		template("shop", "nothing", `http_requests_total{namespace="elsewhere"}`),
		template("shop", "one", `sum(rate(http_requests_total{namespace="{{ namespace }}",pod=~"{{ target }}-.*"}[{{ interval }}]))`),
	}
	p, err := analysis.NewPrometheus(reader(t, objs...), analysis.PrometheusOptions{Address: env.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	ro := rolloutIn("shop", nil)
	for _, tt := range []struct {
		template string
		noData   bool
		errHas   string
	}{
		{template: "two-series", errHas: "returned 2 series, want exactly one"},
		{template: "nan", errHas: "returned NaN"},
		{template: "inf", errHas: "returned +Inf"},
		{template: "scalar", errHas: "returned a scalar, want an instant vector"},
		{template: "matrix", errHas: "returned a matrix, want an instant vector"},
		{template: "nothing", noData: true},
	} {
		t.Run(tt.template, func(t *testing.T) {
			_, err := p.Query(context.Background(), ro, templated("m", tt.template))
			switch {
			case tt.noData && !errors.Is(err, analysis.ErrNoData):
				t.Errorf("err = %v, want ErrNoData", err)
			case !tt.noData && (err == nil || errors.Is(err, analysis.ErrNoData) || !strings.Contains(err.Error(), tt.errHas)):
				t.Errorf("err = %v, want an error saying %q", err, tt.errHas)
			}
		})
	}
	t.Run("one series gives its value", func(t *testing.T) {
		// rate() divides by the whole window: wait until it holds samples
		// from end to end.
		env.prom.WaitFor(t, `count_over_time(http_requests_total{namespace="shop"}[10s]) >= 10`, 30*time.Second)
		v, err := p.Query(context.Background(), ro, templated("m", "one"))
		if err != nil || v < 19 || v > 21 {
			t.Errorf("got %v, %v; want about 20 requests per second", v, err)
		}
	})
	t.Run("a quiet canary is no data, not NaN, for both built-ins", func(t *testing.T) {
		env.prom.WaitFor(t, `http_requests_total{namespace="quiet"}`, 30*time.Second)
		for _, name := range []string{sluicev1.MetricRequestSuccessRate, sluicev1.MetricRequestDuration} {
			if _, err := p.Query(context.Background(), rolloutIn("quiet", nil), check(name)); !errors.Is(err, analysis.ErrNoData) {
				t.Errorf("%s: err = %v, want ErrNoData", name, err)
			}
		}
	})
}

func TestAMetricTemplateAuthenticatesWithTheTokenOfItsSecret(t *testing.T) {
	env := startReal(t)
	env.exp.Set(promtest.HTTPApp("shop", "podinfo-7d9f8b6c5-x2x4z"), promtest.Traffic{RPS: 10, Latency: time.Millisecond})
	proxy := promtest.NewAuthProxy(t, env.prom.URL, "s3cret")
	env.prom.WaitFor(t, `http_requests_total`, 30*time.Second)

	withSecret := func(name string) func(*sluicev1.MetricTemplate) {
		return func(mt *sluicev1.MetricTemplate) {
			mt.Spec.Provider = sluicev1.MetricProvider{Address: proxy.URL, SecretRef: &sluicev1.LocalObjectReference{Name: name}}
		}
	}
	optedIn := map[string]string{sluicev1.MetricsCredentialsLabel: "true"}
	objs := []client.Object{
		// The right token, but the Secret has not opted in: never sent.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-opted-in", Namespace: "shop"}, Data: map[string][]byte{"token": []byte("s3cret")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "prom-token", Namespace: "shop", Labels: optedIn}, Data: map[string][]byte{"token": []byte("s3cret\n")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "wrong-token", Namespace: "shop", Labels: optedIn}, Data: map[string][]byte{"token": []byte("guess")}},
		template("shop", "with-token", `count(http_requests_total)`, withSecret("prom-token")),
		template("shop", "wrong-token", `count(http_requests_total)`, withSecret("wrong-token")),
		template("shop", "no-token", `count(http_requests_total)`, func(mt *sluicev1.MetricTemplate) {
			mt.Spec.Provider = sluicev1.MetricProvider{Address: proxy.URL}
		}),
		template("shop", "missing-secret", `count(http_requests_total)`, withSecret("absent")),
		template("shop", "not-opted-in", `count(http_requests_total)`, withSecret("not-opted-in")),
	}
	// No default address: the templates carry their own.
	p, err := analysis.NewPrometheus(reader(t, objs...), analysis.PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ro := rolloutIn("shop", nil)
	if v, err := p.Query(context.Background(), ro, templated("m", "with-token")); err != nil || v != 1 {
		t.Errorf("with the token: %v, %v; want 1", v, err)
	}
	for _, tt := range []struct{ template, errHas string }{
		{"wrong-token", "401"},
		{"no-token", "401"},
		{"missing-secret", `reading Secret absent`},
		{"not-opted-in", `lacks the label sluice.dev/metrics-credentials: "true"`},
	} {
		_, err := p.Query(context.Background(), ro, templated("m", tt.template))
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: err = %v, want one saying %q", tt.template, err, tt.errHas)
		}
	}
	if proxy.Passed.Load() != 1 || proxy.Rejected.Load() != 2 {
		t.Errorf("proxy let %d through and rejected %d, want 1 and 2", proxy.Passed.Load(), proxy.Rejected.Load())
	}
}

func TestAStoppedPrometheusIsAnErrorNotNoData(t *testing.T) {
	env := startReal(t)
	env.prom.Stop()
	p, err := analysis.NewPrometheus(reader(t), analysis.PrometheusOptions{Address: env.prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Query(context.Background(), rolloutIn("shop", nil), check(sluicev1.MetricRequestSuccessRate))
	if err == nil || errors.Is(err, analysis.ErrNoData) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want a connection error", err)
	}
}

// TestMinRequestsLeavesAThinWindowUnjudged: a canary that answered a few
// requests, all good, has a success rate of 100 % and a fine p99; with
// minRequests its built-in checks have no data until it has answered that
// many over the window, on every router's metrics.
func TestMinRequestsLeavesAThinWindowUnjudged(t *testing.T) {
	env := startReal(t)
	ms := 20 * time.Millisecond
	thin, busy := promtest.Traffic{RPS: 2, Latency: ms}, promtest.Traffic{RPS: 100, Latency: ms}
	for ns, tr := range map[string]promtest.Traffic{"thin": thin, "busy": busy} {
		env.exp.Set(promtest.HTTPApp(ns, "podinfo-7d9f8b6c5-x2x4z"), tr)
		env.exp.Set(promtest.Istio(ns, "podinfo"), tr)
		env.exp.Set(promtest.Traefik(ns+"-podinfo-canary-http-9898@kubernetesgateway"), tr)
		env.exp.Set(promtest.Envoy(ns+"_podinfo-canary_9898_e3b0c44298"), tr)
	}
	// Windows full from end to end, so the counts are not extrapolated
	// from a few samples.
	env.prom.WaitFor(t, `count_over_time(envoy_cluster_upstream_rq{envoy_cluster_name=~"thin_.*"}[10s]) >= 10`, 30*time.Second)

	gw := &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{}}
	for _, tt := range []struct {
		router  string
		routing *sluicev1.Routing
		gateway analysis.GatewayFlavor
	}{
		{"kubernetes (the app's http metrics)", nil, ""},
		{"istio", &sluicev1.Routing{Istio: &sluicev1.IstioRouting{}}, ""},
		{"gateway API on traefik", gw, analysis.GatewayTraefik},
		{"gateway API on envoy", gw, analysis.GatewayEnvoy},
	} {
		t.Run(tt.router, func(t *testing.T) {
			p, err := analysis.NewPrometheus(reader(t), analysis.PrometheusOptions{Address: env.prom.URL, Gateway: tt.gateway})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{sluicev1.MetricRequestSuccessRate, sluicev1.MetricRequestDuration} {
				unguarded, guarded := check(name), check(name)
				min := int64(200) // the thin canary answers about 20 in the 10s window, the busy one 1,000
				guarded.MinRequests = &min

				// Without the guard the thin canary is judged on its 20
				// requests: that is what minRequests is for.
				if v, err := p.Query(context.Background(), rolloutIn("thin", tt.routing), unguarded); err != nil {
					t.Errorf("%s of the thin canary without minRequests: %v, %v; want a value", name, v, err)
				}
				if v, err := p.Query(context.Background(), rolloutIn("thin", tt.routing), guarded); !errors.Is(err, analysis.ErrNoData) {
					t.Errorf("%s of the thin canary with minRequests 200: %v, %v; want no data", name, v, err)
				}
				v, err := p.Query(context.Background(), rolloutIn("busy", tt.routing), guarded)
				if err != nil {
					t.Errorf("%s of the busy canary with minRequests 200: %v; want its value", name, err)
				}
				if name == sluicev1.MetricRequestSuccessRate && v != 100 {
					t.Errorf("request-success-rate of the busy canary = %v, want 100", v)
				}
				if name == sluicev1.MetricRequestDuration && (v <= 10 || v > 25) {
					t.Errorf("request-duration of the busy canary = %vms, want the p99 in the (10, 25] ms bucket", v)
				}
			}
		})
	}
}
