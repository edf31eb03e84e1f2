package analysis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/metricservers"
	"github.com/sluice-dev/sluice/pkg/analysis"
	"github.com/sluice-dev/sluice/pkg/analysis/kubernetes"
	"github.com/sluice-dev/sluice/pkg/egress"
)

// webServer records the requests of a web provider and answers
// {"value": 42}, or redirects when the path asks for it.
type webServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
}

func newWebServer(t *testing.T) *webServer {
	s := &webServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests, s.bodies = append(s.requests, r), append(s.bodies, string(b))
		s.mu.Unlock()
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/stats", http.StatusFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"value": 42})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *webServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *webServer) last() (*http.Request, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1], s.bodies[len(s.bodies)-1]
}

func webTemplate(ns, name, address string, mut ...func(*sluicev1.MetricTemplateSpec)) *sluicev1.MetricTemplate {
	mt := &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: sluicev1.MetricTemplateSpec{Query: "/stats?app={{ .target }}",
			Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderWeb, Address: address, JSONPath: "{.value}"}}}
	for _, m := range mut {
		m(&mt.Spec)
	}
	return mt
}

func withSecret(name string) func(*sluicev1.MetricTemplateSpec) {
	return func(s *sluicev1.MetricTemplateSpec) {
		s.Provider.SecretRef = &sluicev1.LocalObjectReference{Name: name}
	}
}

func secret(ns, name string, optIn bool, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{}}
	if optIn {
		s.Labels = map[string]string{sluicev1.MetricsCredentialsLabel: "true"}
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// loopbackAllowed is the egress policy of these tests: the default one
// (link-local and the API server denied) with the test servers' loopback
// allowed.
func loopbackAllowed(t *testing.T) *egress.Policy {
	p, err := egress.New([]string{"127.0.0.1/32"}, nil, []string{"10.96.0.1:443"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runOne(t *testing.T, r client.Reader, opts analysis.PrometheusOptions, ro *sluicev1.Rollout, ref sluicev1.MetricTemplateReference) sluicev1.MetricStatus {
	t.Helper()
	p, err := analysis.NewPrometheus(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := check("m")
	c.TemplateRef = &ref
	c.ThresholdRange = &sluicev1.ThresholdRange{Max: ptr(50.0)}
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{c}}
	return analysis.Run(context.Background(), p, ro, time.Now()).Metrics[0]
}

func ptr[T any](v T) *T { return &v }

func TestATemplateDispatchesOnItsProviderType(t *testing.T) {
	srv := newWebServer(t)
	r := reader(t,
		webTemplate("shop", "web", srv.URL, withSecret("creds")),
		webTemplate("shop", "posts", srv.URL, func(s *sluicev1.MetricTemplateSpec) {
			s.Provider.Method, s.Provider.Body = "POST", `{"app":"{{ .target }}","window":"{{ .interval }}"}`
		}),
		secret("shop", "creds", true, map[string]string{"token": "t0k"}),
	)
	opts := analysis.PrometheusOptions{Egress: loopbackAllowed(t)}

	ms := runOne(t, r, opts, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "web"})
	if ms.Verdict != analysis.VerdictPass || ms.Value != "42" {
		t.Fatalf("web template: %+v, want Pass with 42", ms)
	}
	req, _ := srv.last()
	if req.URL.String() != "/stats?app=podinfo" || req.Header.Get("Authorization") != "Bearer t0k" {
		t.Errorf("request %s with Authorization %q", req.URL, req.Header.Get("Authorization"))
	}

	if ms := runOne(t, r, opts, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "posts"}); ms.Verdict != analysis.VerdictPass {
		t.Fatalf("POST template: %+v", ms)
	}
	req, body := srv.last()
	if req.Method != "POST" || body != `{"app":"podinfo","window":"10s"}` {
		t.Errorf("POST body %q (method %s), want the rendered provider.body", body, req.Method)
	}
}

func TestAMissingOrMisconfiguredProviderIsAnErrorVerdictNamingTheTemplate(t *testing.T) {
	srv := newWebServer(t)
	r := reader(t,
		webTemplate("shop", "borrowed", srv.URL, withSecret("app-token")),
		webTemplate("shop", "moved", srv.URL, func(s *sluicev1.MetricTemplateSpec) { s.Query = "/moved" }),
		&sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "dd-without-keys", Namespace: "shop"},
			Spec: sluicev1.MetricTemplateSpec{Query: "sum:errors{*}", Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderDatadog, Address: srv.URL}}},
		&sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "dd-half-keys", Namespace: "shop"},
			Spec: sluicev1.MetricTemplateSpec{Query: "sum:errors{*}", Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderDatadog,
				Address: srv.URL, SecretRef: &sluicev1.LocalObjectReference{Name: "dd"}}}},
		&sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "future", Namespace: "shop"},
			Spec: sluicev1.MetricTemplateSpec{Query: "x", Provider: sluicev1.MetricProvider{Type: "zabbix"}}},
		webTemplate("shop", "metadata", "http://169.254.169.254"),
		secret("shop", "app-token", false, map[string]string{"token": "t"}),
		secret("shop", "dd", true, map[string]string{"api-key": "k"}),
	)
	opts := analysis.PrometheusOptions{Egress: loopbackAllowed(t)}
	for _, tc := range []struct{ template, says string }{
		{"nope", "m: MetricTemplate nope not found"},
		{"borrowed", `m: MetricTemplate borrowed: Secret app-token lacks the label sluice.dev/metrics-credentials: "true"`},
		{"moved", "m: MetricTemplate moved: the web provider answered 302 Found to /stats: redirects are not followed"},
		{"dd-without-keys", `m: MetricTemplate dd-without-keys: provider type datadog needs provider.secretRef with the key "api-key"`},
		{"dd-half-keys", `m: MetricTemplate dd-half-keys: Secret dd has no key "app-key" (provider type datadog)`},
		{"future", `m: MetricTemplate future: provider type "zabbix" is not supported by this manager`},
		{"metadata", "m: MetricTemplate metadata: provider.address: egress to 169.254.169.254:80 refused: link-local addresses are denied"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			before := srv.count()
			ms := runOne(t, r, opts, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: tc.template})
			if ms.Verdict != analysis.VerdictError || !strings.HasPrefix(ms.Message, tc.says) {
				t.Errorf("got %+v\nwant an Error starting %q", ms, tc.says)
			}
			if tc.template != "moved" && srv.count() != before {
				t.Errorf("a request was sent")
			}
		})
	}
}

func TestEveryProviderTypeIsCheckedByTheEgressPolicy(t *testing.T) {
	srv := newWebServer(t)
	r := reader(t, webTemplate("shop", "local", srv.URL))
	// The default policy: loopback is denied for web, as for prometheus.
	strict, err := egress.New(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := runOne(t, r, analysis.PrometheusOptions{Egress: strict}, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "local"})
	if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, "refused: loopback addresses are denied") || srv.count() != 0 {
		t.Errorf("got %+v after %d requests, want an egress refusal before any request", ms, srv.count())
	}
}

func TestASharedTemplateIsUsedOnlyAsItsOwnerAllows(t *testing.T) {
	srv := newWebServer(t)
	shared := webTemplate("platform", "shared", srv.URL, withSecret("platform-token"))
	shared.Annotations = map[string]string{sluicev1.SharedWithAnnotation: "shop, cart"}
	r := reader(t,
		shared,
		webTemplate("platform", "private", srv.URL, withSecret("platform-token")),
		&sluicev1.ClusterMetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "cluster-wide"},
			Spec: webTemplate("", "", srv.URL, withSecret("cluster-token")).Spec},
		secret("platform", "platform-token", true, map[string]string{"token": "platform"}),
		// A Secret of the same name in the Rollout's namespace is never read.
		secret("shop", "platform-token", true, map[string]string{"token": "shop"}),
		secret("sluice-system", "cluster-token", true, map[string]string{"token": "cluster"}),
	)
	opts := analysis.PrometheusOptions{Egress: loopbackAllowed(t), ClusterSecretNamespace: "sluice-system"}
	for _, tc := range []struct {
		name      string
		ns        string
		ref       sluicev1.MetricTemplateReference
		token     string
		errPrefix string
	}{
		{"a namespace the template lists", "shop", sluicev1.MetricTemplateReference{Name: "shared", Namespace: "platform"}, "Bearer platform", ""},
		{"a namespace the template does not list", "billing", sluicev1.MetricTemplateReference{Name: "shared", Namespace: "platform"}, "",
			"m: MetricTemplate platform/shared is not shared with namespace billing: its owner may list it in the annotation sluice.dev/shared-with"},
		{"a template that is not shared", "shop", sluicev1.MetricTemplateReference{Name: "private", Namespace: "platform"}, "",
			"m: MetricTemplate platform/private is not shared with namespace shop"},
		{"a ClusterMetricTemplate, its Secret from the manager's namespace", "billing",
			sluicev1.MetricTemplateReference{Name: "cluster-wide", Kind: sluicev1.KindClusterMetricTemplate}, "Bearer cluster", ""},
		{"a missing ClusterMetricTemplate", "shop", sluicev1.MetricTemplateReference{Name: "nope", Kind: sluicev1.KindClusterMetricTemplate}, "",
			"m: ClusterMetricTemplate nope not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.count()
			ms := runOne(t, r, opts, rolloutIn(tc.ns, nil), tc.ref)
			if tc.errPrefix != "" {
				if ms.Verdict != analysis.VerdictError || !strings.HasPrefix(ms.Message, tc.errPrefix) || srv.count() != before {
					t.Errorf("got %+v, want an Error starting %q and no request", ms, tc.errPrefix)
				}
				return
			}
			if ms.Verdict != analysis.VerdictPass {
				t.Fatalf("got %+v, want Pass", ms)
			}
			if req, _ := srv.last(); req.Header.Get("Authorization") != tc.token {
				t.Errorf("Authorization %q, want %q", req.Header.Get("Authorization"), tc.token)
			}
		})
	}
	t.Run("a ClusterMetricTemplate's Secret without a manager namespace", func(t *testing.T) {
		ms := runOne(t, r, analysis.PrometheusOptions{Egress: loopbackAllowed(t)}, rolloutIn("shop", nil),
			sluicev1.MetricTemplateReference{Name: "cluster-wide", Kind: sluicev1.KindClusterMetricTemplate})
		if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, "the manager has no namespace to read a ClusterMetricTemplate's Secret from") {
			t.Errorf("got %+v", ms)
		}
	})
}

// TestThePrometheusProviderWorksAgainstVictoriaMetrics: a second server
// speaking Prometheus' query API (Debian's victoria-metrics).
func TestThePrometheusProviderWorksAgainstVictoriaMetrics(t *testing.T) {
	vm := metricservers.StartVictoriaMetrics(t)
	vm.Import(t, "shop_errors{app=\"podinfo\"} 3\nshop_errors{app=\"other\"} 9\n")
	r := reader(t,
		template("shop", "vm", `sum(shop_errors{app="{{ .target }}"})`, func(mt *sluicev1.MetricTemplate) { mt.Spec.Provider.Address = vm.URL }),
		template("shop", "vm-empty", `sum(shop_errors{app="nope"})`, func(mt *sluicev1.MetricTemplate) { mt.Spec.Provider.Address = vm.URL }),
	)
	opts := analysis.PrometheusOptions{Egress: loopbackAllowed(t)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ms := runOne(t, r, opts, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "vm"})
		if ms.Verdict == analysis.VerdictPass && ms.Value == "3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("victoria-metrics: %+v, want Pass with 3", ms)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ms := runOne(t, r, opts, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "vm-empty"}); ms.Verdict != analysis.VerdictNoData {
		t.Errorf("no series: %+v, want NoData", ms)
	}
}

func TestAPrometheusTemplateDoesNotFollowARedirect(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed to %s", r.URL)
	}))
	t.Cleanup(target.Close)
	redirecting := httptest.NewServer(http.RedirectHandler(target.URL+"/api/v1/query", http.StatusTemporaryRedirect))
	t.Cleanup(redirecting.Close)
	r := reader(t, template("shop", "moved", "up", func(mt *sluicev1.MetricTemplate) { mt.Spec.Provider.Address = redirecting.URL }))
	ms := runOne(t, r, analysis.PrometheusOptions{Egress: loopbackAllowed(t)}, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "moved"})
	if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, "307 Temporary Redirect to "+target.URL+"/api/v1/query: redirects are not followed") {
		t.Errorf("got %+v", ms)
	}
}

func TestASlowProviderTimesOutAndFailsTheCheck(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	r := reader(t, webTemplate("shop", "slow", slow.URL))
	start := time.Now()
	ms := runOne(t, r, analysis.PrometheusOptions{Egress: loopbackAllowed(t), Timeout: 300 * time.Millisecond},
		rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "slow"})
	if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, "m: MetricTemplate slow: the web provider query timed out after 300ms") {
		t.Errorf("got %+v, want an Error saying the query timed out", ms)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the check took %s", d)
	}
}

func TestExternalMetricsAreReadInTheTemplatesNamespaceOrForAClusterTemplateTheRollouts(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},"items":[{"metricName":"queue_depth","value":"7"}]}`))
	}))
	t.Cleanup(api.Close)
	kube, err := kubernetes.NewRESTClient(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	spec := sluicev1.MetricTemplateSpec{Query: "queue_depth{app={{ .target }}}", Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderKubernetes}}
	shared := &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "queue", Namespace: "platform",
		Annotations: map[string]string{sluicev1.SharedWithAnnotation: "*"}}, Spec: spec}
	r := reader(t, shared, &sluicev1.ClusterMetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "queue"}, Spec: spec})
	opts := analysis.PrometheusOptions{Kube: kube}
	for _, tc := range []struct {
		ref  sluicev1.MetricTemplateReference
		path string
	}{
		{sluicev1.MetricTemplateReference{Name: "queue", Namespace: "platform"}, "/apis/external.metrics.k8s.io/v1beta1/namespaces/platform/queue_depth"},
		{sluicev1.MetricTemplateReference{Name: "queue", Kind: sluicev1.KindClusterMetricTemplate}, "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth"},
	} {
		ms := runOne(t, r, opts, rolloutIn("shop", nil), tc.ref)
		mu.Lock()
		last := paths[len(paths)-1]
		mu.Unlock()
		if ms.Verdict != analysis.VerdictPass || ms.Value != "7" || last != tc.path {
			t.Errorf("%+v: %+v from %s, want Pass with 7 from %s", tc.ref, ms, last, tc.path)
		}
	}
	ms := runOne(t, r, analysis.PrometheusOptions{}, rolloutIn("shop", nil), sluicev1.MetricTemplateReference{Name: "queue", Namespace: "platform"})
	if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, "the manager has no client for the external metrics API") {
		t.Errorf("without a client: %+v", ms)
	}
}

// TestACompareCheckOnTheExternalMetricsAPISaysItHasNoHistory: the
// kubernetes provider has no series; a compare check on it is an Error
// saying why, and the API is never asked.
func TestACompareCheckOnTheExternalMetricsAPISaysItHasNoHistory(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},"items":[{"metricName":"queue_depth","value":"7"}]}`))
	}))
	t.Cleanup(api.Close)
	kube, err := kubernetes.NewRESTClient(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	mt := &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "queue", Namespace: "shop"},
		Spec: sluicev1.MetricTemplateSpec{Query: "queue_depth{app={{ .target }}}", Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderKubernetes}}}
	p, err := analysis.NewPrometheus(reader(t, mt), analysis.PrometheusOptions{Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	c := check("m")
	c.TemplateRef = &sluicev1.MetricTemplateReference{Name: "queue"}
	c.Compare = &sluicev1.Compare{Direction: sluicev1.CompareIncrease}
	ro := rolloutIn("shop", nil)
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{c}}
	ms := analysis.Run(context.Background(), p, ro, time.Now()).Metrics[0]
	if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message,
		"MetricTemplate queue: provider kubernetes cannot return a series (the external metrics API serves only the current value, no history") ||
		!strings.Contains(ms.Message, "compare needs one") {
		t.Errorf("%+v, want an Error saying the external metrics API has no history", ms)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked != 0 {
		t.Errorf("the external metrics API was asked %d times, want none", asked)
	}
}

// TestACompareCheckReadsBothSidesFromGraphite: a provider with Series
// (graphite) answers compare checks, the template rendered once per side.
func TestACompareCheckReadsBothSidesFromGraphite(t *testing.T) {
	srv := metricservers.StartGraphite(t)
	now := time.Now().Unix()
	var lines []string
	for i := int64(1); i <= 20; i++ {
		jitter := float64(i%5) - 2 // -2..+2
		lines = append(lines,
			fmt.Sprintf("shop.podinfo.latency %g %d", 240+jitter, now-i),
			fmt.Sprintf("shop.podinfo-primary.latency %g %d", 200+jitter, now-i))
	}
	srv.Send(t, lines...)
	mt := &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "latency", Namespace: "shop"},
		Spec: sluicev1.MetricTemplateSpec{Query: "shop.{{ .target }}.latency",
			Provider: sluicev1.MetricProvider{Type: sluicev1.ProviderGraphite, Address: srv.URL}}}
	p, err := analysis.NewPrometheus(reader(t, mt), analysis.PrometheusOptions{Egress: loopbackAllowed(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := sluicev1.MetricCheck{Name: "latency", TemplateRef: &sluicev1.MetricTemplateReference{Name: "latency"},
		Interval: &metav1.Duration{Duration: 25 * time.Second},
		Compare:  &sluicev1.Compare{Direction: sluicev1.CompareIncrease, Step: &metav1.Duration{Duration: time.Second}}}
	ro := rolloutIn("shop", nil)
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{c}}
	// carbon-cache writes its whisper files asynchronously.
	var ms sluicev1.MetricStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		ms = analysis.Run(context.Background(), p, ro, time.Now()).Metrics[0]
		if ms.Verdict == analysis.VerdictFail || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ms.Verdict != analysis.VerdictFail || ms.Value != "240" || ms.PrimaryValue != "200" || ms.Estimate != "+20.0%" {
		t.Errorf("%+v, want Fail with the canary at 240 against the primary at 200 (+20.0%%)", ms)
	}
}

// TestACompareCheckReadsBothSidesFromAWebEndpoint: a web template whose
// JSONPath selects an array answers compare checks, one request per side,
// the step rendered as .interval.
func TestACompareCheckReadsBothSidesFromAWebEndpoint(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		values := []float64{201, 199, 200, 202, 198, 200}
		if r.URL.Query().Get("app") == "podinfo" {
			values = []float64{241, 239, 240, 242, 238, 240}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"values": values}})
	}))
	t.Cleanup(srv.Close)
	mt := webTemplate("shop", "latency", srv.URL, func(s *sluicev1.MetricTemplateSpec) {
		s.Query = "/series?app={{ .target }}&step={{ .interval }}"
		s.Provider.JSONPath = "{.data.values}"
	})
	p, err := analysis.NewPrometheus(reader(t, mt), analysis.PrometheusOptions{Egress: loopbackAllowed(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := sluicev1.MetricCheck{Name: "latency", TemplateRef: &sluicev1.MetricTemplateReference{Name: "latency"},
		Compare: &sluicev1.Compare{Direction: sluicev1.CompareIncrease}}
	ro := rolloutIn("shop", nil)
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{c}}
	ms := analysis.Run(context.Background(), p, ro, time.Now()).Metrics[0]
	if ms.Verdict != analysis.VerdictFail || ms.Value != "240" || ms.PrimaryValue != "200" || ms.Estimate != "+20.0%" {
		t.Errorf("%+v, want Fail with the canary at 240 against the primary at 200 (+20.0%%)", ms)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(queries)
	if want := []string{"app=podinfo&step=30s", "app=podinfo-primary&step=30s"}; !slices.Equal(queries, want) {
		t.Errorf("queries %q, want %q", queries, want)
	}
}
