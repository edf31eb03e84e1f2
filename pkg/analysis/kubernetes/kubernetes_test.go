package kubernetes

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

// An ExternalMetricValueList as the external metrics API serves it.
const documented = `{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},
"items":[{"metricName":"queue_messages_ready","metricLabels":{"queue":"orders"},"timestamp":"2026-12-02T09:00:00Z","value":"1500m"}]}`

// status is a metav1.Status error answer of the API server.
func status(code int, reason, msg string) providertest.Answer {
	return providertest.Answer{Status: code, Body: `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"` + msg +
		`","reason":"` + reason + `","code":` + strconv.Itoa(code) + `}`}
}

func build(t *testing.T, url string) (provider.Provider, error) {
	kube, err := NewRESTClient(&rest.Config{Host: url})
	if err != nil {
		t.Fatal(err)
	}
	cfg := providertest.Config(sluicev1.MetricProvider{Type: "kubernetes"}, nil)
	cfg.Kube, cfg.Namespace = kube, "shop"
	return New(cfg)
}

// The answers of an adapter and the API server's errors are tested through
// a real API server (apiserver_test.go); these are the answers the test
// adapter does not give.
func TestKubernetesNeverPassesOnARateLimitOrAMissingValue(t *testing.T) {
	providertest.Run(t, []providertest.Case{
		{Name: "a 429 is the rate limit, never a pass", Answer: func() providertest.Answer {
			a := status(429, "TooManyRequests", "too many requests")
			a.Body = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too many requests","reason":"TooManyRequests","details":{"retryAfterSeconds":3},"code":429}`
			a.Headers = map[string]string{"Retry-After": "3"}
			return a
		}(), Err: "the external metrics API rate limit reached (429 Too Many Requests); it asks to retry after 3"},
		{Name: "an item without a value is an error, not 0", Answer: providertest.Answer{Body: `{"items":[{"metricName":"queue_messages_ready","metricLabels":{}}]}`},
			Err: "the external metrics answer for queue_messages_ready has an item without a value"},
	}, "queue_messages_ready{queue=orders}", func(url string) (provider.Provider, error) { return build(t, url) })
}

func TestKubernetesAsksForTheMetricInItsNamespaceWithTheSelector(t *testing.T) {
	var got *http.Request
	srv := providertest.Server(t, &providertest.Answer{Body: documented}, func(r *http.Request) { got = r })
	p, err := build(t, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Query(t.Context(), "queue_messages_ready{queue=orders,env in (prod)}"); err != nil {
		t.Fatal(err)
	}
	if got.URL.Path != "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_messages_ready" ||
		got.URL.Query().Get("labelSelector") != "env in (prod),queue=orders" {
		t.Errorf("request %s", got.URL)
	}
	for _, bad := range []string{"", "a b", "q{=x}", "q{x", "q/../../secrets"} {
		if _, err := p.Query(t.Context(), bad); err == nil {
			t.Errorf("query %q was accepted", bad)
		}
	}
}

func TestKubernetesNeedsTheManagersClient(t *testing.T) {
	if _, err := New(providertest.Config(sluicev1.MetricProvider{Type: "kubernetes"}, nil)); err == nil {
		t.Error("a provider without a client was built")
	}
}

func TestKubernetesSaysWhyItHasNoSeries(t *testing.T) {
	p, err := build(t, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(provider.SeriesProvider); ok {
		t.Fatal("the kubernetes provider claims to return a series; the external metrics API has no history")
	}
	n, ok := p.(provider.NoSeries)
	if !ok || !strings.Contains(n.NoSeries(), "serves only the current value, no history") {
		t.Errorf("the kubernetes provider does not say why it has no series")
	}
}
