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
