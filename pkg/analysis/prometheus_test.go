package analysis

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/egress"
)

func exampleRollout(routing *sluicev1.Routing) *sluicev1.Rollout {
	return &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo-release", Namespace: "shop"},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "podinfo"},
			Service:   sluicev1.ServiceSpec{Port: 9898},
			Routing:   routing,
		},
	}
}

func TestRenderGivesTheTemplateTheRolloutsValues(t *testing.T) {
	check := sluicev1.MetricCheck{Name: "m", Interval: &metav1.Duration{Duration: 90 * time.Second}}
	got, err := Render(`{{ .namespace }}/{{ .name }}/{{ .target }}/{{ .service }}/{{ .interval }} {{ namespace }}/{{ target }}/{{ interval }}`,
		exampleRollout(nil), check)
	want := "shop/podinfo-release/podinfo/podinfo/1m30s shop/podinfo/1m30s"
	if err != nil || got != want {
		t.Errorf("Render = %q, %v; want %q", got, err, want)
	}
	got, err = Render(`x[{{ .interval }}]`, exampleRollout(nil), sluicev1.MetricCheck{Name: "m"})
	if err != nil || got != "x[1m]" {
		t.Errorf("default interval: %q, %v; want x[1m]", got, err)
	}
}

func TestRenderReportsTemplateMistakesAsErrors(t *testing.T) {
	for _, tt := range []struct{ name, query, errHas string }{
		{"an unknown field", `{{ .ingress }}`, `map has no entry for key "ingress"`},
		{"an undefined variable", `{{ .variables.region }}`, `map has no entry for key "region"`},
		{"a syntax error", `{{ .namespace `, "parsing the query template"},
		{"an unknown function", `{{ nope }}`, `function "nope" not defined`},
		{"calling a string", `{{ call .namespace }}`, "rendering the query template"},
		{"indexing a string with a map key", `{{ index .namespace "x" }}`, "rendering the query template"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.query, exampleRollout(nil), sluicev1.MetricCheck{Name: "m"})
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want one saying %q", err, tt.errHas)
			}
		})
	}
}

func TestTheBuiltinQueriesAreTheOnesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	gw := &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{}}
	for _, tt := range []struct {
		routing *sluicev1.Routing
		flavor  GatewayFlavor
	}{{nil, ""}, {&sluicev1.Routing{Istio: &sluicev1.IstioRouting{}}, ""}, {gw, GatewayEnvoy}, {gw, GatewayTraefik}} {
		for _, name := range []string{sluicev1.MetricRequestSuccessRate, sluicev1.MetricRequestDuration} {
			q, err := BuiltinQuery(exampleRollout(tt.routing), sluicev1.MetricCheck{Name: name}, tt.flavor)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(doc), "\n"+q+"\n") {
				t.Errorf("docs/metrics.md lacks the %s query of %+v/%s:\n%s", name, tt.routing, tt.flavor, q)
			}
		}
	}
	guard := int64(100)
	q, err := BuiltinQuery(exampleRollout(nil), sluicev1.MetricCheck{Name: sluicev1.MetricRequestSuccessRate, MinRequests: &guard}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "\n"+q+"\n") {
		t.Errorf("docs/metrics.md lacks the request-success-rate query with minRequests: 100:\n%s", q)
	}
	if _, err := BuiltinQuery(exampleRollout(nil), sluicev1.MetricCheck{Name: "p95"}, ""); err == nil {
		t.Errorf("a non-built-in name without templateRef must be an error")
	}
}

// promAnswer is a Prometheus answer with one sample of value 42.
const promAnswer = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"42"]}]}}`

func newReader(t *testing.T, objs ...client.Object) client.Reader {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := sluicev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

// optedIn are the labels of a Secret that lets MetricTemplates use it.
var optedIn = map[string]string{sluicev1.MetricsCredentialsLabel: "true"}

func TestAMetricTemplateUsesOnlySecretsThatOptInAndNeverAServiceAccountToken(t *testing.T) {
	var queries atomic.Int32
	var mu sync.Mutex
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		mu.Lock()
		auth = r.Header.Get("Authorization")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(promAnswer))
	}))
	t.Cleanup(srv.Close)
	secret := func(name string, typ corev1.SecretType, labels map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
			Type: typ, Data: map[string][]byte{"token": []byte("tok-" + name)}}
	}
	objs := []client.Object{
		secret("opted-in", corev1.SecretTypeOpaque, optedIn),
		secret("unlabelled", corev1.SecretTypeOpaque, nil),
		secret("labelled-false", corev1.SecretTypeOpaque, map[string]string{sluicev1.MetricsCredentialsLabel: "false"}),
		secret("sa-token", corev1.SecretTypeServiceAccountToken, optedIn),
	}
	for _, name := range []string{"opted-in", "unlabelled", "labelled-false", "sa-token"} {
		objs = append(objs, &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: sluicev1.MetricTemplateSpec{Query: "vector(42)",
				Provider: sluicev1.MetricProvider{Address: srv.URL, SecretRef: &sluicev1.LocalObjectReference{Name: name}}}})
	}
	p, err := NewPrometheus(newReader(t, objs...), PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(template string) sluicev1.MetricStatus {
		ro := exampleRollout(nil)
		ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{{Name: "m", TemplateRef: &sluicev1.MetricTemplateReference{Name: template}}}}
		return Run(context.Background(), p, ro, time.Now()).Metrics[0]
	}

	for _, tt := range []struct{ template, msgHas string }{
		{"unlabelled", `Secret unlabelled lacks the label sluice.dev/metrics-credentials: "true"`},
		{"labelled-false", `Secret labelled-false lacks the label sluice.dev/metrics-credentials: "true"`},
		{"sa-token", "Secret sa-token is a service-account token"},
	} {
		t.Run("a Secret that is "+tt.template+" is refused and the query never sent", func(t *testing.T) {
			before := queries.Load()
			ms := run(tt.template)
			if ms.Verdict != VerdictError || !strings.Contains(ms.Message, "MetricTemplate "+tt.template) || !strings.Contains(ms.Message, tt.msgHas) {
				t.Errorf("metric status %+v, want an Error naming the template and saying %q", ms, tt.msgHas)
			}
			if n := queries.Load() - before; n != 0 {
				t.Errorf("%d queries reached the provider, want none", n)
			}
		})
	}
	t.Run("a labelled Opaque Secret's token is sent as bearer", func(t *testing.T) {
		if ms := run("opted-in"); ms.Verdict != VerdictPass || ms.Value != "42" {
			t.Errorf("metric status %+v, want Pass with 42", ms)
		}
		mu.Lock()
		defer mu.Unlock()
		if auth != "Bearer tok-opted-in" {
			t.Errorf("Authorization = %q, want the Secret's token as bearer", auth)
		}
	})
}

func TestATemplatesProviderSendsItsHeadersAndBasicAuthAndTrustsItsCA(t *testing.T) {
	var mu sync.Mutex
	var seen http.Header
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(promAnswer))
	}))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	mt := func(name string, p sluicev1.MetricProvider) *sluicev1.MetricTemplate {
		p.Address = srv.URL
		return &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: sluicev1.MetricTemplateSpec{Provider: p, Query: "vector(42)"}}
	}
	r := newReader(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "basic", Namespace: "shop", Labels: optedIn},
			Data: map[string][]byte{"username": []byte("sre"), "password": []byte("pw"), "ca.crt": ca}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "half", Namespace: "shop", Labels: optedIn}, Data: map[string][]byte{"username": []byte("sre")}},
		mt("basic", sluicev1.MetricProvider{SecretRef: &sluicev1.LocalObjectReference{Name: "basic"}, Headers: map[string]string{"X-Scope-OrgID": "team-a"}}),
		mt("insecure", sluicev1.MetricProvider{InsecureSkipVerify: true}),
		mt("untrusted", sluicev1.MetricProvider{Headers: map[string]string{"X-A": "b"}}),
		mt("half", sluicev1.MetricProvider{SecretRef: &sluicev1.LocalObjectReference{Name: "half"}}),
	)
	p, err := NewPrometheus(r, PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ro := exampleRollout(nil)
	q := func(tpl string) (float64, error) {
		return p.Query(context.Background(), ro, sluicev1.MetricCheck{Name: "m", TemplateRef: &sluicev1.MetricTemplateReference{Name: tpl}})
	}

	if v, err := q("basic"); err != nil || v != 42 {
		t.Fatalf("basic auth with the Secret's CA: %v, %v; want 42", v, err)
	}
	mu.Lock()
	if u, pw, ok := (&http.Request{Header: seen}).BasicAuth(); !ok || u != "sre" || pw != "pw" {
		t.Errorf("basic auth sent = %q/%q (%v), want sre/pw", u, pw, ok)
	}
	if got := seen.Get("X-Scope-OrgID"); got != "team-a" {
		t.Errorf("header X-Scope-OrgID = %q, want team-a", got)
	}
	mu.Unlock()
	if v, err := q("insecure"); err != nil || v != 42 {
		t.Errorf("insecureSkipVerify: %v, %v; want 42", v, err)
	}
	if _, err := q("untrusted"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an unknown CA without insecureSkipVerify: err = %v, want a certificate error", err)
	}
	if _, err := q("half"); err == nil || !strings.Contains(err.Error(), "needs both username and password") {
		t.Errorf("username without password: err = %v", err)
	}
}

func TestATemplatesOwnAddressIsCheckedByTheEgressPolicyButTheOperatorsIsNot(t *testing.T) {
	var queries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(promAnswer))
	}))
	t.Cleanup(srv.Close)
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	// The operator's --prometheus-address runs on loopback here, like the
	// template "sidecar" that points at the same server by its own address.
	operator := "http://localhost:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	mt := func(name, address string, secret bool) client.Object {
		prov := sluicev1.MetricProvider{Address: address}
		if secret {
			prov.SecretRef = &sluicev1.LocalObjectReference{Name: "creds"}
		}
		return &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: sluicev1.MetricTemplateSpec{Query: "vector(42)", Provider: prov}}
	}
	r := newReader(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "shop", Labels: optedIn},
			Data: map[string][]byte{"token": []byte("t")}},
		mt("metadata", "http://169.254.169.254/latest", false),
		mt("metadata-with-token", "http://169.254.169.254", true),
		mt("sidecar", srv.URL, false),
		mt("api-server", "https://10.96.0.1:443", false),
		mt("operators", operator, false),
		mt("operators-with-token", "", true),
	)
	policy := func(allow ...string) *egress.Policy {
		p, err := egress.New(allow, nil, []string{"10.96.0.1:443"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(p *Prometheus, template string) sluicev1.MetricStatus {
		ro := exampleRollout(nil)
		ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{{Name: "m", TemplateRef: &sluicev1.MetricTemplateReference{Name: template}}}}
		return Run(context.Background(), p, ro, time.Now()).Metrics[0]
	}

	p, err := NewPrometheus(r, PrometheusOptions{Address: operator, Egress: policy()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ template, says string }{
		{"metadata", "m: MetricTemplate metadata: provider.address: egress to 169.254.169.254:80 refused: link-local addresses are denied"},
		{"metadata-with-token", "m: MetricTemplate metadata-with-token: provider.address: egress to 169.254.169.254:80 refused: link-local addresses are denied"},
		{"sidecar", "m: MetricTemplate sidecar: provider.address: egress to " + hostPort + " refused: loopback addresses are denied (--webhook-egress-allow to permit)"},
		{"api-server", "m: MetricTemplate api-server: provider.address: egress to 10.96.0.1:443 refused: it is the Kubernetes API server"},
	} {
		t.Run("a template pointing at "+tt.template+" fails closed", func(t *testing.T) {
			before := queries.Load()
			ms := run(p, tt.template)
			if ms.Verdict != VerdictError || !strings.HasPrefix(ms.Message, tt.says) {
				t.Errorf("metric status %+v\nwant an Error starting %s", ms, tt.says)
			}
			if n := queries.Load() - before; n != 0 {
				t.Errorf("%d queries were sent", n)
			}
		})
	}
	for _, template := range []string{"operators", "operators-with-token"} {
		if ms := run(p, template); ms.Verdict != VerdictPass {
			t.Errorf("%s: the operator's --prometheus-address on loopback: %+v, want Pass", template, ms)
		}
	}
	allowed, err := NewPrometheus(r, PrometheusOptions{Egress: policy("127.0.0.1/32")})
	if err != nil {
		t.Fatal(err)
	}
	if ms := run(allowed, "sidecar"); ms.Verdict != VerdictPass {
		t.Errorf("with 127.0.0.1/32 allowed: %+v, want Pass", ms)
	}
}

func TestASlowPrometheusQueryTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	p, err := NewPrometheus(newReader(t), PrometheusOptions{Address: srv.URL, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Query(context.Background(), exampleRollout(nil), sluicev1.MetricCheck{Name: sluicev1.MetricRequestSuccessRate})
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Errorf("err = %v, want a timeout", err)
	}
}

// fakeAPI is a hand-written query API for edge cases a real Prometheus
// does not produce on demand.
type fakeAPI struct{ err error }

func (f fakeAPI) QueryRange(context.Context, string, promv1.Range, ...promv1.Option) (model.Value, promv1.Warnings, error) {
	return nil, nil, f.err
}

func (f fakeAPI) Query(context.Context, string, time.Time, ...promv1.Option) (model.Value, promv1.Warnings, error) {
	return nil, nil, f.err
}

func TestAnEmptyAnswerIsAnErrorNotAPanic(t *testing.T) {
	p, err := NewPrometheus(newReader(t), PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.defAPI = fakeAPI{}
	_, err = p.Query(context.Background(), exampleRollout(nil), sluicev1.MetricCheck{Name: sluicev1.MetricRequestDuration})
	if err == nil || !strings.Contains(err.Error(), "returned nothing") {
		t.Errorf("err = %v, want one saying nothing was returned", err)
	}
}

func TestBuiltinMetricsNeedADefaultAddress(t *testing.T) {
	p, err := NewPrometheus(newReader(t), PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Query(context.Background(), exampleRollout(nil), sluicev1.MetricCheck{Name: sluicev1.MetricRequestDuration})
	if err == nil || !strings.Contains(err.Error(), "--prometheus-address") {
		t.Errorf("err = %v", err)
	}
	if _, err := NewPrometheus(newReader(t), PrometheusOptions{Gateway: "nginx"}); err == nil {
		t.Errorf("an unknown gateway flavour must be refused")
	}
}

// barrierQuerier blocks each query until `want` queries are in flight at
// once, recording the most seen in flight.
type barrierQuerier struct {
	want     int32
	inFlight atomic.Int32
	max      atomic.Int32
	once     sync.Once
	all      chan struct{}
}

func (b *barrierQuerier) Query(ctx context.Context, _ *sluicev1.Rollout, _ sluicev1.MetricCheck) (float64, error) {
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for {
		m := b.max.Load()
		if n <= m || b.max.CompareAndSwap(m, n) {
			break
		}
	}
	if n >= b.want {
		b.once.Do(func() { close(b.all) })
	}
	select {
	case <-b.all:
		return 100, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func TestRunQueriesTheChecksOfAStepConcurrentlyWithinItsBound(t *testing.T) {
	ro := exampleRollout(nil)
	ro.Spec.Analysis = &sluicev1.Analysis{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		ro.Spec.Analysis.Metrics = append(ro.Spec.Analysis.Metrics, sluicev1.MetricCheck{Name: n, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0)}})
	}
	q := &barrierQuerier{want: 3, all: make(chan struct{})}
	// If the checks ran one after the other, none would reach the barrier
	// and each would fail at the check timeout.
	res := RunWith(context.Background(), q, ro, time.Now(), 3, 10*time.Second)
	if len(res.Failed) != 0 {
		t.Errorf("failed: %v", res.Failed)
	}
	if got := q.max.Load(); got != 3 {
		t.Errorf("at most %d queries in flight, want the bound 3", got)
	}
	for i, ms := range res.Metrics {
		if ms.Name != ro.Spec.Analysis.Metrics[i].Name || ms.Verdict != VerdictPass || ms.CheckedAt == nil {
			t.Errorf("metric %d = %+v, want %s passed, in the spec's order", i, ms, ro.Spec.Analysis.Metrics[i].Name)
		}
	}
}

type panicky struct{}

func (panicky) Query(context.Context, *sluicev1.Rollout, sluicev1.MetricCheck) (float64, error) {
	panic("boom")
}

func TestRunTurnsAPanickingProviderIntoAFailedCheck(t *testing.T) {
	ro := exampleRollout(nil)
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{{Name: "m"}}}
	res := Run(context.Background(), panicky{}, ro, time.Now())
	if len(res.Failed) != 1 || !strings.Contains(res.Failed[0], "panicked: boom") {
		t.Errorf("failed = %v", res.Failed)
	}
}
