package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func metricTemplate(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.dev/v1alpha1", "kind": "MetricTemplate",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec":     spec,
	}}
}

// TestTheAPIServerBoundsWhatAMetricTemplateSends: a template's query,
// address and headers end up in requests the manager sends for whoever
// wrote it; they are bounded at apply, and a header that could split a
// request (a line break, a name that is not a token) is refused.
func TestTheAPIServerBoundsWhatAMetricTemplateSends(t *testing.T) {
	ok := map[string]any{
		"provider": map[string]any{"address": "http://prometheus.monitoring:9090", "headers": map[string]any{"X-Scope-OrgID": "team-a"}},
		"query":    "sum(rate(http_requests_total[{{ .interval }}]))",
	}
	if err := k8sClient.Create(context.Background(), metricTemplate("valid", ok)); err != nil {
		t.Fatalf("a valid MetricTemplate was rejected: %v", err)
	}
	many := map[string]any{}
	for i := range 9 {
		many[fmt.Sprintf("X-H%d", i)] = "v"
	}
	for i, tc := range []struct {
		name string
		spec map[string]any
		want string
	}{
		{"a query over 16 KiB", map[string]any{"provider": map[string]any{}, "query": strings.Repeat("x", 16<<10+1)},
			"Too long"},
		{"an address over 2 KiB", map[string]any{"provider": map[string]any{"address": "http://p/" + strings.Repeat("a", 2048)}, "query": "up"},
			"Too long"},
		{"a header value with a line break", map[string]any{"provider": map[string]any{"headers": map[string]any{"X-A": "1\r\nX-Evil: 2"}}, "query": "up"},
			"header names must be HTTP tokens and values at most 4096 characters without line breaks"},
		{"a header name that is not a token", map[string]any{"provider": map[string]any{"headers": map[string]any{"X A:": "1"}}, "query": "up"},
			"header names must be HTTP tokens and values at most 4096 characters without line breaks"},
		{"more than 8 headers", map[string]any{"provider": map[string]any{"headers": many}, "query": "up"},
			"must have at most 8 items"},
	} {
		err := k8sClient.Create(context.Background(), metricTemplate(fmt.Sprintf("bad-%d", i), tc.spec))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a rejection saying %q", tc.name, err, tc.want)
		}
	}
}

// TestTheAPIServerRefusesAProviderMissingWhatItsTypeNeeds: each provider
// type's own fields are required by it and refused on the others, with a
// message that names them.
func TestTheAPIServerRefusesAProviderMissingWhatItsTypeNeeds(t *testing.T) {
	withKeys := func(p map[string]any) map[string]any {
		p["secretRef"] = map[string]any{"name": "keys"}
		return p
	}
	for i, tc := range []struct {
		name     string
		provider map[string]any
		want     string // empty: accepted
	}{
		{"a web template with its address and JSONPath", map[string]any{"type": "web", "address": "http://stats.shop", "jsonPath": "{.value}"}, ""},
		{"a web POST with a body", map[string]any{"type": "web", "address": "http://stats.shop", "jsonPath": "{.v}", "method": "POST", "body": "{}"}, ""},
		{"a datadog template with its keys", withKeys(map[string]any{"type": "datadog"}), ""},
		{"a newrelic template with its account", withKeys(map[string]any{"type": "newrelic", "accountID": 42}), ""},
		{"a dynatrace template with its environment", withKeys(map[string]any{"type": "dynatrace", "address": "https://abc.live.dynatrace.com"}), ""},
		{"a cloudwatch template with its region", withKeys(map[string]any{"type": "cloudwatch", "region": "eu-west-1"}), ""},
		{"an influxdb template with its database", map[string]any{"type": "influxdb", "address": "http://influx:8086", "database": "shop"}, ""},
		{"a graphite template with its address", map[string]any{"type": "graphite", "address": "http://graphite"}, ""},
		{"a kubernetes template", map[string]any{"type": "kubernetes"}, ""},
		{"a kubernetes template with an address", map[string]any{"type": "kubernetes", "address": "https://10.96.0.1"},
			"provider type kubernetes reads the cluster's external metrics API: it takes no address, secretRef or headers"},
		{"a web template without an address", map[string]any{"type": "web", "jsonPath": "{.v}"},
			"provider types web, dynatrace, influxdb and graphite need provider.address"},
		{"a web template without a JSONPath", map[string]any{"type": "web", "address": "http://stats.shop"},
			"provider.jsonPath is required by, and only allowed for, type web"},
		{"a JSONPath on prometheus", map[string]any{"jsonPath": "{.v}"},
			"provider.jsonPath is required by, and only allowed for, type web"},
		{"a body on a GET", map[string]any{"type": "web", "address": "http://s", "jsonPath": "{.v}", "body": "{}"},
			"provider.body is only allowed for type web with method POST"},
		{"a method on graphite", map[string]any{"type": "graphite", "address": "http://g", "method": "POST"},
			"provider.method is only allowed for type web"},
		{"a cloudwatch template without a region", withKeys(map[string]any{"type": "cloudwatch"}),
			"provider.region is required by, and only allowed for, type cloudwatch"},
		{"a newrelic template without an account", withKeys(map[string]any{"type": "newrelic"}),
			"provider.accountID is required by, and only allowed for, type newrelic"},
		{"an influxdb template without a database", map[string]any{"type": "influxdb", "address": "http://i"},
			"provider.database is required by, and only allowed for, type influxdb"},
		{"a datadog template without keys", map[string]any{"type": "datadog"},
			"provider types datadog, newrelic, dynatrace and cloudwatch need provider.secretRef (their API keys)"},
		{"an unknown type", map[string]any{"type": "zabbix"}, "Unsupported value: \"zabbix\""},
	} {
		err := k8sClient.Create(context.Background(), metricTemplate(fmt.Sprintf("typed-%d", i), map[string]any{"provider": tc.provider, "query": "q"}))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: rejected: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want a rejection saying %q", tc.name, err, tc.want)
		}
	}
}

// TestTheAPIServerAcceptsAClusterMetricTemplate: the cluster-scoped kind
// has the same spec and rules (a reference to one with a namespace is
// refused in the Rollout tests).
func TestTheAPIServerAcceptsAClusterMetricTemplate(t *testing.T) {
	cmt := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.dev/v1alpha1", "kind": "ClusterMetricTemplate",
		"metadata": map[string]any{"name": "shared-errors"},
		"spec":     map[string]any{"provider": map[string]any{"type": "graphite", "address": "http://graphite"}, "query": "sumSeries(x)"},
	}}
	if err := k8sClient.Create(context.Background(), cmt); err != nil {
		t.Fatalf("a valid ClusterMetricTemplate was rejected: %v", err)
	}
}
